"""Network partition handling (网络分区处理), by quorum and by hash power, side by side.

One five-node network is cut in two, nodes {0, 1} against {2, 3, 4}, for the same stretch of virtual time, once
running Raft and once PoW. Raft moves on only where a quorum (3 of 5) is; PoW moves on only on the side whose
miners hold more than θ (0.5) of the hash power, because the partition handler (consensus/pow/partition.py) stops
the others mining. Either way the other side makes nothing final, so the heal costs no final block. The check
fails if the minority side finalises a block during the partition (a PoW engine without its handler does).

The handler judges hash power by its estimate (the recent blocks each miner mined), not by the shares the seed
drew: with sides of 49% and 51% the estimate can put either side on either side of θ (seeds 0, 93, 104 and 170
did). Such a split shows the handler guessing, not the rule, so a seed whose sides are within `SHARE_MARGIN` of θ
is passed over for the next one, and a line says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from testnet.checks import CheckResult
from testnet.sim.config import SimConfig
from testnet.sim.core import CoreFactory
from testnet.sim.simulator import Simulator
from tour.model import Outcome, Picture, TourContext, seeds_from
from tour.simtools import Samples, ScriptedNemesis
from tour.svg import lines_chart

NODES = 5
SIDES = ((0, 1), (2, 3, 4))
CUT_AT_S = 20.0
GRACE_S = 5.0  # blocks in flight and the presence timeout before the cut takes effect (P2P timeouts, heartbeats)
THETA = 0.5  # the genesis default partition_threshold
SHARE_MARGIN = 0.05  # the handler's default hysteresis; no side of the 30 nearest seeds past it was misjudged
ATTEMPTS = 5  # seeds tried (from --seed up) for one whose sides are clear of θ


def _config(seed: int, consensus: str, cut_s: float) -> SimConfig:
    return SimConfig(seed=seed, consensus=consensus, nodes=NODES, duration_s=CUT_AT_S + cut_s + 10.0,
                     faults=frozenset(), model="synchronous", block_interval_s=2.0, finality_threshold=4,
                     max_delay_s=0.05, tx_rate_per_s=0.5)


def _side_weight(simulator: Simulator, side: Sequence[int], consensus_by_work: bool) -> float:
    """The side's share of what decides: hash power for PoW, validators for the quorum engines."""
    if consensus_by_work:
        return sum(simulator.shares[i] for i in side)
    return len(side) / NODES


def _clear_seed(context: TourContext, factory: CoreFactory, cut_s: float) -> tuple[int, list[str]]:
    """The first seed from `context.seed` whose drawn hash shares put both sides at least SHARE_MARGIN from θ (the
    last one tried when none does), and what each seed passed over drew."""
    passed: list[str] = []
    *earlier, last = seeds_from(context.seed, ATTEMPTS)
    for seed in earlier:
        shares = Simulator(_config(seed, "pow", cut_s), factory).shares  # drawn first, before anything runs
        sides = [sum(shares[i] for i in side) for side in SIDES]
        if all(abs(share - THETA) >= SHARE_MARGIN for share in sides):
            return seed, passed
        passed.append(f"seed {seed} drew {' | '.join(f'{share:.1%}' for share in sides)}")
    return last, passed


