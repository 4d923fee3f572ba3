"""Synchronous, asynchronous and partially synchronous system models (同步、异步与部分同步模型), shown on Raft
and on PoW.

One five-node Raft network runs three times, each time under one of the simulator's timing models
(testnet/sim/network.py): synchronous (every delay below D = 50 ms), asynchronous (no bound: a Pareto tail whose
scale, 10 s, is ten election timeouts) and partially synchronous (asynchronous until the global stabilisation
time GST, half-way through the safety phase, then bounded by D). Raft's safety never depends on timing; its
liveness does: an election needs the votes of a majority back before the candidate's timer fires again.

What the runs show (the election and vote decisions come from the simulator's trace records, the final heights
from sampling every node each virtual second): under the synchronous model a leader is elected within a couple of
seconds and keeps office; under the asynchronous one, terms climb and no election completes, so nothing is final;
under partial synchrony nothing is elected before GST and a leader is elected just after it and keeps office.

The same network with PoW shows the other trade: PoW has no leader to elect, so blocks keep coming under every
model, before GST too; what delay costs it is forks (blocks mined on a tip that was already beaten), many more
under the asynchronous tail than under the bound D, and mining time (long delays show a node a chain ahead, and it
pauses to sync, or hide hash power from its partition handler; the engines' status says which). Its confirmation
finality (k blocks deep) assumes delays that are short against the block interval: under the asynchronous tail it
may break, and the run says whether it did (reported, not checked: it depends on the seed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from causality.formatter import Record
from consensus.pow.engine import PowStatus
from testnet.checks import CheckResult
from testnet.sim.causal import CausalTracer
from testnet.sim.config import SimConfig
from testnet.sim.network import NetworkModel, make_model
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext
from tour.simtools import Samples
from tour.svg import lines_chart

NODES = 5
SAFETY_S = 60.0
GST_S = 30.0
MAX_DELAY_S = 0.05  # D
ASYNC_SCALE_S = 10.0  # the asynchronous tail's scale: ten election timeouts (1 s, the genesis default)
ELECTED_WITHIN_S = 5.0  # "at once": a leader within this many seconds of the start, or of GST
MODELS = ("synchronous", "asynchronous", "partial-sync")


@dataclass(slots=True)
class Elections:
    """The engine decisions of a run, read from the tracer's records: when leaders were elected (time, node,
    term) and the highest term a vote was cast in before GST."""

    gst_s: float
    elected: list[tuple[float, str, int]] = field(default_factory=list)
    top_term_before_gst: int = 0

    def feed(self, records: list[Record]) -> None:
        """The tracer's sink: keep the decisions, drop the rest."""
        for record in records:
            if record[0] != "i" or record[4] not in ("leader-elected", "vote-cast"):
                continue
            _, node, _, t, what, detail_json = record
            term = int(json.loads(detail_json).get("term", 0))
            if what == "leader-elected":
                self.elected.append((t, node, term))
            elif t < self.gst_s:
                self.top_term_before_gst = max(self.top_term_before_gst, term)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRun:
    """One model's run: its result, what was elected, the samples, and (PoW) whether each node was mining at each
    sample of the safety phase."""

    model: str
    result: SimResult
    elections: Elections
    samples: Samples
    mining: list[bool] = field(default_factory=list)

    def elected_between(self, start_s: float, end_s: float) -> list[tuple[float, str, int]]:
        """The elections in [start_s, end_s)."""
        return [e for e in self.elections.elected if start_s <= e[0] < end_s]

    def final_at(self, t: float) -> int:
        """The highest final height any node had at virtual time t."""
        return max(self.samples.finals[self.samples.at(t)])


def run_model(context: TourContext, model: str, override: NetworkModel | None = None, *,
              consensus: str = "raft") -> ModelRun:
    """One run of the network under `model` (`override`: another network model in its place)."""
    config = SimConfig(seed=context.seed, consensus=consensus, nodes=NODES, duration_s=SAFETY_S, faults=frozenset(),
                       model=model, block_interval_s=1.0, max_delay_s=MAX_DELAY_S, async_scale_s=ASYNC_SCALE_S,
                       tx_rate_per_s=0.0, liveness_budget_s=20.0)
    # Votes are counted up to GST in the partially synchronous run, over the whole safety phase in the others.
    elections, samples = Elections(gst_s=GST_S if model == "partial-sync" else SAFETY_S), Samples()
    mining: list[bool] = []

    def observe(t: float, simulator: Simulator) -> None:
        samples.observe(t, simulator)
        if t <= SAFETY_S:  # PoW's engine says whether it mines (or waits to sync, or for hash power to reach)
            statuses = [node.core.engine.status(now=t) for node in simulator.nodes if node.core is not None]
            mining.extend(status.mining for status in statuses if isinstance(status, PowStatus))

    simulator = Simulator(config, context.core_factory, observer=observe, observe_every_s=1.0,
                          tracer=CausalTracer(sink=elections.feed))
    if model == "partial-sync":  # GST at a known time instead of the seed's draw
        simulator.gst_s = GST_S
        simulator.model = make_model(model, max_delay_s=MAX_DELAY_S, gst_s=GST_S, async_scale_s=ASYNC_SCALE_S)
    if override is not None:
        simulator.model = override
    return ModelRun(model=model, result=simulator.run(), elections=elections, samples=samples, mining=mining)


