"""Violations linked to trace events (testnet/tracelinks.py): the blocks a check names and the operations a
consistency finding names lead to the right events and commands; nothing is invented when the trace lacks them."""

from __future__ import annotations

import itertools
from pathlib import Path

from causality.events import parse_trace
from causality.links import hash_prefixes
from causality.recorder import NodeTracer
from testnet.history import Op
from testnet.tracelinks import link_blocks, link_failed_checks, link_ops

A, B = "aa" * 32, "bb" * 32


def forked_trace() -> list:
    """node0 and node1 each mine a block at height 3 without knowing of the other, then node1 learns of node0's."""
    lines: list[str] = []
    ticks = itertools.count(1_000_000_000, 1_000_000_000)  # one second per event
    node0, node1 = (NodeTracer(f"node{i}", write=lines.append, clock=lambda: next(ticks), node_id=f"id{i}")
                    for i in range(2))
    node0.internal("block-mined", {"block": A, "height": 3})
    node1.internal("block-mined", {"block": B, "height": 3})
    node1.internal("block-connected", {"block": B, "height": 3})
    msg_id, vc, lamport = node0.send("id1", "block", A[:16])
    node1.receive("id0", "block", A[:16], msg_id=msg_id, vc=vc, lamport=lamport)
    node1.internal("block-final", {"block": B, "height": 3})
    node0.internal("tx-accepted", {"tx": "cc" * 32})
    return list(parse_trace(lines, "t"))


def test_a_final_prefix_disagreement_names_both_mined_blocks_as_concurrent() -> None:
    events = forked_trace()
    detail = f"height 3: node0 has final {A[:16]}, node1 has final {B[:16]}"
    assert hash_prefixes(detail) == [A[:16], B[:16]]
    found = link_blocks(events, detail, "t.jsonl")
    assert found is not None
    assert found["events"][:2] == [f"node0:2 block-mined block={A[:16]} height=3",
                                   f"node1:2 block-mined block={B[:16]} height=3"]
    assert f"node1:5 block-final block={B[:16]} height=3" in found["events"]
    assert found["made"] == "node0:2 and node1:2: concurrent"
    assert found["commands"][0] == "chainlab trace hb t.jsonl node0:2 node1:2"
    assert found["commands"][1].startswith("chainlab trace diagram t.jsonl --from ")
    assert "--nodes node0,node1" in found["commands"][1]


def test_nothing_is_linked_when_the_trace_does_not_hold_the_blocks() -> None:
    events = forked_trace()
    assert link_blocks(events, f"height 3: node0 has final {'dd' * 8}", "t.jsonl") is None
    assert link_blocks(events, "node0: 2 safety alarms", "t.jsonl") is None  # no block named


def test_a_consistency_finding_names_its_nodes_events_while_the_operations_were_in_flight() -> None:
    events = forked_trace()
    start = events[0].time_ns
    ops = [Op(index=0, time_ns=start + 7_500_000_000, type="invoke", process="c0", node="node0", op="transfer",
              key="a"),
           Op(index=1, time_ns=start + 8_500_000_000, type="ok", process="c0", node="node0", op="transfer", key="a")]
    found = link_ops(events, ops, [0, 1], "t.jsonl")
    assert found is not None and found["events"] == ["node0:4 tx-accepted"]
    assert link_ops(events, ops, [7], "t.jsonl") is None  # an index the history does not hold


def test_testnet_check_links_only_failed_checks_and_starts_with_collecting(tmp_path: Path) -> None:
    events = forked_trace()
    checks = [{"name": "convergence", "ok": True, "detail": f"3 nodes share block {A[:16]}"},
              {"name": "final-prefix-agreement", "ok": False,
               "detail": f"height 3: node0 has final {A[:16]}, node1 has final {B[:16]}"}]
    linked = link_failed_checks(checks, events, tmp_path)
    assert list(linked) == ["final-prefix-agreement"]
    assert linked["final-prefix-agreement"]["commands"][0] == f"chainlab testnet trace --dir {tmp_path}"
    assert str(tmp_path / "trace.jsonl") in linked["final-prefix-agreement"]["commands"][1]


def test_check_linearizable_with_trace_names_the_stuck_reads_node_events(tmp_path: Path) -> None:
    """The register read that cannot be linearized was served by node1: the trace events of node1 while it was in
    flight are named, with the command that draws them; a broken trace file is a one-line error."""
    import json

    from click.testing import CliRunner

    from cli.main import main
    from tests.testnet.test_linearizability import H

    lines: list[str] = []
    ticks = itertools.count(0, 1000)
    node1 = NodeTracer("node1", write=lines.append, clock=lambda: next(ticks), node_id="id1")  # t=0
    node1.internal("block-connected", {"block": A, "height": 2})  # t=1000
    node1.internal("reorg", {"depth": 1})  # t=2000: during the read (invoked at 2000, answered at 3000)
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(lines))
    ops = H().invoke("a", "write", 1).ok("a", 1).invoke("b", "read").ok("b", 2).ops
    ops = [Op(**{**op.to_json(), "node": "node1" if op.process == "b" else "node0"}) for op in ops]
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(op.to_json()) + "\n" for op in ops))
    result = CliRunner().invoke(main, ["check", "linearizable", str(history), "--trace", str(trace)])
    assert result.exit_code == 1
    assert "trace events while the violation's operations were in flight: node1:3 reorg" in result.stdout
    assert f"chainlab trace diagram {trace} --from 0.0 --to 2.0 --nodes node1" in result.stdout
    as_json = json.loads(CliRunner().invoke(main, ["check", "linearizable", str(history), "--trace", str(trace),
                                                   "--json"]).stdout)
    assert as_json["trace"]["events"] == ["node1:3 reorg"]
    trace.write_text("{broken\n" + "".join(lines))
    refused = CliRunner().invoke(main, ["check", "linearizable", str(history), "--trace", str(trace)])
    assert refused.exit_code == 1 and "--trace:" in refused.stderr and "Traceback" not in refused.output


def test_a_broken_consistency_check_links_the_operations_its_finding_names(tmp_path: Path) -> None:
    events = forked_trace()
    start = events[0].time_ns
    ops = [Op(index=0, time_ns=start + 7_500_000_000, type="invoke", process="c0", node="node0", op="read", key="a"),
           Op(index=1, time_ns=start + 8_500_000_000, type="ok", process="c0", node="node0", op="read", key="a")]
    checks = [{"name": "consistency", "ok": False,
               "detail": "broken: monotonic-reads (final reads); c0 read a from node0 (index 0): nonce 1, after "
                         "reading nonce 2 from node1 (index 1)"}]
    linked = link_failed_checks(checks, events, tmp_path, ops)
    assert linked["consistency"]["events"] == ["node0:4 tx-accepted"]
