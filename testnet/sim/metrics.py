"""Network-wide figures of a simulated run (pure): block propagation and the stale-block rate.

- **Propagation**: for every block a node mines, the virtual time from the moment it was sealed until
  `fraction` (default 90%) of the nodes have connected it to their best chain (the core's `block` event, i.e.
  received, validated and adopted). Blocks that never get there (they lost a race and went stale, or the run
  ended first) are counted apart. `summary()` gives the count, p50, p99 and max of the delays.
- **Stale rate**: of the blocks mined in the run, the share not on the best chain the nodes agree on at the end
  (Bitcoin's "stale" or "orphan" blocks: valid, mined, and wasted).

Percentiles are nearest-rank on the sorted delays (p50 of [1, 2, 3, 4] is 2), so small cases can be checked by
hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in (0, 100]) of `values`, None when empty."""
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError("p must be within (0, 100]")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


class Propagation:
    """When each mined block reaches `fraction` of the `nodes` nodes."""

    def __init__(self, nodes: int, fraction: float = 0.9) -> None:
        if nodes < 1 or not 0 < fraction <= 1:
            raise ValueError("need nodes >= 1 and fraction in (0, 1]")
        self.nodes = nodes
        self.fraction = fraction
        self.needed = max(1, math.ceil(fraction * nodes - 1e-9))
        self._mined: dict[bytes, float] = {}  # block -> time it was sealed, until it reaches `needed` nodes
        self._holders: dict[bytes, set[int]] = {}
        self.delays: list[float] = []
        self.mined_count = 0

    def mined(self, block_hash: bytes, t: float) -> None:
        """A node sealed `block_hash` at `t` (its own connection follows)."""
        if block_hash not in self._mined:
            self.mined_count += 1
            self._mined[block_hash] = t
            self._holders[block_hash] = set()

    def connected(self, block_hash: bytes, node: int, t: float) -> None:
        """`node` connected `block_hash` to its best chain at `t` (again after a reorg counts once)."""
        holders = self._holders.get(block_hash)
        if holders is None:
            return
        holders.add(node)
        if len(holders) >= self.needed:
            self.delays.append(t - self._mined.pop(block_hash))
            del self._holders[block_hash]

    def summary(self) -> dict[str, object]:
        """{blocks, reached, not_reached, p50_s, p99_s, max_s, fraction}."""
        delays = self.delays
        return {"fraction": self.fraction, "blocks": self.mined_count, "reached": len(delays),
                "not_reached": self.mined_count - len(delays), "p50_s": _rounded(percentile(delays, 50)),
                "p99_s": _rounded(percentile(delays, 99)), "max_s": _rounded(max(delays, default=None))}


def stale_rate(mined: Iterable[bytes], best_chain: Iterable[bytes]) -> dict[str, object]:
    """{mined, on_best_chain, stale, rate}: the share of the mined blocks that are not on the best chain."""
    mined_set = set(mined)
    kept = len(mined_set & set(best_chain))
    stale = len(mined_set) - kept
    return {"mined": len(mined_set), "on_best_chain": kept, "stale": stale,
            "rate": round(stale / len(mined_set), 5) if mined_set else None}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