def _describe(run: ModelRun) -> str:
    elected = run.elected_between(0.0, SAFETY_S)
    first = f"first leader at t={elected[0][0]:.1f}s (term {elected[0][2]})" if elected else "no leader elected"
    return (f"{run.model}: {first}, {len(elected)} election(s) in the {SAFETY_S:g} s safety phase, final height "
            f"{run.final_at(SAFETY_S)} at its end" + (f", {run.final_at(GST_S)} at GST" if run.model == "partial-sync"
                                                      else ""))


def gst_checks(partial: ModelRun) -> tuple[CheckResult, CheckResult]:
    """The partially synchronous run against the theory: no leader before GST, a stable one soon after it."""
    before = partial.elected_between(0.0, GST_S)
    after = partial.elected_between(GST_S, SAFETY_S)
    stable = (len(after) == 1 and after[0][0] < GST_S + ELECTED_WITHIN_S
              and partial.final_at(SAFETY_S) > partial.final_at(GST_S))
    return (
        CheckResult(name="partial-sync-no-leader-before-gst", ok=not before and partial.final_at(GST_S) == 0, detail=(
            f"before GST (t={GST_S:g}s) terms climbed to {partial.elections.top_term_before_gst} and no election "
            "completed" if not before else f"a leader was elected before GST: {before[0]}")),
        CheckResult(name="partial-sync-stable-leader-after-gst", ok=stable, detail=(
            f"{after[0][1]} elected {after[0][0] - GST_S:.1f}s after GST kept office to the end of the safety phase"
            if stable else f"after GST: elections {after}, final height {partial.final_at(GST_S)} -> "
                           f"{partial.final_at(SAFETY_S)}")),
    )


@dataclass(frozen=True, slots=True)
class PowView:
    """A PoW run's blocks: mined, on the best chain, stale (off it), and whether the final prefixes agreed; over
    the whole run (safety phase and heal, `run_s`). `mining_share`: of the safety phase's node-seconds, the share
    the nodes mined (the rest they paused: to sync a chain ahead, or with too little hash power in reach)."""

    model: str
    mined: int
    height: int
    height_at_gst: int
    finality_held: bool
    run_s: float
    mining_share: float

    @property
    def stale(self) -> int:
        return max(0, self.mined - self.height)

    @property
    def stale_share(self) -> float:
        return self.stale / self.mined if self.mined else 0.0

    @classmethod
    def of(cls, run: ModelRun) -> PowView:
        heights = run.result.stats["heights"]
        mined = run.result.stats["blocks_mined"]
        assert isinstance(heights, dict) and isinstance(mined, int)
        return cls(model=run.model, mined=mined, height=max(heights.values()),
                   height_at_gst=max(run.samples.heights[run.samples.at(GST_S)]),
                   finality_held="final-prefix-agreement" not in run.result.failed_checks(),
                   run_s=run.samples.times[-1], mining_share=sum(run.mining) / len(run.mining) if run.mining else 0.0)

    def describe(self) -> str:
        return (f"PoW {self.model}: mining {self.mining_share:.0%} of the safety phase; in the {self.run_s:g} s run "
                f"{self.mined} blocks mined, {self.stale} stale ({self.stale_share:.0%}), best height {self.height}"
                + (f" ({self.height_at_gst} at GST)" if self.model == "partial-sync" else "")
                + "; final prefixes " + ("agreed" if self.finality_held else "DISAGREED: k-deep finality broke"))


def pow_checks(views: Mapping[str, PowView]) -> tuple[CheckResult, CheckResult]:
    """PoW against the theory: it makes blocks under every model (no leader to wait for), and delay costs it
    forks."""
    live = all(view.height > 0 for view in views.values()) and views["partial-sync"].height_at_gst > 0
    sync, asyn = views["synchronous"], views["asynchronous"]
    return (
        CheckResult(name="pow-mines-in-every-model", ok=live, detail=(
            "blocks kept coming under every model, before GST too (best height "
            f"{views['partial-sync'].height_at_gst} at GST)" if live else
            "best heights " + ", ".join(f"{v.model} {v.height} ({v.height_at_gst} at GST)" for v in views.values()))),
        CheckResult(name="pow-forks-grow-with-delay", ok=asyn.stale_share > sync.stale_share, detail=(
            f"stale blocks: {asyn.stale_share:.0%} under the asynchronous tail against {sync.stale_share:.0%} under "
            f"the bound D" + ("" if asyn.stale_share > sync.stale_share else ": delay cost nothing"))),
    )


