"""`chainlab trace hb|past|future|concurrent|diagram` on the hand-made fork through a partition: the answers, their
--json, the files the diagram writes, and one-line errors for bad files and references."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.causality.test_graph import PARTITION_EVENTS, fork_through_a_partition
from tests.cli.helpers import Invoke, assert_ok, assert_one_line_error, ok_json


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """The fork trace, with the testnet's events.jsonl beside it."""
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(event.to_line() for event in fork_through_a_partition()), encoding="utf-8")
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in PARTITION_EVENTS), encoding="utf-8")
    return path


def test_hb_names_the_order_and_the_chain(invoke: Invoke, trace: Path) -> None:
    result = invoke("trace", "hb", str(trace), "block-mined@aa", "node2:block-mined:1")
    assert_ok(result)
    assert "node0:1 happened before node2:2" in result.stdout
    assert "node0:3 -> node2:1  message block node0:3" in result.stdout
    answer = ok_json(invoke("trace", "hb", str(trace), "node0:4", "node2:2", "--json"))
    assert answer["order"] == "concurrent" and answer["chain"] == [] and answer["complete"]
    assert answer["trace"]["lost_sends"] == 1


def test_concurrent_finds_the_fork_and_says_how_to_ask_why(invoke: Invoke, trace: Path) -> None:
    result = invoke("trace", "concurrent", str(trace), "--what", "block-mined", "--same", "height")
    assert_ok(result)
    assert "4 block-mined event(s); 1 concurrent pair(s) with the same height" in result.stdout
    assert f"why: chainlab trace hb {trace} node0:4 node2:2" in result.stdout
    assert "during: partition 0,1 | 2 on node0, node2" in result.stdout  # from events.jsonl beside the trace
    answer = ok_json(invoke("trace", "concurrent", str(trace), "--what", "block-mined", "--json"))
    assert answer["pair_count"] == 1 and answer["groups"] == [["node0:4", "node2:2"]]
    assert answer["faults"] == ["partition 0,1 | 2 on node0, node2"]
    assert [e["detail"]["hash"] for e in answer["pairs"][0]] == ["bb02", "cc03"]


def test_past_and_future_list_events_and_messages(invoke: Invoke, trace: Path) -> None:
    past = ok_json(invoke("trace", "past", str(trace), "node2:block-final@bb", "--json"))
    assert {"node0:4", "node2:2", "node0:8"} <= set(past["events"])
    assert {"send": "node0:9", "receive": "node2:4", "what": "block", "msg_id": "node0:9"} in past["messages"]
    text = invoke("trace", "future", str(trace), "node0:1")
    assert_ok(text)
    assert "causal future: " in text.stdout and "messages in it:" in text.stdout


@pytest.mark.parametrize(("suffix", "fmt", "marker"), [
    ("html", None, "<!DOCTYPE html>"), ("svg", None, '<svg xmlns="http://www.w3.org/2000/svg"'),
    ("log", "shiviz", r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})"),
])
def test_diagram_writes_each_format(invoke: Invoke, trace: Path, suffix: str, fmt: str | None,
                                    marker: str) -> None:
    out = trace.parent / f"diagram.{suffix}"
    args = ["trace", "diagram", str(trace), "--out", str(out), "--json"] + (["--format", fmt] if fmt else [])
    answer = ok_json(invoke(*args))
    assert answer["format"] == (fmt or suffix) and answer["events_drawn"] == 17
    assert answer["faults"] == (0 if fmt == "shiviz" else 3)  # the events.jsonl beside the trace is found
    assert out.read_text(encoding="utf-8").startswith(marker)


def test_diagram_filters(invoke: Invoke, trace: Path) -> None:
    out = trace.parent / "d.html"
    answer = ok_json(invoke("trace", "diagram", str(trace), "--out", str(out), "--nodes", "node2", "--kinds",
                            "block-mined,block-final", "--json"))
    assert answer["events_drawn"] == 2
    assert_one_line_error(invoke("trace", "diagram", str(trace), "--out", str(out), "--from", "100"),
                          "no event passes the filters")


@pytest.mark.parametrize(("args", "needle"), [
    (["hb", "{missing}", "a:1", "b:1"], "no such file"),
    (["hb", "{bad}", "a:1", "b:1"], "bad.jsonl:2: not JSON"),
    (["hb", "{trace}", "node0:1", "node7:1"], "node7: no such node"),
    (["past", "{trace}", "block@bb02"], "events match"),
    (["future", "{trace}", "node0"], "not an event reference"),
    (["diagram", "{trace}", "--out", "{dir}/x.html", "--events", "{missing}"], "no such file"),
    (["diagram", "{trace}", "--out", "{dir}/none/x.html"], "cannot write"),
])
def test_bad_input_is_a_one_line_error(invoke: Invoke, trace: Path, args: list[str], needle: str) -> None:
    bad = trace.parent / "bad.jsonl"
    bad.write_text(trace.read_text(encoding="utf-8").splitlines()[0] + "\n{oops\n" + "\n", encoding="utf-8")
    names = {"trace": str(trace), "bad": str(bad), "missing": str(trace.parent / "missing.jsonl"),
             "dir": str(trace.parent)}
    assert_one_line_error(invoke("trace", *(arg.format(**names) for arg in args)), needle)
