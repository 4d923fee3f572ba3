"""The account model and the session guarantees (testnet/linearizability.py, testnet/consistency.py) on hand-made
load histories: each textbook case linearizable and not, each guarantee satisfied and violated (a planted bug for
each), convergence after quiescence, and a property: histories of a real ledger, each operation taking effect at a
random moment of its interval, always pass; the same history with one read's nonce changed never does."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.main import main as cli
from testnet.consistency import analyse
from testnet.history import Op
from testnet.linearizability import AccountModel, ModelError, check

A, B = "acct-a", "acct-b"
START = 1_000


class History:
    """Builds load-shaped records: transfers that become final, reads at a level, quiescence reads."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.txs = 0
        self.first_reads = 0  # where the generated history's own reads begin

    def add(self, type: str, process: str, op: str, key: str, value: Any = None, node: str = "node0",
            error: str | None = None) -> int:
        index = len(self.ops)
        self.ops.append(Op(index=index, time_ns=index * 1000, type=type, process=process, node=node, op=op, key=key,
                           value=value, error=error))
        return index

    def send(self, process: str, account: str, nonce: int, amount: int = 10, fee: int = 1) -> str:
        """Invoke (and acknowledge) one transfer; returns its hash."""
        self.txs += 1
        tx = f"tx{self.txs}"
        value = {"from": account, "to": "sink", "amount": amount, "fee": fee, "nonce": nonce}
        self.add("invoke", process, "transfer", tx, value)
        self.add("ok", process, "transfer", tx, value)
        return tx

    def final(self, tx: str, height: int, index: int = 0) -> int:
        self.add("invoke", "observer", "final", tx)
        return self.add("ok", "observer", "final", tx, {"height": height, "block": f"b{height}", "index": index})

    def read(self, process: str, account: str, nonce: int, balance: int | None = None, level: str = "latest",
             node: str = "node0") -> int:
        if balance is None:
            balance = START - 11 * nonce
        at = self.add("invoke", process, "read", account, {"level": level}, node=node)
        self.add("ok", process, "read", account, {"nonce": nonce, "balance": balance, "height": 1, "level": level},
                 node=node)
        return at

    def read_open(self, process: str, account: str, level: str = "latest") -> None:
        self.add("invoke", process, "read", account, {"level": level})

    def read_done(self, process: str, account: str, nonce: int, level: str = "latest") -> None:
        self.add("ok", process, "read", account, {"nonce": nonce, "balance": START - 11 * nonce, "level": level})


def verdict(history: History, levels: list[str] | None = None) -> str:
    return check(history.ops, AccountModel(levels)).verdict


# -- the account model ------------------------------------------------------------------------------------------

def test_reads_before_during_and_after_a_transfer() -> None:
    h = History()
    h.read("client-1", A, 0)
    tx = h.send("client-0", A, 0)
    h.read("client-1", A, 0)  # concurrent with the transfer (not final yet): either state is fine
    h.read("client-1", A, 1)
    h.final(tx, 1)
    h.read("client-1", A, 1)
    assert verdict(h) == "linearizable"


def test_a_stale_read_after_a_final_transfer_is_not_linearizable() -> None:
    h = History()
    h.read("client-1", A, 0)
    tx = h.send("client-0", A, 0)
    h.final(tx, 1)
    h.read("client-1", A, 0)
    result = check(h.ops, AccountModel())
    assert result.verdict == "not-linearizable"
    stuck = result.operations[result.failed_key.stuck]  # type: ignore[union-attr, index]
    assert stuck.op == "read" and stuck.output["nonce"] == 0 and stuck.call == len(h.ops) - 2


def test_a_read_of_a_state_no_transfer_makes_is_not_linearizable() -> None:
    h = History()
    h.read("client-1", A, 0)
    tx = h.send("client-0", A, 0)
    h.read("client-1", A, 1, balance=START - 5)  # nonce 1 but the wrong balance
    h.final(tx, 1)
    assert verdict(h) == "not-linearizable"


def test_two_readers_seeing_the_transfer_in_opposite_orders() -> None:
    h = History()
    tx = h.send("client-0", A, 0)
    h.read_open("client-1", A)
    h.read_open("client-2", A)
    h.read_done("client-1", A, 1)
    h.read_done("client-2", A, 0)  # both concurrent with the transfer, and with each other: fine
    h.final(tx, 1)
    assert verdict(h) == "linearizable"
    h = History()
    tx = h.send("client-0", A, 0)
    h.read("client-1", A, 1)
    h.read("client-2", A, 0)  # invoked after a read that saw the transfer: it cannot be undone
    h.final(tx, 1)
    assert verdict(h) == "not-linearizable"


