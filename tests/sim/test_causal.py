"""Causal tracing of simulated runs (testnet/sim/causal.py, `chainlab sim --trace`): the trace parses, changes
nothing the nodes do, its vector clocks agree with its message graph, and a failing run points at the events of
its first violation."""

from __future__ import annotations

import io
import json
from pathlib import Path
from random import Random

from click.testing import CliRunner

from causality.clocks import VectorClock
from causality.events import parse_trace
from causality.formatter import TraceFormatter
from causality.graph import TraceGraph
from cli.main import main
from testnet.sim.causal import CausalTracer
from testnet.sim.config import SimConfig, parse_faults
from testnet.sim.simulator import Simulator
from tests.causality.test_graph import _reachable  # the message graph's closure, one definition
from tests.sim.helpers import node_core_factory, reckless_core_factory

PARTITIONED_POW = SimConfig(
    seed=7, consensus="pow", nodes=4, duration_s=60.0, faults=parse_faults("partition,crash,loss,dup"),
    model="partial-sync", block_interval_s=2.0, finality_threshold=4, max_delay_s=0.1, async_scale_s=0.02,
    tx_rate_per_s=0.5, heartbeat_interval_s=0.5,
)


def traced(config: SimConfig, factory=node_core_factory) -> tuple[Simulator, list[str], list[dict]]:  # type: ignore[no-untyped-def]
    out, faults = io.StringIO(), io.StringIO()
    simulator = Simulator(config, factory, tracer=CausalTracer(out, faults))
    simulator.result = simulator.run()  # type: ignore[attr-defined]
    return simulator, out.getvalue().splitlines(), [json.loads(line) for line in faults.getvalue().splitlines()]


def test_a_traced_run_parses_and_is_the_same_run() -> None:
    untraced = Simulator(PARTITIONED_POW, node_core_factory).run()
    simulator, lines, faults = traced(PARTITIONED_POW)
    result = simulator.result  # type: ignore[attr-defined]
    assert result.trace_hash == untraced.trace_hash  # the tracer is a tap: the nodes see nothing of it
    events = list(parse_trace(lines, "sim"))
    assert len(events) == len(lines) > 1000
    kinds = {e.kind for e in events}
    whats = {e.what for e in events}
    assert kinds == {"send", "receive", "internal"}
    assert {"block-mined", "block-connected", "block", "engine"} <= whats
    assert {"partition", "heal"} <= {f["action"] for f in faults}
    assert faults == [dict(record) for record in untraced.events]  # the untraced run keeps the same records
    partition = next(f for f in faults if f["action"] == "partition")
    blocked = partition["network"]["blocked"]
    assert blocked and all(isinstance(others, list) and others for others in blocked.values())
    # Every node's events are numbered 1, 2, ... without a gap, and a receive's clock covers its send's.
    graph = TraceGraph(events)
    assert graph.seq_gaps == graph.unmatched_receives == 0 and graph.lost_sends > 0  # loss is on in this run
    by_node: dict[str, list[int]] = {}
    for event in events:
        by_node.setdefault(event.node, []).append(event.seq)
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in by_node.values())
    sends = {e.msg_id: e for e in events if e.kind == "send"}
    for event in events:
        if event.kind == "receive":
            assert event.msg_id in sends and sends[event.msg_id].vc.happened_before(event.vc)


def test_happened_before_from_the_clocks_equals_the_message_graphs_closure() -> None:
    _, lines, _ = traced(PARTITIONED_POW)
    graph = TraceGraph(parse_trace(lines, "sim"))
    rng = Random(1)
    sources = rng.sample(range(len(graph)), 25)
    for source in sources:
        reachable = _reachable(graph, source)
        for target in rng.sample(range(len(graph)), 200):
            if target != source:
                assert graph.happened_before(source, target) == (target in reachable), (source, target)


def test_a_tracer_that_merged_no_clock_is_caught() -> None:
    """The closure test has teeth: a tracer whose receives forget the sender's clock breaks it."""
    class Forgetful(TraceFormatter):
        @staticmethod
        def _merge(node, clock, sender, sender_seq, snapshot):  # type: ignore[no-untyped-def]
            pass

    out = io.StringIO()
    Simulator(PARTITIONED_POW, node_core_factory, tracer=CausalTracer(sink=Forgetful(out.write).feed)).run()
    graph = TraceGraph(parse_trace(out.getvalue().splitlines(), "sim"))
    mismatches = 0
    for source in Random(2).sample(range(len(graph)), 10):
        reachable = _reachable(graph, source)
        mismatches += sum(1 for target in reachable if not graph.happened_before(source, target))
    assert mismatches > 0


