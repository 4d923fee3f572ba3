"""Who talks to whom: testnet topologies (who dials whom) and partition shapes (who blocks whom), pure.

Nodes are indices 0..n-1. A topology is a set of undirected edges `(i, j)` with `i < j`; the launcher makes the
higher index dial the lower one and configures nodes to dial only those neighbours (docs/TESTNET.md). A partition is
a map `blocked[i] = {j, ...}`: node i refuses every frame to and from j (the node's `blocked_peers` fault). The
partitions the nemesis makes are symmetric: i blocks j exactly when j blocks i.

Shapes: `halves`, `isolate:K`, `bridge` (n >= 3), `majorities-ring` (n >= 4), `minority-third`, one implementation
shared with the simulator (testnet/sim/shapes.py, which documents them).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence

from testnet.sim.shapes import SHAPES, ShapeError, shape_links

__all__ = ["SHAPES", "TOPOLOGIES", "Blocked", "Edge", "TopologyError", "blocked_from_groups", "components",
           "neighbours", "parse_groups", "shape_blocked", "topology_edges", "visible"]

TOPOLOGIES = ("full", "line", "ring", "random")

Edge = tuple[int, int]
Blocked = dict[int, set[int]]


class TopologyError(ValueError):
    """A topology, group list or partition shape that does not fit the network; the message says why."""


def topology_edges(kind: str, count: int, rng: random.Random | None = None) -> set[Edge]:
    """Edges of a `kind` topology over `count` nodes.

    full: every pair. line: i - i+1. ring: the line plus (0, n-1) when n >= 3. random: a random spanning tree (each
    node i > 0 joins a uniformly drawn earlier node) plus, for each node, one extra edge to a random non-neighbour
    when there is one; connected, and drawn from `rng` (reproducible from a seed).
    """
    if count < 1:
        raise TopologyError("a network needs at least one node")
    if kind == "full":
        return {(i, j) for i in range(count) for j in range(i + 1, count)}
    if kind == "line":
        return {(i, i + 1) for i in range(count - 1)}
    if kind == "ring":
        edges = {(i, i + 1) for i in range(count - 1)}
        if count >= 3:
            edges.add((0, count - 1))
        return edges
    if kind == "random":
        draw = rng or random.Random(0)
        edges = {(draw.randrange(i), i) for i in range(1, count)}
        for node in range(count):
            others = [j for j in range(count) if j != node and _edge(node, j) not in edges]
            if others:
                edges.add(_edge(node, draw.choice(others)))
        return edges
    raise TopologyError(f"unknown topology {kind!r} (choose one of {', '.join(TOPOLOGIES)})")


def _edge(a: int, b: int) -> Edge:
    return (a, b) if a < b else (b, a)


def neighbours(edges: Iterable[Edge], node: int) -> list[int]:
    """The nodes `node` shares an edge with, sorted."""
    return sorted({b if a == node else a for a, b in edges if node in (a, b)})


def blocked_from_groups(groups: Sequence[Sequence[int]], count: int) -> Blocked:
    """Each node blocks every node outside its group. Every node must be in exactly one group."""
    seen: dict[int, int] = {}
    for number, group in enumerate(groups):
        if not group:
            raise TopologyError(f"group {number + 1} is empty")
        for node in group:
            if not 0 <= node < count:
                raise TopologyError(f"node {node} is not in this network (nodes 0..{count - 1})")
            if node in seen:
                raise TopologyError(f"node {node} is in two groups")
            seen[node] = number
    missing = [node for node in range(count) if node not in seen]
    if missing:
        raise TopologyError(f"node(s) {', '.join(map(str, missing))} in no group (list every node; a node alone "
                            "is a group of one)")
    if len(groups) < 2:
        raise TopologyError("a partition needs at least two groups")
    return {node: {other for other in range(count) if seen[other] != seen[node]} for node in range(count)}


def shape_blocked(shape: str, count: int, order: Sequence[int] | None = None) -> Blocked:
    """The blocked sets of a named shape (`halves`, `isolate:K`, `bridge`, `majorities-ring`, `minority-third`).

    `order` arranges the nodes before the shape is cut (a permutation of 0..n-1; a random schedule draws one);
    `isolate:K` names its node directly and ignores it. The shapes themselves are the simulator's
    (testnet/sim/shapes.py `shape_links`): node i blocks j exactly when the shape leaves their link down.
    """
    try:
        links = shape_links(shape, count, order)
    except ShapeError as exc:
        raise TopologyError(str(exc)) from None
    return {node: {other for other in range(count) if other != node and _edge(node, other) not in links}
            for node in range(count)}


def parse_groups(texts: Sequence[str], resolve: Callable[[str], int]) -> list[list[int]]:
    """`["0,1", "2,3,4"]` -> `[[0, 1], [2, 3, 4]]`; `resolve` turns a node name or index into an index."""
    groups = []
    for text in texts:
        members = [part.strip() for part in text.split(",") if part.strip()]
        if not members:
            raise TopologyError(f"empty group {text!r}")
        groups.append([resolve(member) for member in members])
    return groups


def visible(blocked: Mapping[int, set[int]], count: int) -> dict[int, set[int]]:
    """What each node can still talk to (itself included): j is visible to i unless either blocks the other."""
    return {node: {other for other in range(count)
                   if other not in blocked.get(node, set()) and node not in blocked.get(other, set())}
            for node in range(count)}


def components(count: int, edges: Iterable[Edge], blocked: Mapping[int, set[int]], up: Iterable[int],
               ) -> list[set[int]]:
    """Connected components among the `up` nodes, over topology edges that neither end blocks (largest first)."""
    alive = set(up)
    adjacency: dict[int, set[int]] = {node: set() for node in alive}
    for a, b in edges:
        if a in alive and b in alive and b not in blocked.get(a, set()) and a not in blocked.get(b, set()):
            adjacency[a].add(b)
            adjacency[b].add(a)
    found: list[set[int]] = []
    unvisited = set(alive)
    while unvisited:
        start = min(unvisited)
        component = {start}
        frontier = [start]
        while frontier:
            node = frontier.pop()
            for other in adjacency[node] - component:
                component.add(other)
                frontier.append(other)
        unvisited -= component
        found.append(component)
    return sorted(found, key=lambda c: (-len(c), min(c)))
