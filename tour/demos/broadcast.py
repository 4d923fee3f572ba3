"""Reliable message passing (可靠消息传递) and atomic broadcast (原子广播), read from the causal trace of lossy runs.

Reliable messaging: PoW and Raft, four nodes each, synchronous (D = 50 ms), a block a second, and for the 20 s of
the safety phase every message is lost with probability 20% and, when not lost, delivered twice with probability
20% (the simulator's link faults, set in place of the drawn ones). From the trace (tour/tracedrun.py): the block
copies lost on the way to a node, the retransmissions that made up for them (a block pushed again to the same
peer, a block asked for again, sync requests), the duplicate copies that arrived and were dropped (a block copy
after its block was connected there; an engine envelope received again), and whether every block any node connected
was connected by every node exactly once.

Atomic broadcast: Raft (five nodes) and PBFT (four), the same link faults at 10%, and from t = 8 s for 6 s a
partition that cuts off a minority (two Raft nodes; one PBFT validator). The blocks a node finalises are what it
delivers; each node's delivery sequence comes from its `block-final` decisions in the order it made them. Atomic
broadcast asks for integrity (a block delivered at most once, heights one after another), total order (any two
nodes' sequences agree where both have one) and agreement (a block one node delivered during the safety phase is
delivered by every node by the end of the run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from testnet.checks import CheckResult
from testnet.sim.causal import CausalTracer
from testnet.sim.config import SimConfig
from testnet.sim.network import LinkFaults
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext
from tour.simtools import ScriptedNemesis
from tour.svg import bar_panels, lines_chart
from tour.tracedrun import IDENT_HEX, TracedRun

SAFETY_S = 20.0
MESSAGING_ENGINES = ("pow", "raft")
MESSAGING_FAULTS = LinkFaults(loss=0.2, duplicate=0.2)
BROADCAST_ENGINES = {"raft": (5, (0, 1)), "pbft": (4, (0,))}  # engine -> (nodes, the minority cut off)
BROADCAST_FAULTS = LinkFaults(loss=0.1, duplicate=0.1)
PARTITION_AT_S = 8.0
PARTITION_S = 6.0


def traced_run(context: TourContext, engine: str, nodes: int, faults: LinkFaults,
               minority: Sequence[int] = ()) -> tuple[SimResult, TracedRun, dict[str, list[str]]]:
    """One run of `engine` under `faults` for the safety phase (and a partition of `minority`, when given): its
    result, its trace, and every node's final chain at the end (block idents, heights 1, 2, ...)."""
    config = SimConfig(seed=context.seed, consensus=engine, nodes=nodes, duration_s=SAFETY_S, faults=frozenset(),
                       model="synchronous", block_interval_s=1.0, max_delay_s=0.05, tx_rate_per_s=1.0,
                       liveness_budget_s=30.0)
    traced = TracedRun()
    simulator = Simulator(config, context.core_factory, tracer=CausalTracer(sink=traced.sink))
    simulator.safety_link_faults = simulator.link_faults = faults
    if minority:
        rest = tuple(i for i in range(nodes) if i not in minority)
        simulator.nemesis = ScriptedNemesis(nodes=nodes, sides=(tuple(minority), rest), at_s=PARTITION_AT_S,
                                            duration_s=PARTITION_S)
    result = simulator.run()
    chains = {}
    for node in simulator.nodes:
        if node.core is not None:
            tree = node.core.tree
            chains[node.name] = [(tree.hash_at(h) or bytes(8)).hex()[:IDENT_HEX]
                                 for h in range(1, tree.final_height + 1)]
    return result, traced, chains


