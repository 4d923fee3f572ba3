"""Crash failures (崩溃故障): complete stop, omission and commission, injected into each engine the simulator runs.

Every engine (pow, primary-backup, round-robin, raft, pbft) runs four nodes under the synchronous model (D = 50 ms,
a block a second) three times, once per failure mode:

- complete stop: node 1 crashes at t = 5 s and restarts over its old store at t = 13 s (the simulator's
  `CrashNode`, from a scripted nemesis). Node 1 is neither the primary of primary-backup nor, at the start, a
  leader: the primary's crash is the primary-backup concept's;
- omission: every message of the 20 s safety phase is lost with probability 20% (the simulator's link faults,
  set in place of the drawn ones);
- commission: at t = 8 s the proposer of the newest block sends every other node a copy of that block that lies
  about the state (a false state root), re-signed with its own key where the seal is a plain signature
  (primary-backup, round-robin), its original seal kept otherwise.

What each engine does about it is read from the run: the other nodes' final heights while node 1 is down and
node 1's gain after its restart; the messages lost and the run's simulator checks (retransmission and sync make
every node converge); the reject codes the honest nodes gave the lie and the peer they punished. The checks: each
mode was in effect, and safety and liveness held (every simulator check; in the commission run the
`no-misbehaviour` check is replaced by: every punishment went to the liar).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from hashlib import sha256
from random import Random

from chain.block import Block, BlockHeader
from chain.errors import RejectError
from chain.merkle import merkle_root
from consensus.signed_seal import make_signed_seal
from p2p.protocol.messages import BlockMsg
from testnet.checks import CheckResult
from testnet.sim.config import SimConfig
from testnet.sim.faults import CrashNode, NemesisAction
from testnet.sim.network import LinkFaults
from testnet.sim.node import SimNode
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext
from tour.simtools import NEVER_S, Samples, ScriptedNemesis
from tour.svg import bar_panels

ENGINES = ("pow", "primary-backup", "round-robin", "raft", "pbft")
MODES = ("stop", "omission", "commission")
NODES = 4
VICTIM = 1
CRASH_AT_S = 5.0
DOWN_S = 8.0
LIE_AT_S = 8.0
LOSS = 0.2
SAFETY_S = 20.0


class CrashNemesis(ScriptedNemesis):
    """Crashes `node` at `at_s`; the simulator restarts it `down_s` later. Nothing else."""

    def __init__(self, *, nodes: int, node: int, at_s: float, down_s: float) -> None:
        super().__init__(nodes=nodes, sides=((0,), tuple(range(1, nodes))), at_s=at_s, duration_s=down_s)
        self.action = None
        self.scripted_crash: CrashNode | None = CrashNode(node=node, downtime_s=down_s)

    def next_action(self, rng: Random, *, partitioned: bool, down: list[int]) -> NemesisAction | None:
        """The crash, once."""
        action, self.scripted_crash = self.scripted_crash, None
        return action


@dataclass(slots=True)
class Liar:
    """The commission: at `at_s`, the proposer of the newest block sends the others a copy lying about the state."""

    engine: str
    at_s: float
    liar: str = ""
    lie_hash: bytes = b""
    told: int = 0
    refusals: dict[str, int] = field(default_factory=dict)  # reject code -> count, for the lie
    samples: Samples = field(default_factory=Samples)

    def observe(self, t: float, simulator: Simulator) -> None:
        """The simulator's observer hook: samples heights, and tells the lie once."""
        self.samples.observe(t, simulator)
        if self.liar or t < self.at_s:
            return
        running = [node for node in simulator.nodes if node.core is not None]
        source = max(running, key=lambda node: node.core.tree.height if node.core is not None else -1)
        assert source.core is not None
        tip = source.core.tree.tip
        if tip.height == 0:
            return
        keys = simulator.config.node_keys()
        draft = BlockHeader(height=tip.height + 1, parent=tip.hash, timestamp_ms=source.clock.now_ms(t),
                            tx_root=merkle_root([]), state_root=sha256(b"a lie about the state").digest(),
                            proposer=tip.header.proposer, seal=tip.header.seal)
        judge = next(node for node in running if node is not source)
        assert judge.core is not None
        lie, liar = Block(header=draft), source
        for index, key in enumerate(keys):  # a seal the receivers accept, so that only the state is false
            header = replace(draft, proposer=key.address)
            candidate = Block(header=header.with_seal(make_signed_seal(key, header)))
            if _passes_precheck(judge, candidate, t):
                lie, liar = candidate, simulator.nodes[index]
                break
        self.liar, self.lie_hash = liar.name, lie.hash
        before = [dict(node.stats.rejected) for node in simulator.nodes]
        for node in simulator.nodes:
            if node is not liar and node.core is not None and liar.name in node.peers:
                node.receive(liar.name, BlockMsg(raw=lie.encoded), t)
                self.told += 1
        for node, earlier in zip(simulator.nodes, before, strict=True):
            for code, count in node.stats.rejected.items():
                if count > earlier.get(code, 0):
                    self.refusals[code] = self.refusals.get(code, 0) + count - earlier.get(code, 0)


