"""A node's tracer (causality/recorder.py) and its file (node/tracefile.py): clocks that obey the rules, a trace
every tool reads, resumption after a restart and a crash mid-line, and the jump past a lost file."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from random import Random

from causality.events import parse_trace
from causality.graph import TraceGraph
from causality.recorder import NodeTracer, resume_point
from node.tracefile import open_trace
from tests.causality.test_graph import _reachable  # the message graph's closure, one definition


def tracers(count: int) -> tuple[list[NodeTracer], list[str]]:
    lines: list[str] = []
    ticks = itertools.count(1)
    return [NodeTracer(f"node{i}", write=lines.append, clock=lambda: next(ticks), node_id=f"id{i}")
            for i in range(count)], lines


def gossip(nodes: list[NodeTracer], rng: Random, steps: int, *, lose: float = 0.2) -> None:
    """Random sends, deliveries (some lost, some out of order) and decisions among `nodes`."""
    in_flight: list[tuple[int, int, tuple[str, tuple[tuple[str, int], ...], int]]] = []
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.4:
            src, dst = rng.sample(range(len(nodes)), 2)
            stamp = nodes[src].send(f"id{dst}", "block", "ab")
            if rng.random() >= lose:
                in_flight.append((src, dst, stamp))
        elif roll < 0.8 and in_flight:
            src, dst, (msg_id, vc, lamport) = in_flight.pop(rng.randrange(len(in_flight)))
            nodes[dst].receive(f"id{src}", "block", "ab", msg_id=msg_id, vc=vc, lamport=lamport)
        else:
            nodes[rng.randrange(len(nodes))].internal("block-connected", {"height": 1})


def test_a_gossiping_network_traces_what_the_message_graph_says() -> None:
    nodes, lines = tracers(4)
    gossip(nodes, Random(7), 600)
    events = list(parse_trace(lines, "recorder"))
    graph = TraceGraph(events)
    assert graph.summary()["lost_sends"] > 0
    rng = Random(8)
    for source in rng.sample(range(len(graph)), 30):
        reachable = _reachable(graph, source)
        for target in range(len(graph)):
            if target != source:
                assert graph.happened_before(source, target) == (target in reachable)
    # Lamport's clock condition, and seqs of each node gapless from 1
    sends = {e.msg_id: e for e in events if e.kind == "send"}
    assert all(sends[e.msg_id].lamport < e.lamport for e in events if e.kind == "receive")
    for node in nodes:
        assert [e.seq for e in events if e.node == node.name] == list(range(1, node.seq + 1))


def test_peers_are_named_once_a_stamp_told_their_name() -> None:
    (a, b), lines = tracers(2)
    a.send("id1", "block", "ab")  # b's name is not known yet: its node id
    msg_id, vc, lamport = b.send("id0", "block", "cd")
    a.receive("id1", "block", "cd", msg_id=msg_id, vc=vc, lamport=lamport)
    a.send("id1", "block", "ef")
    peers = [json.loads(line)["peer"] for line in lines if json.loads(line)["node"] == "node0"]
    assert peers == [None, "id1", "node1", "node1"]


def test_a_node_that_lost_its_file_jumps_past_what_the_others_saw() -> None:
    (a, b), lines = tracers(2)
    for _ in range(5):
        stamp = a.send("id1", "block", "ab")
    b.receive("id0", "block", "ab", msg_id=stamp[0], vc=stamp[1], lamport=stamp[2])
    reborn = NodeTracer("node0", write=lines.append, clock=lambda: 99, node_id="id0")  # no resume point
    assert reborn.seq == 1
    msg_id, vc, lamport = b.send("id0", "block", "cd")
    reborn.receive("id1", "block", "cd", msg_id=msg_id, vc=vc, lamport=lamport)
    assert reborn.seq == 7  # past node0:6, the highest b knew of; no id is used twice
    ids = [json.loads(line)["node"] + ":" + str(json.loads(line)["seq"]) for line in lines]
    assert len(ids) == len(set(ids)) + 1  # node0:1 twice: the old incarnation's and the new one's start


def test_the_file_resumes_after_a_restart_and_cuts_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    tracer, file = open_trace("node0", path, "id0")
    tracer.send("id1", "block", "ab")
    tracer.internal("block-final", {"height": 3})
    file.close()
    tracer.internal("block-final", {"height": 4})  # after close: dropped, not an error
    with path.open("a") as handle:
        handle.write('{"node":"node0","seq":4,"kind":"inter')  # a SIGKILL mid-line
    again, file = open_trace("node0", path, "id0")
    assert again.resumed_from == 3
    again.internal("reorg", {})
    file.close()
    events = list(parse_trace(path.read_text().splitlines(keepends=True), "file"))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.what for e in events] == ["node-start", "block", "block-final", "node-start", "reorg"]
    assert events[3].detail["resumed_from"] == 3


def test_resume_point_skips_other_nodes_and_garbage() -> None:
    (a, b), lines = tracers(2)
    stamp = b.send("id0", "block", "ab")
    a.receive("id1", "block", "ab", msg_id=stamp[0], vc=stamp[1], lamport=stamp[2])
    point = resume_point([*lines, "not json\n", lines[1]], "node0")
    assert (point.seq, point.lamport, dict(point.others)) == (a.seq, a.lamport, {"node1": 2})
    assert resume_point(["garbage"], "node0").seq == 0


def test_a_recorder_that_merges_no_clock_is_caught() -> None:
    """The closure test has teeth: receives that forget the sender's clock break it."""
    class Forgetful(NodeTracer):
        def receive(self, peer, what, ident, *, msg_id, vc, lamport):  # type: ignore[no-untyped-def]
            own = tuple(pair for pair in vc if pair[0] == self.name)
            super().receive(peer, what, ident, msg_id=msg_id, vc=own, lamport=lamport)

    lines: list[str] = []
    nodes = [Forgetful(f"node{i}", write=lines.append, clock=lambda: 1) for i in range(4)]
    gossip(nodes, Random(7), 600)
    graph = TraceGraph(parse_trace(lines, "recorder"))
    mismatches = 0
    for source in Random(2).sample(range(len(graph)), 20):
        mismatches += sum(1 for target in _reachable(graph, source) if not graph.happened_before(source, target))
    assert mismatches > 0