# -- reliable messaging --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What one run's trace says about its blocks' journeys."""

    blocks: int  # blocks on some node's final chain at the end
    nodes: int
    missing: int  # (node, block of a final chain) pairs never connected
    repeated: int  # (node, block) pairs connected more than once (any block)
    copies_sent: int  # block copies handed to the network
    copies_lost: int  # of those, never received
    repaired: int  # (node, block) pairs with a copy lost on the way and the block connected all the same
    pushed_again: int  # a block sent again to a peer that had been sent it
    asked_again: int  # a block asked for again by a node that had asked for it
    sync_requests: int  # getblocks sent (a node asking a peer for what follows its chain)
    duplicate_blocks_dropped: int  # block copies that reached a node after it had connected the block
    duplicate_envelopes_dropped: int  # engine envelopes a node received again
    link_duplicated: int  # messages the links delivered twice
    suppressed: int  # copies of an envelope the receiver held, not scheduled by the simulator
    side_blocks: int = 0  # blocks connected somewhere and on no final chain (PoW's stale blocks)
    side_missing: int = 0  # (node, side block) pairs never connected: nobody asks for a block that lost its race

    @property
    def duplicates_dropped(self) -> int:
        """Every copy that arrived (or would have) where its content was already held."""
        return self.duplicate_blocks_dropped + self.duplicate_envelopes_dropped + self.suppressed

    @property
    def retransmissions(self) -> int:
        """Every send that repeats an earlier one, or asks again for what was missed."""
        return self.pushed_again + self.asked_again + self.sync_requests


def delivery_of(traced: TracedRun, result: SimResult, chains: dict[str, list[str]]) -> Delivery:
    """Count what `traced` shows of every block's way to every node (`chains`: every node's final chain)."""
    counts = traced.connect_counts()
    nodes = sorted(chains)
    blocks = {block for chain in chains.values() for block in chain}
    side = {block for _, block in counts} - blocks
    first_connect: dict[tuple[str, str], float] = {}
    for node, t, block in traced.connected:
        first_connect.setdefault((node, block), t)
    received = Counter(id(sent) for _, _, sent in traced.receives)
    block_sends = [sent for sent in traced.sends.values() if sent.kind == "block"]
    lost = [sent for sent in block_sends if not received[id(sent)]]
    repaired = {(sent.peer, sent.ident) for sent in lost} & set(counts)
    pushes = Counter((sent.node, sent.peer, sent.ident) for sent in block_sends)
    asks = Counter((sent.node, sent.ident) for sent in traced.sends.values() if sent.kind == "block-get")
    late_blocks = sum(1 for node, t, sent in traced.receives if sent.kind == "block"
                      and first_connect.get((node, sent.ident), t + 1) < t)
    envelopes = Counter((node, sent.ident) for node, _, sent in traced.receives if sent.kind == "engine")
    return Delivery(
        blocks=len(blocks), nodes=len(nodes),
        missing=sum(1 for block in blocks for node in nodes if (node, block) not in counts),
        repeated=sum(1 for count in counts.values() if count > 1),
        copies_sent=len(block_sends), copies_lost=len(lost), repaired=len(repaired),
        pushed_again=sum(count - 1 for count in pushes.values()),
        asked_again=sum(count - 1 for count in asks.values()),
        sync_requests=sum(1 for sent in traced.sends.values() if sent.kind == "getblocks"),
        duplicate_blocks_dropped=late_blocks,
        duplicate_envelopes_dropped=sum(count - 1 for count in envelopes.values()),
        link_duplicated=int(result.stats["duplicated"]),  # type: ignore[call-overload]
        suppressed=int(result.stats["suppressed"]),  # type: ignore[call-overload]
        side_blocks=len(side), side_missing=sum(1 for block in side for node in nodes if (node, block) not in counts))