def _passes_precheck(node: SimNode, block: Block, t: float) -> bool:
    """True when `node`'s core accepts the header of `block` as well formed and properly sealed."""
    assert node.core is not None
    try:
        return node.core.precheck_block(block, now_ms=node.clock.now_ms(t))
    except RejectError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeRun:
    """One engine under one failure mode: the run, the sampled heights, and the liar (commission)."""

    engine: str
    mode: str
    result: SimResult
    samples: Samples
    liar: Liar | None
    punished: dict[str, int]  # peer -> penalties the other nodes gave it
    adopted: list[str]  # the nodes whose chain holds the lie at the end


def run_mode(context: TourContext, engine: str, mode: str) -> ModeRun:
    """Run `engine` under failure `mode`."""
    config = SimConfig(seed=context.seed, consensus=engine, nodes=NODES, duration_s=SAFETY_S, faults=frozenset(),
                       model="synchronous", block_interval_s=1.0, max_delay_s=0.05, tx_rate_per_s=1.0,
                       finality_threshold=2, liveness_budget_s=20.0)
    liar = Liar(engine=engine, at_s=LIE_AT_S if mode == "commission" else NEVER_S)
    simulator = Simulator(config, context.core_factory, observer=liar.observe, observe_every_s=0.5)
    if mode == "stop":
        simulator.nemesis = CrashNemesis(nodes=NODES, node=VICTIM, at_s=CRASH_AT_S, down_s=DOWN_S)
    elif mode == "omission":
        simulator.safety_link_faults = simulator.link_faults = LinkFaults(loss=LOSS, duplicate=0.0)
    result = simulator.run()
    punished: dict[str, int] = {}
    for node in simulator.nodes:
        for peer, count in node.stats.punished.items():
            punished[peer] = punished.get(peer, 0) + count
    adopted = [node.name for node in simulator.nodes if liar.lie_hash and node.core is not None
               and node.core.tree.is_on_best_chain(liar.lie_hash)]
    return ModeRun(engine=engine, mode=mode, result=result, samples=liar.samples,
                   liar=liar if mode == "commission" else None, punished=punished, adopted=adopted)


def _safety(run: ModeRun, *, skip: tuple[str, ...] = ()) -> list[CheckResult]:
    return [c for c in run.result.checks if not c.ok and c.name not in skip]


def _others_gain(samples: Samples) -> int:
    """How far the other nodes' final heights grew while the victim was down (the least of them)."""
    start, end = samples.at(CRASH_AT_S + 0.1), samples.at(CRASH_AT_S + DOWN_S - 0.1)
    return min(samples.finals[end][i] - samples.finals[start][i] for i in range(NODES) if i != VICTIM)


def _judge_stop(run: ModeRun) -> tuple[str, CheckResult]:
    samples = run.samples
    before, start = samples.at(CRASH_AT_S - 0.1), samples.at(CRASH_AT_S + 0.1)
    end = samples.at(CRASH_AT_S + DOWN_S - 0.1)
    gain = _others_gain(samples)
    victim_down = start < end and all(samples.heights[i][VICTIM] < 0 for i in range(start, end + 1))
    finals = run.result.stats["final_heights"]
    assert isinstance(finals, dict)
    caught_up = finals.get(f"node{VICTIM}", -1) - samples.finals[before][VICTIM]
    failed = _safety(run)
    line = (f"stop: node{VICTIM} down {DOWN_S:g}s; the others' final height grew by {gain} meanwhile"
            + ("" if gain else " (stalled)") + f"; node{VICTIM} gained {caught_up} from its restart to the end")
    ok = victim_down and not failed
    return line, CheckResult(name=f"{run.engine}-stop", ok=ok, detail=(
        f"node{VICTIM} was down from t={CRASH_AT_S:g}s to t={CRASH_AT_S + DOWN_S:g}s; "
        + ("the others went on" if gain > 0 else "the others stalled") + " and every simulator check held"
        if ok else f"node{VICTIM} down throughout: {victim_down}; failed: "
        + "; ".join(f"{c.name}: {c.detail}" for c in failed)))


