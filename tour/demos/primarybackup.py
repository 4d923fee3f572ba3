"""Primary-backup replication (主备复制): the primary crashes; primary-backup stops, Raft fails over.

The same four-node network, synchronous (D = 50 ms), a block a second, runs twice: once with the primary-backup
engine, once with Raft. At t = 8 s the proposer of the newest block (the primary; the Raft leader) crashes, and
stays down until the 30 s safety phase ends, when the simulator restarts it. Primary-backup has one primary named
in genesis and no election: its backups hold what they acknowledged but make nothing new, so no block becomes final
until the primary is back. Raft's followers stop hearing the leader, elect another within a few election timeouts,
and the new leader commits on with three of four.

The checks: the primary (leader) was down through the window; primary-backup made nothing final meanwhile (no
fail-over); Raft elected another proposer that made blocks final meanwhile (fail-over); after the restart both
runs pass every simulator check (primary-backup resumes when its primary returns). A crash that does not happen
fails the first; a Raft whose followers never campaign again fails the fail-over check.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random

from testnet.checks import CheckResult
from testnet.sim.config import SimConfig
from testnet.sim.faults import CrashNode, NemesisAction
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext
from tour.simtools import Samples, ScriptedNemesis
from tour.svg import lines_chart

NODES = 4
CRASH_AT_S = 8.0
SAFETY_S = 30.0
SETTLE_S = 4.0  # time the survivors get to notice and elect before the window the checks look at
ENGINES = ("primary-backup", "raft")


class CrashProposer(ScriptedNemesis):
    """Crashes, at `at_s`, the node `choose()` names then (the proposer of the newest block), until the safety
    phase ends (the simulator restarts every crashed node then)."""

    def __init__(self, *, nodes: int, at_s: float, choose: Callable[[], int]) -> None:
        super().__init__(nodes=nodes, sides=((0,), tuple(range(1, nodes))), at_s=at_s, duration_s=1.0)
        self.choose = choose
        self.victim: int | None = None

    def next_action(self, rng: Random, *, partitioned: bool, down: list[int]) -> NemesisAction | None:
        """The crash, once."""
        if self.action is None:
            return None
        self.action = None
        self.victim = self.choose()
        return CrashNode(node=self.victim, downtime_s=10 * SAFETY_S)


class CrashRun:
    """One engine's run: the result, the sampled heights, who crashed, who proposed what and when."""

    def __init__(self, context: TourContext, engine: str) -> None:
        config = SimConfig(seed=context.seed, consensus=engine, nodes=NODES, duration_s=SAFETY_S, faults=frozenset(),
                           model="synchronous", block_interval_s=1.0, max_delay_s=0.05, tx_rate_per_s=1.0,
                           liveness_budget_s=30.0)
        self.engine = engine
        self.samples = Samples()
        self.simulator = Simulator(config, context.core_factory, observer=self.samples.observe, observe_every_s=0.5)
        self.nemesis = CrashProposer(nodes=NODES, at_s=CRASH_AT_S, choose=self._proposer_now)
        self.simulator.nemesis = self.nemesis
        self.result: SimResult = self.simulator.run()

    def _proposer_now(self) -> int:
        """The node that proposed the newest block any node holds (node 0 when there is none)."""
        running = [node for node in self.simulator.nodes if node.core is not None]
        newest = max((node.core.tree.tip.header for node in running if node.core is not None),
                     key=lambda header: header.height)
        keys = [key.address for key in self.simulator.config.node_keys()]
        return keys.index(newest.proposer) if newest.height and newest.proposer in keys else 0

    def proposers_after(self, t: float) -> set[str]:
        """The nodes that proposed a block at or after virtual time `t` (from each node's own proposals)."""
        return {node.name for node in self.simulator.nodes
                if any(header.timestamp_ms >= self._wall_ms(node.index, t) for header in node.proposed)}

    def _wall_ms(self, index: int, t: float) -> int:
        return self.simulator.nodes[index].clock.now_ms(t)

    def survivors_gain(self, start_s: float, end_s: float) -> int:
        """The most any node other than the crashed one gained in final height between the two times."""
        start, end = self.samples.at(start_s), self.samples.at(end_s)
        victim = self.nemesis.victim
        return max(self.samples.finals[end][i] - self.samples.finals[start][i] for i in range(NODES) if i != victim)

    def victim_down(self, start_s: float, end_s: float) -> bool:
        """True when the crashed node was down at every sample of the window."""
        victim = self.nemesis.victim
        start, end = self.samples.at(start_s), self.samples.at(end_s)
        return victim is not None and start < end and all(self.samples.heights[i][victim] < 0
                                                          for i in range(start, end + 1))