def test_a_peers_clock_cannot_break_our_stamps() -> None:
    """A hostile peer names us and itself at 2^64-1 and invents thousands of nodes: what we merge stays below
    2^53 and within the entries a stamp may carry, so honest receivers still accept our stamps."""
    from causality.clocks import MAX_ENTRIES
    from causality.recorder import MAX_MERGED
    from p2p.protocol.codec import decode_frame, encode_frame
    from p2p.protocol.messages import Inv, Stamped
    from p2p.tracing import WireTracer

    (node,), _ = tracers(1)
    top = (1 << 64) - 1
    node.receive("evil", "block", "ab", msg_id=f"evil:{top}", vc=(("evil", top), ("node0", top)), lamport=top)
    assert node.seq < MAX_MERGED and node.lamport < MAX_MERGED
    for batch in range(3):
        invented = tuple(sorted((f"n{batch}-{i:04d}", 5) for i in range(1000)))
        node.receive("evil", "block", "ab", msg_id=f"{invented[0][0]}:5", vc=invented, lamport=5)
    inv = Inv(kind="tx", hashes=(bytes(32),))
    frame = WireTracer(node).stamp("peer", inv, encode_frame(inv))
    stamp = decode_frame(frame)  # checked as an honest receiver checks it: no bad-clock
    assert isinstance(stamp, Stamped) and len(stamp.vc) <= MAX_ENTRIES
    assert all(counter < MAX_MERGED for _, counter in stamp.vc) and stamp.lamport < MAX_MERGED
