"""Topologies and partition shapes (testnet/topology.py): exact cuts, symmetry, and clear errors."""

from __future__ import annotations

import random

import pytest

from testnet.topology import (
    TopologyError,
    blocked_from_groups,
    components,
    neighbours,
    parse_groups,
    shape_blocked,
    topology_edges,
    visible,
)


def symmetric(blocked: dict[int, set[int]]) -> bool:
    return all(a in blocked[b] for a, others in blocked.items() for b in others)


def test_topologies() -> None:
    assert topology_edges("full", 4) == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}
    assert topology_edges("line", 4) == {(0, 1), (1, 2), (2, 3)}
    assert topology_edges("ring", 4) == {(0, 1), (1, 2), (2, 3), (0, 3)}
    assert topology_edges("ring", 2) == {(0, 1)}
    assert neighbours(topology_edges("line", 4), 1) == [0, 2]
    with pytest.raises(TopologyError, match="unknown topology"):
        topology_edges("star", 4)


@pytest.mark.parametrize("seed", range(20))
def test_random_topology_is_connected_and_reproducible(seed: int) -> None:
    edges = topology_edges("random", 7, random.Random(seed))
    assert edges == topology_edges("random", 7, random.Random(seed))
    assert len(components(7, edges, {}, range(7))) == 1
    assert all(len(neighbours(edges, n)) >= 1 for n in range(7))


def test_groups_block_everyone_outside_the_group() -> None:
    blocked = blocked_from_groups([[0, 1], [2, 3, 4]], 5)
    assert blocked == {0: {2, 3, 4}, 1: {2, 3, 4}, 2: {0, 1}, 3: {0, 1}, 4: {0, 1}}
    assert symmetric(blocked)


@pytest.mark.parametrize(("groups", "message"), [
    ([[0, 1], [1, 2]], "node 1 is in two groups"),
    ([[0, 1], [2]], "node\\(s\\) 3 in no group"),
    ([[0, 1, 2, 3]], "at least two groups"),
    ([[0, 9], [1, 2, 3]], "node 9 is not in this network"),
    ([[0, 1], [], [2, 3]], "group 2 is empty"),
])
def test_bad_groups_are_refused(groups: list[list[int]], message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        blocked_from_groups(groups, 4)


def test_parse_groups_resolves_names() -> None:
    def resolve(text: str) -> int:
        return int(text.removeprefix("node"))

    assert parse_groups(["0,node1", "2, 3,4"], resolve) == [[0, 1], [2, 3, 4]]
    with pytest.raises(TopologyError, match="empty group"):
        parse_groups(["0,1", ","], resolve)


def test_halves() -> None:
    assert shape_blocked("halves", 4) == blocked_from_groups([[0, 1], [2, 3]], 4)
    assert shape_blocked("halves", 5) == blocked_from_groups([[0, 1], [2, 3, 4]], 5)
    assert shape_blocked("halves", 4, order=[3, 1, 0, 2]) == blocked_from_groups([[3, 1], [0, 2]], 4)


def test_isolate() -> None:
    assert shape_blocked("isolate:2", 4) == blocked_from_groups([[2], [0, 1, 3]], 4)
    for bad, message in (("isolate", "needs a node"), ("isolate:7", "no such node"), ("isolate:x", "not a node")):
        with pytest.raises(TopologyError, match=message):
            shape_blocked(bad, 4)


def test_minority_third() -> None:
    assert shape_blocked("minority-third", 6) == blocked_from_groups([[0, 1, 2, 3], [4, 5]], 6)
    assert shape_blocked("minority-third", 4) == blocked_from_groups([[0, 1, 2], [3]], 4)
    assert shape_blocked("minority-third", 2) == blocked_from_groups([[0], [1]], 2)


@pytest.mark.parametrize("count", [3, 4, 5, 6, 7])
def test_bridge_two_majorities_meet_only_in_the_bridge(count: int) -> None:
    blocked = shape_blocked("bridge", count)
    assert symmetric(blocked)
    sees = visible(blocked, count)
    bridge = count // 2
    assert sees[bridge] == set(range(count))
    left, right = set(range(bridge)), set(range(bridge + 1, count))
    for node in left:
        assert sees[node] == left | {bridge}
    for node in right:
        assert sees[node] == right | {bridge}
    # no direct path between the sides, one through the bridge
    assert len(components(count, topology_edges("full", count), blocked, range(count))) == 1
    assert len(components(count, topology_edges("full", count), blocked,
                          [n for n in range(count) if n != bridge])) == 2


@pytest.mark.parametrize("count", [4, 5, 6, 7, 9])
def test_majorities_ring_each_node_sees_a_distinct_majority(count: int) -> None:
    blocked = shape_blocked("majorities-ring", count)
    assert symmetric(blocked)
    sees = visible(blocked, count)
    majority = count // 2 + 1
    assert all(len(seen) >= majority for seen in sees.values())
    assert len({frozenset(seen) for seen in sees.values()}) == count
    assert all(seen != set(range(count)) for seen in sees.values())  # a real cut: nobody sees everyone


def test_majorities_ring_follows_the_order_on_the_ring() -> None:
    order = [4, 2, 0, 3, 1]
    sees = visible(shape_blocked("majorities-ring", 5, order), 5)
    assert sees[0] == {2, 0, 3}  # its ring neighbours in `order`


def test_shape_errors() -> None:
    with pytest.raises(TopologyError, match="at least 4 nodes"):
        shape_blocked("majorities-ring", 3)
    with pytest.raises(TopologyError, match="at least 3 nodes"):
        shape_blocked("bridge", 2)
    with pytest.raises(TopologyError, match="unknown shape"):
        shape_blocked("thirds", 5)
    with pytest.raises(TopologyError, match="takes no argument"):
        shape_blocked("halves:1", 4)
    with pytest.raises(TopologyError, match="permutation"):
        shape_blocked("halves", 4, order=[0, 0, 1, 2])
    with pytest.raises(TopologyError, match="two nodes"):
        shape_blocked("halves", 1)


def test_components_respect_edges_blocks_and_down_nodes() -> None:
    line = topology_edges("line", 5)
    assert components(5, line, {}, [0, 1, 3, 4]) == [{0, 1}, {3, 4}]
    blocked = blocked_from_groups([[0, 1, 2], [3, 4]], 5)
    assert components(5, topology_edges("full", 5), blocked, range(5)) == [{0, 1, 2}, {3, 4}]
