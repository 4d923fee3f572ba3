"""The happens-before graph (causality/graph.py): on generated runs the vector clocks' relation equals the
transitive closure of program order and messages; with gaps the queries still answer and say when a chain is
missing; and on a hand-made fork through a partition, the queries name the two blocks mined concurrently."""

from __future__ import annotations

import itertools
from collections import deque
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causality.clocks import Order
from causality.events import TraceEvent
from causality.generate import Run, random_run, with_gaps, with_restart
from causality.graph import RefError, Step, TraceGraph

S = 1_000_000_000


def fork_through_a_partition() -> list[TraceEvent]:
    """node0 mines A and sends it to both; a partition cuts node2 off; node0 mines B, node2 mines C (both at
    height 2, neither knowing of the other: a fork); node0's copy of B to node2 is lost; after the heal node2 sends
    C to node0, node0 mines D on B and sends it to node2, which reorgs and sees B final."""
    run = Run()
    run.internal("node0", "block-mined", 1 * S, height=1, hash="aa01")
    to_node1 = run.send("node0", "node1", "block", 1 * S + 1, height=1, hash="aa01")
    to_node2 = run.send("node0", "node2", "block", 1 * S + 2, height=1, hash="aa01")
    run.receive(to_node1, 1 * S + 3)
    run.receive(to_node2, 1 * S + 4)
    run.internal("node0", "block-mined", 3 * S, height=2, hash="bb02")
    run.receive(run.send("node0", "node1", "block", 3 * S + 1, height=2, hash="bb02"), 3 * S + 2)
    run.internal("node2", "block-mined", 3 * S + 5, height=2, hash="cc03")
    run.send("node0", "node2", "block", 3 * S + 6, height=2, hash="bb02")  # lost in the partition
    run.receive(run.send("node2", "node0", "block", 5 * S + 5, height=2, hash="cc03"), 5 * S + 6)
    run.internal("node0", "block-mined", 6 * S, height=3, hash="dd04")
    run.receive(run.send("node0", "node2", "block", 6 * S + 1, height=3, hash="dd04"), 6 * S + 2)
    run.internal("node2", "reorg", 6 * S + 3, height=3)
    run.internal("node2", "block-final", 7 * S, height=2, hash="bb02")
    return run.events


PARTITION_EVENTS = [
    {"action": "up", "time_ns": 0, "nodes": ["node0", "node1", "node2"],
     "network": {"blocked": {}, "down": [], "paused": []}},
    {"action": "partition", "time_ns": 2 * S, "nodes": ["node0", "node1", "node2"],
     "detail": {"groups": [[0, 1], [2]]},
     "network": {"blocked": {"node0": ["node2"], "node1": ["node2"], "node2": ["node0", "node1"]}, "down": [],
                 "paused": []}},
    {"action": "heal", "time_ns": 5 * S, "nodes": ["node0", "node1", "node2"],
     "network": {"blocked": {}, "down": [], "paused": []}},
]


def _reachable(graph: TraceGraph, source: int) -> set[int]:
    seen = {source}
    queue = deque([source])
    while queue:
        for _, following in graph.successors(queue.popleft()):
            if following not in seen:
                seen.add(following)
                queue.append(following)
    return seen - {source}


def _fewest_messages(graph: TraceGraph, source: int, target: int) -> int | None:
    """The fewest messages on any path from source to target (a plain 0-1 breadth-first search, no pruning)."""
    distance = {source: 0}
    queue = deque([source])
    while queue:
        current = queue.popleft()
        for kind, following in graph.successors(current):
            cost = distance[current] + (kind == "message")
            if cost < distance.get(following, len(graph) + 1):
                distance[following] = cost
                if kind == "message":
                    queue.append(following)
                else:
                    queue.appendleft(following)
    return distance.get(target)


def _check_chain(graph: TraceGraph, earlier: int, later: int, relation_chain: tuple[Step, ...]) -> None:
    """Each step of a chain is a real edge (or a run of program-order edges) and they join up end to end."""
    at = earlier
    for step in relation_chain:
        assert step.source == at
        target = step.target
        if step.kind == "message":
            assert graph.send_of(target) == at
        else:
            assert graph.process_of[target] == graph.process_of[at]
        at = target
    assert at == later


@settings(max_examples=25)
@given(st.integers(min_value=0, max_value=10**6))
def test_vector_clock_order_equals_the_transitive_closure_of_the_message_graph(seed: int) -> None:
    graph = TraceGraph(random_run(Random(seed), processes=4, steps=120))
    rng = Random(seed)
    for source in rng.sample(range(len(graph)), 12):
        reachable = _reachable(graph, source)
        for target in range(len(graph)):
            if target != source:
                assert graph.happened_before(source, target) == (target in reachable), (source, target)
                assert (graph.order(source, target) is Order.BEFORE) == (target in reachable)


