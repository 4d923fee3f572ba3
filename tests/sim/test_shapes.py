"""Partition shapes: who can still talk to whom."""

from __future__ import annotations

from random import Random

import pytest

from testnet.sim.shapes import SHAPES, ShapeError, full_mesh, make_topology


@pytest.mark.parametrize("nodes", [4, 5, 7])
def test_halves_splits_in_two_sides(nodes: int) -> None:
    topology = make_topology("halves", nodes, Random(1))
    sizes = sorted(len(group) for group in topology.components())
    assert sizes == sorted([nodes // 2, nodes - nodes // 2])


def test_isolate_n_cuts_exactly_that_node() -> None:
    topology = make_topology("isolate:2", 5, Random(1))
    assert topology.neighbours(2) == []
    assert topology.components() == [[0, 1, 3, 4], [2]]
    assert topology.shape == "isolate:2"
    drawn = make_topology("isolate", 5, Random(1))
    assert sorted(len(g) for g in drawn.components()) == [1, 4]


@pytest.mark.parametrize("nodes", [5, 7])
def test_bridge_node_sees_both_sides_and_nobody_else_does(nodes: int) -> None:
    topology = make_topology("bridge", nodes, Random(4))
    degrees = {n: len(topology.neighbours(n)) for n in range(nodes)}
    bridge = max(degrees, key=lambda n: degrees[n])
    assert degrees[bridge] == nodes - 1
    others = [n for n in range(nodes) if n != bridge]
    crossing = [(a, b) for a in others for b in others if a < b and not topology.connected(a, b)]
    assert crossing, "without the bridge the two sides do not meet"
    assert len(topology.components()) == 1  # connected through the bridge only


@pytest.mark.parametrize("nodes", [5, 7, 9])
def test_majorities_ring_gives_everyone_a_different_majority(nodes: int) -> None:
    topology = make_topology("majorities-ring", nodes, Random(2))
    views = [frozenset([n, *topology.neighbours(n)]) for n in range(nodes)]
    assert all(len(view) > nodes // 2 for view in views)
    assert len(set(views)) == nodes
    assert all(len(view) < nodes for view in views)


@pytest.mark.parametrize("nodes", [3, 6, 7])
def test_minority_third(nodes: int) -> None:
    topology = make_topology("minority-third", nodes, Random(3))
    sizes = sorted(len(group) for group in topology.components())
    assert sizes == sorted([max(1, nodes // 3), nodes - max(1, nodes // 3)])


def test_membership_is_drawn_from_the_seed() -> None:
    assert make_topology("halves", 6, Random(1)) == make_topology("halves", 6, Random(1))
    drawn = {make_topology("halves", 6, Random(seed)).links for seed in range(20)}
    assert len(drawn) > 1


def test_every_shape_parses_and_healed_is_a_full_mesh() -> None:
    for shape in SHAPES:
        assert make_topology(shape, 4, Random(0)).nodes == 4
    mesh = full_mesh(4)
    assert all(mesh.connected(a, b) for a in range(4) for b in range(4))
    assert mesh.describe() == "healed: 0,1,2,3"


@pytest.mark.parametrize("spec", ["thirds", "isolate:9", "isolate:x", "halves:1"])
def test_bad_shapes_are_refused(spec: str) -> None:
    with pytest.raises(ShapeError):
        make_topology(spec, 5, Random(0))
