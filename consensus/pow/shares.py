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

from chain.encoding import U64_MAX
from chain.genesis import Genesis
from consensus.pow.params import PowParams

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
    N ~ Poisson(share x window / interval). A block interval of 0 (blocks as fast as the target allows) has no
    bound: risk 1."""
    if finality_threshold < 1:
        raise ValueError("finality_threshold must be at least 1")
    if block_interval_s <= 0:
        return 1.0
    mean = max(0.0, share) * max(0.0, detection_window_s) / block_interval_s
    if not math.isfinite(mean):
        return 1.0
    return _regularized_lower_gamma(float(finality_threshold), mean)


def _regularized_lower_gamma(a: float, x: float) -> float:
    """P(a, x) = gamma(a, x) / Gamma(a), which is P(N >= a) for N ~ Poisson(x) and integer a >= 1.

    The series where x < a + 1 (it computes P itself, so tiny tails keep their precision), the continued fraction
    for Q = 1 - P elsewhere (modified Lentz), both in log space against under- and overflow. Iterations are
    bounded; past the bound (only for absurd parameters, a or x beyond ~1e9) the normal approximation answers.
    """
    if x <= 0.0:
        return 0.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    limit = 1000 + int(20 * math.sqrt(a + x))
    if limit <= 200_000:
        if x < a + 1:
            term = total = 1.0 / a
            denominator = a
            for _ in range(limit):
                denominator += 1.0
                term *= x / denominator
                total += term
                if term < total * 1e-16:
                    return min(1.0, total * math.exp(log_prefix))
        else:
            tiny = 1e-300
            b = x + 1.0 - a
            c, d = 1.0 / tiny, 1.0 / b
            h = d
            for i in range(1, limit):
                an = -i * (i - a)
                b += 2.0
                d = an * d + b
                d = tiny if abs(d) < tiny else d
                c = b + an / c
                c = tiny if abs(c) < tiny else c
                d = 1.0 / d
                delta = d * c
                h *= delta
                if abs(delta - 1.0) < 1e-15:
                    return max(0.0, 1.0 - math.exp(log_prefix) * h)
    # Normal approximation with continuity correction: P(N >= a) for N ~ Poisson(x).
    return 0.5 * math.erfc((a - 0.5 - x) / math.sqrt(2.0 * x))


def partition_finality_risk(genesis: Genesis) -> float:
    """`minority_finality_risk` for a PoW genesis: a minority as large as the pause threshold allows, a detection
    window of one heartbeat timeout. A threshold below one half never pauses a side holding between it and half the
    hash power, which then finalizes its own branch for certain: risk 1."""
    params = PowParams.of(genesis)
    if params.partition_threshold < 0.5:
        return 1.0
    return minority_finality_risk(
        share=params.partition_threshold,
        detection_window_s=params.detection_window_s,
        block_interval_s=params.block_interval_s,
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
    params = PowParams.of(genesis)
    share = params.partition_threshold
    interval = params.block_interval_s
    heartbeat = params.heartbeat_interval_s
    multiple = params.heartbeat_timeout_multiple
    finality = genesis.finality_threshold
    if share < 0.5:
        return (f"partition handler: partition_threshold {share:g} never pauses a side holding between "
                f"{share:.0%} and 50% of the hash power, so a partition lets it finalize its own branch; "
                "use 0.5 or more")
    if interval <= 0:
        return ("partition handler: block_interval_s = 0 sets no pace for blocks, so nothing bounds how many a "
                "minority mines before it notices a cut")

    def risky(heartbeat_s: float, depth: int) -> bool:
        return minority_finality_risk(share=share, detection_window_s=heartbeat_s * multiple,
                                      block_interval_s=interval, finality_threshold=depth) > RISK_WARNING_LEVEL

    low, high = 0.0, heartbeat
    for _ in range(60):  # the risk grows with the heartbeat interval: bisect for the largest safe one
        middle = (low + high) / 2
        low, high = (low, middle) if risky(middle, finality) else (middle, high)
    # The risk falls as the threshold grows: double until safe, then bisect for the smallest safe threshold.
    low_depth, depth = finality, finality
    while risky(heartbeat, depth) and depth < U64_MAX:
        low_depth, depth = depth, min(U64_MAX, depth * 2)
    while low_depth + 1 < depth:
        middle_depth = (low_depth + depth) // 2
        low_depth, depth = (middle_depth, depth) if risky(heartbeat, middle_depth) else (low_depth, middle_depth)
    return (
        f"partition handler: a minority with {share:.0%} of the hash power mines {finality} blocks of its own "
        f"before it notices a cut ({multiple:g} heartbeats of {heartbeat:g} s) with probability {risk:.1e} per "
        f"partition; heartbeat_interval_s <= {_floor_significant(low):g} or finality_threshold >= {depth} keeps it "
        f"below {RISK_WARNING_LEVEL:g}"
    )


def _floor_significant(value: float, digits: int = 3) -> float:
    """`value` rounded down to `digits` significant digits (a bound quoted as safe must not round up)."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    return math.floor(value * scale) / scale
