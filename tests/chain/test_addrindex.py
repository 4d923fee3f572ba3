"""The address index (chain/addrindex.py): written and deleted with the blocks it describes, so after any sequence
of connects, disconnects and reorgs it equals a scan of the best chain; paged reads; the schema upgrade that builds
it for a store written before it existed, interrupted or not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chain.addrindex as addrindex
from chain.blocktree import BlockTree
from chain.chainstore import SCHEMA_UPGRADES, ChainStore
from chain.errors import ChainStoreError, RejectError
from chain.genesis import Genesis
from storage import keys
from storage.base import Store
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore
from storage.schema import SCHEMA_VERSION, check_schema, open_store
from tests.chain.helpers import WorkSealPolicy, genesis, sealed_block, transfer
from tests.chain.test_blocktree import NOW_MS, block_forests, chain_of, new_tree
from tests.conftest import key

ROOT = Path(__file__).resolve().parents[2]


def scanned_index(tree: BlockTree) -> dict[bytes, bytes]:
    """What the index must hold: every transaction of the best chain under its sender and its recipient."""
    expected = {}
    for height in range(1, tree.height + 1):
        block_hash = tree.hash_at(height)
        assert block_hash is not None
        block = tree.get_block(block_hash)
        assert block is not None
        for position, tx in enumerate(block.txs):
            for address in (tx.sender_address, tx.recipient):
                expected[keys.address_tx_key(address, height, position)] = b""
    return expected


def stored_index(store: Store) -> dict[bytes, bytes]:
    return dict(store.iterate(prefix=keys.ADDRESS_TX))


def test_connect_indexes_sender_and_recipient_and_a_self_transfer_once() -> None:
    g = genesis()
    tree = new_tree(g)
    blocks = chain_of(g, 4, txs_at={0: [transfer(0, 1, 10, 1, 0), transfer(2, 2, 5, 1, 0)],
                                    2: [transfer(1, 0, 3, 1, 0), transfer(0, 3, 7, 1, 1)]})
    for block, _ in blocks:
        tree.add_block(block, now_ms=NOW_MS)
    store = tree.store.store
    assert stored_index(store) == scanned_index(tree)
    assert len(stored_index(store)) == 7  # 4 transactions, one of them a self-transfer
    history = tree.store.address_history(key(0).address, before=None, limit=10)
    assert [(ref.height, ref.position) for ref, _, _ in history] == [(3, 1), (3, 0), (1, 0)]
    assert [tx.amount for _, _, tx in history] == [7, 3, 10]
    assert all(block_hash == tree.hash_at(ref.height) for ref, block_hash, _ in history)
    page = tree.store.address_history(key(0).address, before=(3, 0), limit=10)
    assert [(ref.height, ref.position) for ref, _, _ in page] == [(1, 0)]
    assert tree.store.address_history(key(0).address, before=None, limit=2)[-1][0].position == 0
    assert tree.store.address_history(key(2).address, before=None, limit=5)[0][2].recipient == key(2).address
    assert tree.store.address_history(key(7).address, before=None, limit=5) == []


def test_an_entry_that_does_not_match_the_best_chain_is_an_error_not_a_wrong_answer() -> None:
    g = genesis()
    tree = new_tree(g)
    for block, _ in chain_of(g, 2, txs_at={0: [transfer(0, 1, 10, 1, 0)]}):
        tree.add_block(block, now_ms=NOW_MS)
    store = tree.store.store
    store.write_batch({keys.address_tx_key(key(5).address, 1, 0): b""}, [])  # a tx key 5 neither sent nor received
    with pytest.raises(ChainStoreError, match="does not match the best chain"):
        tree.store.address_history(key(5).address, before=None, limit=5)
    store.write_batch({keys.address_tx_key(key(6).address, 1, 9): b""}, [])  # past the block's transactions
    with pytest.raises(ChainStoreError, match="does not match the best chain"):
        tree.store.address_history(key(6).address, before=None, limit=5)


def test_a_reorg_moves_the_index_to_the_new_branch() -> None:
    g = genesis()
    tree = new_tree(g)
    a = chain_of(g, 3, txs_at={1: [transfer(0, 1, 10, 1, 0), transfer(3, 4, 5, 1, 0)]})
    b = chain_of(g, 3, work=2, salt=7, txs_at={0: [transfer(3, 4, 5, 1, 0)], 2: [transfer(5, 6, 1, 1, 0)]})
    for block, _ in a:
        tree.add_block(block, now_ms=NOW_MS)
    before = stored_index(tree.store.store)
    assert keys.address_tx_key(key(0).address, 2, 0) in before
    for block, _ in b:
        tree.add_block(block, now_ms=NOW_MS)
    assert tree.tip.hash == b[-1][0].hash
    after = stored_index(tree.store.store)
    assert after == scanned_index(tree)
    assert not any(k.startswith(keys.address_tx_prefix(key(0).address)) for k in after)  # a's block left
    assert [ref.height for ref, _, _ in tree.store.address_history(key(4).address, before=None, limit=5)] == [1]


@settings(max_examples=40, deadline=None)
@given(forest=block_forests(), threshold=st.sampled_from([2, 100]))
def test_after_any_delivery_order_the_index_equals_a_scan_of_the_best_chain(
        forest: tuple[list[tuple[int, int, int]], list[int]], threshold: int) -> None:
    spec, order = forest
    g = Genesis(chain_id=genesis().chain_id, consensus="pow", balances=genesis().balances,
                finality_threshold=threshold)
    built = []  # block, state after, nonce of key 0
    for index, (parent, work, choice) in enumerate(spec):
        parent_block, parent_state, nonce = (g.block(), g.initial_state(), 0) if parent < 0 else built[parent]
        # choice 0: no transaction; 1: a self-transfer; 2, 3: to key 2 or 3, with a second transfer from key 5.
        txs = []
        if choice:
            txs.append(transfer(0, 0 if choice == 1 else choice, 1 + index, 1, nonce))
        if choice >= 2:
            txs.append(transfer(5, 0, 1, 1, sum(1 for c in _branch_choices(spec, parent) if c >= 2)))
        block, state = sealed_block(parent_state, parent_block, txs, work=work,
                                    timestamp_ms=parent_block.header.timestamp_ms + 1 + index)
        built.append((block, state, nonce + (1 if choice else 0)))
    tree = new_tree(g)
    for index in order:
        try:
            tree.add_block(built[index][0], now_ms=NOW_MS)
        except RejectError as exc:
            assert exc.code == "fork-below-final"
        assert stored_index(tree.store.store) == scanned_index(tree)


def _branch_choices(spec: list[tuple[int, int, int]], index: int) -> list[int]:
    """The tx choices of block `index` and its ancestors (key 5's nonce counts its transfers on the branch)."""
    choices = []
    while index >= 0:
        choices.append(spec[index][2])
        index = spec[index][0]
    return choices


def test_limits_and_bounds() -> None:
    store = MemoryStore()
    assert addrindex.address_txs(store, bytes(20), before=None, limit=0) == []
    with pytest.raises(ValueError):
        addrindex.address_txs(store, bytes(20), before=None, limit=-1)
    with pytest.raises(ValueError):
        addrindex.address_txs(store, bytes(19), before=None, limit=1)


# -- the schema upgrade 1 -> 2 -------------------------------------------------------------------------------------


def version_1_store(store: Store, length: int = 12) -> BlockTree:
    """A chain written as version 1 wrote it: everything but the address index, schema "1"."""
    g = genesis()
    chain_store = ChainStore(store)
    chain_store.init_genesis(g)
    tree = BlockTree(chain_store, g, WorkSealPolicy())  # type: ignore[arg-type]
    txs_at = {i: [transfer(i % 4, (i + 1) % 6, 1 + i, 1, i // 4), transfer(6, 6, 1, 1, i)] for i in range(length)}
    for block, _ in chain_of(g, length, txs_at=txs_at):
        tree.add_block(block, now_ms=NOW_MS)
    store.write_batch({keys.SCHEMA_KEY: b"1"}, list(stored_index(store)), sync=True)
    assert stored_index(store) == {}
    return tree


def test_an_old_store_is_upgraded_at_open_and_the_version_written_last(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    tree = version_1_store(store)
    monkeypatch.setattr(addrindex, "UPGRADE_BATCH_KEYS", 5)
    writes: list[set[bytes]] = []
    real_write = store.write_batch
    monkeypatch.setattr(store, "write_batch", lambda puts, deletes=(), sync=False: (
        writes.append(set(dict(puts)) | set(deletes)), real_write(puts, deletes, sync))[1])
    assert check_schema(store, None, upgrades=SCHEMA_UPGRADES) == SCHEMA_VERSION == 2
    assert store.get(keys.SCHEMA_KEY) == b"2" and store.get(keys.ADDRESS_INDEX_UPGRADE_KEY) is None
    assert stored_index(store) == scanned_index(tree)
    assert len(writes) > 5  # bounded batches
    assert writes[-1] == {keys.SCHEMA_KEY} and all(keys.SCHEMA_KEY not in write for write in writes[:-1])


def test_an_old_store_without_its_upgrade_is_refused() -> None:
    store = MemoryStore()
    version_1_store(store, length=2)
    with pytest.raises(Exception, match="schema version 1 is not supported"):
        check_schema(store, None)


def test_an_interrupted_upgrade_resumes_and_one_whose_tip_moved_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    tree = version_1_store(store)
    monkeypatch.setattr(addrindex, "UPGRADE_BATCH_KEYS", 5)
    real_write = store.write_batch
    budget = [3]

    def dying_write(puts: object, deletes: object = (), sync: bool = False) -> None:
        if budget[0] == 0:
            raise KeyboardInterrupt("killed")
        budget[0] -= 1
        real_write(puts, deletes, sync)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "write_batch", dying_write)
    with pytest.raises(KeyboardInterrupt):
        check_schema(store, None, upgrades=SCHEMA_UPGRADES)
    monkeypatch.setattr(store, "write_batch", real_write)
    assert store.get(keys.SCHEMA_KEY) == b"1" and store.get(keys.ADDRESS_INDEX_UPGRADE_KEY) is not None
    partial = stored_index(store)
    assert partial and set(partial.items()) < set(scanned_index(tree).items())
    # An older chainlab ran meanwhile and moved the tip: entries already written may name a disconnected block.
    stale = keys.address_tx_key(key(7).address, 99, 0)
    store.write_batch({stale: bytes(32)})
    g = genesis()
    tip = tree.get_block(tree.tip.hash)
    assert tip is not None
    block, _ = sealed_block(tree.state, tip, [])  # no transaction: no index entry, as an older chainlab writes
    tree.add_block(block, now_ms=NOW_MS)
    assert check_schema(store, None, upgrades=SCHEMA_UPGRADES) == 2
    assert stored_index(store) == scanned_index(tree) and stale not in stored_index(store)
    assert g.hash == tree.store.genesis_hash()


_KILLED_UPGRADE = """
import os, signal, sys
import chain.addrindex as addrindex
from chain.chainstore import SCHEMA_UPGRADES
from storage.leveldb import LevelDBStore
from storage.schema import open_store

addrindex.UPGRADE_BATCH_KEYS = 5
batches = [0]
real = LevelDBStore.write_batch
def write_batch(self, puts, deletes=(), sync=False):
    if batches[0] == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    batches[0] += 1
    real(self, puts, deletes, sync)
LevelDBStore.write_batch = write_batch
open_store(sys.argv[1], upgrades=SCHEMA_UPGRADES)
"""


@pytest.mark.parametrize("batches_before_kill", [1, 4])
def test_a_sigkill_in_the_middle_of_the_upgrade_leaves_a_store_that_finishes_it(
        tmp_path: Path, batches_before_kill: int) -> None:
    path = tmp_path / "chain"
    with LevelDBStore(path) as store:
        store.write_batch({keys.SCHEMA_KEY: b"1"})
        tree = version_1_store(store)
        expected = scanned_index(tree)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", _KILLED_UPGRADE, str(path), str(batches_before_kill)], env=env,
                            capture_output=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    with LevelDBStore(path) as store:
        assert store.get(keys.SCHEMA_KEY) == b"1"
        assert store.get(keys.ADDRESS_INDEX_UPGRADE_KEY) is not None
        assert 0 < len(stored_index(store)) < len(expected)
    with open_store(path, upgrades=SCHEMA_UPGRADES) as store:
        assert store.get(keys.SCHEMA_KEY) == b"2"
        assert stored_index(store) == expected
