"""The checkers of testnet/checks.py and testnet/audit.py on hand-made snapshots, ledgers and histories: each one
is shown to fail on an input that violates its invariant, and to pass on one that does not."""

from __future__ import annotations

from chain.blocktree import BlockTree
from chain.chainstore import ChainStore
from chain.devtools import dev_genesis, dev_keys
from consensus.pow.devtools import generate_pow_chain
from consensus.registry import chain_policy
from storage.memory import MemoryStore
from testnet.audit import check_acknowledged_per_node, judge_periods, merge, quorum_periods
from testnet.checks import (
    ChainSnapshot,
    CheckResult,
    LedgerView,
    check_acknowledged_final,
    check_convergence,
    check_final_prefix,
    check_ledger,
    check_liveness,
    check_no_safety_alarm,
    ledger_of_tree,
    snapshot_of_tree,
)
from testnet.collect import NodeView


def snap(node: str, chain: str, height: int, final: int, alarms: int = 0) -> ChainSnapshot:
    """A snapshot whose block at height h is named `<chain><h>`; chain "a" and "b" share nothing but genesis."""
    hashes = {h: ("g" if h == 0 else f"{chain}{h}") for h in range(height + 1)}
    return ChainSnapshot(node=node, height=height, head=hashes[height], final_height=final, hashes=hashes,
                         safety_alarms=alarms)


def forked(node: str, common: int, chain: str, height: int, final: int) -> ChainSnapshot:
    """Shares blocks up to `common` with chain "a", then its own branch `chain`."""
    hashes = {h: ("g" if h == 0 else f"a{h}" if h <= common else f"{chain}{h}") for h in range(height + 1)}
    return ChainSnapshot(node=node, height=height, head=hashes[height], final_height=final, hashes=hashes)


# -- final-prefix agreement ----------------------------------------------------------------------------------------


def test_final_prefix_passes_when_final_blocks_agree_and_tips_differ_above_them() -> None:
    result = check_final_prefix([snap("n0", "a", 10, 7), forked("n1", 8, "b", 12, 8), snap("n2", "a", 9, 3)])
    assert result.ok, result.detail


def test_final_prefix_fails_on_two_final_blocks_at_one_height() -> None:
    result = check_final_prefix([snap("n0", "a", 10, 7), forked("n1", 4, "b", 10, 6)])
    assert not result.ok
    assert "height 5" in result.detail and "n1" in result.detail


def test_final_prefix_ignores_disagreement_above_the_final_heights() -> None:
    assert check_final_prefix([snap("n0", "a", 10, 4), forked("n1", 4, "b", 10, 4)]).ok


# -- convergence ---------------------------------------------------------------------------------------------------


def test_convergence_passes_on_one_chain_with_tips_a_block_apart() -> None:
    result = check_convergence([snap("n0", "a", 10, 5), snap("n1", "a", 11, 6)])
    assert result.ok and "height 10" in result.detail


def test_convergence_fails_on_two_branches() -> None:
    result = check_convergence([snap("n0", "a", 10, 5), forked("n1", 6, "b", 10, 5)])
    assert not result.ok and "differ" in result.detail


def test_convergence_fails_without_nodes_or_without_the_compared_block() -> None:
    assert not check_convergence([]).ok
    partial = ChainSnapshot(node="n1", height=12, head="x", final_height=3, hashes={12: "x"})
    assert not check_convergence([snap("n0", "a", 10, 5), partial]).ok


# -- ledger invariants ---------------------------------------------------------------------------------------------


def ledger(**changes: object) -> LedgerView:
    base: dict[str, object] = {
        "node": "n0", "genesis_supply": 1000, "minted": 100,
        "balances": {"alice": 600, "bob": 450, "miner": 50}, "nonces": {"alice": 3, "bob": 1, "miner": 0},
        "sent_nonces": {"alice": [0, 1, 2], "bob": [0]},
    }
    base.update(changes)
    return LedgerView(**base)  # type: ignore[arg-type]


def test_ledger_passes_on_a_consistent_ledger() -> None:
    result = check_ledger(ledger())
    assert result.ok, result.detail


def test_ledger_fails_when_supply_is_not_genesis_plus_rewards() -> None:
    result = check_ledger(ledger(balances={"alice": 600, "bob": 450, "miner": 51}))
    assert not result.ok and "total supply 1101" in result.detail
    assert not check_ledger(ledger(minted=50)).ok


def test_ledger_fails_on_a_negative_balance() -> None:
    result = check_ledger(ledger(balances={"alice": 700, "bob": 450, "miner": -50}))
    assert not result.ok and "negative balance at miner" in result.detail


