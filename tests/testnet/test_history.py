"""The client history (testnet/history.py): records, indices across runs, torn lines, and the well-formedness
check that catches a malformed history."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from testnet.history import (
    HistoryError,
    HistoryWriter,
    Op,
    accepted,
    acknowledged_final,
    check_well_formed,
    last_index,
    parse_ops,
    read_history,
)


def test_records_have_every_field_and_indices_continue_across_writers(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    writer = HistoryWriter(path)
    writer.record("invoke", process="client-0", node="node1", op="transfer", key="aa", value={"nonce": 0})
    writer.record("ok", process="client-0", node="node1", op="transfer", key="aa", value={"nonce": 0})
    writer.close()
    assert last_index(path) == 1
    again = HistoryWriter(path)
    again.record("invoke", process="client-0", node="node2", op="transfer", key="bb")
    again.record("info", process="client-0", node="node2", op="transfer", key="bb", error="timeout")
    again.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2, 3]
    assert set(lines[0]) == {"index", "time_ns", "type", "process", "node", "op", "key", "value", "error"}
    assert lines[3]["type"] == "info" and lines[3]["error"] == "timeout"
    assert lines[0]["time_ns"] <= lines[3]["time_ns"]
    ops = read_history(path)
    assert [op.type for op in ops] == ["invoke", "ok", "invoke", "info"]
    assert check_well_formed(ops) == []


def test_concurrent_writers_never_share_an_index(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path / "h.jsonl")

    def burst(process: int) -> None:
        for number in range(200):
            writer.record("invoke", process=f"p{process}", node="n", op="transfer", key=f"{process}-{number}")

    threads = [threading.Thread(target=burst, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    indices = [op.index for op in read_history(tmp_path / "h.jsonl")]
    assert sorted(indices) == list(range(800)) and indices == sorted(indices)


def test_a_torn_last_line_is_skipped_but_a_bad_line_inside_is_an_error(tmp_path: Path) -> None:
    good = json.dumps({"index": 0, "time_ns": 1, "type": "invoke", "process": "p", "node": "n", "op": "transfer",
                       "key": "k", "value": None, "error": None})
    path = tmp_path / "h.jsonl"
    path.write_text(good + "\n" + good[:20])
    assert len(read_history(path)) == 1
    assert last_index(path) == 0
    with pytest.raises(HistoryError, match="line 2"):
        parse_ops([good, "{not json", good])
    with pytest.raises(HistoryError, match="line 1"):
        parse_ops([json.dumps({"index": 0}), good])
    assert read_history(tmp_path / "none.jsonl") == [] and last_index(tmp_path / "none.jsonl") == -1


def op(index: int, type: str, process: str, key: str, name: str = "transfer", value: object = None) -> Op:
    return Op(index=index, time_ns=index, type=type, process=process, node="n", op=name, key=key, value=value)


def test_well_formedness_catches_gaps_orphan_completions_and_overlapping_ops() -> None:
    assert check_well_formed([op(0, "invoke", "p", "a"), op(1, "ok", "p", "a")]) == []
    assert any("follows" in p for p in check_well_formed([op(0, "invoke", "p", "a"), op(2, "ok", "p", "a")]))
    assert any("no matching invoke" in p for p in check_well_formed([op(0, "ok", "p", "a")]))
    assert any("no matching invoke" in p for p in check_well_formed([op(0, "invoke", "p", "a"),
                                                                      op(1, "fail", "p", "b")]))
    assert any("while index 0 is open" in p for p in check_well_formed([op(0, "invoke", "p", "a"),
                                                                         op(1, "invoke", "p", "b")]))


def test_op_types_are_checked() -> None:
    with pytest.raises(ValueError, match="op type"):
        op(0, "maybe", "p", "a")


def test_acknowledged_final_and_accepted_sets() -> None:
    ops = [op(0, "invoke", "c", "t1"), op(1, "ok", "c", "t1"), op(2, "invoke", "c", "t2"), op(3, "fail", "c", "t2"),
           op(4, "invoke", "o", "t1", "final"), op(5, "ok", "o", "t1", "final", {"height": 7, "block": "b"}),
           op(6, "invoke", "o", "t3", "included"), op(7, "ok", "o", "t3", "included", {"height": 8})]
    assert accepted(ops) == {"t1"}
    assert acknowledged_final(ops) == {"t1": 7}


GOOD = json.dumps({"index": 0, "time_ns": 1, "type": "invoke", "process": "p", "node": "n", "op": "read", "key": "k",
                   "value": None, "error": None})


@pytest.mark.parametrize("text", ["not json\n", "not json", "[1,2,3]\n", '{"index": 0, "time_', '{"index": 0}\n',
                                  GOOD.replace('"invoke"', '"bad"') + "\n"])
def test_a_one_line_file_that_is_not_a_record_is_an_error_not_a_torn_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(text)
    with pytest.raises(HistoryError, match="line 1: not a history record"):
        read_history(path)


def test_only_a_last_line_without_newline_after_a_record_is_torn_and_it_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(GOOD + "\n" + GOOD[:20] + "\n")  # ends with a newline: written whole, so not a torn write
    with pytest.raises(HistoryError, match="line 2"):
        read_history(path)
    path.write_text(GOOD + "\n" + GOOD[:20])
    torn: list[int] = []
    assert len(read_history(path, on_torn_line=torn.append)) == 1 and torn == [2]


def test_a_line_that_is_not_utf8_is_a_history_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(GOOD.encode() + b"\n\xff\xfe\n" + GOOD.encode() + b"\n")
    with pytest.raises(HistoryError, match="line 2: not UTF-8"):
        read_history(path)
    path.write_bytes(GOOD.encode() + b'\n{"index": 1, "key": "\xc3')  # torn inside a character: still a torn line
    torn: list[int] = []
    assert len(read_history(path, on_torn_line=torn.append)) == 1 and torn == [2]
