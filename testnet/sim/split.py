"""A scripted hash-power split and what the PoW partition handler does about it (pure).

`split_sides` cuts the nodes in two: side A takes miners (in an order drawn from the run's `Random`) until it
holds at least the asked share of the hash power, and the same share of the relaying nodes; side B the rest.
`SplitStudy` watches the run: each miner's mining switches (the core's `MiningWork`), the blocks each side mines
while cut, the reorgs after the heal, and when every node is back on one tip. `summary()` is the report:

- per side: nodes, miners, hash share, miners mining just before the cut, at the end of it and after the heal;
  when the last miner of the side paused (seconds after the cut; None if some never did);
- blocks mined per side while cut;
- after the heal: reorgs (nodes that reorged, deepest one, blocks disconnected in all) and the seconds until every
  running node had the same tip.
"""

from __future__ import annotations

from collections.abc import Sequence
from random import Random


def split_sides(rng: Random, shares: Sequence[float], target: float) -> tuple[list[int], list[int]]:
    """Two sides of nodes 0..n-1 (sorted): A with at least `target` of the hash power (`shares`, zero for a
    non-miner), B the rest; relays are divided in the same proportion."""
    miners = [i for i, share in enumerate(shares) if share > 0]
    relays = [i for i, share in enumerate(shares) if share <= 0]
    rng.shuffle(miners)
    rng.shuffle(relays)
    side_a: list[int] = []
    held = 0.0
    for miner in miners:
        if held >= target or len(side_a) == len(miners) - 1:
            break
        side_a.append(miner)
        held += shares[miner]
    side_a.extend(relays[:round(target * len(relays))])
    chosen = set(side_a)
    return sorted(side_a), sorted(i for i in range(len(shares)) if i not in chosen)


class SplitStudy:
    """What the two sides did: mining switches, blocks, reorgs and reconvergence."""

    def __init__(self, sides: tuple[list[int], list[int]], shares: Sequence[float], mining: Sequence[bool],
                 start_s: float) -> None:
        self.sides = sides
        self.shares = list(shares)
        self.side_of = {node: s for s, side in enumerate(sides) for node in side}
        self.start_s = start_s
        self.end_s: float | None = None
        self.converged_s: float | None = None
        self.mining = list(mining)
        self.before = self._mining_counts()
        self.at_end: list[int] | None = None
        self.after: list[int] | None = None
        self.last_pause_s: list[float | None] = [None, None]
        self.blocks_cut = [0, 0]
        self.reorged_nodes: set[int] = set()
        self.deepest_reorg = 0
        self.disconnected = 0

    def _mining_counts(self) -> list[int]:
        counts = [0, 0]
        for node, active in enumerate(self.mining):
            if active and self.shares[node] > 0:
                counts[self.side_of[node]] += 1
        return counts

    def mining_changed(self, node: int, active: bool, t: float) -> None:
        """A node's miners started or stopped."""
        self.mining[node] = active
        if not active and self.end_s is None and self.shares[node] > 0:
            side = self.side_of[node]
            if self._mining_counts()[side] == 0:
                self.last_pause_s[side] = t - self.start_s

    def block_mined(self, node: int) -> None:
        """`node` mined a block (counted while the sides are cut)."""
        if self.end_s is None:
            self.blocks_cut[self.side_of[node]] += 1

    def healed(self, t: float) -> None:
        """The split ended."""
        self.end_s = t
        self.at_end = self._mining_counts()

    def reorg(self, node: int, depth: int) -> None:
        """`node` disconnected `depth` blocks (after the heal)."""
        if self.end_s is not None:
            self.reorged_nodes.add(node)
            self.deepest_reorg = max(self.deepest_reorg, depth)
            self.disconnected += depth

    def converged(self, t: float) -> None:
        """Every running node has the same tip again."""
        if self.converged_s is None and self.end_s is not None:
            self.converged_s = t
            self.after = self._mining_counts()

    def summary(self) -> dict[str, object]:
        """The report (module docstring)."""
        sides = []
        for s, side in enumerate(self.sides):
            share = sum(self.shares[i] for i in side)
            pause = self.last_pause_s[s]
            sides.append({
                "nodes": len(side), "miners": sum(1 for i in side if self.shares[i] > 0),
                "hash_share": round(share, 4), "mining_before": self.before[s],
                "mining_at_end": None if self.at_end is None else self.at_end[s],
                "mining_after_heal": None if self.after is None else self.after[s],
                "all_paused_after_s": None if pause is None else round(pause, 3),
                "blocks_while_cut": self.blocks_cut[s],
            })
        return {
            "start_s": round(self.start_s, 3), "end_s": None if self.end_s is None else round(self.end_s, 3),
            "sides": sides, "reorged_nodes": len(self.reorged_nodes), "deepest_reorg": self.deepest_reorg,
            "blocks_disconnected": self.disconnected,
            "converged_after_heal_s": None if self.converged_s is None or self.end_s is None
            else round(self.converged_s - self.end_s, 3),
        }