def test_a_transfer_never_seen_final_may_have_happened_or_not() -> None:
    for seen in (0, 1):
        h = History()
        h.send("client-0", A, 0)  # info: never final
        h.read("client-1", A, seen)
        h.read("client-1", A, seen)
        assert verdict(h) == "linearizable"
    h = History()
    h.send("client-0", A, 0)
    h.read("client-1", A, 1)
    h.read("client-1", A, 0)  # it happened, then un-happened: no
    assert verdict(h) == "not-linearizable"
    h = History()
    h.read("client-1", A, 1)  # before the transfer was even sent
    h.send("client-0", A, 0)
    assert verdict(h) == "not-linearizable"


def test_transfers_take_effect_in_nonce_order() -> None:
    h = History()
    h.read("client-1", A, 0)
    first = h.send("client-0", A, 0)
    second = h.send("client-0", A, 1, amount=20)
    h.final(second, 1, 1)
    h.final(first, 1, 0)
    h.read("client-1", A, 2, balance=START - 11 - 21)
    assert verdict(h) == "linearizable"
    h.read("client-1", A, 2, balance=START - 21)  # as if only the second had been applied
    assert verdict(h) == "not-linearizable"


def test_keys_are_independent_and_levels_filter_reads() -> None:
    h = History()
    tx = h.send("client-0", A, 0)
    h.final(tx, 1)
    h.read("client-1", A, 0, level="final")  # stale, at the final level
    h.read("client-1", B, 0, level="linearizable")
    h.read("client-1", A, 1, level="linearizable")
    assert verdict(h) == "not-linearizable"
    assert verdict(h, ["linearizable"]) == "linearizable"
    assert verdict(h, ["final"]) == "not-linearizable"


def test_an_account_that_receives_transfers_has_only_its_nonce_compared() -> None:
    h = History()
    value = {"from": B, "to": A, "amount": 100, "fee": 1, "nonce": 0}
    h.add("invoke", "client-1", "transfer", "txb", value)
    h.read("client-0", A, 0, balance=START + 100)  # A got B's transfer: no sink, so its balance is not modelled
    h.read("client-0", A, 0, balance=START)
    model = AccountModel()
    assert check(h.ops, model).verdict == "linearizable"
    assert model.partial == {A}


def test_malformed_records_are_model_errors() -> None:
    h = History()
    h.add("invoke", "client-0", "transfer", "tx", {"from": A, "nonce": "zero"})
    try:
        check(h.ops, AccountModel())
    except ModelError as exc:
        assert "index 0" in str(exc)
    else:
        raise AssertionError("a transfer without a numeric nonce was accepted")
    h = History()
    h.add("invoke", "client-0", "write", A, 1)
    try:
        check(h.ops, AccountModel())
    except ModelError as exc:
        assert "'write'" in str(exc)
    else:
        raise AssertionError("a register op was accepted by the account model")


# -- session guarantees -----------------------------------------------------------------------------------------

def guarantee(h: History, level: str, name: str) -> str:
    return analyse(h.ops).levels[level].guarantees[name].verdict


def test_read_your_writes() -> None:
    h = History()
    tx = h.send("client-0", A, 0)
    h.final(tx, 1)
    h.read("client-0", A, 1, level="final")
    assert guarantee(h, "final", "read-your-writes") == "holds"
    h.read("client-0", A, 0, level="final")  # its own final transfer, not seen
    assert guarantee(h, "final", "read-your-writes") == "violated"
    h2 = History()
    tx = h2.send("client-0", A, 0)
    h2.final(tx, 1)
    h2.read("client-9", A, 0, level="final")  # another session: not a read-your-writes matter
    assert guarantee(h2, "final", "read-your-writes") == "not-measured"


def test_monotonic_reads() -> None:
    h = History()
    h.read("client-0", B, 3, node="node1")
    h.read("client-0", B, 3, node="node1")
    h.read("client-0", B, 4, node="node1")
    assert guarantee(h, "latest", "monotonic-reads") == "holds"
    h.read("client-0", B, 2, node="node2")  # back in time
    report = analyse(h.ops).levels["latest"].guarantees["monotonic-reads"]
    assert report.verdict == "violated" and report.violations == 1
    assert "nonce 2" in report.examples[0]["text"] and "nonce 4" in report.examples[0]["text"]