def _checks(runs: dict[str, CrashRun]) -> tuple[list[str], list[CheckResult]]:
    window = (CRASH_AT_S + SETTLE_S, SAFETY_S - 0.5)
    pb, raft = runs["primary-backup"], runs["raft"]
    lines, checks = [], []
    for run in (pb, raft):
        victim = f"node{run.nemesis.victim}"
        successors = sorted(run.proposers_after(window[0]) - {victim})
        lines.append(f"{run.engine}: {victim} (proposer of the newest block) crashed at t={CRASH_AT_S:g}s; from "
                     f"t={window[0]:g}s to {window[1]:g}s the others made {run.survivors_gain(*window)} block(s) "
                     f"final, proposed by {', '.join(successors) or 'nobody'}; final heights at the end "
                     f"{run.result.stats['final_heights']}")
    down = all(run.victim_down(CRASH_AT_S + 0.5, window[1]) for run in (pb, raft))
    checks.append(CheckResult(name="primary-crashed", ok=down, detail=(
        f"the primary (node{pb.nemesis.victim}) and the Raft leader (node{raft.nemesis.victim}) were down from "
        f"t={CRASH_AT_S:g}s to the end of the safety phase" if down else
        "a crashed proposer was up during the window (or none crashed)")))
    pb_gain, pb_successors = pb.survivors_gain(*window), pb.proposers_after(window[0]) - {f"node{pb.nemesis.victim}"}
    stalled = down and pb_gain == 0 and not pb_successors
    checks.append(CheckResult(name="primary-backup-no-fail-over", ok=stalled, detail=(
        "with the primary down the backups made nothing final and none of them proposed: no fail-over" if stalled
        else f"the backups made {pb_gain} block(s) final, proposers {sorted(pb_successors)}")))
    raft_gain = raft.survivors_gain(*window)
    raft_successors = raft.proposers_after(window[0]) - {f"node{raft.nemesis.victim}"}
    failed_over = down and raft_gain > 0 and bool(raft_successors)
    checks.append(CheckResult(name="raft-fail-over", ok=failed_over, detail=(
        f"{', '.join(sorted(raft_successors))} took over and the others made {raft_gain} block(s) final"
        if failed_over else f"the followers made {raft_gain} block(s) final, proposers {sorted(raft_successors)}")))
    bad = [f"{run.engine}: {c.name}: {c.detail}" for run in (pb, raft) for c in run.result.checks if not c.ok]
    checks.append(CheckResult(name="recovered-after-restart", ok=not bad, detail=(
        "after the restart every simulator check of both runs held (safe, one chain, live)" if not bad
        else "; ".join(bad))))
    return lines, checks


def run(context: TourContext) -> Outcome:
    """The demonstration."""
    runs = {engine: CrashRun(context, engine) for engine in ENGINES}
    lines, checks = _checks(runs)
    lines.insert(0, f"{NODES} nodes, synchronous (D = 50 ms), a block a second; the proposer crashes at "
                    f"t={CRASH_AT_S:g}s and stays down until the safety phase ends at t={SAFETY_S:g}s")
    series: dict[str, list[float]] = {}
    for engine, crash_run in runs.items():
        victim = crash_run.nemesis.victim
        series[engine] = [float(max(row[i] for i in range(NODES) if i != victim))
                          for row in crash_run.samples.finals]
    times = min((r.samples.times for r in runs.values()), key=len)
    picture = Picture(name="final-heights.svg", caption="the survivors' final height, primary-backup and Raft",
                      text=lines_chart("Primary crashed: the survivors' highest final height",
                                       times=times, series={k: v[:len(times)] for k, v in series.items()},
                                       y_label="final height",
                                       shaded=[(CRASH_AT_S, SAFETY_S, "proposer down")]))
    figures = {engine: {"crashed": r.nemesis.victim, "final_heights": r.result.stats["final_heights"]}
               for engine, r in runs.items()}
    return Outcome(concept="primary-backup", seed=context.seed, lines=tuple(lines), checks=tuple(checks),
                   figures=figures, pictures=(picture,))
