"""Multi-master replication (多主复制): PoW lets both sides of a partition write, and fork choice settles it.

Five PoW miners are cut into {0, 1} | {2, 3, 4}. With the partition handler off (θ = 0, plain Nakamoto PoW: every
side keeps mining, as Bitcoin does) each side is a master: a client sends one transfer to node 0 and a conflicting
one to node 2, from the same account with the same nonce (a double spend), and each side puts its own in a block.
When the branches meet the one with more work wins every node (chain/blocktree.py's fork choice), its transfer
stays, and the other side's block is disconnected: its transfer can never be applied (the nonce is spent). The
demonstration names the loser.

The branches meet when a node first hears of the other side's tip, which is not the instant of the heal: a tip is
announced with each new block and re-announced every few seconds (p2p/protocol/relay.py), so a branch ahead at the
heal can be caught up before the other side hears of it, and the next block then breaks the tie (seed 7: 12
against 11 at the heal, 12 against 13 when the nodes met). The work each branch had then is what fork choice
compared: the observer samples every node's chain each 0.1 s from the heal until every node holds the same transfer.

With chainlab's default θ = 0.5 the minority side would not mine at all (the partition-handling concept): PoW
becomes single-master during a partition, which is the point of the handler.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from chain.blocktree import BlockTree
from chain.tx import Transaction, make_transfer
from testnet.checks import CheckResult
from testnet.sim.config import SimConfig
from testnet.sim.core import CoreFactory, CoreSpec, SimCore
from testnet.sim.simulator import Simulator
from tour.model import Outcome, Picture, TourContext
from tour.simtools import ScriptedNemesis
from tour.svg import block_tree

NODES = 5
SIDES = ((0, 1), (2, 3, 4))
WRITERS = (0, 2)  # the node each side's client writes to
CUT_AT_S = 10.0
CUT_S = 20.0
WRITE_AT_S = 12.0
OBSERVE_EVERY_S = 0.1  # fine enough to catch the branches' work just before the nodes agree
STEP_EPS_S = 1e-6  # the observer's times are sums of 0.1 s steps: t = 12 arrives as 11.9999999999
TREE_DEPTH = 12  # heights drawn below the lower side's tip at the heal: the fork point and a few blocks before it
K = 12  # above the blocks either side can mine in the partition, so no final block is reverted at the heal


def every_side_mines(inner: CoreFactory) -> CoreFactory:
    """`inner`, with the genesis's partition threshold at 0: a node mines whatever hash power it reaches."""
    def build(spec: CoreSpec) -> SimCore:
        params = {**spec.genesis.params, "partition_threshold": 0.0}
        return inner(replace(spec, genesis=replace(spec.genesis, params=params)))
    return build


def best_chain_txs(tree: BlockTree) -> dict[bytes, int]:
    """Every transaction on the tree's best chain: hash -> height."""
    found: dict[bytes, int] = {}
    for height in range(1, tree.height + 1):
        block_hash = tree.hash_at(height)
        block = tree.get_block(block_hash) if block_hash is not None else None
        for tx in block.txs if block is not None else ():
            found[tx.hash] = height
    return found


