"""Raft (Raft 算法): leader election, log replication, fail-over, and one leader per term.

Five Raft nodes run in the simulator under the synchronous model (delays below 50 ms). A leader is elected within
seconds and replicates its log: every block it proposes becomes final once a majority holds it. At t = 15 s the
leader of the moment (read from the engines' `leader-elected` decisions in the trace) is cut off alone. It keeps
its term until it notices it hears no majority and steps down, but commits nothing more; the other four elect a
new leader in a higher term, which commits on. After the heal, the old leader learns the higher term, becomes a
follower and its log is repaired to the leader's (a block it proposed alone would be truncated: a reorg, counted).

The checks: a leader elected at once; fail-over (another node elected in a higher term within 5 s of the cut, the
majority's final height grows while the isolated node's does not); log replication (after the heal every node holds
one final chain and the simulator's safety checks pass); one leader per term (from the election decisions and from
the blocks every node holds). A candidate that counts itself as a majority (tests/sim/test_raft.py) breaks the
last; a leader that commits without a majority breaks replication.

Then the paper's Figure 8 is played on three real cores stepped by hand (figure8.py): an entry of an earlier term
on a majority is not committed by counting, and the leader after it may replace it without losing anything
committed. A leader that counts earlier-term entries breaks both of its checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import Random

from testnet.checks import CheckResult
from testnet.sim.causal import CausalTracer
from testnet.sim.config import SimConfig
from testnet.sim.faults import NemesisAction, StartPartition
from testnet.sim.shapes import groups_topology
from testnet.sim.simulator import SimResult, Simulator
from tour.demos import figure8
from tour.demos.models import Elections
from tour.model import Outcome, Picture, TourContext
from tour.simtools import ChainEvents, Samples, ScriptedNemesis
from tour.svg import lines_chart

NODES = 5
CUT_AT_S = 15.0
CUT_S = 15.0
SAFETY_S = 45.0
ELECTED_WITHIN_S = 5.0


class IsolateNemesis(ScriptedNemesis):
    """Cuts off, at `at_s`, the node `choose()` names then (the leader of the moment) from all the others."""

    def __init__(self, *, nodes: int, at_s: float, duration_s: float, choose: Callable[[], int]) -> None:
        super().__init__(nodes=nodes, sides=((0,), tuple(range(1, nodes))), at_s=at_s, duration_s=duration_s)
        self.choose, self.nodes_count, self.duration_s = choose, nodes, duration_s
        self.isolated: int | None = None

    def next_action(self, rng: Random, *, partitioned: bool, down: list[int]) -> NemesisAction | None:
        """The partition around the chosen node, once."""
        if self.action is None:
            return None
        self.action = None
        self.isolated = self.choose()
        sides: Sequence[Sequence[int]] = ((self.isolated,),
                                          tuple(i for i in range(self.nodes_count) if i != self.isolated))
        return StartPartition(topology=groups_topology("isolate-leader", self.nodes_count, sides),
                              duration_s=self.duration_s)


class RaftRun:
    """One run of the scenario: the result, the elections, every node's heights, the reorgs (log repairs)."""

    def __init__(self, context: TourContext) -> None:
        config = SimConfig(seed=context.seed, consensus="raft", nodes=NODES, duration_s=SAFETY_S, faults=frozenset(),
                           model="synchronous", block_interval_s=1.0, max_delay_s=0.05, tx_rate_per_s=1.0,
                           liveness_budget_s=20.0)
        self.elections = Elections(gst_s=SAFETY_S)
        self.samples = Samples()
        self.events = ChainEvents()
        simulator = Simulator(config, self.events.factory(context.core_factory), observer=self.samples.observe,
                              observe_every_s=0.5, tracer=CausalTracer(sink=self.elections.feed))
        self.nemesis = IsolateNemesis(nodes=NODES, at_s=CUT_AT_S, duration_s=CUT_S, choose=self._leader_now)
        simulator.nemesis = self.nemesis
        self.result: SimResult = simulator.run()

    def _leader_now(self) -> int:
        """The node elected last (node 0 when none was: the check then fails on the election)."""
        if not self.elections.elected:
            return 0
        return int(self.elections.elected[-1][1].removeprefix("node"))

    def elected_between(self, start_s: float, end_s: float) -> list[tuple[float, str, int]]:
        """The elections in [start_s, end_s)."""
        return [e for e in self.elections.elected if start_s <= e[0] < end_s]


