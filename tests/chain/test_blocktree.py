"""Block tree: fork choice, reorgs with undo, orphans, invalid branches, finality, restart."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.block import Block
from chain.blocktree import BlockTree
from chain.chainstore import ChainStore, ChainStoreError
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.mempool import Mempool
from chain.orphans import OrphanLimits
from chain.state import State
from chain.validation import Rules, SignatureChecker
from storage.memory import MemoryStore
from tests.chain.helpers import WorkSealPolicy, genesis, sealed_block, transfer

NOW_MS = 10**13


def new_tree(g: Genesis, store: MemoryStore | None = None, **kwargs: object) -> BlockTree:
    return BlockTree(ChainStore(store if store is not None else MemoryStore()), g, WorkSealPolicy(), **kwargs)  # type: ignore[arg-type]


def chain_of(g: Genesis, length: int, *, work: int = 1, start: tuple[Block, State] | None = None,
             txs_at: dict[int, list] | None = None, salt: int = 0) -> list[tuple[Block, State]]:  # type: ignore[type-arg]
    block, state = start or (g.block(), g.initial_state())
    out = []
    for i in range(length):
        txs = (txs_at or {}).get(i, [])
        block, state = sealed_block(state, block, txs, work=work, timestamp_ms=block.header.timestamp_ms + 1000 + salt)
        out.append((block, state))
    return out


def test_linear_chain_and_finality() -> None:
    g = genesis()
    tree = new_tree(g)
    blocks = chain_of(g, 8, txs_at={0: [transfer(0, 1, 10, 1, 0)], 3: [transfer(0, 2, 10, 1, 1)]})
    for block, _ in blocks:
        result = tree.add_block(block, now_ms=NOW_MS)
        assert result.status == "connected"
    assert tree.height == 8
    assert tree.state.commitment == blocks[-1][1].commitment
    assert tree.final_height == 8 - g.finality_threshold + 1
    assert tree.add_block(blocks[2][0], now_ms=NOW_MS).status == "duplicate"


def test_reorg_to_more_work_restores_state_and_returns_transactions_to_mempool() -> None:
    g = genesis()
    tree = new_tree(g)
    rules = Rules.from_genesis(g)
    mempool = Mempool(rules, SignatureChecker())
    a = chain_of(g, 3, txs_at={1: [transfer(0, 1, 10, 1, 0), transfer(3, 4, 5, 1, 0)]})
    b = chain_of(g, 3, work=2, salt=7, txs_at={0: [transfer(3, 4, 5, 1, 0)]})
    for block, _ in a:
        tree.add_block(block, now_ms=NOW_MS)
    assert tree.tip.hash == a[-1][0].hash
    results = [tree.add_block(block, now_ms=NOW_MS) for block, _ in b]
    assert results[0].status == "side-branch"  # work 2 < 3
    switch = results[1]
    assert switch.status == "connected"
    assert [blk.hash for blk in switch.disconnected] == [a[2][0].hash, a[1][0].hash, a[0][0].hash]
    assert tree.tip.hash == b[-1][0].hash
    assert tree.state.commitment == b[-1][1].commitment
    mempool.on_reorg(switch.disconnected, switch.connected, tree.state, now=0.0)
    returned = {tx.hash for tx in mempool.template(tree.state, max_txs=100, max_bytes=10**6)}
    assert transfer(0, 1, 10, 1, 0).hash in returned  # only on the losing branch: back in the mempool
    assert transfer(3, 4, 5, 1, 0).hash not in returned  # included on the winning branch


def test_equal_work_keeps_the_first_seen_tip() -> None:
    g = genesis()
    tree = new_tree(g)
    a = chain_of(g, 2)
    b = chain_of(g, 2, salt=3)
    for block, _ in a + b:
        tree.add_block(block, now_ms=NOW_MS)
    assert tree.tip.hash == a[-1][0].hash
    statuses = {t.hash: t.status for t in tree.tips()}
    assert statuses[a[-1][0].hash] == "active"
    assert statuses[b[-1][0].hash] == "valid-headers"


def test_orphans_wait_for_their_parent() -> None:
    g = genesis()
    tree = new_tree(g)
    blocks = chain_of(g, 4)
    result = tree.add_block(blocks[3][0], now_ms=NOW_MS, source="peer-1")
    assert result.status == "orphan" and result.missing_parent == blocks[2][0].hash
    result = tree.add_block(blocks[2][0], now_ms=NOW_MS, source="peer-1")
    assert result.missing_parent == blocks[1][0].hash  # the chain of orphans waits for its root
    assert any(t.status == "orphan" for t in tree.tips())
    tree.add_block(blocks[0][0], now_ms=NOW_MS)
    result = tree.add_block(blocks[1][0], now_ms=NOW_MS)
    assert tree.tip.hash == blocks[3][0].hash
    assert len(result.connected) == 3


def test_orphan_flood_from_one_source_is_bounded() -> None:
    g = genesis()
    tree = new_tree(g, orphan_limits=OrphanLimits(max_count=20, max_per_source=5))
    other = chain_of(g, 3, salt=99)
    tree.add_block(other[2][0], now_ms=NOW_MS, source="honest")
    flood = chain_of(g, 40, salt=1)
    for block, _ in flood[1:]:
        tree.add_block(block, now_ms=NOW_MS, source="flooder")
    assert len(tree.orphans) <= 20
    assert sum(1 for _, src in tree.orphans.entries() if src == "flooder") == 5
    assert other[2][0].hash in tree.orphans  # the honest peer's orphan survived the flood


def test_orphans_expire() -> None:
    g = genesis()
    tree = new_tree(g, orphan_limits=OrphanLimits(max_age_s=10))
    blocks = chain_of(g, 2)
    tree.add_block(blocks[1][0], now_ms=0, source="p")
    assert len(tree.orphans) == 1
    tree.orphans.expire(now=11)
    assert len(tree.orphans) == 0


def test_invalid_block_marks_descendants_and_tree_stays_on_valid_chain() -> None:
    g = genesis()
    tree = new_tree(g)
    good = chain_of(g, 2)
    for block, _ in good:
        tree.add_block(block, now_ms=NOW_MS)
    # A heavier branch whose first block spends money key 7 does not have (header and merkle root fine).
    bad_first, bad_state = sealed_block(g.initial_state(), g.block(), [], work=5)
    from chain.block import make_block

    broken = make_block(parent=g.block().header, height=1, timestamp_ms=5000, txs=[transfer(7, 1, 10**9, 1, 0)],
                        state_root=bytes(32), proposer=bad_first.header.proposer, seal=(5).to_bytes(2, "big"))
    child, _ = sealed_block(bad_state, broken, [], work=5)
    with pytest.raises(RejectError) as info:
        tree.add_block(broken, now_ms=NOW_MS)
    assert info.value.code == "insufficient-funds"
    assert tree.tip.hash == good[-1][0].hash
    with pytest.raises(RejectError) as info:
        tree.add_block(child, now_ms=NOW_MS)
    assert info.value.code == "bad-prevblk"
    assert any(t.status == "invalid" for t in tree.tips())


def test_reorg_below_final_is_refused_with_a_safety_alarm() -> None:
    g = Genesis(chain_id=genesis().chain_id, consensus="pow", balances=genesis().balances, finality_threshold=2)
    tree = new_tree(g)
    main = chain_of(g, 4)
    for block, _ in main:
        tree.add_block(block, now_ms=NOW_MS)
    assert tree.final_height == 3
    rival = chain_of(g, 3, work=10, salt=5)  # forks at genesis, far more work
    alarms = []
    for block, _ in rival:
        try:
            alarms.extend(tree.add_block(block, now_ms=NOW_MS).alarms)
        except RejectError as exc:
            assert exc.code == "fork-below-final"
    assert alarms and tree.safety_alarms >= 1
    assert tree.tip.hash == main[-1][0].hash
    assert tree.hash_at(3) == main[2][0].hash
    assert "SAFETY ALARM" in alarms[0].describe()


def test_restart_resumes_from_the_store() -> None:
    g = genesis()
    store = MemoryStore()
    tree = new_tree(g, store)
    blocks = chain_of(g, 5, txs_at={2: [transfer(0, 1, 99, 1, 0)]})
    for block, _ in blocks:
        tree.add_block(block, now_ms=NOW_MS)
    reopened = new_tree(g, store)
    assert reopened.tip.hash == tree.tip.hash
    assert reopened.final_height == tree.final_height
    assert reopened.state.commitment == blocks[-1][1].commitment
    other = Genesis(chain_id="another-chain", consensus="pow", balances=g.balances)
    with pytest.raises(ChainStoreError, match="belongs to the network"):
        new_tree(other, store)


@st.composite
def block_forests(draw: st.DrawFn) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Blocks as (parent index or -1 for genesis, work, tx choice), and a delivery order."""
    count = draw(st.integers(1, 14))
    blocks = []
    for i in range(count):
        parent = draw(st.integers(-1, i - 1))
        blocks.append((parent, draw(st.integers(1, 4)), draw(st.integers(0, 3))))
    order = draw(st.permutations(list(range(count))))
    return blocks, order


