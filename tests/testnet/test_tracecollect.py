"""`chainlab testnet trace`: the nodes' traces merged, peers named, faults copied beside; clear errors otherwise."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from click.testing import CliRunner

from causality.events import parse_trace
from causality.recorder import NodeTracer
from cli.main import main
from testnet.cluster import TRACE_FILE
from tests.testnet.test_cli import fake_testnet, one_error, run  # noqa: F401  (a fixture)


def write_traces(root: Path) -> None:
    """node0 and node1 exchange a stamped block; node2 never traced."""
    clock = itertools.count(1)
    files = {name: (root / name / TRACE_FILE) for name in ("node0", "node1")}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    handles = {name: path.open("w", encoding="utf-8") for name, path in files.items()}
    a = NodeTracer("node0", write=handles["node0"].write, clock=lambda: next(clock), node_id="00" * 33)
    b = NodeTracer("node1", write=handles["node1"].write, clock=lambda: next(clock), node_id="01" * 33)
    msg_id, vc, lamport = a.send("01" * 33, "block", "ab")  # node1 is known only by its id here
    b.receive("00" * 33, "block", "ab", msg_id=msg_id, vc=vc, lamport=lamport)
    for handle in handles.values():
        handle.close()
    (root / "events.jsonl").write_text('{"action": "partition", "time_ns": 1, "network": {}}\n')


def test_collect_merges_names_peers_and_copies_the_faults(fake_testnet: Path) -> None:  # noqa: F811
    write_traces(fake_testnet)
    code, stdout, stderr = run("trace", "--dir", str(fake_testnet), "--out", str(fake_testnet / "all.jsonl"))
    assert code == 0, stderr
    assert "4 events (node0 2, node1 2)" in stdout
    assert "node2: no trace" in stderr
    events = list(parse_trace((fake_testnet / "all.jsonl").read_text().splitlines(keepends=True)))
    assert [e.time_ns for e in events] == sorted(e.time_ns for e in events)
    assert {e.peer for e in events if e.kind != "internal"} == {"node0", "node1"}  # no node id left
    assert (fake_testnet / "all.events.jsonl").read_text() == (fake_testnet / "events.jsonl").read_text()
    result = CliRunner().invoke(main, ["trace", "hb", str(fake_testnet / "all.jsonl"), "node0:2", "node1:2"])
    assert result.exit_code == 0 and "happened before" in result.output


def test_collect_without_traces_or_with_a_broken_one_says_so(fake_testnet: Path) -> None:  # noqa: F811
    code, _, stderr = run("trace", "--dir", str(fake_testnet))
    assert code == 1 and "no node of" in one_error(stderr) and "testnet up --trace" in stderr
    write_traces(fake_testnet)
    path = fake_testnet / "node0" / TRACE_FILE
    path.write_text("{broken\n" + path.read_text())
    code, _, stderr = run("trace", "--dir", str(fake_testnet), "--json")
    assert code == 1 and f"{path}:1: not JSON" in one_error(stderr)


def test_collect_json_summary(fake_testnet: Path) -> None:  # noqa: F811
    write_traces(fake_testnet)
    code, stdout, _ = run("trace", "--dir", str(fake_testnet), "--json")
    summary = json.loads(stdout)
    assert code == 0
    assert summary["events"] == 4 and summary["peers_renamed"] == 1 and list(summary["missing"]) == ["node2"]
