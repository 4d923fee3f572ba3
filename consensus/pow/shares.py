"""Hash-power share estimation for the partition handler (pure).

A miner's share is estimated from the blocks it mined among the last W blocks of the active chain. Declared rates
(genesis `validators` weights: a testnet's `--hashrate-shares`) seed the estimate as `prior_blocks` pseudo-blocks,
so a young chain is not judged on three blocks of luck; as real blocks accumulate they dominate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence


def estimate_shares(
    recent_proposers: Sequence[bytes], declared: Mapping[bytes, int], *, prior_blocks: float,
) -> dict[bytes, float]:
    """Share of hash power per miner address; empty when nothing is known yet."""
    counts = Counter(recent_proposers)
    declared_total = sum(declared.values())
    prior = prior_blocks if declared_total > 0 else 0.0
    total = len(recent_proposers) + prior
    if total <= 0:
        return {}
    shares: dict[bytes, float] = {}
    # Sorted: the float sums over these shares must not depend on set order (PYTHONHASHSEED), or two runs of one
    # simulator seed could decide a threshold comparison differently.
    for address in sorted(set(counts) | {a for a, w in declared.items() if w > 0}):
        declared_fraction = declared.get(address, 0) / declared_total if declared_total else 0.0
        shares[address] = (counts.get(address, 0) + prior * declared_fraction) / total
    return shares


def reachable_share(shares: Mapping[bytes, float], reachable: set[bytes]) -> float:
    """Sum of the shares of the reachable miners."""
    return sum(share for address, share in shares.items() if address in reachable)
