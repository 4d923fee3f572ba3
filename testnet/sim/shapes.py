"""Partition shapes (pure), the one implementation behind both the simulator's nemesis and the testnet's
(testnet/topology.py `shape_blocked`): which pairs of nodes can still talk while a partition is on.

The names are DESIGN.md section 7's, after Jepsen's. Nodes 0..n-1 are taken in `order` (a permutation; the
simulator draws it from the run's `Random`, the testnet draws it or uses 0..n-1), then:

- `halves`: the first floor(n/2) nodes | the rest (for even n an exact half: neither side may mine);
- `isolate:K`: node K alone | everyone else (K is named, `order` does not matter);
- `bridge`: the nodes before the middle one | the nodes after it; the middle node (position floor(n/2)) sees both
  sides, so each side plus the bridge is a majority and the two majorities meet only in the bridge (reachability
  is not transitive). Needs n >= 3: with two nodes there is no third to be the bridge, and rather than quietly
  leaving the network whole (as the simulator once did) the shape is refused, in the simulator and the testnet alike;
- `majorities-ring`: the nodes sit on a ring; each sees itself and the nodes within ring distance d, the smallest
  d with 2d + 1 >= floor(n/2) + 1, so every node sees a majority and no two see the same one. Needs n >= 4 (with
  three nodes everyone would see everyone);
- `minority-third`: the last max(1, floor(n/3)) nodes | the rest.

`shape_links` gives the shape as the set of node pairs whose link is up; the simulator wraps it in a `Topology`,
the testnet turns it into each node's blocked set. The nemesis of the simulator draws only among `shapes_for(n)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from random import Random

SHAPES = ("halves", "isolate", "bridge", "majorities-ring", "minority-third")
MIN_NODES = {"halves": 2, "isolate": 2, "bridge": 3, "majorities-ring": 4, "minority-third": 2}

Pair = tuple[int, int]


class ShapeError(ValueError):
    """An unknown shape name, a node index out of range, or a shape that does not fit the number of nodes."""


def _pair(a: int, b: int) -> Pair:
    return (a, b) if a < b else (b, a)


def shapes_for(nodes: int) -> tuple[str, ...]:
    """The shapes that cut a network of `nodes` nodes (in SHAPES order)."""
    return tuple(shape for shape in SHAPES if nodes >= MIN_NODES[shape])


def parse_shape(spec: str, nodes: int) -> tuple[str, int | None]:
    """(`shape`, isolated node or None) of a shape spec such as `halves` or `isolate:2`; ShapeError otherwise."""
    name, _, argument = spec.partition(":")
    if name not in SHAPES:
        raise ShapeError(f"unknown shape {spec!r} (choose one of halves, isolate:K, bridge, majorities-ring, "
                         "minority-third)")
    if not argument:
        return name, None
    if name != "isolate":
        raise ShapeError(f"shape {name!r} takes no argument")
    try:
        index = int(argument)
    except ValueError:
        raise ShapeError(f"isolate:{argument}: not a node index") from None
    if not 0 <= index < nodes:
        raise ShapeError(f"isolate:{index}: no such node (nodes 0..{nodes - 1})")
    return name, index


def shape_links(spec: str, nodes: int, order: Sequence[int] | None = None) -> frozenset[Pair]:
    """The pairs (a, b), a < b, that can still talk under partition `spec` over `nodes` nodes taken in `order`
    (default 0..n-1). ShapeError for an unknown or unfitting shape, `isolate` without its node, or a bad order."""
    if nodes < 2:
        raise ShapeError("a partition needs at least two nodes")
    members = list(order) if order is not None else list(range(nodes))
    if sorted(members) != list(range(nodes)):
        raise ShapeError(f"order must be a permutation of 0..{nodes - 1}")
    name, isolated = parse_shape(spec, nodes)
    if nodes < MIN_NODES[name]:
        reason = " (with 3, every node sees everyone)" if name == "majorities-ring" else ""
        raise ShapeError(f"{name} needs at least {MIN_NODES[name]} nodes{reason}")
    if name == "isolate":
        if isolated is None:
            raise ShapeError("isolate needs a node: isolate:K")
        return _clique([n for n in range(nodes) if n != isolated])
    if name == "halves":
        half = nodes // 2
        return _clique(members[:half]) | _clique(members[half:])
    if name == "minority-third":
        cut = nodes - max(1, nodes // 3)
        return _clique(members[:cut]) | _clique(members[cut:])
    if name == "bridge":
        middle = nodes // 2
        return _clique(members[:middle + 1]) | _clique(members[middle:])
    reach = (nodes // 2 + 1) // 2  # majorities-ring: the smallest d with 2d + 1 >= majority
    return frozenset(_pair(node, members[(place + step) % nodes])
                     for place, node in enumerate(members) for step in range(1, reach + 1))


def _clique(members: Sequence[int]) -> frozenset[Pair]:
    return frozenset(_pair(a, b) for i, a in enumerate(members) for b in members[i + 1:])


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    """Which links between nodes 0..n-1 are up (`links` holds pairs (a, b) with a < b)."""

    shape: str
    nodes: int
    links: frozenset[Pair]
    whole: bool = False  # no cut at all: every pair connected, whatever `links` holds (no n^2 set of pairs)

    def connected(self, a: int, b: int) -> bool:
        """True when nodes `a` and `b` can exchange messages directly (a node always reaches itself)."""
        return a == b or self.whole or _pair(a, b) in self.links

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


def groups_topology(shape: str, nodes: int, groups: Sequence[Sequence[int]]) -> Topology:
    """Each group a clique, no link between groups (the twin split)."""
    links: frozenset[Pair] = frozenset()
    for group in groups:
        links |= _clique(sorted(group))
    return Topology(shape=shape, nodes=nodes, links=links)


def full_mesh(nodes: int) -> Topology:
    """Every link up (no partition)."""
    return Topology(shape="healed", nodes=nodes, links=_clique(range(nodes)))


def whole_network(nodes: int) -> Topology:
    """No partition: every pair connected, as `full_mesh`, without listing the pairs (1,000 nodes have 499,500)."""
    return Topology(shape="healed", nodes=nodes, links=frozenset(), whole=True)


def make_topology(spec: str, nodes: int, rng: Random) -> Topology:
    """The topology of partition `spec` over `nodes` nodes, with the order of the nodes drawn from `rng`;
    `isolate` without a node isolates the first of that order."""
    if nodes < 2:
        raise ShapeError("a partition needs at least two nodes")
    name, isolated = parse_shape(spec, nodes)
    order = list(range(nodes))
    rng.shuffle(order)
    if name == "isolate":
        name = f"isolate:{isolated if isolated is not None else order[0]}"
    return Topology(shape=name, nodes=nodes, links=shape_links(name, nodes, order))
