"""The blockchain as a distributed system: longest (most-work) chain and orphan blocks (最长链与孤块), and
confirmation finality (确认与最终性).

Both run PoW networks in the simulator with delays long against the block interval (up to 1 s for 2 s blocks),
so miners often find blocks on the same parent before hearing of each other's: forks happen by themselves, and
blocks overtake their parents on the wire and wait as orphans. The block tree (chain/blocktree.py) resolves each
fork by most cumulative work; `ChainEvents` (tour/simtools.py) records every reorg's depth as the cores report it.
"""

from __future__ import annotations

from collections import Counter
from random import Random

from chain.blocktree import BlockTree
from testnet.checks import CheckResult
from testnet.sim.config import SEED_MAX, SimConfig
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext, count
from tour.simtools import ChainEvents
from tour.svg import bar_chart, block_tree

SAFETY = ("final-prefix-agreement", "no-safety-alarm")
TREE_HEIGHTS = 40


def forky_config(seed: int, *, duration_s: float, finality_threshold: int) -> SimConfig:
    """PoW, 5 nodes, 2 s blocks, delays up to 1 s: forks are common."""
    return SimConfig(seed=seed, consensus="pow", nodes=5, duration_s=duration_s, faults=frozenset(),
                     model="synchronous", block_interval_s=2.0, max_delay_s=1.0,
                     finality_threshold=finality_threshold, tx_rate_per_s=0.2)


def _tree_picture(tree: BlockTree, node: str) -> Picture:
    low = max(0, tree.height - TREE_HEIGHTS)
    blocks = [(meta.hash.hex(), meta.height, meta.header.parent.hex(), tree.is_on_best_chain(meta.hash))
              for meta in tree.known_blocks() if meta.height >= low]
    return Picture(name="block-tree.svg", caption=f"{node}'s block tree: best chain, stale branches, finality line",
                   text=block_tree(f"{node}'s block tree after the run (last {TREE_HEIGHTS} heights)", blocks,
                                   final_height=tree.final_height))


def longest_chain(context: TourContext) -> Outcome:
    """One forky run: forks resolved by most work, orphans adopted, every node on the one most-work tip."""
    events = ChainEvents()
    config = forky_config(context.seed, duration_s=90.0 if context.fast else 240.0, finality_threshold=6)
    simulator = Simulator(config, events.factory(context.core_factory))
    result = simulator.run()
    trees = [(node.name, node.core.tree) for node in simulator.nodes if node.core is not None]
    best_work = max(tip.cumulative_work for _, tree in trees for tip in tree.tips() if tip.status != "invalid")
    best_name, best_tree = max(trees, key=lambda named: named[1].tip.cumulative_work)
    tip_work = best_tree.tip.cumulative_work
    # A node whose tip is on the most-work chain but below its top has not yet heard of the blocks mined last
    # (the run stops when the simulator's checks are met, with a block possibly still on the wire).
    behind = {name: best_tree.tip.height - tree.tip.height for name, tree in trees
              if tree.tip.hash != best_tree.tip.hash and best_tree.is_on_best_chain(tree.tip.hash)}
    off_chain = [name for name, tree in trees if not best_tree.is_on_best_chain(tree.tip.hash)]
    tips: dict[str, list[str]] = {}
    for name, tree in trees:
        tips.setdefault(f"{tree.tip.hash.hex()[:12]} (height {tree.tip.height})", []).append(name)
    mined = result.stats["blocks_mined"]
    assert isinstance(mined, int)
    stale = mined - best_tree.height  # counted, not looked up: side branches below the final height are pruned
    orphan_tips = sum(1 for _, tree in trees for tip in tree.tips() if tip.status == "orphan")
    depths = Counter(events.reorg_depths)
    lines = [f"5 PoW miners, 2 s blocks, delays up to 1 s, {config.duration_s:g} virtual seconds "
             f"(replay: {config.command()})",
             f"{mined} blocks mined, {stale} of them stale (off the best chain), "
             f"{count(len(events.reorg_depths), 'reorg')} (depth: count {dict(sorted(depths.items()))})",
             f"{events.orphans} blocks arrived before their parent and waited as orphans; {orphan_tips} still wait",
             "the nodes' tips: " + "; ".join(f"{tip} on {', '.join(names)}" for tip, names in tips.items())
             + f"; the most work any node knows: {best_work}"]
    converged = not off_chain and tip_work == best_work
    in_flight = (f"; {', '.join(sorted(behind))} {max(behind.values())} block(s) behind {best_name}, not yet heard "
                 "when the run stopped" if behind else "")
    checks = (
        CheckResult(name="forks-happened", ok=stale > 0 and bool(events.reorg_depths), detail=(
            f"{count(stale, 'stale block')}, {count(len(events.reorg_depths), 'reorg')}"
            if stale and events.reorg_depths else
            "no fork in this run: nothing was resolved (another seed or a longer run)")),
        CheckResult(name="most-work-tip-wins", ok=converged and result.ok, detail=(
            f"every node is on the most-work chain any node knows{in_flight}; simulator checks "
            f"{'passed' if result.ok else 'failed: ' + ', '.join(result.failed_checks())}" if converged else
            f"{', '.join(off_chain)} on another branch than {best_name}'s tip (work {tip_work})" if off_chain else
            f"a node knows a tip of work {best_work}, the nodes are on work {tip_work}")),
        CheckResult(name="orphans-adopted", ok=orphan_tips == 0, detail=(
            f"{events.orphans} orphans, every one connected once its parent came" if orphan_tips == 0 else
            f"{orphan_tips} blocks still wait for their parent")),
    )
    return Outcome(concept="longest-chain", seed=context.seed, lines=tuple(lines), checks=checks,
                   figures={"blocks_mined": mined, "stale_blocks": stale,
                            "reorg_depths": dict(sorted(depths.items())), "orphans": events.orphans},
                   pictures=(_tree_picture(trees[0][1], trees[0][0]),))