@dataclass(slots=True)
class Writer:
    """The two clients: at WRITE_AT_S each sends its transfer to its side (same sender, same nonce), and at the end
    of the partition every node's best chain is read."""

    txs: list[Transaction] = field(default_factory=list)
    refused: list[str | None] = field(default_factory=list)
    at_heal: list[set[bytes]] = field(default_factory=list)
    work_at_heal: list[int] = field(default_factory=list)
    met_at: float | None = None  # the first sample after the heal at which every node held the same transfer
    work_when_met: list[int] = field(default_factory=list)  # per transfer: its branch's work at the sample before
    trees_at_heal: list[list[tuple[str, int, str, bool]]] = field(default_factory=list)  # per side: block_tree rows
    tx_blocks: list[str | None] = field(default_factory=list)  # per side: the block holding its transfer

    def observe(self, t: float, simulator: Simulator) -> None:
        """The simulator's observer hook (each virtual second)."""
        if not self.txs and t >= WRITE_AT_S - STEP_EPS_S:
            sender = simulator.load_keys[0]
            core = simulator.nodes[WRITERS[0]].core
            assert core is not None
            nonce = core.mempool.pending_nonce(sender.address, core.tree.state)
            for i, writer in enumerate(WRITERS):  # one account pays two recipients with one nonce: a double spend
                tx = make_transfer(sender, chain_id=simulator.genesis.chain_id,
                                   recipient=simulator.load_keys[1 + i].address, amount=111 * (i + 1), fee=1,
                                   nonce=nonce)
                self.txs.append(tx)
                self.refused.append(simulator.nodes[writer].submit_tx(tx, t))
        if not self.at_heal and t >= CUT_AT_S + CUT_S - OBSERVE_EVERY_S - STEP_EPS_S:
            self.at_heal = [set(best_chain_txs(n.core.tree)) if n.core is not None else set() for n in simulator.nodes]
            self.work_at_heal = [n.core.tree.tip.cumulative_work if n.core is not None else 0
                                 for n in simulator.nodes]
            self._snapshot_trees(simulator)
        elif self.at_heal and self.met_at is None and len(self.txs) == len(WRITERS):
            self._watch_meeting(t, simulator)

    def _watch_meeting(self, t: float, simulator: Simulator) -> None:
        """Each branch's work (the most any node on it has) until every node holds the same one transfer."""
        cores = [n.core for n in simulator.nodes if n.core is not None]
        held = [set(best_chain_txs(core.tree)) for core in cores]
        on = [[tx.hash in chain for chain in held] for tx in self.txs]
        if any(all(nodes) for nodes in on) and not all(any(nodes) for nodes in on):
            self.met_at = t
            return
        self.work_when_met = [max((core.tree.tip.cumulative_work for core, there in zip(cores, nodes, strict=True)
                                   if there), default=0) for nodes in on]

    def _snapshot_trees(self, simulator: Simulator) -> None:
        """Each writer's block tree at the heal (the recent heights), and the block its side put its transfer in."""
        trees = [core.tree for core in (simulator.nodes[w].core for w in WRITERS) if core is not None]
        if len(trees) != len(WRITERS) or len(self.txs) != len(WRITERS):
            return
        low = max(0, min(tree.height for tree in trees) - TREE_DEPTH)
        for tree, tx in zip(trees, self.txs, strict=True):
            self.trees_at_heal.append([(m.hash.hex(), m.height, m.header.parent.hex(), tree.is_on_best_chain(m.hash))
                                       for m in tree.known_blocks() if m.height >= low])
            height = best_chain_txs(tree).get(tx.hash)
            block_hash = tree.hash_at(height) if height is not None else None
            self.tx_blocks.append(block_hash.hex() if block_hash is not None else None)


def run(context: TourContext) -> Outcome:
    """The demonstration: the partition, the two writes, the heal, and which write survived."""
    writer = Writer()
    config = SimConfig(seed=context.seed, consensus="pow", nodes=NODES, duration_s=CUT_AT_S + CUT_S + 20.0,
                       faults=frozenset(), model="synchronous", block_interval_s=2.0, finality_threshold=K,
                       max_delay_s=0.05, tx_rate_per_s=0.0, liveness_budget_s=60.0)
    simulator = Simulator(config, every_side_mines(context.core_factory), observer=writer.observe,
                          observe_every_s=OBSERVE_EVERY_S)
    simulator.nemesis = ScriptedNemesis(nodes=NODES, sides=SIDES, at_s=CUT_AT_S, duration_s=CUT_S)
    result = simulator.run()
    return _judge(context, simulator, result.ok, result.failed_checks(), writer)


