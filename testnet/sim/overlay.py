"""The P2P overlay of a simulated network (pure): which node pairs keep a connection when nothing is broken.

Small runs use a full mesh (every pair linked, what the simulator always did). Large ones use a random
`degree`-regular graph, as a public network looks from afar: every node holds `degree` connections to peers drawn
at random (Bitcoin Core keeps 8 outbound ones), so a message crosses the network in about log(n) / log(degree - 1)
hops instead of one, and the links number n * degree / 2 instead of n (n - 1) / 2.

`random_regular` draws the graph from the run's `Random` by pairing connection stubs at random and re-pairing
the stubs that would make a self-loop or a second link between one pair (the algorithm networkx's
`random_regular_graph` uses, after Steger and Wormald); a graph that is not connected is drawn again, so every
node can reach every other. The same seed gives the same graph.
"""

from __future__ import annotations

from random import Random

Pair = tuple[int, int]
MAX_ATTEMPTS = 100


class OverlayError(ValueError):
    """A degree that no graph over this many nodes can have."""


def full_mesh_pairs(nodes: int) -> list[Pair]:
    """Every pair (a, b), a < b, in order."""
    return [(a, b) for a in range(nodes) for b in range(a + 1, nodes)]


def random_regular(nodes: int, degree: int, rng: Random) -> list[Pair]:
    """A connected random `degree`-regular graph over nodes 0..n-1, as sorted pairs (a, b), a < b.

    A full mesh when degree >= n - 1 (nothing to draw). OverlayError when no such graph exists (n * degree odd,
    degree < 1 with more than one node) or none connected was drawn in MAX_ATTEMPTS tries."""
    if nodes < 2:
        return []
    if degree >= nodes - 1:
        return full_mesh_pairs(nodes)
    if degree < 1:
        raise OverlayError(f"degree must be at least 1 (got {degree})")
    if degree == 1 and nodes > 2:
        raise OverlayError("a 1-regular graph of more than two nodes is never connected: use degree >= 2")
    if nodes * degree % 2:
        raise OverlayError(f"no {degree}-regular graph has {nodes} nodes: nodes x degree must be even")
    for _ in range(MAX_ATTEMPTS):
        edges = _try_pairing(nodes, degree, rng)
        if edges is not None and is_connected(nodes, edges):
            return sorted(edges)
    raise OverlayError(f"drew no connected {degree}-regular graph of {nodes} nodes in {MAX_ATTEMPTS} attempts")


def _try_pairing(nodes: int, degree: int, rng: Random) -> set[Pair] | None:
    """One attempt: pair the stubs at random, re-pair the leftovers until none remain (None: stuck)."""
    edges: set[Pair] = set()
    stubs = [node for node in range(nodes) for _ in range(degree)]
    while stubs:
        leftover: dict[int, int] = {}
        rng.shuffle(stubs)
        for i in range(0, len(stubs), 2):
            a, b = stubs[i], stubs[i + 1]
            if a > b:
                a, b = b, a
            if a != b and (a, b) not in edges:
                edges.add((a, b))
            else:
                leftover[a] = leftover.get(a, 0) + 1
                leftover[b] = leftover.get(b, 0) + 1
        if leftover and not _pairable(leftover, edges):
            return None
        stubs = [node for node in sorted(leftover) for _ in range(leftover[node])]
    return edges


def _pairable(leftover: dict[int, int], edges: set[Pair]) -> bool:
    """True when two of the nodes with stubs left can still be linked."""
    waiting = sorted(leftover)
    return any((a, b) not in edges for i, a in enumerate(waiting) for b in waiting[i + 1:])


def neighbours_of(nodes: int, pairs: list[Pair]) -> list[list[int]]:
    """Each node's neighbours, sorted."""
    adjacent: list[list[int]] = [[] for _ in range(nodes)]
    for a, b in pairs:
        adjacent[a].append(b)
        adjacent[b].append(a)
    for row in adjacent:
        row.sort()
    return adjacent


def is_connected(nodes: int, pairs: set[Pair] | list[Pair]) -> bool:
    """True when every node reaches every other over `pairs`."""
    if nodes <= 1:
        return True
    adjacent = neighbours_of(nodes, list(pairs))
    seen = {0}
    pending = [0]
    while pending:
        for other in adjacent[pending.pop()]:
            if other not in seen:
                seen.add(other)
                pending.append(other)
    return len(seen) == nodes


def hop_distances(nodes: int, pairs: list[Pair], source: int) -> list[int]:
    """Hops from `source` to every node (-1: unreachable), by breadth-first search."""
    adjacent = neighbours_of(nodes, pairs)
    distance = [-1] * nodes
    distance[source] = 0
    frontier = [source]
    while frontier:
        following = []
        for node in frontier:
            for other in adjacent[node]:
                if distance[other] < 0:
                    distance[other] = distance[node] + 1
                    following.append(other)
        frontier = following
    return distance
