"""PBFT (实用拜占庭容错) with f and f+1 Byzantine validators: the bound n = 3f + 1 is tight.

Four validators tolerate f = 1. A Byzantine validator here is a twin (arXiv 2004.10617): a second node holding
the same key, on the other side of a split that lasts the whole safety phase (docs/SIMULATOR.md, "Byzantine
validators and twins"). With one twin no side gathers a quorum of 2f + 1 = 3 that the other side does not
overlap in an honest validator, so at most one side commits; with two twins (f + 1) both sides gather 3 votes and
commit different blocks at one height, which the simulator's `final-prefix-agreement` check catches.
"""

from __future__ import annotations

from testnet.checks import CheckResult
from testnet.sim.config import SimConfig
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext
from tour.svg import bar_panels


def _config(context: TourContext, twins: int) -> SimConfig:
    return SimConfig(seed=context.seed, consensus="pbft", nodes=4, twins=twins, faults=frozenset(),
                     duration_s=40.0 if context.fast else 120.0, block_interval_s=2.0, model="synchronous",
                     max_delay_s=0.05, tx_rate_per_s=0.5)


def _line(twins: int, result: SimResult) -> str:
    heights = result.stats["final_heights"]
    failed = result.failed_checks()
    return (f"{twins} twin{'s' if twins != 1 else ''}: final heights {heights} after {result.virtual_s:g} virtual s; "
            + ("every check passed" if not failed else f"failed: {', '.join(failed)}")
            + (f"; {result.first_violation}" if result.first_violation else ""))


def _why_heights(broken: SimResult) -> str | None:
    """Why the f + 1 run's judged nodes end so far apart, when they do: the liveness phase waits for one chain
    in vain, and one honest node goes on finalising with the two Byzantine validators all that time."""
    heights = broken.stats["final_heights"]
    if not isinstance(heights, dict) or len(heights) < 2 or "liveness" not in broken.failed_checks():
        return None
    (low_node, low), (high_node, high) = min(heights.items(), key=lambda kv: kv[1]), \
        max(heights.items(), key=lambda kv: kv[1])
    return (f"  why {high} against {low}: after the heal the simulator waits up to its liveness budget for one "
            f"chain, so this run went on for {broken.virtual_s:g} virtual s; {high_node} shares a quorum with the "
            f"two Byzantine validators and finalised on with them all that time, while {low_node}, on a final chain "
            f"that conflicts with theirs, stayed at {low}")


def run(context: TourContext) -> Outcome:
    """Run the f and f+1 networks and judge both against the theory."""
    tolerated = Simulator(_config(context, 1), context.core_factory).run()
    broken = Simulator(_config(context, 2), context.core_factory).run()
    lines = ["4 PBFT validators (f = 1), the network split for the whole safety phase, each twin on the other side",
             _line(1, tolerated), _line(2, broken)]
    why = _why_heights(broken)
    if why is not None:
        lines.append(why)
    lines += [f"replay: {tolerated.config.command()}", f"replay: {broken.config.command()}"]
    checks = (
        CheckResult(name="f-byzantine-tolerated", ok=tolerated.ok, detail=(
            "with f = 1 twin every honest node agrees on one final chain and the network stays live" if tolerated.ok
            else "with f = 1 twin: " + "; ".join(f"{c.name}: {c.detail}" for c in tolerated.checks if not c.ok))),
        CheckResult(name="f-plus-1-breaks-safety",
                    ok="final-prefix-agreement" in broken.failed_checks(), detail=(
            f"with f + 1 = 2 twins two honest nodes finalised different blocks: {broken.first_violation}"
            if "final-prefix-agreement" in broken.failed_checks() else
            "with f + 1 = 2 twins no conflict was finalised: the bound is not shown")),
    )
    return Outcome(concept="pbft", seed=context.seed, lines=tuple(lines), checks=checks,
                   figures={"f_run": tolerated.to_json()["checks"], "f_plus_1_run": broken.to_json()["checks"]},
                   pictures=(_picture(tolerated, broken),))


def _picture(tolerated: SimResult, broken: SimResult) -> Picture:
    """Three panels, each on its own scale: every judged node's final height in each run, the blocks the honest
    nodes refused as forks below their final height, and the simulator checks that failed."""
    panels = []
    for run, result in (("f = 1", tolerated), ("f + 1 = 2", broken)):
        heights = result.stats["final_heights"]
        assert isinstance(heights, dict)
        panels.append((f"final height, {run} twin{'s' if result is broken else ''}",
                       [(node, float(height)) for node, height in sorted(heights.items())]))
    forks, failed = [], []
    for run, result in (("f", tolerated), ("f+1", broken)):
        rejected = result.stats["rejected"]
        assert isinstance(rejected, dict)
        forks.append((f"{run} forks", float(rejected.get("fork-below-final", 0))))
        failed.append((f"{run} failed", float(len(result.failed_checks()))))
    panels += [("blocks refused as forks", forks), ("simulator checks failed", failed)]
    counts = [*forks, *failed]
    text = bar_panels("PBFT, 4 validators: f = 1 twin against f + 1 = 2 twins", panels,
                      highlight={label for label, value in counts if value > 0},
                      note="forks: blocks refused as forks below the final height; failed: simulator checks that "
                      "failed (red when not zero)")
    return Picture(name="twins.svg", text=text, caption="per run, each judged node's final height, the blocks "
                   "refused as forks below the final height ('forks') and the failed simulator checks ('failed'): "
                   "zero of both with one twin, conflicting final chains and failed checks with two")