def finality(context: TourContext, *, finality_threshold: int = 4) -> Outcome:
    """Many forky runs: the distribution of reorg depths against k, and no final block ever reverted."""
    runs = 6 if context.fast else 30
    seeds = Random(context.seed)
    depths: Counter[int] = Counter()
    unsafe: list[SimResult] = []
    for _ in range(runs):
        events = ChainEvents()
        config = forky_config(seeds.randint(0, SEED_MAX), duration_s=60.0, finality_threshold=finality_threshold)
        result = Simulator(config, events.factory(context.core_factory)).run()
        depths.update(events.reorg_depths)
        if set(SAFETY) & set(result.failed_checks()):
            unsafe.append(result)
    total = sum(depths.values())
    deepest = max(depths, default=0)
    k = finality_threshold
    lines = [f"{runs} runs of 5 PoW miners (2 s blocks, delays up to 1 s, 60 virtual seconds each), k = {k}",
             f"{count(total, 'reorg')}; by depth: {dict(sorted(depths.items()))}"]
    for d in range(1, max(deepest, k) + 1):
        reached = sum(count for depth, count in depths.items() if depth >= d)
        lines.append(f"  a block with {d} confirmation{'s' if d > 1 else ''} was reverted in {count(reached, 'reorg')}"
                     f" ({reached / total:.0%} of them)" if total else f"  depth >= {d}: none")
    checks = (
        CheckResult(name="reorgs-happened", ok=total > 0, detail=f"{count(total, 'reorg')} over {count(runs, 'run')}"),
        CheckResult(name="no-final-block-reverted", ok=not unsafe, detail=(
            f"deepest reorg {deepest} < k = {k} and no safety alarm in any run" if not unsafe else
            f"{len(unsafe)} runs broke finality (k = {k} too small for these delays), first: "
            f"{unsafe[0].first_violation or unsafe[0].failed_checks()}; replay: {unsafe[0].config.command()}")),
    )
    bars = [(str(d), float(depths.get(d, 0))) for d in range(1, max(deepest, k) + 1)]
    picture = Picture(name="reorg-depths.svg", caption=f"reorg depth histogram over {runs} runs, k = {k} marked",
                      text=bar_chart(f"reorg depths over {runs} forky PoW runs (k = {k})", bars,
                                     y_label="reorgs", marker=(k - 1, f"k = {k}")))
    return Outcome(concept="finality", seed=context.seed, lines=tuple(lines), checks=checks,
                   figures={"runs": runs, "k": k, "reorg_depths": dict(sorted(depths.items())),
                            "unsafe_runs": len(unsafe)}, pictures=(picture,))
