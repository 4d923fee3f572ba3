"""Partition shapes (pure): which pairs of nodes can still talk while a partition is on.

The names are the testnet nemesis's (DESIGN.md section 7), after Jepsen's:

- `halves`: two sides of `n // 2` and `n - n // 2` nodes (for even n an exact half: neither side may mine);
- `isolate:N`: node N alone, everyone else together (`isolate` alone: a node drawn at random);
- `bridge`: two sides joined only through one node that sees both (reachability is not transitive);
- `majorities-ring`: nodes on a ring, each seeing its nearest neighbours so that it sees a majority, and no two
  nodes see the same majority;
- `minority-third`: a third of the nodes (at least one) cut off from the rest.

A shape is a `Topology`: the set of node pairs whose link is up. Which nodes land where (except for `isolate:N`)
is drawn from the run's `Random`, so every seed exercises a different cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

SHAPES = ("halves", "isolate", "bridge", "majorities-ring", "minority-third")


class ShapeError(ValueError):
    """An unknown shape name or a node index out of range."""


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    """Which links between nodes 0..n-1 are up (`links` holds pairs (a, b) with a < b)."""

    shape: str
    nodes: int
    links: frozenset[tuple[int, int]]

    def connected(self, a: int, b: int) -> bool:
        """True when nodes `a` and `b` can exchange messages directly (a node always reaches itself)."""
        return a == b or _pair(a, b) in self.links

    def neighbours(self, node: int) -> list[int]:
        """Nodes directly reachable from `node`, in index order."""
        return [other for other in range(self.nodes) if other != node and self.connected(node, other)]

    def components(self) -> list[list[int]]:
        """Groups of nodes that reach each other, possibly over several hops (sorted, for logs and docs)."""
        seen: set[int] = set()
        groups: list[list[int]] = []
        for start in range(self.nodes):
            if start in seen:
                continue
            group, pending = [], [start]
            seen.add(start)
            while pending:
                current = pending.pop()
                group.append(current)
                for other in self.neighbours(current):
                    if other not in seen:
                        seen.add(other)
                        pending.append(other)
            groups.append(sorted(group))
        return groups

    def describe(self) -> str:
        """`shape: a|b|c` with the components, for the trace and logs."""
        if self.shape == "bridge" or self.shape == "majorities-ring":
            views = ";".join(f"{n}>{','.join(map(str, self.neighbours(n)))}" for n in range(self.nodes))
            return f"{self.shape}: {views}"
        return f"{self.shape}: " + " | ".join(",".join(map(str, g)) for g in self.components())


def full_mesh(nodes: int) -> Topology:
    """Every link up (no partition)."""
    return Topology(shape="healed", nodes=nodes, links=_clique(range(nodes)))


def _clique(members: range | list[int]) -> frozenset[tuple[int, int]]:
    members = list(members)
    return frozenset(_pair(a, b) for i, a in enumerate(members) for b in members[i + 1:])


def _sides(left: list[int], right: list[int]) -> frozenset[tuple[int, int]]:
    return _clique(left) | _clique(right)


def parse_shape(spec: str, nodes: int) -> tuple[str, int | None]:
    """(`shape`, isolated node or None) of a shape spec such as `halves` or `isolate:2`; ShapeError otherwise."""
    name, _, argument = spec.partition(":")
    if name not in SHAPES:
        raise ShapeError(f"unknown partition shape {spec!r} (known: {', '.join(SHAPES)}, isolate:N)")
    if not argument:
        return name, None
    if name != "isolate":
        raise ShapeError(f"shape {name} takes no argument")
    try:
        index = int(argument)
    except ValueError as exc:
        raise ShapeError(f"isolate:N needs a node index, got {argument!r}") from exc
    if not 0 <= index < nodes:
        raise ShapeError(f"isolate:{index}: there are only nodes 0..{nodes - 1}")
    return name, index


def make_topology(spec: str, nodes: int, rng: Random) -> Topology:
    """The topology of partition `spec` over `nodes` nodes, with members drawn from `rng`."""
    if nodes < 2:
        raise ShapeError("a partition needs at least two nodes")
    name, isolated = parse_shape(spec, nodes)
    order = list(range(nodes))
    rng.shuffle(order)
    if name == "halves":
        half = nodes // 2
        links = _sides(order[:half], order[half:])
    elif name == "isolate":
        alone = isolated if isolated is not None else order[0]
        links = _clique([n for n in range(nodes) if n != alone])
        name = f"isolate:{alone}"
    elif name == "minority-third":
        third = max(1, nodes // 3)
        links = _sides(order[:third], order[third:])
    elif name == "bridge":
        if nodes < 3:
            links = _clique(order)
        else:
            middle = nodes // 2
            bridge = order[middle]
            links = _sides([*order[:middle], bridge], order[middle:])
    else:  # majorities-ring
        majority = nodes // 2 + 1
        reach = -(-(majority - 1) // 2)  # ceil: neighbours on each side so that a node sees a majority
        pairs = set()
        for position, node in enumerate(order):
            for step in range(1, reach + 1):
                pairs.add(_pair(node, order[(position + step) % nodes]))
        links = frozenset(p for p in pairs if p[0] != p[1])
    return Topology(shape=name, nodes=nodes, links=links)
