"""testnet/linearizability.py: the Wing-Gong/Lowe checker agrees with the published verdicts of 102 real Jepsen etcd
histories, decides the textbook cases, gives `unknown` when its budget runs out, and (property) accepts every
history produced by a real register under a random interleaving but not the same history with one read changed
to a value nobody wrote."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from cli.main import main
from testnet.history import Op, read_history
from testnet.linearizability import ModelError, RegisterModel, check, generate_register_history

# Copied from ../shared/testdata (their README says where they come from: Porcupine's test data, MIT licence).
JEPSEN = Path(__file__).resolve().parents[1] / "data" / "jepsen-etcd"


class H:
    """A hand-made history: `h.invoke(p, op, value)` then `h.ok(p, value)` / `h.fail(p)` / `h.info(p)`."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.open: dict[str, tuple[str, str]] = {}

    def _add(self, type: str, process: str, op: str, key: str, value: Any) -> H:
        self.ops.append(Op(index=len(self.ops), time_ns=len(self.ops) * 1000, type=type, process=process, node="n",
                           op=op, key=key, value=value))
        return self

    def invoke(self, process: str, op: str, value: Any = None, key: str = "x") -> H:
        self.open[process] = (op, key)
        return self._add("invoke", process, op, key, value)

    def ok(self, process: str, value: Any = None) -> H:
        op, key = self.open.pop(process)
        return self._add("ok", process, op, key, value)

    def fail(self, process: str, value: Any = None) -> H:
        op, key = self.open.pop(process)
        return self._add("fail", process, op, key, value)

    def info(self, process: str) -> H:
        op, key = self.open.pop(process)
        return self._add("info", process, op, key, None)

    def verdict(self) -> str:
        return check(self.ops, RegisterModel()).verdict


# -- real histories ------------------------------------------------------------------------------------------------


def test_every_jepsen_etcd_history_gets_its_published_verdict() -> None:
    expected: dict[str, bool] = json.loads((JEPSEN / "expected.json").read_text())
    assert len(expected) == 102 and sum(expected.values()) == 23
    wrong = {}
    for name, linearizable in sorted(expected.items()):
        result = check(read_history(JEPSEN / "histories" / f"{name}.jsonl"), RegisterModel())
        if result.verdict != ("linearizable" if linearizable else "not-linearizable"):
            wrong[name] = result.verdict
    assert wrong == {}


# -- textbook cases ------------------------------------------------------------------------------------------------


def test_sequential_write_then_read_is_linearizable_and_a_stale_read_after_it_is_not() -> None:
    h = H().invoke("a", "write", 1).ok("a", 1).invoke("b", "read").ok("b", 1)
    assert h.verdict() == "linearizable"
    stale = H().invoke("a", "write", 1).ok("a", 1).invoke("a", "write", 2).ok("a", 2).invoke("b", "read").ok("b", 1)
    assert stale.verdict() == "not-linearizable"


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in (None, 1):
        h = H().invoke("a", "write", 1).invoke("b", "read").ok("b", seen).ok("a", 1)
        assert h.verdict() == "linearizable"


def test_a_value_never_written_cannot_be_read() -> None:
    assert H().invoke("a", "write", 1).ok("a", 1).invoke("b", "read").ok("b", 7).verdict() == "not-linearizable"


def test_concurrent_writes_read_in_both_orders_by_two_clients_is_not_linearizable() -> None:
    h = (H().invoke("w1", "write", 1).invoke("w2", "write", 2)
         .invoke("r1", "read").ok("r1", 1).invoke("r2", "read").ok("r2", 2)   # 1 then 2 ...
         .invoke("r1", "read").ok("r1", 2).invoke("r2", "read").ok("r2", 1)   # ... and 2 then 1
         .ok("w1", 1).ok("w2", 2))
    # r1 saw 1 then 2, so write 1 precedes write 2; r2 saw 2 then 1 afterwards: impossible for one register.
    assert h.verdict() == "not-linearizable"


def test_an_info_write_may_or_may_not_have_happened() -> None:
    happened = H().invoke("a", "write", 1).info("a").invoke("b", "read").ok("b", 1)
    not_happened = H().invoke("a", "write", 1).info("a").invoke("b", "read").ok("b", None)
    assert happened.verdict() == not_happened.verdict() == "linearizable"
    # ... but it cannot take effect before it was invoked.
    early = H().invoke("b", "read").ok("b", 1).invoke("a", "write", 1).info("a")
    assert early.verdict() == "not-linearizable"