def _checks(runs: Mapping[str, ModelRun]) -> tuple[CheckResult, ...]:
    sync, asyn = runs["synchronous"], runs["asynchronous"]
    sync_elected = sync.elected_between(0.0, SAFETY_S)
    sync_ok = (len(sync_elected) == 1 and sync_elected[0][0] < ELECTED_WITHIN_S and sync.final_at(SAFETY_S) > 0)
    async_elected = asyn.elected_between(0.0, SAFETY_S)
    healed = [f"{run.model}: {', '.join(run.result.failed_checks())}" for run in runs.values() if not run.result.ok]
    return (
        CheckResult(name="synchronous-stable-leader", ok=sync_ok, detail=(
            f"one election, at t={sync_elected[0][0]:.1f}s, and that leader kept office" if sync_ok else
            f"elections in the synchronous run: {sync_elected}")),
        CheckResult(name="asynchronous-no-leader", ok=not async_elected and asyn.final_at(SAFETY_S) == 0, detail=(
            f"terms climbed to {asyn.elections.top_term_before_gst} and no election completed: nothing final"
            if not async_elected else f"a leader was elected under the asynchronous model: {async_elected[0]}")),
        *gst_checks(runs["partial-sync"]),
        CheckResult(name="safe-and-live-after-heal", ok=not healed, detail=(
            "every simulator check passed in all three Raft runs (safety never depended on timing)" if not healed
            else "; ".join(healed))),
    )


def run(context: TourContext) -> Outcome:
    """The demonstration: the three runs, judged."""
    runs = {model: run_model(context, model) for model in MODELS}
    pow_runs = {model: run_model(context, model, consensus="pow") for model in MODELS}
    views = {model: PowView.of(pow_runs[model]) for model in MODELS}
    lines = [f"{NODES} Raft nodes, election timeout 1 s; D = {MAX_DELAY_S * 1000:g} ms; asynchronous delays: "
             f"Pareto tail of scale {ASYNC_SCALE_S:g} s; GST at t={GST_S:g}s"]
    lines += [_describe(runs[model]) for model in MODELS]
    lines.append(f"the same {NODES} nodes with PoW (1 s blocks, final 6 deep):")
    lines += [views[model].describe() for model in MODELS]
    lines.append(f"replay the asynchronous runs: {runs['asynchronous'].result.config.command()} (and with "
                 "--consensus pow; with --model partial-sync the seed draws GST)")
    samples = runs["synchronous"].samples
    series = {model: [float(max(row)) for row in runs[model].samples.finals] for model in MODELS}
    length = min(len(values) for values in series.values())
    picture = Picture(name="final-heights.svg", caption="the highest final height under each model, GST shaded",
                      text=lines_chart("Raft: highest final height under each timing model",
                                       times=samples.times[:length],
                                       series={name: values[:length] for name, values in series.items()},
                                       y_label="final height",
                                       shaded=[(0.0, GST_S, "partial-sync: before GST"),
                                               (SAFETY_S, SAFETY_S, "safety phase ends")]))
    pow_series = {f"PoW {model}": [float(max(row)) for row in pow_runs[model].samples.heights] for model in MODELS}
    pow_length = min(len(values) for values in pow_series.values())
    pow_chart = lines_chart("PoW: best height under each timing model",
                            times=pow_runs["synchronous"].samples.times[:pow_length],
                            series={name: values[:pow_length] for name, values in pow_series.items()},
                            y_label="best height", shaded=[(0.0, GST_S, "partial-sync: before GST")])
    pow_picture = Picture(name="pow-heights.svg", text=pow_chart, caption="PoW's best height under each model, GST "
                          "shaded: blocks keep coming under every model; the asynchronous line is lower because more "
                          "blocks went stale and nodes paused mining more often")
    figures: dict[str, object] = {
        model: {"elections": [[round(t, 2), node, term] for t, node, term in runs[model].elections.elected],
                "final_at_gst": runs[model].final_at(GST_S), "final_at_end": runs[model].final_at(SAFETY_S),
                "top_term_before_gst": runs[model].elections.top_term_before_gst} for model in MODELS}
    figures["pow"] = {model: {"mined": v.mined, "stale": v.stale, "height": v.height,
                              "height_at_gst": v.height_at_gst, "finality_held": v.finality_held,
                              "run_s": v.run_s, "mining_share": round(v.mining_share, 3)}
                      for model, v in views.items()}
    return Outcome(concept="system-models", seed=context.seed, lines=tuple(lines),
                   checks=(*_checks(runs), *pow_checks(views)), figures=figures, pictures=(picture, pow_picture))