@settings(max_examples=15)
@given(st.integers(min_value=0, max_value=10**6))
def test_with_gaps_every_chain_is_real_and_a_missing_one_is_called_incomplete(seed: int) -> None:
    events = with_restart(with_gaps(Random(seed), random_run(Random(seed), processes=4, steps=150)), "node1", 10)
    graph = TraceGraph(events)
    rng = Random(seed)
    for first, second in (rng.sample(range(len(graph)), 2) for _ in range(30)):
        relation = graph.relation(first, second)
        reachable = second in _reachable(graph, first)
        if reachable:  # a chain in the trace always means the clocks agree
            assert relation.order is Order.BEFORE
        if relation.order in (Order.BEFORE, Order.AFTER):
            earlier, later = (first, second) if relation.order is Order.BEFORE else (second, first)
            if relation.chain is None:
                assert not relation.complete and "incomplete" in relation.note
            else:
                _check_chain(graph, earlier, later, relation.chain)
                hops = sum(1 for step in relation.chain if step.kind == "message")
                assert hops == _fewest_messages(graph, earlier, later)


def test_the_fork_the_partition_and_the_chain_that_explains_them() -> None:
    graph = TraceGraph(fork_through_a_partition())
    b, c = graph.resolve("node0:block-mined:2"), graph.resolve("block-mined@cc")
    found = graph.concurrent("block-mined", same="height")
    assert found.pairs == ((b, c),) and found.pair_count == 1 and found.groups == ((b, c),)
    assert graph.relation(b, c).order is Order.CONCURRENT
    assert graph.concurrent("block-mined").pair_count == 1  # D was mined after C reached node0

    a = graph.resolve("block-mined@aa01")
    relation = graph.relation(c, a)
    assert relation.order is Order.AFTER and relation.complete
    assert [(s.kind, graph.name(s.source), graph.name(s.target)) for s in relation.chain or ()] == [
        ("program-order", "node0:1", "node0:3"), ("message", "node0:3", "node2:1"),
        ("program-order", "node2:1", "node2:2")]

    final = graph.resolve("node2:block-final@bb")
    past = graph.past(final)
    assert {b, c, a, graph.resolve("block-mined@dd")} <= set(past.events)
    assert (graph.resolve("node0:9"), graph.resolve("node2:4")) in past.messages  # D's message
    assert graph.lost_sends == 1 and graph.future(final).events == ()


def test_a_gap_on_the_chain_makes_the_answer_incomplete_not_invented() -> None:
    events = fork_through_a_partition()
    send_of_d = next(e for e in events if e.kind == "send" and e.detail.get("hash") == "dd04")
    graph = TraceGraph([e for e in events if e is not send_of_d])
    relation = graph.relation(graph.resolve("block-mined@dd"), graph.resolve("node2:block-final:1"))
    assert relation.order is Order.BEFORE and relation.chain is None and not relation.complete
    assert "gap" in relation.note and graph.unmatched_receives == 1
    assert any("whose send is not in the trace" in note for note in graph.notes)


def test_a_node_that_starts_again_from_seq_1_is_a_new_incarnation() -> None:
    events = with_restart(random_run(Random(5), processes=3, steps=60), "node1", 5)
    graph = TraceGraph(events)
    assert "node1#2" in graph.processes and any("node1#2" in note for note in graph.notes)
    first, later = graph.resolve("node1:1"), graph.resolve("node1#2:1")
    assert graph.process_of[first] == "node1" and graph.process_of[later] == "node1#2"
    assert graph.relation(first, later).order is Order.BEFORE


@pytest.mark.parametrize(("ref", "message"), [
    ("node9:1", "no such node"), ("node0:99", "no event of seq 99"), ("node0:block-mined:9", "has 3 block-mined"),
    ("node0:block-mined:0", "count from 1"), ("block-mined@ee", "no block-mined"), ("block@bb02", "events match"),
    ("what", "not an event reference"),
])
def test_bad_references_say_what_is_wrong(ref: str, message: str) -> None:
    graph = TraceGraph(fork_through_a_partition())
    with pytest.raises(RefError, match=message):
        graph.resolve(ref)


def test_concurrent_agrees_with_every_pair_compared_on_a_damaged_run() -> None:
    events = with_restart(with_gaps(Random(3), random_run(Random(3), processes=5, steps=600)), "node2", 30)
    graph = TraceGraph(events)
    found = graph.concurrent("block-mined", max_pairs=10**6)
    mined = [i for i, e in enumerate(graph.events) if e.what == "block-mined"]
    expected = {(a, b) for a, b in itertools.combinations(mined, 2) if graph.order(a, b) is Order.CONCURRENT}
    assert set(found.pairs) == expected and found.pair_count == len(expected) and not found.truncated
    assert graph.concurrent("block-mined", max_pairs=3).truncated