def test_monotonic_writes() -> None:
    h = History()
    first = h.send("client-0", A, 0)
    second = h.send("client-0", A, 1)
    h.final(first, 4)
    h.final(second, 4, 1)
    h.read("client-0", A, 2)
    assert guarantee(h, "latest", "monotonic-writes") == "holds"
    planted = History()  # a chain that placed the session's second transfer before its first
    first = planted.send("client-0", A, 0)
    second = planted.send("client-0", A, 1)
    planted.final(first, 5)
    planted.final(second, 4)
    planted.read("client-0", A, 2)
    assert guarantee(planted, "latest", "monotonic-writes") == "violated"


def test_writes_follow_reads() -> None:
    h = History()
    seen = h.send("client-1", B, 0)
    h.final(seen, 6)
    h.read("client-0", B, 1)  # client-0 saw B's transfer ...
    mine = h.send("client-0", A, 0)  # ... then wrote
    h.final(mine, 7)
    assert guarantee(h, "latest", "writes-follow-reads") == "holds"
    planted = History()  # the write lands before what its sender had read
    seen = planted.send("client-1", B, 0)
    planted.read("client-0", B, 1)
    mine = planted.send("client-0", A, 0)
    planted.final(mine, 6)
    planted.final(seen, 7)
    assert guarantee(planted, "latest", "writes-follow-reads") == "violated"


def test_staleness_counts_final_transfers_a_read_misses() -> None:
    h = History()
    for nonce in range(3):
        h.final(h.send("client-0", A, nonce), nonce + 1)
    h.read("client-1", A, 1)
    report = analyse(h.ops).levels["latest"]
    assert (report.stale_reads, report.max_staleness) == (1, 2)


def test_convergence_after_quiescence() -> None:
    h = History()
    for node in ("node0", "node1", "node2"):
        h.read(f"quiescence-{node}", A, 2, node=node)
    assert analyse(h.ops).convergence.verdict == "holds"
    h.read("quiescence-node2", A, 1, node="node2")  # node2's last answer differs
    report = analyse(h.ops)
    assert report.convergence.verdict == "violated"
    assert "node2: nonce 1" in report.convergence.examples[0]["text"]
    assert report.broken_promises() == ["eventual-convergence"]


def test_promises_depend_on_the_level() -> None:
    h = History()
    tx = h.send("client-0", A, 0)
    h.final(tx, 1)
    h.read("client-1", A, 0, level="latest")  # stale: latest promises no linearizability
    report = analyse(h.ops)
    assert report.levels["latest"].guarantees["linearizable"].verdict == "violated"
    assert report.broken_promises() == []
    h.read("client-1", A, 0, level="linearizable")
    assert analyse(h.ops).broken_promises() == ["linearizable (linearizable reads)"]


# -- the property -----------------------------------------------------------------------------------------------

def ledger_history(rng: random.Random, accounts: int, steps: int) -> History:
    """A real ledger run by concurrent clients: transfers and reads each take effect at a random moment of their
    interval; transfers complete when the observer sees them final (after they took effect)."""
    h = History()
    state = {f"acct-{i}": (0, START) for i in range(accounts)}
    next_nonce = dict.fromkeys(state, 0)
    open_ops: list[dict[str, Any]] = []  # {kind, process, account, applied, result, tx}
    idle = [f"client-{i}" for i in range(accounts + 2)]
    for account in sorted(state):  # the load reads every account before it starts: the state the checker begins with
        h.read("client-0", account, 0)
    first_reads = len(h.ops)
    for _ in range(steps):
        choice = rng.random()
        if choice < 0.35 and idle:
            process = idle.pop(rng.randrange(len(idle)))
            account = rng.choice(sorted(state))
            if rng.random() < 0.5:
                nonce = next_nonce[account]
                next_nonce[account] += 1
                tx = h.send(process, account, nonce, amount=rng.randint(1, 20))
                amount = h.ops[-1].value["amount"]
                open_ops.append({"kind": "transfer", "process": process, "account": account, "applied": False,
                                 "tx": tx, "nonce": nonce, "cost": amount + 1})
                idle.append(process)  # the client goes on; the transfer lives until it is final
            else:
                h.read_open(process, account)
                open_ops.append({"kind": "read", "process": process, "account": account, "applied": False})
        elif choice < 0.7:
            candidates = [o for o in open_ops if not o["applied"]
                          and (o["kind"] == "read" or state[o["account"]][0] == o["nonce"])]
            if candidates:
                op = rng.choice(candidates)
                nonce, balance = state[op["account"]]
                if op["kind"] == "transfer":
                    state[op["account"]] = (nonce + 1, balance - op["cost"])
                else:
                    op["result"] = nonce
                    op["balance"] = balance
                op["applied"] = True
        else:
            done = [o for o in open_ops if o["applied"]]
            if done:
                op = rng.choice(done)
                open_ops.remove(op)
                if op["kind"] == "transfer":
                    h.final(op["tx"], 1)
                else:
                    h.add("ok", op["process"], "read", op["account"],
                          {"nonce": op["result"], "balance": op["balance"], "level": "latest"})
                    idle.append(op["process"])
    h.first_reads = first_reads
    return h


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), accounts=st.integers(1, 3), steps=st.integers(10, 80))
def test_ledger_histories_are_linearizable_and_a_changed_read_is_not(seed: int, accounts: int, steps: int) -> None:
    h = ledger_history(random.Random(seed), accounts, steps)
    assert check(h.ops, AccountModel()).verdict == "linearizable"
    reads = [i for i, op in enumerate(h.ops) if op.op == "read" and op.type == "ok" and i >= h.first_reads]
    if not reads:
        return
    target = reads[random.Random(seed).randrange(len(reads))]
    original = h.ops[target]
    impossible = {**original.value, "nonce": 10_000}  # no run of the ledger reaches it
    h.ops[target] = Op(**{**original.to_json(), "value": impossible})
    assert check(h.ops, AccountModel()).verdict == "not-linearizable"