def _count(stats: Mapping[str, object], name: str) -> int:
    value = stats[name]
    assert isinstance(value, int)
    return value


def _judge_omission(run: ModeRun) -> tuple[str, CheckResult]:
    stats = run.result.stats
    lost, sent = _count(stats, "lost"), _count(stats, "sent")
    failed = _safety(run)
    line = (f"omission: {lost} of {sent} messages lost ({lost / max(1, sent):.0%}); final heights "
            f"{stats['final_heights']}")
    ok = lost > 0 and not failed
    return line, CheckResult(name=f"{run.engine}-omission", ok=ok, detail=(
        f"{lost} messages lost and every simulator check held" if ok else
        f"{lost} lost; failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)))


def _judge_commission(run: ModeRun) -> tuple[str, CheckResult]:
    liar = run.liar
    assert liar is not None
    rejected = liar.refusals
    accused = sorted(run.punished)
    failed = _safety(run, skip=("no-misbehaviour",))
    line = (f"commission: {liar.liar or 'nobody'} told {liar.told} node(s) a false state root; refused with "
            f"{rejected or 'nothing (stored, never validated)'}; "
            f"punished: {', '.join(accused) or 'nobody'}; on the chain of: {', '.join(run.adopted) or 'no node'}")
    punished_liar = bool(rejected) and accused == [liar.liar]
    ignored = not rejected and not accused
    ok = liar.told > 0 and not run.adopted and (punished_liar or ignored) and not failed
    return line, CheckResult(name=f"{run.engine}-commission", ok=ok, detail=(
        f"no node adopted the lie; the {liar.told} node(s) told "
        + (f"refused it ({', '.join(sorted(rejected))}) and punished {liar.liar} alone" if punished_liar
           else "stored it and never built on it") + "; every other simulator check held" if ok else
        f"told {liar.told}, refused with {rejected}, punished {accused}, adopted by {run.adopted}; failed: "
        + "; ".join(f"{c.name}: {c.detail}" for c in failed)))


JUDGES: dict[str, Callable[[ModeRun], tuple[str, CheckResult]]] = {
    "stop": _judge_stop, "omission": _judge_omission, "commission": _judge_commission}


def run(context: TourContext) -> Outcome:
    """The demonstration."""
    lines = [f"{NODES} nodes per engine, synchronous (D = 50 ms), a block a second; per engine one run per mode: "
             f"node{VICTIM} crashed at t={CRASH_AT_S:g}s for {DOWN_S:g}s; {LOSS:.0%} message loss for "
             f"{SAFETY_S:g}s; a block lying about the state at t={LIE_AT_S:g}s"]
    checks: list[CheckResult] = []
    figures: dict[str, dict[str, object]] = {}
    stop_gain: list[tuple[str, float]] = []
    lost_share: list[tuple[str, float]] = []
    refused: list[tuple[str, float]] = []
    for engine in ENGINES:
        lines.append(f"{engine}:")
        figures[engine] = {}
        for mode in MODES:
            mode_run = run_mode(context, engine, mode)
            line, check = JUDGES[mode](mode_run)
            lines.append(f"  {line}")
            checks.append(check)
            stats = mode_run.result.stats
            if mode == "stop":
                stop_gain.append((engine, float(_others_gain(mode_run.samples))))
            elif mode == "omission":
                lost_share.append((engine, round(100 * _count(stats, "lost") / max(1, _count(stats, "sent")), 1)))
            elif mode_run.liar is not None:
                refused.append((engine, float(sum(mode_run.liar.refusals.values()))))
            figures[engine][mode] = {"final_heights": stats["final_heights"], "lost": stats["lost"],
                                     "rejected": stats["rejected"], "ok": check.ok}
    picture = Picture(name="crash-modes.svg", caption="per engine: the blocks the others made final while node1 "
                      "was down (stop), the share of messages lost (omission, every one recovered), the nodes that "
                      "refused the false state root (commission; red: none did)", text=bar_panels(
                          "Crash failures, by engine: what each mode cost", [
                              (f"stop: final blocks while node{VICTIM} was down", stop_gain),
                              (f"omission: % of messages lost ({LOSS:.0%} drawn)", lost_share),
                              ("commission: refusals of the false state root", refused)],
                          highlight_in={0: {engine for engine, value in stop_gain if value == 0},
                                        2: {engine for engine, value in refused if value == 0}},
                          note="each panel on its own scale; red: the engine stalled (stop) or stored the lie "
                          "without validating it (commission)"))
    return Outcome(concept="crash-failure", seed=context.seed, lines=tuple(lines), checks=tuple(checks),
                   figures=figures, pictures=(picture,))
