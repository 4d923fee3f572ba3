"""Byzantine failure (拜占庭故障): a PBFT validator that lies, each documented way, and what the honest ones see.

Four PBFT validators tolerate f = 1 Byzantine one. Each run switches one validator to one behaviour of
consensus/pbft/byzantine.py (the simulator's `--byzantine NODE:BEHAVIOUR`), grouped as the theory groups Byzantine
failures:

- malicious message: `equivocate` (node 0, the primary of view 0, pre-prepares two digests to two halves);
- protocol violation: `bad-signatures` (node 0 signs nothing validly), `stale-view-change` (node 1's VIEW-CHANGEs
  hide what it prepared; node 0 is cut off from t = 10 s to 20 s so that a view change happens);
- selective response: `withhold-commits` (node 1 prepares but never commits), `silent` (node 0 sends nothing).

What the honest nodes see comes from the simulator: the messages each node sent (the causal tracer's records), the
messages rejected and the peers punished (node stats), the views they installed (the engines' `leader-elected`
decisions). The checks: the lie was in effect (what it must show on the wire or in the honest nodes' reactions),
and safety and liveness held for the honest nodes (every simulator check, `no-misbehaviour` included: no honest
node punished another). A quorum of f + 1 instead of 2f + 1 breaks the equivocation run.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from causality.formatter import Record
from consensus.envelope import decode_envelope
from testnet.checks import CheckResult
from testnet.sim.causal import CausalTracer
from testnet.sim.config import SimConfig
from testnet.sim.core import CoreFactory, CoreSpec, OutputView, SimCore
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext
from tour.simtools import ChainEvents, ScriptedNemesis, TappedCore
from tour.svg import bar_panels

NODES = 4
COMMIT_KIND = "pbft/commit"
FOCUS = {"withhold-commits": (COMMIT_KIND, "commits"), "stale-view-change": ("pbft/view-change", "view-chgs")}
""" The messages a behaviour's picture counts per node, and their short name (the others: every engine message)."""


@dataclass(slots=True)
class Wire:
    """What the honest nodes could see: the engine messages each node itself sent, by kind (read from its core's
    outputs: the envelope it originates, relays left out), and the views each node installed (the engines'
    `leader-elected` decisions, from the causal tracer)."""

    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    views: dict[str, set[int]] = field(default_factory=dict)

    def factory(self, inner: CoreFactory) -> CoreFactory:
        """`inner`, with each core's engine messages counted on their way out."""
        def build(spec: CoreSpec) -> SimCore:
            return TappedCore(inner(spec), _Sends(self, spec))
        return build

    def feed(self, records: list[Record]) -> None:
        """The tracer's sink."""
        for record in records:
            if record[0] == "i" and record[4] == "leader-elected":
                view = json.loads(record[5]).get("view")
                if isinstance(view, int):
                    self.views.setdefault(record[1], set()).add(view)

    def sent_by(self, node: str, kind: str | None = None) -> int:
        """Engine messages `node` originated (of `kind`, or of any)."""
        return sum(count for (who, what), count in self.sent.items() if who == node and kind in (None, what))

    def view_changes(self, honest: list[str]) -> int:
        """The highest view an honest node installed."""
        return max((max(self.views.get(name, {0})) for name in honest), default=0)


class _Sends(ChainEvents):
    """One node's tap: counts the engine envelopes it originates."""

    def __init__(self, wire: Wire, spec: CoreSpec) -> None:
        super().__init__()
        self.wire, self.name = wire, spec.name
        self.address, self.genesis_hash = spec.key.address, spec.genesis.hash

    def saw(self, out: OutputView) -> OutputView:
        """Count; hand `out` on unchanged."""
        for send in out.engine_messages:
            envelope = decode_envelope(send.message.payload, self.genesis_hash)
            if envelope.hops == 0 and envelope.sender_address == self.address:
                self.wire.sent[(self.name, envelope.kind)] += 1
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One behaviour: which node, its group in the theory, and what must be seen for the lie to count."""

    behaviour: str
    node: int
    group: str
    cut_primary: bool = False


CASES = (
    Case(behaviour="equivocate", node=0, group="malicious message"),
    Case(behaviour="bad-signatures", node=0, group="protocol violation"),
    Case(behaviour="stale-view-change", node=1, group="protocol violation", cut_primary=True),
    Case(behaviour="withhold-commits", node=1, group="selective response"),
    Case(behaviour="silent", node=0, group="selective response"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRun:
    """A behaviour's run: the simulator's result, the wire, the honest nodes' rejections and punishments."""

    case: Case
    result: SimResult
    wire: Wire
    rejected: dict[str, int]
    punished_liar: int

    @property
    def liar(self) -> str:
        """The Byzantine node's name."""
        return f"node{self.case.node}"

    @property
    def honest(self) -> list[str]:
        """The honest nodes' names."""
        return [f"node{i}" for i in range(NODES) if i != self.case.node]


def run_case(context: TourContext, case: Case) -> CaseRun:
    """One run with `case.node` switched to `case.behaviour`."""
    config = SimConfig(seed=context.seed, consensus="pbft", nodes=NODES, faults=frozenset(), model="synchronous",
                       duration_s=30.0, block_interval_s=2.0, max_delay_s=0.05, tx_rate_per_s=0.5,
                       byzantine=f"{case.node}:{case.behaviour}")
    wire = Wire()
    simulator = Simulator(config, wire.factory(context.core_factory), tracer=CausalTracer(sink=wire.feed))
    if case.cut_primary:
        simulator.nemesis = ScriptedNemesis(nodes=NODES, sides=((0,), (1, 2, 3)), at_s=10.0, duration_s=10.0)
    result = simulator.run()
    liar = f"node{case.node}"
    rejected: Counter[str] = Counter()
    punished = 0
    for node in simulator.nodes:
        if node.name != liar:
            rejected.update(node.stats.rejected)
            punished += node.stats.punished.get(liar, 0)
    return CaseRun(case=case, result=result, wire=wire, rejected=dict(rejected), punished_liar=punished)


