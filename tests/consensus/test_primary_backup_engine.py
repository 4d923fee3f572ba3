"""Primary-backup: acknowledgements counted once per backup, strangers refused, backups acknowledge only durable
blocks, and a block is committed by hash once enough backups acknowledged it."""

from __future__ import annotations

from random import Random

import pytest

from chain import crypto
from chain.blocktree import BlockTree
from chain.chainstore import ChainStore
from chain.errors import RejectError
from chain.genesis import Genesis
from consensus.engine import EngineContext, EngineMessage, MemoryEngineState
from consensus.primary_backup import engine as pb
from storage.memory import MemoryStore
from tests.conftest import key

PRIMARY, BACKUP_1, BACKUP_2, STRANGER = key(40), key(41), key(42), key(43)
BLOCK = bytes(range(32))


def genesis() -> Genesis:
    return Genesis(chain_id="pb-test", consensus="primary-backup",
                   params={"primary": crypto.address_to_text(PRIMARY.address), "acks_required": 2},
                   validators={k.address: 1 for k in (PRIMARY, BACKUP_1, BACKUP_2)})


def started(k: crypto.PrivateKey) -> tuple[pb.PrimaryBackupEngine, BlockTree]:
    g = genesis()
    engine = pb.PrimaryBackupEngine(EngineContext(genesis=g, key=k, rng=Random(1)))
    tree = BlockTree(ChainStore(MemoryStore()), g, engine.policy)
    engine.start(tree, MemoryEngineState(), now=0.0, now_ms=1_000)
    engine.ready()
    return engine, tree


def ack(block_hash: bytes = BLOCK) -> EngineMessage:
    return EngineMessage(kind=pb.ACK_KIND, payload=pb.encode_ack(block_hash, 1))


def test_each_backup_counts_once() -> None:
    observer, _ = started(PRIMARY)
    for _ in range(3):
        observer.on_message(BACKUP_1.address, ack(), now=0.0, now_ms=0)
    assert observer._acks[BLOCK] == {BACKUP_1.address}


@pytest.mark.parametrize(("sender", "message", "code"), [
    (STRANGER.address, ack(), "not-a-backup"),
    (PRIMARY.address, ack(), "not-a-backup"),
    (BACKUP_1.address, EngineMessage(kind="pb/vote", payload=b""), "unknown-engine-message"),
    (BACKUP_1.address, EngineMessage(kind=pb.ACK_KIND, payload=b"\x00"), "malformed"),
])
def test_refusals_carry_their_code(sender: bytes, message: EngineMessage, code: str) -> None:
    observer, _ = started(PRIMARY)
    with pytest.raises(RejectError) as info:
        observer.on_message(sender, message, now=0.0, now_ms=0)
    assert info.value.code == code
    assert observer.ready().is_empty()


def test_primary_proposes_and_seals() -> None:
    primary, tree = started(PRIMARY)
    primary.tick(now=primary.interval_s, now_ms=20_000)
    request = primary.ready().propose
    assert request is not None and request.parent_hash == tree.tip.hash and request.proposer == PRIMARY.address
    backup, _ = started(BACKUP_1)
    backup.tick(now=100.0, now_ms=200_000)
    assert backup.ready().propose is None  # only the primary proposes


def test_backup_acknowledges_durably_and_commits_by_hash_at_the_quorum() -> None:
    from chain.devtools import block_on

    backup, tree = started(BACKUP_1)
    g = genesis()
    state, parent = g.initial_state(), g.block()
    draft, _ = block_on(state, parent, [], reward=g.block_reward, proposer=PRIMARY.address,
                        timestamp_ms=parent.header.timestamp_ms + 1)
    from chain.block import Block
    from consensus.primary_backup.policy import make_seal

    block = Block(header=draft.header.with_seal(make_seal(PRIMARY, draft.header)), txs=draft.txs)
    result = tree.add_block(block, now_ms=2_000)
    assert result.status == "connected"
    meta = tree.meta(block.hash)
    assert meta is not None
    backup.on_chain_changed(tree, [meta], [], now=1.0, now_ms=2_000)
    ready = backup.ready()
    assert ready.durable  # the acknowledgement leaves only after the block is on disk
    assert [pb.decode_ack(m.message.payload) for m in ready.messages] == [(block.hash, 1)]
    assert ready.commit is None  # our own acknowledgement is one of two
    backup.on_message(BACKUP_2.address, ack(block.hash), now=1.1, now_ms=2_100)
    assert backup.ready().commit == block.hash
    backup.on_message(BACKUP_2.address, ack(block.hash), now=1.2, now_ms=2_200)
    assert backup.ready().commit is None  # said once


def _testnet_genesis(members: list[crypto.PrivateKey]) -> Genesis:
    """The genesis `testnet up` makes for these nodes with no parameter given (the first is the primary)."""
    from consensus.registry import spec_named

    addresses = [k.address for k in members]
    params, validators = spec_named("primary-backup").testnet_network(addresses, [1.0] * len(addresses), 1.0, {})
    return Genesis(chain_id="pb-testnet", consensus="primary-backup", params=params, validators=validators)


@pytest.mark.parametrize(("nodes", "acks"), [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3)])
def test_a_testnet_needs_a_majority_of_the_backups_by_default(nodes: int, acks: int) -> None:
    members = [PRIMARY, BACKUP_1, BACKUP_2, STRANGER, key(44)][:nodes]
    assert _testnet_genesis(members).params["acks_required"] == acks


def test_a_primary_cut_off_alone_finalizes_nothing_under_the_testnet_default() -> None:
    from chain.block import Block
    from chain.devtools import block_on
    from consensus.primary_backup.policy import make_seal

    g = _testnet_genesis([PRIMARY, BACKUP_1, BACKUP_2])
    primary = pb.PrimaryBackupEngine(EngineContext(genesis=g, key=PRIMARY, rng=Random(1)))
    tree = BlockTree(ChainStore(MemoryStore()), g, primary.policy)
    primary.start(tree, MemoryEngineState(), now=0.0, now_ms=1_000)
    primary.ready()
    parent = g.block()
    draft, _ = block_on(g.initial_state(), parent, [], reward=g.block_reward, proposer=PRIMARY.address,
                        timestamp_ms=parent.header.timestamp_ms + 1)
    block = Block(header=draft.header.with_seal(make_seal(PRIMARY, draft.header)), txs=draft.txs)
    assert tree.add_block(block, now_ms=2_000).status == "connected"
    meta = tree.meta(block.hash)
    assert meta is not None
    primary.on_chain_changed(tree, [meta], [], now=1.0, now_ms=2_000)
    for second in range(2, 30):  # partitioned: no acknowledgement ever arrives
        primary.tick(now=float(second), now_ms=1_000 * second)
        assert primary.ready().commit is None
    primary.on_message(BACKUP_1.address, ack(block.hash), now=30.0, now_ms=30_000)
    assert primary.ready().commit is None  # one of the two backups is not a majority
    primary.on_message(BACKUP_2.address, ack(block.hash), now=30.1, now_ms=30_100)
    assert primary.ready().commit == block.hash