def _judge(context: TourContext, simulator: Simulator, sim_ok: bool, sim_failed: list[str],
           writer: Writer) -> Outcome:
    if len(writer.txs) != 2 or not writer.at_heal:
        return Outcome(concept="multi-master", seed=context.seed, lines=("the writes were not made",),
                       checks=(CheckResult(name="both-sides-accepted", ok=False, detail="no writes"),))
    hashes = [tx.hash for tx in writer.txs]
    accepted = [all(hashes[i] in writer.at_heal[n] for n in side) for i, side in enumerate(SIDES)]
    finals = [best_chain_txs(n.core.tree) if n.core is not None else {} for n in simulator.nodes]
    kept = [[h in chain for chain in finals] for h in hashes]
    winners = [i for i in range(2) if all(kept[i])]
    losers = [i for i in range(2) if not any(kept[i])]
    shares = [sum(simulator.shares[n] for n in side) for side in SIDES]
    work = [max(writer.work_at_heal[n] for n in side) for side in SIDES]
    lines = [f"{NODES} PoW miners, partition handler off (θ = 0); cut into {list(SIDES[0])} | {list(SIDES[1])} at "
             f"t={CUT_AT_S:g}s for {CUT_S:g}s; hash shares {shares[0]:.0%} | {shares[1]:.0%}; k = {K}"]
    for i, (tx, side) in enumerate(zip(writer.txs, SIDES, strict=True)):
        lines.append(f"side {list(side)}: node{WRITERS[i]} took transfer {tx.hash.hex()[:12]} (amount {tx.amount}, "
                     f"nonce {tx.nonce}): {'admitted' if writer.refused[i] is None else writer.refused[i]}; in the "
                     f"side's chain at the heal: {'yes' if accepted[i] else 'no'}")
    heights = {n.name: n.core.tree.height for n in simulator.nodes if n.core is not None}
    lines.append(f"chain work at the heal: side {list(SIDES[0])} {work[0]}, side {list(SIDES[1])} {work[1]}"
                 + (" (a tie: each node keeps the tip it saw first until the next block breaks it)"
                    if work[0] == work[1] else ""))
    resolved = len(winners) == 1 and len(losers) == 1 and writer.met_at is not None
    met = writer.work_when_met
    by_work = resolved and len(met) == 2 and met[winners[0]] >= met[losers[0]]
    if resolved:
        w, lo = winners[0], losers[0]
        lines.append(f"the branches met at t={writer.met_at:.1f}s with work {met[w]} (the branch holding "
                     f"{hashes[w].hex()[:12]}) against {met[lo]}" + (
                         f": side {list(SIDES[w])}'s blocks mined since the heal overtook before the other side's tip "
                         "was announced to it" if work[w] < work[lo] else ""))
        lines.append(f"after the heal every node (heights {min(heights.values())}..{max(heights.values())}) keeps "
                     f"{hashes[w].hex()[:12]} (side {list(SIDES[w])}); the loser: {hashes[lo].hex()[:12]} of side "
                     f"{list(SIDES[lo])}, its block disconnected and its nonce spent")
    checks = (
        CheckResult(name="both-sides-accepted", ok=all(accepted), detail=(
            "each side's nodes had its own conflicting transfer in their best chain before the heal" if all(accepted)
            else f"in the sides' chains at the heal: {accepted}")),
        CheckResult(name="fork-choice-kept-one", ok=by_work, detail=(
            f"every node keeps {hashes[winners[0]].hex()[:12]}, on the branch with at least as much work when the "
            f"branches met; {hashes[losers[0]].hex()[:12]} is on no node's best chain" if by_work else
            f"the transfers are on the nodes' best chains as {kept} (node by node), work when the branches met "
            f"{met or 'never'}: the conflict is not resolved by most work")),
        CheckResult(name="converged-after-heal", ok=sim_ok, detail=(
            "every simulator check passed after the heal" if sim_ok else f"failed: {', '.join(sim_failed)}")),
    )
    figures = {"shares": [round(s, 3) for s in shares], "work_at_heal": work, "work_when_met": met,
               "met_at_s": writer.met_at, "txs": [h.hex() for h in hashes],
               "accepted": accepted,
               "winner": hashes[winners[0]].hex() if len(winners) == 1 else None,
               "loser": hashes[losers[0]].hex() if len(losers) == 1 else None}
    pictures = (_tree_picture(writer, hashes, winners[0] if resolved else None),) if writer.trees_at_heal else ()
    return Outcome(concept="multi-master", seed=context.seed, lines=tuple(lines), checks=checks, figures=figures,
                   pictures=pictures)


def _tree_picture(writer: Writer, hashes: list[bytes], winner: int | None) -> Picture:
    """The two writers' block trees at the heal, merged: the winning side's chain as the best row (side 0's when
    the conflict was not resolved), the blocks holding the two conflicting transfers outlined and labelled."""
    best_side = 0 if winner is None else winner
    rows: dict[str, tuple[str, int, str, bool]] = {}
    for side, tree_rows in enumerate(writer.trees_at_heal):
        for block_hash, height, parent, best in tree_rows:
            on_best = best and side == best_side
            if block_hash not in rows or on_best:
                rows[block_hash] = (block_hash, height, parent, on_best)
    marked: dict[str, str] = {}
    for side, tx_block in enumerate(writer.tx_blocks):
        if tx_block is not None:
            fate = "" if winner is None else " kept" if side == winner else " lost"
            marked[tx_block] = f"tx {hashes[side].hex()[:12]} (side {list(SIDES[side])}){fate}"
    title = "the two sides' chains at the heal, merged (node0's and node2's block trees)"
    text = block_tree(title, list(rows.values()), final_height=-1, marked=marked,
                      note="red: the conflicting transfers' blocks")
    return Picture(name="heal-tree.svg", text=text,
                   caption="the fork the partition made, at the heal: the branch fork choice kept in blue, the other "
                   "side's branch in grey; each conflicting transfer's block outlined in red with its transfer id")