# -- the command ------------------------------------------------------------------------------------------------

def write_history(path: Path, h: History) -> Path:
    path.write_text("".join(json.dumps(op.to_json()) + "\n" for op in h.ops), encoding="utf-8")
    return path


def test_check_consistency_command(tmp_path: Path) -> None:
    h = History()
    tx = h.send("client-0", A, 0)
    h.final(tx, 1)
    h.read("client-1", A, 0, level="final", node="node1")
    h.read("client-1", A, 1, level="linearizable")
    for node in ("node0", "node1"):
        h.read(f"quiescence-{node}", A, 1, node=node)
    path = write_history(tmp_path / "history.jsonl", h)
    (tmp_path / "testnet.json").write_text(json.dumps({"consensus": "raft"}), encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "consistency", str(path)])
    assert result.exit_code == 0, result.output
    assert "engine raft" in result.output and "VIOLATED x1" in result.output  # final reads: not linearizable
    assert "eventual convergence: holds" in result.output
    result = CliRunner().invoke(cli, ["check", "consistency", str(path), "--json", "--levels", "final"])
    data = json.loads(result.output)
    assert data["levels"]["final"]["guarantees"]["linearizable"]["verdict"] == "violated"
    assert list(data["levels"]) == ["final"] and data["broken_promises"] == []
    h.read("client-1", A, 0, level="linearizable")  # a linearizable read going back: a broken promise
    write_history(path, h)
    result = CliRunner().invoke(cli, ["check", "consistency", str(path)])
    assert result.exit_code == 1 and "broken promises: linearizable (linearizable reads)" in result.output
    for bad, message in ((["--levels", "eventual"], "unknown level 'eventual'"),
                         ([], "no such file")):
        target = str(tmp_path / "missing.jsonl") if not bad else str(path)
        result = CliRunner().invoke(cli, ["check", "consistency", target, *bad])
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_check_linearizable_account_checks_only_the_levels_that_promise_it(tmp_path: Path) -> None:
    h = History()
    tx = h.send("client-0", A, 0)
    h.final(tx, 1)
    h.read("client-1", A, 0, level="latest")  # stale, as latest may be
    h.read("client-1", A, 1, level="linearizable")
    path = write_history(tmp_path / "history.jsonl", h)
    runner = CliRunner()
    result = runner.invoke(cli, ["check", "linearizable", str(path), "--model", "account"])
    assert result.exit_code == 0, result.output
    assert "reads at linearizable with every transfer" in result.stdout
    assert "reads left out: 1 latest" in result.stdout
    data = json.loads(runner.invoke(cli, ["check", "linearizable", str(path), "--model", "account", "--json"]).stdout)
    assert data["levels"] == {"checked": ["linearizable"], "left_out": {"latest": 1}}
    every = runner.invoke(cli, ["check", "linearizable", str(path), "--model", "account",
                                "--levels", "latest,final,linearizable"])
    assert every.exit_code == 1 and "reads at latest, final, linearizable" in every.stdout
    for bad, message in ((["--levels", "latest"], "give --model account too"),
                         (["--model", "account", "--levels", "eventual"], "unknown level 'eventual'")):
        refused = runner.invoke(cli, ["check", "linearizable", str(path), *bad])
        assert refused.exit_code == 1 and message in refused.stderr and "Traceback" not in refused.output