def test_cas_outcomes_and_failed_writes() -> None:
    swapped = H().invoke("a", "write", 1).ok("a", 1).invoke("b", "cas", [1, 2]).ok("b", [1, 2])
    assert swapped.invoke("c", "read").ok("c", 2).verdict() == "linearizable"
    refused = H().invoke("a", "write", 1).ok("a", 1).invoke("b", "cas", [1, 2]).fail("b", [1, 2])
    assert refused.verdict() == "not-linearizable"  # the compare held, so a failed cas is impossible
    failed_write = H().invoke("a", "write", 1).fail("a").invoke("b", "read").ok("b", 1)
    assert failed_write.verdict() == "not-linearizable"  # a failed write did not happen


def test_keys_are_independent_and_the_verdict_names_the_operation_and_its_window() -> None:
    h = (H().invoke("a", "write", 1, key="x").ok("a", 1).invoke("b", "write", 5, key="y").ok("b", 5)
         .invoke("c", "read", key="x").ok("c", 1).invoke("d", "read", key="y").ok("d", 1))
    result = check(h.ops, RegisterModel())
    assert result.verdict == "not-linearizable"
    failed = result.failed_key
    assert failed is not None and failed.key == "y" and failed.stuck is not None
    assert result.operations[failed.stuck].describe() == "pd read y 1 -> ok"
    assert [op.describe() for op in result.window(failed.stuck)] == ["pb write y 5 -> ok", "pd read y 1 -> ok"]


def test_a_budget_gives_unknown_not_a_hang() -> None:
    h = H()
    for p in range(12):
        h.invoke(f"w{p}", "write", p)
    for p in range(12):
        h.ok(f"w{p}", p)
    h.invoke("r", "read").ok("r", 99)  # impossible: the search must try many orders to know it
    result = check(h.ops, RegisterModel(), max_states=50)
    assert result.verdict == "unknown" and "budget" in result.reason
    assert check(h.ops, RegisterModel(), should_stop=lambda: True, max_states=10**9).verdict in ("unknown",
                                                                                                "not-linearizable")


def test_operations_the_model_does_not_know_are_refused() -> None:
    with pytest.raises(ModelError, match="read, write and cas"):
        check(H().invoke("a", "transfer", 1).ok("a").ops, RegisterModel())
    with pytest.raises(ModelError, match=r"\[from, to\]"):
        check(H().invoke("a", "cas", 1).ok("a").ops, RegisterModel())


# -- property: real registers give linearizable histories ----------------------------------------------------------


def register_history(seed: int, processes: int, operations: int) -> tuple[list[Op], list[int]]:
    """A real register's history (generate_register_history) and the positions of its ok reads."""
    ops = generate_register_history(random.Random(seed), operations=operations, processes=processes)
    return ops, [i for i, op in enumerate(ops) if op.type == "ok" and op.op == "read"]


@given(seed=st.integers(0, 2**32), processes=st.integers(1, 6), operations=st.integers(1, 40))
def test_histories_of_a_real_register_are_linearizable(seed: int, processes: int, operations: int) -> None:
    ops, _ = register_history(seed, processes, operations)
    assert check(ops, RegisterModel()).verdict == "linearizable"


@given(seed=st.integers(0, 2**32), processes=st.integers(1, 6), operations=st.integers(5, 40),
       pick=st.integers(0))
def test_the_same_history_with_a_read_of_a_value_nobody_wrote_is_not(seed: int, processes: int, operations: int,
                                                                       pick: int) -> None:
    ops, reads = register_history(seed, processes, operations)
    if not reads:
        return
    index = reads[pick % len(reads)]
    ops[index] = Op(index=ops[index].index, time_ns=ops[index].time_ns, type="ok", process=ops[index].process,
                    node="n", op="read", key=ops[index].key, value=1000)  # writes are 0..4
    assert check(ops, RegisterModel()).verdict == "not-linearizable"


# -- the command ---------------------------------------------------------------------------------------------------