def _checks(run: RaftRun) -> tuple[list[str], tuple[CheckResult, ...]]:
    first = run.elected_between(0.0, CUT_AT_S)
    isolated = run.nemesis.isolated
    old = f"node{isolated}"
    old_term = max((term for _, node, term in first if node == old), default=0)
    failover = [e for e in run.elected_between(CUT_AT_S, CUT_AT_S + ELECTED_WITHIN_S) if e[1] != old
                and e[2] > old_term]
    samples = run.samples
    start, end = samples.at(CUT_AT_S + 2.0), samples.at(CUT_AT_S + CUT_S)
    assert isolated is not None
    majority_gain = max(samples.finals[end][i] - samples.finals[start][i] for i in range(NODES) if i != isolated)
    isolated_gain = samples.finals[end][isolated] - samples.finals[start][isolated]
    terms: dict[int, set[str]] = {}
    for _, node, term in run.elections.elected:
        terms.setdefault(term, set()).add(node)
    doubled = {term: sorted(who) for term, who in terms.items() if len(who) > 1}
    by_blocks = next(c for c in run.result.checks if c.name == "one-leader-per-term")
    safety = [c for c in run.result.checks if c.name != "one-leader-per-term" and not c.ok]
    finals = run.result.stats["final_heights"]
    assert isinstance(finals, dict)
    lines = [
        f"elected: {', '.join(f'{n} term {term} at t={t:.1f}s' for t, n, term in run.elections.elected[:8])}"
        + (" ..." if len(run.elections.elected) > 8 else ""),
        f"t={CUT_AT_S:g}s: leader {old} (term {old_term}) cut off alone for {CUT_S:g}s",
        f"during the cut: the four others' final height grew {majority_gain}, {old}'s {isolated_gain}",
        f"after the heal: final heights {finals}; {len(run.events.reorg_depths)} log repair(s) (reorgs, depths "
        f"{run.events.reorg_depths})",
        f"the same network without the scripted cut: {run.result.config.command()}",
    ]
    checks = (
        CheckResult(name="leader-elected", ok=bool(first) and first[0][0] < ELECTED_WITHIN_S, detail=(
            f"{first[0][1]} elected for term {first[0][2]} at t={first[0][0]:.1f}s" if first
            else "no leader before the cut")),
        CheckResult(name="fail-over", ok=bool(failover) and majority_gain > 0 and isolated_gain == 0, detail=(
            f"{failover[0][1]} elected for term {failover[0][2]} {failover[0][0] - CUT_AT_S:.1f}s after the cut; "
            f"the majority made {majority_gain} blocks final, the isolated old leader none" if failover and
            majority_gain > 0 and isolated_gain == 0 else
            f"after the cut: elections {failover}, majority final gain {majority_gain}, isolated {isolated_gain}")),
        CheckResult(name="log-replication", ok=not safety, detail=(
            "after the heal every node holds one final chain (" + ", ".join(c.name for c in run.result.checks
                                                                          if c.ok) + ")" if not safety else
            "; ".join(f"{c.name}: {c.detail}" for c in safety))),
        CheckResult(name="one-leader-per-term", ok=not doubled and by_blocks.ok, detail=(
            f"{len(terms)} terms with an election, each won by one node; from the blocks: {by_blocks.detail}"
            if not doubled and by_blocks.ok else
            f"two leaders in term(s) {doubled or '?'}; from the blocks: {by_blocks.detail}")),
    )
    return lines, checks


def run(context: TourContext) -> Outcome:
    """The demonstration."""
    raft_run = RaftRun(context)
    lines, checks = _checks(raft_run)
    lines.insert(0, f"{NODES} Raft nodes, synchronous (D = 50 ms), a block a second, election timeout 1 s")
    samples = raft_run.samples
    picture = Picture(name="final-heights.svg", caption="every node's final height; the old leader cut off, shaded",
                      text=lines_chart("Raft: final height of each node; the leader isolated at the shaded time",
                                       times=samples.times,
                                       series={f"node{i}": [float(row[i]) for row in samples.finals]
                                               for i in range(NODES)},
                                       y_label="final height",
                                       shaded=[(CUT_AT_S, CUT_AT_S + CUT_S,
                                                f"node{raft_run.nemesis.isolated} cut off")]))
    figures: dict[str, object] = {
        "elections": [[round(t, 2), node, term] for t, node, term in raft_run.elections.elected],
        "isolated": raft_run.nemesis.isolated, "reorg_depths": raft_run.events.reorg_depths,
        "final_heights": raft_run.result.stats["final_heights"]}
    pictures = [picture]
    try:
        played = figure8.play(context.core_factory, context.seed)
    except figure8.Figure8Error as exc:
        checks = (*checks, CheckResult(name="figure-8-no-commit-by-counting", ok=False,
                                       detail=f"the Figure 8 schedule did not play out: {exc}"))
    else:
        lines += figure8.describe(played)
        checks = (*checks, *figure8.checks(played))
        pictures.append(figure8.picture(played))
        figures["figure_8"] = {"roles": {"A": played.a, "B": played.b, "C": played.c}, "index": played.index,
                               "terms": played.terms, "x_on_majority": played.x_on_majority,
                               "committed_x": played.committed_x, "safety_alarms": played.safety_alarms}
    return Outcome(concept="raft", seed=context.seed, lines=tuple(lines), checks=checks, figures=figures,
                   pictures=tuple(pictures))