def messaging_checks(engine: str, d: Delivery) -> list[CheckResult]:
    """The reliable-messaging verdicts on one run's deliveries."""
    in_effect = d.copies_lost > 0 and d.link_duplicated > 0
    once = d.blocks > 0 and d.missing == 0 and d.repeated == 0
    return [
        CheckResult(name=f"{engine}-loss-and-duplication", ok=in_effect, detail=(
            f"{d.copies_lost} of {d.copies_sent} block copies lost, {d.link_duplicated} messages delivered twice"
            if in_effect else f"nothing to show: {d.copies_lost} block copies lost, {d.link_duplicated} duplicated")),
        CheckResult(name=f"{engine}-every-block-once", ok=once, detail=(
            f"each of {d.blocks} final blocks connected exactly once on each of {d.nodes} nodes" if once else
            f"{d.missing} (node, block) pair(s) never connected, {d.repeated} connected more than once, "
            f"of {d.blocks} blocks on {d.nodes} nodes")),
        CheckResult(name=f"{engine}-losses-made-up", ok=once and d.repaired > 0, detail=(
            f"{d.repaired} (node, block) pairs lost a copy and got the block all the same; "
            f"{d.retransmissions} retransmissions" if once and d.repaired > 0 else
            f"{d.repaired} pair(s) lost a copy and were made up; blocks missing: {d.missing}")),
        CheckResult(name=f"{engine}-duplicates-dropped", ok=once and d.duplicates_dropped > 0, detail=(
            f"{d.duplicates_dropped} duplicate copies dropped and no block applied twice" if once
            and d.duplicates_dropped > 0 else
            f"{d.duplicates_dropped} duplicate copies dropped, {d.repeated} pair(s) connected more than once")),
    ]


def reliable_messaging(context: TourContext) -> Outcome:
    """The reliable-messaging demonstration."""
    lines = [f"4 nodes, synchronous (D = 50 ms), a block a second; for {SAFETY_S:g} s every message is lost with "
             f"p = {MESSAGING_FAULTS.loss:g} and duplicated with p = {MESSAGING_FAULTS.duplicate:g}"]
    checks: list[CheckResult] = []
    figures: dict[str, object] = {}
    panels: list[tuple[str, list[tuple[str, float]]]] = []
    for engine in MESSAGING_ENGINES:
        result, traced, chains = traced_run(context, engine, 4, MESSAGING_FAULTS)
        d = delivery_of(traced, result, chains)
        lines.append(
            f"{engine}: {d.blocks} final blocks to {d.nodes} nodes ({d.side_blocks} side-branch blocks, missing "
            f"on {d.side_missing} node(s)); {d.copies_lost} of {d.copies_sent} block copies lost "
            f"({d.repaired} (node, block) pairs lost one); retransmissions: {d.pushed_again} pushed again, "
            f"{d.asked_again} asked again, {d.sync_requests} sync requests; duplicates dropped: "
            f"{d.duplicate_blocks_dropped} block copies, {d.duplicate_envelopes_dropped} envelopes received again, "
            f"{d.suppressed} envelope copies not scheduled ({d.link_duplicated} messages duplicated by the links); "
            f"connected once each: {'yes' if d.missing == d.repeated == 0 else 'no'}")
        checks.extend(messaging_checks(engine, d))
        sim_failed = result.failed_checks()
        checks.append(CheckResult(name=f"{engine}-simulator-checks", ok=not sim_failed, detail=(
            "every simulator check held (one final chain, live after the heal)" if not sim_failed
            else "failed: " + ", ".join(sim_failed))))
        figures[engine] = {name: getattr(d, name) for name in Delivery.__slots__}
        panels.append((engine, [("lost", float(d.copies_lost)), ("re-sent", float(d.retransmissions)),
                                ("duplicates dropped", float(d.duplicates_dropped))]))
    picture = Picture(name="messages.svg", caption="block copies lost, retransmissions, duplicates dropped",
                      text=bar_panels("Under loss and duplication: block copies lost, re-sent, dropped as "
                                      "duplicates", panels, note="each engine on its own scale"))
    return Outcome(concept="reliable-messaging", seed=context.seed, lines=tuple(lines), checks=tuple(checks),
                   figures=figures, pictures=(picture,))


# -- atomic broadcast ----------------------------------------------------------------------------------------------


