"""Who talks to whom: testnet topologies (who dials whom) and partition shapes (who blocks whom), pure.

Nodes are indices 0..n-1. A topology is a set of undirected edges `(i, j)` with `i < j`; the launcher makes the
higher index dial the lower one and configures nodes to dial only those neighbours (docs/TESTNET.md). A partition is
a map `blocked[i] = {j, ...}`: node i refuses every frame to and from j (the node's `blocked_peers` fault). The
partitions the nemesis makes are symmetric: i blocks j exactly when j blocks i.

Shapes (n nodes, taken in `order`, by default 0..n-1):

- `halves`: the first floor(n/2) nodes | the rest.
- `isolate:K`: node K alone | everyone else.
- `bridge`: the nodes before the middle one | the nodes after it; the middle node (position floor(n/2)) sees both
  sides, so each side plus the bridge is a majority, and the two majorities intersect only in the bridge.
- `majorities-ring`: the nodes sit on a ring; each sees itself and the nodes within ring distance d, the smallest
  d with 2d + 1 >= floor(n/2) + 1: every node sees a majority, and no two nodes see the same one (n >= 4).
- `minority-third`: the last max(1, floor(n/3)) nodes | the rest.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence

TOPOLOGIES = ("full", "line", "ring", "random")
SHAPES = ("halves", "isolate", "bridge", "majorities-ring", "minority-third")

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
    `isolate:K` names its node directly and ignores it.
    """
    nodes = list(order) if order is not None else list(range(count))
    if sorted(nodes) != list(range(count)):
        raise TopologyError(f"order must be a permutation of 0..{count - 1}")
    if count < 2:
        raise TopologyError("a partition needs at least two nodes")
    name, _, argument = shape.partition(":")
    if name == "isolate":
        if not argument:
            raise TopologyError("isolate needs a node: isolate:K")
        try:
            alone = int(argument)
        except ValueError:
            raise TopologyError(f"isolate:{argument}: not a node index") from None
        if not 0 <= alone < count:
            raise TopologyError(f"isolate:{alone}: no such node (nodes 0..{count - 1})")
        return blocked_from_groups([[alone], [n for n in range(count) if n != alone]], count)
    if argument:
        raise TopologyError(f"shape {name!r} takes no argument")
    if name == "halves":
        half = count // 2
        return blocked_from_groups([nodes[:half], nodes[half:]], count)
    if name == "minority-third":
        cut = max(1, count // 3)
        return blocked_from_groups([nodes[:count - cut], nodes[count - cut:]], count)
    if name == "bridge":
        if count < 3:
            raise TopologyError("bridge needs at least 3 nodes")
        middle = count // 2
        left, bridge, right = nodes[:middle], nodes[middle], nodes[middle + 1:]
        blocked: Blocked = {node: set() for node in range(count)}
        for a in left:
            for b in right:
                blocked[a].add(b)
                blocked[b].add(a)
        blocked[bridge] = set()
        return blocked
    if name == "majorities-ring":
        if count < 4:
            raise TopologyError("majorities-ring needs at least 4 nodes (with 3, every node sees everyone)")
        majority = count // 2 + 1
        reach = majority // 2  # the smallest d with 2d + 1 >= majority
        position = {node: place for place, node in enumerate(nodes)}
        blocked = {}
        for node in range(count):
            blocked[node] = {other for other in range(count)
                             if _ring_distance(position[node], position[other], count) > reach}
        return blocked
    raise TopologyError(f"unknown shape {shape!r} (choose one of halves, isolate:K, bridge, majorities-ring, "
                        "minority-third)")


def _ring_distance(a: int, b: int, count: int) -> int:
    step = abs(a - b) % count
    return min(step, count - step)


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
