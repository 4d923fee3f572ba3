"""Network partition handling (网络分区处理), by quorum and by hash power, side by side.

One five-node network is cut in two, nodes {0, 1} against {2, 3, 4}, for the same stretch of virtual time, once
running Raft, once PBFT and once PoW. Raft moves on only where a majority (3 of 5) is. PBFT needs a larger quorum,
ceil((n + f + 1) / 2) = 4 of 5, so that any two quorums share an honest validator: neither side has one, and
nothing is final anywhere until the heal (safety kept, liveness given up). PoW moves on only on the side whose
miners hold more than θ (0.5) of the hash power, because the partition handler (consensus/pow/partition.py) stops
the others mining. Either way a side that cannot decide makes nothing final, so the heal costs no final block. The
check fails if such a side finalises a block during the partition (a PoW engine without its handler does), or if
a side that can decide does not.

The handler judges hash power by its estimate (the recent blocks each miner mined), not by the shares the seed
drew: with sides of 49% and 51% the estimate can put either side on either side of θ (seeds 0, 93, 104 and 170
did). Such a split shows the handler guessing, not the rule, so a seed whose sides are within `SHARE_MARGIN` of θ
is passed over for the next one, and a line says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.pbft.quorum import quorum_of
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
THRESHOLD = 0.5  # θ: the PoW partition handler's default (pause at or below this share of the hash power)
GRACE_S = 5.0  # blocks in flight and the presence timeout before the cut takes effect (P2P timeouts, heartbeats)
SHARE_MARGIN = 0.05  # the handler's default hysteresis; no side of the 30 nearest seeds past it was misjudged
ATTEMPTS = 5  # seeds tried (from --seed up) for one whose sides are clear of θ


def _config(seed: int, consensus: str, cut_s: float) -> SimConfig:
    return SimConfig(seed=seed, consensus=consensus, nodes=NODES, duration_s=CUT_AT_S + cut_s + 10.0,
                     faults=frozenset(), model="synchronous", block_interval_s=2.0, finality_threshold=4,
                     max_delay_s=0.05, tx_rate_per_s=0.5)


@dataclass(frozen=True, slots=True)
class Rule:
    """What lets a side of the partition decide: `by_work`, more than THRESHOLD of the hash power; otherwise at
    least `quorum` of the NODES validators."""

    by_work: bool
    quorum: int = 0

    @property
    def what(self) -> str:
        return "hash power" if self.by_work else "validators"

    def weight(self, simulator: Simulator, side: Sequence[int]) -> float:
        """The side's share of what decides."""
        return sum(simulator.shares[i] for i in side) if self.by_work else len(side) / NODES

    def decides(self, simulator: Simulator, side: Sequence[int]) -> bool:
        return self.weight(simulator, side) > THRESHOLD if self.by_work else len(side) >= self.quorum

    def needs(self) -> str:
        return f"more than {THRESHOLD:.0%} of the hash power" if self.by_work else \
            f"a quorum of {self.quorum} of {NODES} validators"


def _clear_seed(context: TourContext, factory: CoreFactory, cut_s: float) -> tuple[int, list[str]]:
    """The first seed from `context.seed` whose drawn hash shares put both sides at least SHARE_MARGIN from θ (the
    last one tried when none does), and what each seed passed over drew."""
    passed: list[str] = []
    *earlier, last = seeds_from(context.seed, ATTEMPTS)
    for seed in earlier:
        shares = Simulator(_config(seed, "pow", cut_s), factory).shares  # drawn first, before anything runs
        sides = [sum(shares[i] for i in side) for side in SIDES]
        if all(abs(share - THRESHOLD) >= SHARE_MARGIN for share in sides):
            return seed, passed
        passed.append(f"seed {seed} drew {' | '.join(f'{share:.1%}' for share in sides)}")
    return last, passed


def _run_engine(seed: int, consensus: str, factory: CoreFactory, cut_s: float,
                rule: Rule) -> tuple[list[str], CheckResult, Samples, dict[str, object]]:
    samples = Samples()
    simulator = Simulator(_config(seed, consensus, cut_s), factory, observer=samples.observe, observe_every_s=1.0)
    simulator.nemesis = ScriptedNemesis(nodes=NODES, sides=SIDES, at_s=CUT_AT_S, duration_s=cut_s)
    result = simulator.run()
    start, end = samples.at(CUT_AT_S + GRACE_S), samples.at(CUT_AT_S + cut_s)
    lines, gains = [], {}
    for side in SIDES:
        weight = rule.weight(simulator, side)
        final_gain = max(samples.finals[end][i] - samples.finals[start][i] for i in side)
        tip_gain = max(samples.heights[end][i] - samples.heights[start][i] for i in side)
        gains[side] = (weight, final_gain, tip_gain, rule.decides(simulator, side))
        lines.append(f"{consensus}: side {list(side)} holds {weight:.0%} of the {rule.what} "
                     f"({'can' if gains[side][3] else 'cannot'} decide: it needs {rule.needs()}): during the "
                     f"partition its tip grew {tip_gain} and its final height {final_gain}")
    deciding = [side for side, gain in gains.items() if gain[3]]
    stuck = all(gains[side][1] == 0 for side in gains if side not in deciding)
    moving = all(gains[side][1] > 0 for side in deciding)
    healed = [c for c in result.checks if not c.ok]
    ok = stuck and moving and not healed
    if ok:
        which = (f"only the side with {rule.needs()} made blocks final" if deciding else
                 f"no side had {rule.needs()}, and neither made a block final")
        detail = (f"{which}; after the heal every check of the simulator passed "
                  f"({', '.join(c.name for c in result.checks)})")
    elif not stuck:
        detail = f"a side without {rule.needs()} made blocks final during the partition"
    elif not moving:
        detail = f"the side with {rule.needs()} made nothing final during the partition"
    else:
        detail = "after the heal: " + "; ".join(f"{c.name}: {c.detail}" for c in healed)
    heights = result.stats["heights"]
    assert isinstance(heights, dict)
    lines.append(f"{consensus}: after the heal the nodes' heights are {min(heights.values())}..{max(heights.values())}"
                 f" ({'converged' if result.ok else 'simulator checks failed'})")
    figures: dict[str, object] = {"sides": {str(list(side)): {"weight": round(w, 3), "final_gain": f, "tip_gain": g,
                                                              "decides": d}
                                            for side, (w, f, g, d) in gains.items()}, "simulator_ok": result.ok}
    return lines, CheckResult(name=f"{consensus}-only-deciding-side-finalizes", ok=ok, detail=detail), samples, \
        figures


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
        lines.append(f"{'; '.join(passed)} of the hash power: too close to θ = {THRESHOLD:.0%} for the handler's "
                     f"estimate (recent blocks) to tell the majority; seed {seed} used instead")
    for consensus, factory, rule in (("raft", context.core_factory, Rule(by_work=False, quorum=NODES // 2 + 1)),
                                     ("pbft", context.core_factory, Rule(by_work=False, quorum=quorum_of(NODES))),
                                     ("pow", pow_factory, Rule(by_work=True))):
        engine_lines, check, samples, engine_figures = _run_engine(seed, consensus, factory, cut_s, rule)
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
