"""Hash-power share estimation for the partition handler (pure).

A miner's share is estimated from the blocks it mined among the last W blocks of the active chain. Declared rates
(genesis `validators` weights: a testnet's `--hashrate-shares`) seed the estimate as `prior_blocks` pseudo-blocks,
so a young chain is not judged on three blocks of luck; as real blocks accumulate they dominate.

`partition_finality_risk` is the handler's one window: the chance that a minority mines a whole finality
threshold of blocks of its own before its failure detector notices the cut (docs/ENGINES.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from chain.genesis import Genesis

# Above this chance per partition, genesis tools and the node warn (one conflicting finalization in a million cuts).
RISK_WARNING_LEVEL = 1e-6


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


def minority_finality_risk(
    *, share: float, detection_window_s: float, block_interval_s: float, finality_threshold: int,
) -> float:
    """P(a side holding `share` of the hash power mines `finality_threshold` blocks within `detection_window_s`):
    block arrivals are Poisson at share / block_interval_s, so this is the upper tail P(N >= k) of
    N ~ Poisson(share x window / interval), summed from the tail (no 1 - x cancellation for tiny values)."""
    if finality_threshold < 1:
        raise ValueError("finality_threshold must be at least 1")
    mean = max(0.0, share) * max(0.0, detection_window_s) / block_interval_s
    if mean == 0.0:
        return 0.0
    if mean > 10 * finality_threshold + 100:  # P(N < k) is below e^-100 here; do not walk a huge tail
        return 1.0
    term = math.exp(-mean + finality_threshold * math.log(mean) - math.lgamma(finality_threshold + 1))
    total, count = 0.0, finality_threshold
    while term > 1e-18 * total or count < mean:  # past the mode the terms shrink geometrically
        total += term
        count += 1
        term *= mean / count
    return min(1.0, total)


def partition_finality_risk(genesis: Genesis) -> float:
    """`minority_finality_risk` for a PoW genesis: a minority as large as the pause threshold allows, a detection
    window of one heartbeat timeout."""
    return minority_finality_risk(
        share=float(genesis.param("partition_threshold")),
        detection_window_s=float(genesis.param("heartbeat_interval_s"))
        * float(genesis.param("heartbeat_timeout_multiple")),
        block_interval_s=float(genesis.param("block_interval_s")),
        finality_threshold=genesis.finality_threshold,
    )


def partition_risk_warning(genesis: Genesis) -> str | None:
    """A one-line warning when a PoW genesis lets a minority finalize its own branch with a chance above
    RISK_WARNING_LEVEL per partition, naming the heartbeat interval that would keep it below; else None."""
    if genesis.consensus != "pow":
        return None
    risk = partition_finality_risk(genesis)
    if risk <= RISK_WARNING_LEVEL:
        return None
    share = float(genesis.param("partition_threshold"))
    multiple = float(genesis.param("heartbeat_timeout_multiple"))
    interval = float(genesis.param("block_interval_s"))
    low, high = 0.0, float(genesis.param("heartbeat_interval_s"))
    for _ in range(60):  # the risk grows with the heartbeat interval: bisect for the largest safe one
        middle = (low + high) / 2
        safe = minority_finality_risk(share=share, detection_window_s=middle * multiple, block_interval_s=interval,
                                      finality_threshold=genesis.finality_threshold) <= RISK_WARNING_LEVEL
        low, high = (middle, high) if safe else (low, middle)
    window = float(genesis.param("heartbeat_interval_s")) * multiple
    depth = genesis.finality_threshold
    while depth < 10_000 and minority_finality_risk(share=share, detection_window_s=window, block_interval_s=interval,
                                                     finality_threshold=depth) > RISK_WARNING_LEVEL:
        depth += 1
    return (
        f"partition handler: a minority with {share:.0%} of the hash power mines {genesis.finality_threshold} "
        f"blocks of its own before it notices a cut ({multiple:g} heartbeats of "
        f"{float(genesis.param('heartbeat_interval_s')):g} s) with probability {risk:.1e} per partition; "
        f"heartbeat_interval_s <= {math.floor(low * 1000) / 1000:g} or finality_threshold >= {depth} keeps it "
        f"below {RISK_WARNING_LEVEL:g}"
    )