@settings(max_examples=60)
@given(forest=block_forests(), threshold=st.sampled_from([2, 3, 100]))
def test_any_delivery_order_ends_on_the_most_work_chain(forest: tuple[list[tuple[int, int, int]], list[int]],
                                                        threshold: int) -> None:
    spec, order = forest
    g = Genesis(chain_id=genesis().chain_id, consensus="pow", balances=genesis().balances,
                finality_threshold=threshold)
    built: list[tuple[Block, State, int, int]] = []  # block, state after, cumulative work, nonce of key 0
    for index, (parent, work, choice) in enumerate(spec):
        if parent < 0:
            parent_block, parent_state, parent_work, nonce = g.block(), g.initial_state(), 0, 0
        else:
            parent_block, parent_state, parent_work, nonce = built[parent]
        txs = [transfer(0, choice + 1, 1 + index, 1, nonce)] if choice else []
        block, state = sealed_block(parent_state, parent_block, txs, work=work,
                                    timestamp_ms=parent_block.header.timestamp_ms + 1 + index)
        built.append((block, state, parent_work + work, nonce + (1 if choice else 0)))
    tree = new_tree(g)
    final_seen: dict[int, bytes] = {}
    for index in order:
        try:
            tree.add_block(built[index][0], now_ms=NOW_MS)
        except RejectError as exc:
            assert exc.code == "fork-below-final"
        for height in range(tree.final_height + 1):  # no final block is ever reverted
            assert final_seen.setdefault(height, tree.hash_at(height)) == tree.hash_at(height)
    if threshold == 100:  # nothing final: the most-work chain must win outright
        best_work = max(work for _, _, work, _ in built)
        assert tree.tip.cumulative_work == best_work
    tip_index = next(i for i, b in enumerate(built) if b[0].hash == tree.tip.hash) if tree.height else None
    expected_state = built[tip_index][1] if tip_index is not None else g.initial_state()
    assert tree.state.commitment == expected_state.commitment
    assert dict(tree.store.iter_accounts()) == dict(expected_state.items())