def test_ledger_fails_on_a_nonce_gap_a_repeat_or_an_account_nonce_that_does_not_match() -> None:
    gap = check_ledger(ledger(sent_nonces={"alice": [0, 2, 3], "bob": [0]}, nonces={"alice": 3, "bob": 1}))
    assert not gap.ok and "gap or repeat" in gap.detail
    repeat = check_ledger(ledger(sent_nonces={"alice": [0, 1, 1], "bob": [0]}))
    assert not repeat.ok
    mismatch = check_ledger(ledger(nonces={"alice": 4, "bob": 1, "miner": 0}))
    assert not mismatch.ok and "account nonce 4 after 3" in mismatch.detail


# -- safety alarms -------------------------------------------------------------------------------------------------


def test_no_safety_alarm_passes_when_no_node_reports_one() -> None:
    assert check_no_safety_alarm([snap("n0", "a", 3, 1), snap("n1", "a", 3, 1)], {"n0": 0, "n1": 0}).ok


def test_no_safety_alarm_fails_on_an_alarm_in_status_or_in_a_log() -> None:
    from_status = check_no_safety_alarm([snap("n0", "a", 3, 1, alarms=2), snap("n1", "a", 3, 1)])
    assert not from_status.ok and "n0: 2" in from_status.detail
    from_log = check_no_safety_alarm([snap("n0", "a", 3, 1)], {"n1": 1})
    assert not from_log.ok and "n1: 1" in from_log.detail


# -- no lost acknowledged transaction ------------------------------------------------------------------------------


def test_acknowledged_final_passes_when_every_node_has_every_acknowledged_tx() -> None:
    assert check_acknowledged_final(["t1", "t2"], {"n0": {"t1", "t2", "t3"}, "n1": {"t1", "t2"}}).ok


def test_acknowledged_final_fails_when_a_node_lost_one() -> None:
    result = check_acknowledged_final(["t1", "t2"], {"n0": {"t1", "t2"}, "n1": {"t1"}})
    assert not result.ok and "n1 lacks 1" in result.detail


def view(node: str, final_height: int, final_txs: set[str], times: dict[int, int] | None = None) -> NodeView:
    return NodeView(node=node, source="rpc", snapshot=snap(node, "a", final_height + 2, final_height),
                    final_txs=final_txs, block_times_ms=times or {})


def test_acknowledged_per_node_holds_a_lagging_node_only_to_what_it_finalized() -> None:
    acked = {"t1": 3, "t2": 9}
    result = check_acknowledged_per_node(acked, [view("n0", 10, {"t1", "t2"}), view("n1", 5, {"t1"})])
    assert result.ok and "n1 not final that far yet" in result.detail


def test_acknowledged_per_node_fails_when_a_node_final_past_the_height_lacks_the_tx() -> None:
    acked = {"t1": 3, "t2": 9}
    result = check_acknowledged_per_node(acked, [view("n0", 10, {"t1", "t2"}), view("n1", 9, {"t1"})])
    assert not result.ok and "n1" in result.detail


# -- liveness ------------------------------------------------------------------------------------------------------


def test_liveness_passes_when_every_node_advanced_and_fails_on_a_stalled_one() -> None:
    assert check_liveness({"n0": 5, "n1": 5}, {"n0": 9, "n1": 6}).ok
    stalled = check_liveness({"n0": 5, "n1": 5}, {"n0": 9, "n1": 5})
    assert not stalled.ok and "n1 went from height 5 to 5" in stalled.detail
    assert not check_liveness({"n0": 5}, {"n0": 6}, min_progress=2).ok


SECOND = 1_000_000_000


def event(t_s: float, running: list[str], blocked: dict[str, list[str]] | None = None) -> dict[str, object]:
    return {"time_ns": int(t_s * SECOND), "network": {"running": running, "blocked": blocked or {}}}


def test_quorum_periods_follow_the_events_and_merge_consecutive_quorum_states() -> None:
    def majority(state: dict[str, object]) -> bool:
        return len(state["running"]) >= 2  # type: ignore[arg-type]

    events = [event(0, ["a", "b", "c"]), event(10, ["a", "b"]), event(20, ["a"]), event(30, ["a", "b", "c"])]
    periods = quorum_periods(events, majority, end_ns=50 * SECOND)  # type: ignore[arg-type]
    assert periods == [(0, 20 * SECOND), (30 * SECOND, 50 * SECOND)]


def test_liveness_periods_pass_when_the_chain_grew_in_each_long_period() -> None:
    times = {h: 1000 * (2 * h) for h in range(1, 40)}  # a block every 2 s
    views = [view("n0", 30, set(), times)]
    result = judge_periods([(0, 60 * SECOND)], views, grace_s=5, window_s=10)
    assert result.ok and "1 quorum-connected" in result.detail