def _run_engine(seed: int, consensus: str, factory: CoreFactory, cut_s: float,
                by_work: bool) -> tuple[list[str], CheckResult, Samples, dict[str, object]]:
    samples = Samples()
    simulator = Simulator(_config(seed, consensus, cut_s), factory, observer=samples.observe, observe_every_s=1.0)
    simulator.nemesis = ScriptedNemesis(nodes=NODES, sides=SIDES, at_s=CUT_AT_S, duration_s=cut_s)
    result = simulator.run()
    start, end = samples.at(CUT_AT_S + GRACE_S), samples.at(CUT_AT_S + cut_s)
    lines, gains = [], {}
    what = "hash power" if by_work else "validators"
    for side in SIDES:
        weight = _side_weight(simulator, side, by_work)
        final_gain = max(samples.finals[end][i] - samples.finals[start][i] for i in side)
        tip_gain = max(samples.heights[end][i] - samples.heights[start][i] for i in side)
        gains[side] = (weight, final_gain, tip_gain)
        lines.append(f"{consensus}: side {list(side)} holds {weight:.0%} of the {what}: during the partition its "
                     f"tip grew {tip_gain} and its final height {final_gain}")
    majority = [side for side, (weight, _, _) in gains.items() if weight > THETA]
    minority = [side for side, (weight, _, _) in gains.items() if weight <= THETA]
    stuck = all(gains[side][1] == 0 for side in minority)
    moving = all(gains[side][1] > 0 for side in majority)
    healed = [c for c in result.checks if not c.ok]
    ok = stuck and moving and not healed
    if ok:
        detail = (f"only the side with more than half of the {what} made blocks final; after the heal every check "
                  f"of the simulator passed ({', '.join(c.name for c in result.checks)})")
    elif not stuck:
        detail = f"a side with at most half of the {what} made blocks final during the partition"
    elif not moving:
        detail = f"the side with more than half of the {what} made nothing final during the partition"
    else:
        detail = "after the heal: " + "; ".join(f"{c.name}: {c.detail}" for c in healed)
    heights = result.stats["heights"]
    assert isinstance(heights, dict)
    lines.append(f"{consensus}: after the heal the nodes' heights are {min(heights.values())}..{max(heights.values())}"
                 f" ({'converged' if result.ok else 'simulator checks failed'})")
    figures: dict[str, object] = {"sides": {str(list(side)): {"weight": round(w, 3), "final_gain": f, "tip_gain": g}
                                            for side, (w, f, g) in gains.items()}, "simulator_ok": result.ok}
    return lines, CheckResult(name=f"{consensus}-only-majority-side-finalizes", ok=ok, detail=detail), samples, figures


def run(context: TourContext, *, pow_core_factory: CoreFactory | None = None) -> Outcome:
    """The demonstration; `pow_core_factory` replaces the PoW nodes' cores (a test plants a PoW engine that
    ignores its partition handler)."""
    cut_s = 30.0 if context.fast else 60.0
    pow_factory = pow_core_factory or context.core_factory
    seed, passed = _clear_seed(context, pow_factory, cut_s)
    lines, checks, pictures = [f"5 nodes cut into {list(SIDES[0])} | {list(SIDES[1])} at t={CUT_AT_S:g}s for "
                               f"{cut_s:g}s (block interval 2 s, k = 4)"], [], []
    figures: dict[str, object] = {"seed": seed}
    if passed:
        lines.append(f"{'; '.join(passed)} of the hash power: too close to θ = {THETA:.0%} for the handler's "
                     f"estimate (recent blocks) to tell the majority; seed {seed} used instead")
    for consensus, factory, by_work in (("raft", context.core_factory, False), ("pow", pow_factory, True)):
        engine_lines, check, samples, engine_figures = _run_engine(seed, consensus, factory, cut_s, by_work)
        lines.extend(engine_lines)
        checks.append(check)
        figures[consensus] = engine_figures
        series = {f"node{i}": [float(row[i]) for row in samples.finals] for i in range(NODES)}
        pictures.append(Picture(
            name=f"{consensus}-final-heights.svg", caption=f"{consensus}: every node's final height, partition shaded",
            text=lines_chart(f"{consensus}: final height of each node; nodes 0-1 cut off from 2-4",
                             times=samples.times, series=series, y_label="final height",
                             shaded=[(CUT_AT_S, CUT_AT_S + cut_s, "partition")])))
    return Outcome(concept="partition-handling", seed=context.seed, lines=tuple(lines), checks=tuple(checks),
                   figures=figures, pictures=tuple(pictures))