def test_recent_block_bodies_are_served_from_memory_and_forgotten_with_the_block() -> None:
    g = genesis()
    store = MemoryStore()
    chain_store = ChainStore(store, recent_blocks=4)
    chain_store.init_genesis(g)
    tree = BlockTree(chain_store, g, WorkSealPolicy())  # type: ignore[arg-type]
    blocks = [block for block, _ in chain_of(g, 8, txs_at={1: [transfer(0, 1, 10, 1, 0)]})]
    for block in blocks:
        tree.add_block(block, now_ms=NOW_MS)
    assert chain_store.get_block(blocks[-1].hash) is blocks[-1]  # the object stored, not a fresh decode
    old = chain_store.get_block(blocks[1].hash)  # evicted from the 4 kept: decoded from the store again
    assert old == blocks[1] and old is not blocks[1] and old.txs == blocks[1].txs
    chain_store.forget_block(blocks[-1].hash)
    assert chain_store.get_block(blocks[-1].hash) is None


def test_a_previewed_block_is_applied_once_and_only_the_block_it_was_built_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import chain.validation as validation_module
    from chain.block import make_block

    g = genesis()
    tree = new_tree(g)
    txs = [transfer(0, 1, 10, 1, 0)]
    sealed, after = sealed_block(g.initial_state(), g.block(), txs)
    draft = make_block(parent=g.block().header, height=1, timestamp_ms=sealed.header.timestamp_ms, txs=txs,
                       state_root=bytes(32), proposer=sealed.header.proposer)
    assert tree.preview(draft).state.commitment == after.commitment

    def no_second_application(*args: object, **kwargs: object) -> None:
        raise AssertionError("the previewed application should have been used")

    with monkeypatch.context() as patch:
        patch.setattr(validation_module, "apply_block", no_second_application)
        assert tree.add_block(sealed, now_ms=NOW_MS).status == "connected"
    assert tree.state.commitment == after.commitment
    # A preview of other transactions is not used for a block that lacks them (and the block still connects).
    other_txs = [transfer(0, 2, 5, 1, 1)]
    tree.preview(make_block(parent=sealed.header, height=2, timestamp_ms=sealed.header.timestamp_ms + 1000,
                            txs=other_txs, state_root=bytes(32), proposer=sealed.header.proposer))
    empty, after_empty = sealed_block(after, sealed, [])
    assert tree.add_block(empty, now_ms=NOW_MS).status == "connected"
    assert tree.state.commitment == after_empty.commitment