def _seen(run: CaseRun) -> tuple[bool, str]:
    """Whether the lie showed, and what the honest nodes saw of it."""
    behaviour, liar, wire = run.case.behaviour, run.liar, run.wire
    views = wire.view_changes(run.honest)
    if behaviour == "equivocate":
        return views > 0, f"the primary {liar} was voted out: the honest nodes moved to view {views}"
    if behaviour == "bad-signatures":
        bad = run.rejected.get("engine:bad-signature", 0)
        return bad > 0 and run.punished_liar > 0, (f"{bad} messages rejected for a bad signature, {liar} punished "
                                                   f"{run.punished_liar} times; view {views} installed")
    if behaviour == "stale-view-change":
        stale = wire.sent_by(liar, "pbft/view-change")
        return views > 0 and stale > 0, (f"with node0 cut off the others changed view up to {views} although "
                                         f"{liar}'s {stale} VIEW-CHANGE(s) hid what it prepared")
    if behaviour == "withhold-commits":
        commits = wire.sent_by(liar, COMMIT_KIND)
        others = min(wire.sent_by(name, COMMIT_KIND) for name in run.honest)
        return commits == 0 and others > 0, (f"{liar} sent {commits} COMMITs (each honest node at least {others}); "
                                             "the 2f + 1 = 3 honest ones committed alone")
    sent = wire.sent_by(liar)
    votes = sum(wire.sent_by(liar, kind) for kind in ("pbft/prepare", "pbft/commit", "pbft/view-change"))
    return votes == 0 and views > 0, (f"{liar} sent {sent} engine message(s) (the pre-prepare its engine made at boot, "
                                      f"before the switch), no vote; the others moved to view {views} without it")


def case_checks(run: CaseRun) -> tuple[CheckResult, CheckResult]:
    """The lie showed; the honest nodes stayed safe and live."""
    shown, seen = _seen(run)
    failed = [c for c in run.result.checks if not c.ok]
    name = run.case.behaviour
    return (
        CheckResult(name=f"{name}-in-effect", ok=shown, detail=seen),
        CheckResult(name=f"{name}-safe-and-live", ok=not failed, detail=(
            f"every simulator check passed for the honest nodes (final heights {run.result.stats['final_heights']})"
            if not failed else "; ".join(f"{c.name}: {c.detail}" for c in failed))),
    )


def run(context: TourContext, *, cases: tuple[Case, ...] = CASES) -> Outcome:
    """Every case, judged."""
    lines = [f"{NODES} PBFT validators (f = 1), one of them Byzantine per run, 30 s of virtual time then the "
             "liveness phase"]
    checks: list[CheckResult] = []
    figures: dict[str, object] = {}
    pictures: list[Picture] = []
    for case in cases:
        case_run = run_case(context, case)
        in_effect, safe = case_checks(case_run)
        lines.append(f"{case.group}: {case_run.liar} {case.behaviour}: {in_effect.detail}; "
                     + ("safety and liveness held" if safe.ok else "FAILED: " + safe.detail))
        checks.extend((in_effect, safe))
        pictures.append(case_picture(case_run))
        figures[case.behaviour] = {"node": case.node, "group": case.group, "rejected": case_run.rejected,
                                   "punished": case_run.punished_liar,
                                   "views": case_run.wire.view_changes(case_run.honest),
                                   "final_heights": case_run.result.stats["final_heights"],
                                   "replay": case_run.result.config.command()}
    return Outcome(concept="byzantine-failure", seed=context.seed, lines=tuple(lines), checks=tuple(checks),
                   figures=figures, pictures=tuple(pictures))


def case_picture(run: CaseRun) -> Picture:
    """One behaviour's two panels: the messages each node sent (of the kind the lie is about), the liar's bar red;
    and what the honest nodes did about it: the highest view they installed, the messages they rejected and the
    times they punished the liar. Each panel on its own scale."""
    kind, what = FOCUS.get(run.case.behaviour, (None, "sent"))
    nodes = [run.liar, *run.honest]
    sent = [(f"{node} {what}", float(run.wire.sent_by(node, kind))) for node in nodes]
    reaction = [("view", float(run.wire.view_changes(run.honest))), ("rejected", float(sum(run.rejected.values()))),
                ("punished", float(run.punished_liar))]
    messages = "engine messages" if kind is None else what
    title = f"{run.case.group}: {run.liar} {run.case.behaviour}"
    text = bar_panels(title, [(f"{messages} sent by each node", sent), ("what the honest nodes did", reaction)],
                      highlight={f"{run.liar} {what}"}, note=f"red: the Byzantine validator {run.liar}; view: the "
                      "highest view the honest nodes installed; each panel has its own scale")
    return Picture(name=f"{run.case.behaviour}.svg", text=text,
                   caption=f"{run.liar} {run.case.behaviour}: the {messages} each node sent, the liar's bar red, "
                   "then the highest view the honest nodes installed, the messages they rejected and the times they "
                   "punished the liar")