def test_the_command_exits_by_verdict_and_prints_json(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    ok_ops = H().invoke("a", "write", 1).ok("a", 1).invoke("b", "read").ok("b", 1).ops
    bad_ops = H().invoke("a", "write", 1).ok("a", 1).invoke("b", "read").ok("b", 2).ops
    for path, ops in ((good, ok_ops), (bad, bad_ops)):
        path.write_text("".join(json.dumps(op.to_json()) + "\n" for op in ops))
    runner = CliRunner()
    assert runner.invoke(main, ["check", "linearizable", str(good)]).exit_code == 0
    result = runner.invoke(main, ["check", "linearizable", str(bad), "--json"])
    assert result.exit_code == 1
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "not-linearizable" and verdict["first_unlinearizable"]["text"] == "pb read x 2 -> ok"
    text = runner.invoke(main, ["check", "linearizable", str(bad)])
    assert text.exit_code == 1 and ">> [2..3] pb read x 2 -> ok" in text.stdout
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("{not json\n{}\n")
    refused = runner.invoke(main, ["check", "linearizable", str(garbage)])
    assert refused.exit_code == 1 and "Traceback" not in refused.output and "line 1" in refused.stderr


def one_error_line(result: Any) -> str:
    """The command's stderr, which must be exactly one `error: ...` line (no traceback)."""
    lines = result.stderr.splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return str(lines[0])


@pytest.mark.parametrize("command", ["linearizable", "consistency"])
def test_a_file_that_is_not_a_well_formed_history_is_one_error_line(tmp_path: Path, command: str) -> None:
    record = H().invoke("a", "write", 1).ops[0].to_json()
    completion = {**record, "type": "ok"}
    cases: list[tuple[bytes, str]] = [
        (b"not json\n", "line 1: not a history record"),
        (b"[1,2,3]\n", "line 1: not a history record"),
        (b'{"index": 0, "time_', "line 1: not a history record"),
        (json.dumps({**record, "type": "bad"}).encode() + b"\n", "line 1: not a history record"),
        (b"", "no history records in"),
        (b"\n\n", "no history records in"),
        (json.dumps(record).encode() + b"\n\xff\n", "line 2: not UTF-8"),
        (json.dumps(completion).encode() + b"\n", "ok at index 0 (a write) has no matching invoke"),
        (json.dumps(record).encode() + b"\n" + json.dumps({**record, "index": 1}).encode() + b"\n",
         "process a invokes write at index 1 while index 0 is open"),
    ]
    runner = CliRunner()
    for content, message in cases:
        path = tmp_path / "history.jsonl"
        path.write_bytes(content)
        assert message in one_error_line(runner.invoke(main, ["check", command, str(path)])), content


@pytest.mark.parametrize("command", ["linearizable", "consistency"])
def test_a_torn_last_line_is_ignored_with_a_note_and_named_events_must_be_events(tmp_path: Path,
                                                                                 command: str) -> None:
    ops = H().invoke("a", "write", 1).ok("a", 1).ops
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(op.to_json()) + "\n" for op in ops) + '{"index": 2, "ti')
    runner = CliRunner()
    result = runner.invoke(main, ["check", command, str(path)])
    assert result.exit_code == 0 and "note: " in result.stderr and "line 3: torn last line" in result.stderr
    path.write_text("".join(json.dumps(op.to_json()) + "\n" for op in ops))
    events = tmp_path / "events.txt"
    for content, message in (("garbage\n", "line 1: not JSON"), ("[1]\n", "line 1: not an event"),
                             ("", "no events in")):
        events.write_text(content)
        refused = runner.invoke(main, ["check", command, str(path), "--html", str(tmp_path / "r.html"),
                                       "--events", str(events)])
        assert message in one_error_line(refused)


def test_the_summary_counts_the_whole_history_when_the_check_stops_early(tmp_path: Path) -> None:
    ops = (H().invoke("a", "write", 1, key="k1").ok("a", 1).invoke("b", "read", key="k1").ok("b", 2)
           .invoke("c", "write", 1, key="k2").ok("c", 1).invoke("d", "read", key="k3").ok("d", None).ops)
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(op.to_json()) + "\n" for op in ops))
    result = CliRunner().invoke(main, ["check", "linearizable", str(path)])
    assert result.exit_code == 1 and "4 operations on 3 key(s), stopped at key 1 of 3" in result.stdout
    data = json.loads(CliRunner().invoke(main, ["check", "linearizable", str(path), "--json"]).stdout)
    assert (data["keys"], data["keys_checked"]) == (3, 1)


def test_a_memory_budget_gives_unknown_before_a_long_key_exhausts_memory() -> None:
    ops = generate_register_history(random.Random(1), operations=400, processes=16)
    result = check(ops, RegisterModel(), max_memo_bytes=20_000)
    assert result.verdict == "unknown" and "memory budget" in result.reason


def test_bench_checker_has_the_budget_of_check_linearizable() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["bench", "checker", "--ops", "3000", "--processes", "64", "--keys", "1",
                                  "--max-states", "2000", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"] == "unknown" and data["states"] <= 2000 and "state budget of 2,000" in data["reason"]
    assert data["budget"] == {"max_states": 2000, "timeout_s": 60.0}
    text = runner.invoke(main, ["bench", "checker", "--ops", "3000", "--processes", "64", "--keys", "1",
                                "--timeout-s", "0.01"])
    assert text.exit_code == 0 and "unknown: time budget exhausted" in text.stdout and "--timeout-s 0.01" in text.stdout