def test_liveness_periods_fail_when_the_chain_stood_still_in_a_quorum_period() -> None:
    times = {h: 1000 * h for h in range(1, 10)}  # blocks until t=9 s, then nothing
    views = [view("n0", 7, set(), times)]
    result = judge_periods([(20 * SECOND, 60 * SECOND)], views, grace_s=5, window_s=10)
    assert not result.ok and "quorum connected for 40.0 s" in result.detail


def test_liveness_periods_skip_periods_too_short_to_judge() -> None:
    result = judge_periods([(0, 3 * SECOND)], [view("n0", 1, set(), {1: 100})], grace_s=5, window_s=10)
    assert result.ok and "no quorum-connected period" in result.detail


def test_merge_reports_the_first_failure() -> None:
    good = CheckResult(name="x", ok=True, detail="fine")
    bad = CheckResult(name="x", ok=False, detail="broken at n2")
    assert merge("x", [good, good]).ok
    merged = merge("x", [good, bad])
    assert not merged.ok and merged.detail == "broken at n2"
    assert not merge("x", []).ok


# -- builders from a block tree ------------------------------------------------------------------------------------


def small_tree() -> BlockTree:
    keys = dev_keys(4, seed=b"checks-test")
    genesis = dev_genesis(keys, params={"block_interval_s": 1.0}, finality_threshold=2)
    tree = BlockTree(ChainStore(MemoryStore()), genesis, chain_policy(genesis))
    for block in generate_pow_chain(genesis, keys, blocks=6, txs_per_block=3, miner=keys[0].address):
        tree.add_block(block, now_ms=10**13)
    return tree


def test_tree_builders_give_views_that_pass_and_a_tampered_ledger_fails() -> None:
    tree = small_tree()
    snapshot = snapshot_of_tree("n0", tree)
    assert snapshot.height == 6 and snapshot.final_height == 5
    assert check_final_prefix([snapshot, snapshot_of_tree("n1", tree)]).ok
    good = ledger_of_tree("n0", tree)
    assert check_ledger(good).ok
    assert good.minted == 6 * tree.genesis.block_reward
    stolen = dict(good.balances)
    richest = max(stolen, key=stolen.__getitem__)
    stolen[richest] += 1
    tampered = LedgerView(node="n0", genesis_supply=good.genesis_supply, minted=good.minted, balances=stolen,
                          nonces=good.nonces, sent_nonces=good.sent_nonces)
    assert not check_ledger(tampered).ok


def test_the_final_ledger_of_a_tree_is_the_ledger_of_its_final_block() -> None:
    # What a stopped node's store gives (testnet/collect.py store_view) must be what its RPC served `?at=final`:
    # the state of the final block, not of the tip (issue "what an operator trips over", item 8).
    keys = dev_keys(4, seed=b"checks-test")
    genesis = dev_genesis(keys, params={"block_interval_s": 1.0}, finality_threshold=2)
    blocks = list(generate_pow_chain(genesis, keys, blocks=6, txs_per_block=3, miner=keys[0].address))
    full = BlockTree(ChainStore(MemoryStore()), genesis, chain_policy(genesis))
    upto_final = BlockTree(ChainStore(MemoryStore()), genesis, chain_policy(genesis))
    for block in blocks:
        full.add_block(block, now_ms=10**13)
    for block in blocks[:full.final_height]:
        upto_final.add_block(block, now_ms=10**13)
    assert full.final_height == 5 and upto_final.height == 5
    final = ledger_of_tree("n0", full, at_final=True)
    assert final == ledger_of_tree("n0", upto_final)
    assert final.minted == 5 * genesis.block_reward != ledger_of_tree("n0", full).minted
    assert check_ledger(final).ok


def test_convergence_from_stores_gives_the_figures_rpc_gives_and_falls_back_to_final_on_a_frozen_race() -> None:
    agreed = [snap("n0", "a", 10, 5), snap("n1", "a", 12, 6)]
    assert check_convergence(agreed, at_final=True).detail == check_convergence(agreed).detail
    detail = check_convergence(agreed).detail
    assert "height 10" in detail and "tips within 2 blocks" in detail
    raced = [snap("n0", "a", 10, 5), forked("n1", 9, "b", 10, 5)]  # the last block differs, the final ones agree
    assert not check_convergence(raced).ok
    frozen = check_convergence(raced, at_final=True)
    assert frozen.ok and "height 5" in frozen.detail and "frozen" in frozen.detail
    assert not check_convergence([snap("n0", "a", 10, 5), forked("n1", 3, "b", 10, 5)], at_final=True).ok
