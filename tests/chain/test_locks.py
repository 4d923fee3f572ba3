"""Locks with leases and fencing tokens, and the fenced register, as a state machine (chain/locks.py)."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.block import Block
from chain.blocktree import BlockTree
from chain.chainstore import ChainStore
from chain.errors import DecodeError, RejectError
from chain.genesis import Genesis
from chain.locks import (
    MAX_LEASE_BLOCKS,
    MAX_NAME_CHARS,
    MAX_VALUE_BYTES,
    KvPut,
    LockAcquire,
    LockRelease,
    LockRenew,
    Operation,
    decode_kv_record,
    decode_lock_record,
    fencing_token,
    kv_key,
    lock_key,
    token_position,
)
from chain.state import (
    Application,
    State,
    accumulate,
    apply_block,
    check_operation,
    commitment_of,
    decode_undo,
    undo_block,
)
from chain.tx import Transaction, decode_tx, make_operation
from storage.memory import MemoryStore
from tests.chain.helpers import CHAIN_ID, WorkSealPolicy, build_block, genesis, sealed_block, transfer
from tests.conftest import key

NOW_MS = 10**13
ALICE, BOB, CAROL = 0, 1, 2


def op(sender: int, operation: Operation, nonce: int, fee: int = 1) -> Transaction:
    return make_operation(key(sender), operation, chain_id=CHAIN_ID, fee=fee, nonce=nonce)


class Chain:
    """A linear chain of blocks built in memory, one `step` per block."""

    def __init__(self) -> None:
        self.genesis = genesis()
        self.block: Block = self.genesis.block()
        self.state: State = self.genesis.initial_state()
        self.nonces: dict[int, int] = {}
        self.applications: list[Application] = []

    @property
    def height(self) -> int:
        return self.block.height

    def tx(self, sender: int, operation: Operation) -> Transaction:
        nonce = self.nonces.get(sender, 0)
        self.nonces[sender] = nonce + 1
        return op(sender, operation, nonce)

    def step(self, *txs: Transaction) -> list[str]:
        """Append a block of `txs`; the outcome code of each operation."""
        block = build_block(self.state, self.block, list(txs))
        application = apply_block(self.state, block, reward=50)
        self.block, self.state = block, application.state
        self.applications.append(application)
        return [result.code for result in application.op_results]

    def empty_blocks_until(self, height: int) -> None:
        while self.height < height:
            self.step()

    def lock(self, name: str):  # type: ignore[no-untyped-def]
        raw = self.state.get_record(lock_key(name))
        return None if raw is None else decode_lock_record(raw)

    def kv(self, name: str):  # type: ignore[no-untyped-def]
        raw = self.state.get_record(kv_key(name))
        return None if raw is None else decode_kv_record(raw)

    def recomputed_commitment(self) -> bytes:
        return commitment_of(accumulate(self.state.items(), self.state.records()))


# -- encoding -----------------------------------------------------------------------------------------------------


def test_transfers_keep_their_version_1_bytes_and_ids() -> None:
    tx = transfer(0, 1, 10, 1, 0)
    expected = msgpack.packb([1, 1, CHAIN_ID, key(0).public_key, key(1).address, 10, 1, 0, b"", tx.signature],
                             use_bin_type=True)
    assert tx.encoded == expected
    assert tx.op is None and tx.kind == "transfer"
    assert decode_tx(tx.encoded) == tx


OPERATIONS = [
    LockAcquire(name="jobs", lease_blocks=10), LockRenew(name="jobs", lease_blocks=5), LockRelease(name="jobs"),
    KvPut(key="leader", value=b"node-1", lock="jobs", token=fencing_token(7, 3)),
]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.kind)
def test_operation_transactions_round_trip(operation: Operation) -> None:
    tx = op(ALICE, operation, 4)
    decoded = decode_tx(tx.encoded)
    assert decoded == tx and decoded.op == operation and decoded.hash == tx.hash
    assert decoded.signing_hash == tx.signing_hash
    assert decoded.recipient == key(ALICE).address and decoded.amount == 0
    assert msgpack.unpackb(tx.encoded)[:2] == [1, 2]
    assert tx.to_json()["kind"] == operation.kind


@given(name=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1,
                    max_size=MAX_NAME_CHARS),
       lease=st.integers(1, 2**64 - 1), value=st.binary(max_size=MAX_VALUE_BYTES), token=st.integers(0, 2**64 - 1),
       nonce=st.integers(0, 2**64 - 1))
def test_operation_encoding_is_canonical(name: str, lease: int, value: bytes, token: int, nonce: int) -> None:
    for operation in (LockAcquire(name=name, lease_blocks=lease), LockRelease(name=name),
                      KvPut(key=name, value=value, lock=name, token=token)):
        tx = Transaction.operation(chain_id=CHAIN_ID, sender=key(0).public_key, fee=1, nonce=nonce, op=operation,
                                   signature=b"\x01" * 64)
        assert decode_tx(tx.encoded) == tx


FIELD = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=70) | st.text(max_size=70)


@given(kind=st.integers(-1, 6) | FIELD, fields=st.lists(FIELD, max_size=5), fee=FIELD, nonce=FIELD)
def test_random_operation_arrays_raise_only_decode_error(kind: object, fields: list[object], fee: object,
                                                         nonce: object) -> None:
    raw = msgpack.packb([1, 2, CHAIN_ID, key(0).public_key, fee, nonce, [kind, *fields], b"\x01" * 64],
                        use_bin_type=True)
    try:
        tx = decode_tx(raw)
    except DecodeError:
        return
    assert tx.encoded == raw and tx.op is not None


@pytest.mark.parametrize("decoder", [decode_lock_record, decode_kv_record])
@given(data=st.binary(max_size=300))
def test_record_decoders_raise_only_decode_error(decoder, data: bytes) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(DecodeError):
        decoder(data)


@pytest.mark.parametrize("bad", [
    [1, "jobs", 0],  # a lease of zero blocks
    [3, "jobs", 1],  # release takes a name only
    [4, "k", b"v", "jobs"],  # kv-put without a token
    [9, "jobs"],  # unknown kind
    [1, "", 5],  # empty name
    [1, "x" * (MAX_NAME_CHARS + 1), 5],
    [1, "caf\u00e9", 5],  # not ASCII
    [4, "k", b"v" * (MAX_VALUE_BYTES + 1), "jobs", 1],
    [1, "jobs", True],
])
def test_bad_operations_are_malformed(bad: list[object]) -> None:
    raw = msgpack.packb([1, 2, CHAIN_ID, key(0).public_key, 1, 0, bad, b"\x01" * 64], use_bin_type=True)
    with pytest.raises(DecodeError) as error:
        decode_tx(raw)
    assert error.value.code == "malformed"


def test_unsigned_operation_is_refused() -> None:
    unsigned = Transaction.operation(chain_id=CHAIN_ID, sender=key(0).public_key, fee=1, nonce=0,
                                     op=OPERATIONS[0])
    with pytest.raises(DecodeError, match="unsigned"):
        decode_tx(unsigned.encoded)


# -- the state machine ------------------------------------------------------------------------------------------


def test_grant_gives_a_token_at_the_granting_position_and_a_lease_in_blocks() -> None:
    chain = Chain()
    chain.step()
    before = chain.state.commitment
    assert chain.step(transfer(5, 6, 1, 1, 0), chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=5))) == ["ok"]
    lock = chain.lock("jobs")
    assert lock.holder == key(ALICE).address
    assert lock.token == fencing_token(2, 1) == (2 << 32) + 1 and token_position(lock.token) == (2, 1)
    assert lock.expires_at == 7
    result = chain.applications[-1].op_results[0]
    assert (result.index, result.token, result.expires_at) == (1, lock.token, 7)
    assert chain.state.commitment == chain.recomputed_commitment() != before


def test_contention_in_one_block_and_across_blocks() -> None:
    chain = Chain()
    assert chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=5)),
                      chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=5))) == ["ok", "lock-held"]
    assert chain.step(chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=5))) == ["lock-held"]
    assert chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=5))) == ["lock-held"]  # renew instead
    assert chain.lock("jobs").holder == key(ALICE).address
    # another name is another lock
    assert chain.step(chain.tx(BOB, LockAcquire(name="other", lease_blocks=5))) == ["ok"]


def test_a_refused_operation_pays_its_fee_and_uses_its_nonce() -> None:
    chain = Chain()
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=5)))
    before = chain.state.get(key(BOB).address)
    assert chain.step(chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=5))) == ["lock-held"]
    after = chain.state.get(key(BOB).address)
    assert (after.balance, after.nonce) == (before.balance - 1, before.nonce + 1)


def test_renew_by_the_holder_keeps_the_token_and_moves_the_expiry() -> None:
    chain = Chain()
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=3)))  # height 1, expires at 4
    token = chain.lock("jobs").token
    chain.step()
    assert chain.step(chain.tx(ALICE, LockRenew(name="jobs", lease_blocks=10))) == ["ok"]  # height 3
    assert (chain.lock("jobs").token, chain.lock("jobs").expires_at) == (token, 13)
    chain.empty_blocks_until(11)
    assert chain.step(chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=3))) == ["lock-held"]  # height 12
    assert chain.step(chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=3))) == ["ok"]  # height 13


def test_renew_by_someone_else_expired_or_too_long_is_refused() -> None:
    chain = Chain()
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=3)))  # expires at 4
    assert chain.step(chain.tx(BOB, LockRenew(name="jobs", lease_blocks=3))) == ["not-lock-holder"]
    assert chain.step(chain.tx(ALICE, LockRenew(name="jobs", lease_blocks=MAX_LEASE_BLOCKS + 1))) == [
        "lease-too-long"]
    assert chain.step(chain.tx(ALICE, LockRenew(name="jobs", lease_blocks=3))) == ["lock-not-held"]  # height 4
    assert chain.step(chain.tx(ALICE, LockRenew(name="never", lease_blocks=3))) == ["lock-not-held"]
    assert chain.step(chain.tx(BOB, LockAcquire(name="x", lease_blocks=MAX_LEASE_BLOCKS + 1))) == ["lease-too-long"]
    assert chain.step(chain.tx(BOB, LockAcquire(name="x", lease_blocks=MAX_LEASE_BLOCKS))) == ["ok"]


def test_expiry_at_exactly_the_lease_height_and_regrant_with_a_higher_token() -> None:
    chain = Chain()
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=3)))  # height 1: held in 1, 2, 3
    first = chain.lock("jobs").token
    chain.step()
    assert chain.step(chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=3))) == ["lock-held"]  # height 3
    assert chain.height == 3
    assert chain.step(chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=3))) == ["ok"]  # height 4 = 1 + 3
    second = chain.lock("jobs")
    assert second.holder == key(BOB).address and second.token > first
    assert second.token == fencing_token(4, 0)


def test_release_frees_the_lock_at_once_only_for_its_holder() -> None:
    chain = Chain()
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=100)))
    first = chain.lock("jobs").token
    assert chain.step(chain.tx(BOB, LockRelease(name="jobs"))) == ["not-lock-holder"]
    assert chain.step(chain.tx(ALICE, LockRelease(name="jobs")),
                      chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=5))) == ["ok", "ok"]
    assert chain.lock("jobs").holder == key(BOB).address and chain.lock("jobs").token > first
    assert chain.step(chain.tx(ALICE, LockRelease(name="jobs"))) == ["not-lock-holder"]
    assert chain.step(chain.tx(ALICE, LockRelease(name="nothing"))) == ["lock-not-held"]


def test_register_accepts_only_the_live_holder_with_the_newest_token() -> None:
    chain = Chain()
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=3)))  # expires at 4
    old = chain.lock("jobs").token
    assert chain.step(chain.tx(ALICE, KvPut(key="k", value=b"a1", lock="jobs", token=old))) == ["ok"]
    assert chain.kv("k").value == b"a1" and chain.kv("k").token == old and chain.kv("k").height == 2
    assert chain.step(chain.tx(BOB, KvPut(key="k", value=b"b", lock="jobs", token=old)),
                      chain.tx(ALICE, KvPut(key="k", value=b"x", lock="jobs", token=old + 1)),
                      chain.tx(ALICE, KvPut(key="k", value=b"y", lock="none", token=old))) == [
        "not-lock-holder", "unknown-fencing-token", "lock-not-held"]
    # ALICE is paused past her lease (expires at 4); BOB takes the lock at height 4
    assert chain.step(chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=3))) == ["ok"]
    new = chain.lock("jobs").token
    assert chain.step(chain.tx(ALICE, KvPut(key="k", value=b"a2", lock="jobs", token=old)),
                      chain.tx(BOB, KvPut(key="k", value=b"b1", lock="jobs", token=new))) == [
        "stale-fencing-token", "ok"]
    assert chain.kv("k").value == b"b1"
    # a key is fenced by one lock
    chain.step(chain.tx(CAROL, LockAcquire(name="other", lease_blocks=3)))
    other = chain.lock("other").token
    assert chain.step(chain.tx(CAROL, KvPut(key="k", value=b"c", lock="other", token=other))) == ["wrong-lock"]
    assert chain.state.commitment == chain.recomputed_commitment()


def test_a_write_after_the_lease_without_a_new_grant_is_refused() -> None:
    chain = Chain()
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=2)))  # held in 1, 2
    token = chain.lock("jobs").token
    chain.step()
    assert chain.step(chain.tx(ALICE, KvPut(key="k", value=b"late", lock="jobs", token=token))) == ["lock-not-held"]
    assert chain.kv("k") is None


def test_undo_of_each_operation_restores_records_and_commitment() -> None:
    chain = Chain()
    blocks = [
        [chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=5))],
        [chain.tx(ALICE, LockRenew(name="jobs", lease_blocks=9))],
        [chain.tx(ALICE, KvPut(key="k", value=b"v", lock="jobs", token=fencing_token(1, 0)))],
        [chain.tx(ALICE, LockRelease(name="jobs")), chain.tx(BOB, LockAcquire(name="jobs", lease_blocks=2))],
    ]
    states = [chain.state]
    for txs in blocks:
        assert set(chain.step(*txs)) == {"ok"}
        states.append(chain.state)
    state = chain.state
    for application, before in zip(reversed(chain.applications), reversed(states[:-1]), strict=True):
        undo = decode_undo(application.undo.encode())
        assert undo == application.undo and undo.previous_records
        state = undo_block(state, undo)
        assert state.commitment == before.commitment
        assert dict(state.records()) == dict(before.records())


def test_undo_encoding_versions() -> None:
    chain = Chain()
    chain.step(transfer(3, 4, 5, 1, 0))
    plain = chain.applications[-1].undo.encode()
    assert msgpack.unpackb(plain)[1] == 1  # a block without operations keeps the version-1 undo record
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=5)))
    with_records = chain.applications[-1].undo.encode()
    assert msgpack.unpackb(with_records)[1] == 2
    fields = msgpack.unpackb(with_records)
    fields[4] = []
    with pytest.raises(DecodeError, match="canonical form"):
        decode_undo(msgpack.packb(fields, use_bin_type=True))
    fields[4] = [[b"Zbad", b""]]
    with pytest.raises(DecodeError):
        decode_undo(msgpack.packb(fields, use_bin_type=True))


def test_check_operation_refuses_what_the_next_block_would() -> None:
    chain = Chain()
    chain.step(chain.tx(ALICE, LockAcquire(name="jobs", lease_blocks=3)))  # expires at 4
    late = op(BOB, LockAcquire(name="jobs", lease_blocks=3), 0)
    with pytest.raises(RejectError) as error:
        check_operation(chain.state, late, chain.height + 1)
    assert error.value.code == "lock-held"
    check_operation(chain.state, late, 4)  # the lease is over at 4


# -- reorg (PoW) --------------------------------------------------------------------------------------------------


def _branch(g: Genesis, txs_at: dict[int, list[Transaction]], length: int, work: int, salt: int
            ) -> list[tuple[Block, State]]:
    block, state = g.block(), g.initial_state()
    out = []
    for i in range(length):
        block, state = sealed_block(state, block, txs_at.get(i, []), work=work,
                                    timestamp_ms=block.header.timestamp_ms + 1000 + salt)
        out.append((block, state))
    return out


def test_pow_reorg_undoes_grants_and_writes_and_final_reads_ignore_them() -> None:
    g = Genesis(chain_id=CHAIN_ID, consensus="pow", block_reward=50, finality_threshold=3,
                balances=genesis().balances)
    store = MemoryStore()
    tree = BlockTree(ChainStore(store), g, WorkSealPolicy())  # type: ignore[arg-type]
    grant_a = op(ALICE, LockAcquire(name="jobs", lease_blocks=50), 0)
    write_a = op(ALICE, KvPut(key="k", value=b"A", lock="jobs", token=fencing_token(1, 0)), 1)
    a = _branch(g, {0: [grant_a], 1: [write_a]}, 2, work=1, salt=0)
    for block, _ in a:
        tree.add_block(block, now_ms=NOW_MS)
    assert decode_lock_record(tree.state.get_record(lock_key("jobs"))).holder == key(ALICE).address
    assert tree.store.tx_outcome(write_a.hash) == "ok"
    assert tree.final_record(lock_key("jobs")) is None  # granted, not final: 2 blocks < 3 confirmations
    grant_b = op(BOB, LockAcquire(name="jobs", lease_blocks=50), 0)
    b = _branch(g, {1: [grant_b]}, 3, work=1, salt=7)
    results = [tree.add_block(block, now_ms=NOW_MS) for block, _ in b]
    assert results[-1].status == "connected" and len(results[-1].disconnected) == 2
    lock = decode_lock_record(tree.state.get_record(lock_key("jobs")))
    assert lock.holder == key(BOB).address and lock.token == fencing_token(2, 0)
    assert tree.state.get_record(kv_key("k")) is None  # ALICE's write went with her grant
    assert tree.store.tx_outcome(write_a.hash) is None and tree.store.tx_outcome(grant_b.hash) == "ok"
    assert tree.state.commitment == b[-1][1].commitment
    stored = dict(tree.store.iter_records())
    assert set(stored) == {lock_key("jobs")}
    assert tree.final_record(lock_key("jobs")) is None
    # after a restart the store serves the same records
    reopened = BlockTree(ChainStore(store), g, WorkSealPolicy())  # type: ignore[arg-type]
    assert reopened.state.get_record(lock_key("jobs")) == tree.state.get_record(lock_key("jobs"))


def test_chain_verify_replays_records_and_names_a_tampered_one() -> None:
    from pathlib import Path

    from cli.chain import ChainMismatch, verify_chain
    from node.datadir import OpenChain
    from storage import keys

    g = Genesis(chain_id=CHAIN_ID, consensus="pow", block_reward=50, balances=genesis().balances)
    store = MemoryStore()
    tree = BlockTree(ChainStore(store), g, WorkSealPolicy())  # type: ignore[arg-type]
    txs = {0: [op(ALICE, LockAcquire(name="jobs", lease_blocks=9), 0)],
           1: [op(ALICE, KvPut(key="k", value=b"v", lock="jobs", token=fencing_token(1, 0)), 1)]}
    for block, _ in _branch(g, txs, 3, work=1, salt=0):
        tree.add_block(block, now_ms=NOW_MS)
    opened = OpenChain(datadir=Path("."), genesis=g, store=store, tree=tree)
    assert verify_chain(opened)["ok"] is True
    store.write_batch({keys.record_key(kv_key("k")): b"tampered"}, sync=True)
    with pytest.raises(ChainMismatch, match="record b'Kk' is stored as b'tampered'"):
        verify_chain(opened)