def test_a_fork_shows_as_concurrent_mined_blocks_and_the_violation_names_its_final_events() -> None:
    """The partition handler switched off (reckless miners): the minority mines a branch of its own, finalizes
    it, and the run fails final-prefix agreement; the trace has the two final events the simulator names."""
    config = SimConfig(seed=3, consensus="pow", nodes=3, duration_s=120.0, faults=parse_faults("partition"),
                       model="synchronous", block_interval_s=2.0, finality_threshold=2, max_delay_s=0.05,
                       async_scale_s=0.01, tx_rate_per_s=0.0, heartbeat_interval_s=0.5)
    simulator, lines, _ = traced(config, reckless_core_factory)
    result = simulator.result  # type: ignore[attr-defined]
    assert not result.ok and "final-prefix-agreement" in result.failed_checks()
    graph = TraceGraph(parse_trace(lines, "sim"))
    assert len(result.violation_events) == 2
    first, second = (graph.resolve(ref) for ref in result.violation_events)
    assert graph.event_json(first)["what"] == graph.event_json(second)["what"] == "block-final"
    assert graph.event_json(first)["detail"]["height"] == graph.event_json(second)["detail"]["height"]
    assert graph.event_json(first)["detail"]["block"] != graph.event_json(second)["detail"]["block"]
    groups = graph.concurrent("block-mined", same="height")
    assert groups.pairs  # two blocks at one height mined without knowledge of each other


def test_sim_trace_option_writes_the_files_and_says_how_to_look(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    result = CliRunner().invoke(main, ["sim", "--consensus", "pow", "--nodes", "3", "--seed", "5", "--duration", "30",
                                       "--block-interval", "2", "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    assert f"trace: {trace} (faults: {tmp_path / 'run.events.jsonl'})" in result.output
    assert trace.stat().st_size > 0 and (tmp_path / "run.events.jsonl").exists()
    shown = CliRunner().invoke(main, ["trace", "concurrent", str(trace), "--what", "block-mined"])
    assert shown.exit_code == 0, shown.output
    refused = CliRunner().invoke(main, ["sim", "--swarm", "--runs", "1", "--trace", str(trace)])
    assert refused.exit_code != 0 and "--trace" in refused.output
    unwritable = CliRunner().invoke(main, ["sim", "--nodes", "2", "--duration", "5", "--trace",
                                           str(tmp_path / "missing" / "t.jsonl")])
    assert unwritable.exit_code != 0 and "--trace: cannot write" in unwritable.output
    assert "Traceback" not in unwritable.output


def test_a_receive_merges_the_clock_its_send_had_not_the_senders_latest() -> None:
    out = io.StringIO()
    tracer = CausalTracer(out)
    stamp = tracer.send("a", "b", "block", 0.0, "00")
    tracer.internal("a", "block-mined", 1.0, {"height": 1})
    tracer.receive("b", "a", stamp, 2.0)
    tracer.flush()
    receive = list(parse_trace(out.getvalue().splitlines(), "t"))[-1]
    assert receive.vc == VectorClock({"a": 1, "b": 1}) and receive.lamport == 2 and receive.msg_id == "a:1"


def test_a_receive_whose_send_was_forgotten_is_counted_and_still_parses() -> None:
    out = io.StringIO()
    formatter = TraceFormatter(out.write)
    formatter.feed([("r", "b", 1, 1.0, "a", "a", 3)])
    assert formatter.forgotten == 1
    (event,) = parse_trace(out.getvalue().splitlines(), "t")
    assert event.kind == "receive" and event.msg_id == "a:3" and event.vc == VectorClock({"a": 3, "b": 1})


def test_the_writer_process_writes_the_same_file_as_the_inline_formatter(tmp_path: Path) -> None:
    from cli.simtrace import TraceWriter

    _, inline, _ = traced(PARTITIONED_POW)
    writer = TraceWriter(tmp_path / "t.jsonl")
    try:
        Simulator(PARTITIONED_POW, node_core_factory, tracer=CausalTracer(sink=writer.send)).run()
    finally:
        assert writer.close()
    assert (tmp_path / "t.jsonl").read_text().splitlines() == inline


def test_a_writer_that_died_is_reported_not_silent(tmp_path: Path) -> None:
    import os
    import signal

    from cli.simtrace import TraceWriter

    writer = TraceWriter(tmp_path / "t.jsonl")
    os.kill(writer._child.pid, signal.SIGKILL)
    writer._child.wait()
    writer.send([("i", "a", 1, 0.0, "node-start", "{}")])  # into a closed pipe: no exception here
    assert writer.close() is False