def broadcast_checks(engine: str, chains: dict[str, list[str]], steps: dict[str, list[tuple[int, str]]],
                     safety_height: int) -> list[CheckResult]:
    """The atomic-broadcast verdicts. `chains`: every node's final chain at the end (what it delivered, in order);
    `steps`: each step of its finality as it took it (height, block); `safety_height`: the highest final height
    any node reached by the end of the safety phase."""
    revoked = [f"{node} finalised {block} at height {height}, which its final chain no longer holds"
               for node, node_steps in steps.items() for height, block in node_steps
               if height > len(chains.get(node, [])) or chains[node][height - 1] != block]
    backwards = [node for node, node_steps in steps.items()
                 if any(b[0] <= a[0] for a, b in pairwise(node_steps))]
    repeated = [node for node, chain in chains.items() if len(set(chain)) != len(chain)]
    conflicts = []
    names = sorted(chains)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = min(len(chains[a]), len(chains[b]))
            at = next((k for k in range(common) if chains[a][k] != chains[b][k]), None)
            if at is not None:
                conflicts.append(f"{a} and {b} delivered different blocks at height {at + 1}")
    behind = {node: len(chain) for node, chain in chains.items() if len(chain) < safety_height}
    integrity = not revoked and not backwards and not repeated and safety_height > 0
    return [
        CheckResult(name=f"{engine}-integrity", ok=integrity, detail=(
            "every node delivered each block once, in height order, and took none back" if integrity else
            "; ".join(revoked[:2] + [f"{n} went backwards" for n in backwards] + [f"{n} repeated a block"
                                                                                  for n in repeated])
            or "nothing delivered")),
        CheckResult(name=f"{engine}-total-order", ok=not conflicts, detail=(
            "every two nodes delivered the same blocks in the same order where both delivered" if not conflicts
            else "; ".join(conflicts[:3]))),
        CheckResult(name=f"{engine}-agreement", ok=safety_height > 0 and not behind, detail=(
            f"the {safety_height} blocks delivered somewhere during the safety phase were delivered everywhere"
            if safety_height > 0 and not behind else
            f"{safety_height} blocks delivered somewhere during the safety phase; delivered by the end: {behind}")),
    ]


def atomic_broadcast(context: TourContext) -> Outcome:
    """The atomic-broadcast demonstration."""
    lines = [f"synchronous (D = 50 ms), a block a second, {SAFETY_S:g} s of faults: loss p = "
             f"{BROADCAST_FAULTS.loss:g}, duplication p = {BROADCAST_FAULTS.duplicate:g}, and a minority cut off "
             f"from t={PARTITION_AT_S:g}s for {PARTITION_S:g}s; a node delivers a block when it becomes final there"]
    checks: list[CheckResult] = []
    figures: dict[str, object] = {}
    pictures = []
    for engine, (nodes, minority) in BROADCAST_ENGINES.items():
        result, traced, chains = traced_run(context, engine, nodes, BROADCAST_FAULTS, minority)
        steps = {node: traced.final_steps(node) for node in chains}
        safety_height = max((height for node in chains for height, _ in traced.final_steps(node, SAFETY_S)),
                            default=0)
        cut = ", ".join(f"node{i}" for i in minority)
        lines.append(f"{engine}: {nodes} nodes, {cut} cut off; blocks delivered " + ", ".join(
            f"{node} {len(chain)}" for node, chain in chains.items())
            + f"; {safety_height} by the end of the safety phase somewhere")
        for node, chain in chains.items():
            lines.append(f"  {node}: " + " ".join(block[:6] for block in chain[:10])
                         + (" ..." if len(chain) > 10 else "")
                         + f"  (in {len(steps[node])} finality steps)")
        checks.extend(broadcast_checks(engine, chains, steps, safety_height))
        figures[engine] = {"delivered": {node: len(chain) for node, chain in chains.items()},
                           "safety_height": safety_height, "order": max(chains.values(), key=len)}
        times = [t / 2 for t in range(0, int(2 * result.virtual_s) + 1)]
        series = {node: [float(max((h for when, h, _ in traced.finals.get(node, []) if when <= t), default=0))
                         for t in times] for node in chains}
        pictures.append(Picture(name=f"{engine}-deliveries.svg", caption=f"{engine}: blocks delivered per node",
                                text=lines_chart(f"{engine}: blocks delivered (final height) on each node",
                                                 times=times, series=series, y_label="blocks delivered",
                                                 shaded=[(PARTITION_AT_S, PARTITION_AT_S + PARTITION_S,
                                                          f"{cut} cut off")])))
    return Outcome(concept="atomic-broadcast", seed=context.seed, lines=tuple(lines), checks=tuple(checks),
                   figures=figures, pictures=tuple(pictures))
