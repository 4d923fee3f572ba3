"""The node core drives every engine the same way (consensus/engine.py): engine writes with deletes and ranges in
one synced batch, the durability request honoured before messages leave, commits by hash (also of blocks that
arrive later, and alarmed when they conflict), the injected Random, and envelopes relayed but delivered only to
their addressee."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from random import Random

import pytest

from chain import crypto
from chain.block import Block
from chain.blocktree import ChainPolicy
from chain.errors import RejectError, RelayedRejectError
from chain.genesis import Genesis
from consensus.engine import (
    ChainView,
    EngineBase,
    EngineContext,
    EngineMessage,
    EngineState,
    MemoryEngineState,
    Outgoing,
    StatusBase,
)
from consensus.primary_backup.engine import PrimaryBackupEngine
from consensus.primary_backup.policy import make_seal
from node.core import NodeCore
from storage.memory import MemoryStore
from tests.chain.helpers import WorkSealPolicy, genesis, sealed_block
from tests.conftest import key

NOW_MS = 10**13
PRIMARY, BACKUP_1, BACKUP_2 = key(40), key(41), key(42)


class RecordingStore(MemoryStore):
    """A MemoryStore that records every batch: (keys put, keys deleted, sync)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[list[bytes], list[bytes], bool]] = []

    def write_batch(self, puts: Mapping[bytes, bytes], deletes: Iterable[bytes] = (), sync: bool = False) -> None:
        deletes = list(deletes)
        self.batches.append((list(puts), deletes, sync))
        super().write_batch(puts, deletes, sync)


class ScriptedEngine(EngineBase):
    """Does whatever the test puts in its next Ready; remembers what it was told."""

    name = "scripted"

    def __init__(self, context: EngineContext) -> None:
        super().__init__()
        self.context = context
        self._policy = WorkSealPolicy(confirmation_finality=False)
        self.persisted: dict[bytes, bytes] = {}
        self.delivered: list[tuple[bytes, EngineMessage]] = []
        self.verdicts: list[tuple[bytes, str | None]] = []

    @property
    def policy(self) -> ChainPolicy:
        return self._policy  # type: ignore[return-value]

    @property
    def tick_interval_s(self) -> float:
        return 1.0

    def start(self, chain: ChainView, state: EngineState, *, now: float, now_ms: int) -> None:
        self.persisted = dict(state.range())

    def tick(self, *, now: float, now_ms: int) -> None:
        pass

    def on_message(self, sender: bytes, message: EngineMessage, *, now: float, now_ms: int) -> None:
        self.delivered.append((sender, message))

    def on_chain_changed(self, chain, connected, disconnected, *, now: float, now_ms: int) -> None:  # type: ignore[no-untyped-def]
        pass

    def on_validated(self, block_hash: bytes, error, *, now: float, now_ms: int) -> None:  # type: ignore[no-untyped-def]
        self.verdicts.append((block_hash, None if error is None else error.code))

    def seal(self, header):  # type: ignore[no-untyped-def]
        raise AssertionError("never proposes")

    def status(self, *, now: float):  # type: ignore[no-untyped-def]
        return StatusBase()


def scripted_core(store: MemoryStore, k: crypto.PrivateKey = PRIMARY, g: Genesis | None = None,
                  ) -> tuple[NodeCore, ScriptedEngine]:
    g = g or genesis()
    core_rng = Random(7)
    engine = ScriptedEngine(EngineContext(genesis=g, key=k, rng=core_rng))
    core = NodeCore.over_store(name="n", genesis=g, store=store, key=k, engine=engine, rng=core_rng)
    core.start(now=0.0, now_ms=NOW_MS)
    return core, engine


def test_engine_writes_puts_deletes_and_ranges_in_one_synced_batch_and_reads_them_back() -> None:
    store = RecordingStore()
    core, engine = scripted_core(store)
    engine._ready.persist.put(b"log/0001", b"a")
    engine._ready.persist.put(b"log/0002", b"b")
    engine._ready.persist.put(b"log/0003", b"c")
    engine._ready.persist.put(b"term", b"1")
    core.tick(now=1.0, now_ms=NOW_MS)
    store.batches.clear()
    engine._ready.persist.delete_range(b"log/0002", b"log/9999")  # truncate the log's suffix
    engine._ready.persist.delete(b"term")
    engine._ready.persist.put(b"log/0002", b"B")  # and rewrite one entry, in the same batch
    engine._ready.messages.append(Outgoing(message=EngineMessage(kind="s/x", payload=b"")))
    out = core.tick(now=2.0, now_ms=NOW_MS)
    assert len(out.engine_messages) == 1
    assert store.batches[0][2] is True and len(store.batches) == 1  # one synced batch, before the message
    _, engine_after = scripted_core(store)  # a restart reads back exactly the result
    expected = MemoryEngineState({b"log/0001": b"a", b"log/0002": b"b", b"log/0003": b"c", b"term": b"1"})
    writes = engine._ready.persist
    writes.delete_range(b"log/0002", b"log/9999")
    writes.delete(b"term")
    writes.put(b"log/0002", b"B")
    expected.apply(writes)
    assert engine_after.persisted == expected.values == {b"log/0001": b"a", b"log/0002": b"B"}


def pb_genesis() -> Genesis:
    g = genesis()
    return Genesis(chain_id=g.chain_id, consensus="primary-backup", balances=g.balances,
                   params={"primary": crypto.address_to_text(PRIMARY.address), "acks_required": 2},
                   validators={k.address: 1 for k in (PRIMARY, BACKUP_1, BACKUP_2)})


def primary_block(g: Genesis) -> Block:
    block, _ = sealed_block(g.initial_state(), g.block(), [], proposer=PRIMARY.address,
                            timestamp_ms=g.block().header.timestamp_ms + 1000)
    return Block(header=block.header.with_seal(make_seal(PRIMARY, block.header)), txs=block.txs)


class ForgetfulBackup(PrimaryBackupEngine):
    """A planted bug: acknowledges without the durability request."""

    def ready(self):  # type: ignore[no-untyped-def]
        ready = super().ready()
        ready.durable = False
        return ready


def backup_core(store: RecordingStore, engine_class: type[PrimaryBackupEngine] = PrimaryBackupEngine) -> NodeCore:
    g = pb_genesis()
    engine = engine_class(EngineContext(genesis=g, key=BACKUP_1, rng=Random(1)))
    core = NodeCore.over_store(name="b1", genesis=g, store=store, key=BACKUP_1, engine=engine)
    core.start(now=0.0, now_ms=NOW_MS)
    return core


def test_an_acknowledgement_leaves_only_after_the_block_is_synced() -> None:
    store = RecordingStore()
    core = backup_core(store)
    store.batches.clear()
    out = core.receive_block(primary_block(pb_genesis()), source="p", now=1.0, now_ms=NOW_MS)
    acks = [m for m in out.engine_messages if b"pb/ack" in m.message.payload]
    assert len(acks) == 1
    connect = next(i for i, (puts, _, _) in enumerate(store.batches) if any(k.startswith(b"H") for k in puts))
    assert any(sync for _, _, sync in store.batches[connect:])  # a sync after the connect batch
    assert core.tree.store._unsynced_writes is False


def test_the_durability_check_has_teeth() -> None:
    store = RecordingStore()
    core = backup_core(store, ForgetfulBackup)
    out = core.receive_block(primary_block(pb_genesis()), source="p", now=1.0, now_ms=NOW_MS)
    assert any(b"pb/ack" in m.message.payload for m in out.engine_messages)
    assert core.tree.store._unsynced_writes is True  # acknowledged while the block sat in the OS cache


def test_envelopes_are_relayed_but_delivered_only_to_their_addressee() -> None:
    g = genesis()
    sender, _ = scripted_core(MemoryStore(), PRIMARY, g)
    relay, relay_engine = scripted_core(MemoryStore(), BACKUP_1, g)
    target, target_engine = scripted_core(MemoryStore(), BACKUP_2, g)
    sender.engine._ready.messages.append(  # type: ignore[attr-defined]
        Outgoing(message=EngineMessage(kind="s/hi", payload=b"x"), to=BACKUP_2.address))
    sent = sender.tick(now=1.0, now_ms=NOW_MS).engine_messages[0]
    relayed = relay.receive_engine_message("s", sent.message.kind, sent.message.payload, now=1.0, now_ms=NOW_MS)
    assert relay_engine.delivered == []
    assert len(relayed.engine_messages) == 1 and relayed.engine_messages[0].exclude == "s"
    again = relay.receive_engine_message("t", sent.message.kind, sent.message.payload, now=1.0, now_ms=NOW_MS)
    assert again.engine_messages == []  # seen before
    hop = relayed.engine_messages[0].message
    target.receive_engine_message("r", hop.kind, hop.payload, now=1.0, now_ms=NOW_MS)
    assert target_engine.delivered == [(PRIMARY.address, EngineMessage(kind="s/hi", payload=b"x"))]


class RefusingEngine(ScriptedEngine):
    def on_message(self, sender: bytes, message: EngineMessage, *, now: float, now_ms: int) -> None:
        raise RejectError("wrong-primary", "refused")


def test_a_refused_statement_is_blamed_on_its_author_not_on_the_peer_that_relayed_it() -> None:
    g = genesis()
    sender, _ = scripted_core(MemoryStore(), PRIMARY, g)
    relay, _ = scripted_core(MemoryStore(), BACKUP_1, g)
    core_rng = Random(7)
    target = NodeCore.over_store(name="t", genesis=g, store=MemoryStore(), key=BACKUP_2, rng=core_rng,
                                 engine=RefusingEngine(EngineContext(genesis=g, key=BACKUP_2, rng=core_rng)))
    target.start(now=0.0, now_ms=NOW_MS)
    sender.engine._ready.messages.append(  # type: ignore[attr-defined]
        Outgoing(message=EngineMessage(kind="s/hi", payload=b"x"), to=BACKUP_2.address))
    sent = sender.tick(now=1.0, now_ms=NOW_MS).engine_messages[0].message
    hop = relay.receive_engine_message("s", sent.kind, sent.payload, now=1.0, now_ms=NOW_MS).engine_messages[0].message
    with pytest.raises(RelayedRejectError) as relayed:
        target.receive_engine_message("r", hop.kind, hop.payload, now=1.0, now_ms=NOW_MS)
    assert relayed.value.origin == PRIMARY.address and relayed.value.code == "wrong-primary"
    sender.engine._ready.messages.append(  # type: ignore[attr-defined]
        Outgoing(message=EngineMessage(kind="s/hi", payload=b"y"), to=BACKUP_2.address))
    direct = sender.tick(now=2.0, now_ms=NOW_MS).engine_messages[0].message
    with pytest.raises(RejectError) as refused:  # straight from its author: the peer's own fault
        target.receive_engine_message("s", direct.kind, direct.payload, now=2.0, now_ms=NOW_MS)
    assert not isinstance(refused.value, RelayedRejectError)


def test_an_engine_batch_with_a_commit_rides_the_commits_fsync_unless_it_is_durable() -> None:
    """A finality proof written with the commit it proves costs one fsync: the commit's synced write syncs the
    log that holds it. A durable batch (one whose messages acknowledge it) is still synced before they leave."""
    g = genesis()
    store = RecordingStore()
    core, engine = scripted_core(store, g=g)
    (first, _), = [sealed_block(g.initial_state(), g.block(), [])]
    core.receive_block(first, source="p", now=1.0, now_ms=NOW_MS)
    store.batches.clear()
    engine._ready.persist.put(b"cert/1", b"proof")
    engine._ready.commit = first.hash
    core.tick(now=2.0, now_ms=NOW_MS)
    assert core.tree.final_height == 1
    assert [sync for _, _, sync in store.batches] == [False, True]  # the proof, then the synced commit
    assert any(k.endswith(b"cert/1") for k in store.batches[0][0])
    store.batches.clear()
    engine._ready.persist.put(b"vote/2", b"v")
    engine._ready.durable = True
    core.tick(now=3.0, now_ms=NOW_MS)
    assert store.batches[0][2] is True


def test_a_commit_of_a_block_not_here_yet_applies_when_it_arrives() -> None:
    g = genesis()
    core, engine = scripted_core(MemoryStore(), g=g)
    (first, state), = [sealed_block(g.initial_state(), g.block(), [])]
    second, _ = sealed_block(state, first, [])
    engine._ready.commit = second.hash
    core.tick(now=1.0, now_ms=NOW_MS)
    assert core.tree.final_height == 0
    core.receive_block(second, source="p", now=2.0, now_ms=NOW_MS)  # an orphan: nothing yet
    out = core.receive_block(first, source="p", now=3.0, now_ms=NOW_MS)
    assert core.tree.final_height == 2 and core.tree.tip.hash == second.hash
    assert any(e["type"] == "final" for e in out.events)


def test_validation_requests_get_verdicts() -> None:
    g = genesis()
    core, engine = scripted_core(MemoryStore(), g=g)
    block, _ = sealed_block(g.initial_state(), g.block(), [])
    core.receive_block(block, source="p", now=1.0, now_ms=NOW_MS)
    engine._ready.validate.extend([block.hash, bytes(32)])
    core.tick(now=2.0, now_ms=NOW_MS)
    assert engine.verdicts == [(block.hash, None), (bytes(32), "not-ready")]


def test_engines_get_the_injected_random_and_the_node_seeds_its_own_from_its_key() -> None:
    g = genesis()
    a = NodeCore.over_store(name="a", genesis=g, store=MemoryStore(), key=PRIMARY)
    b = NodeCore.over_store(name="b", genesis=g, store=MemoryStore(), key=PRIMARY)
    c = NodeCore.over_store(name="c", genesis=g, store=MemoryStore(), key=BACKUP_1)
    assert a.rng.random() == b.rng.random() != c.rng.random()
    seeded = Random(3)
    d = NodeCore.over_store(name="d", genesis=g, store=MemoryStore(), key=PRIMARY, rng=seeded)
    assert d.rng is seeded


def test_a_commit_the_final_chain_excludes_raises_the_alarm_when_its_block_arrives() -> None:
    g = genesis()
    core, engine = scripted_core(MemoryStore(), g=g)
    ours, _ = sealed_block(g.initial_state(), g.block(), [])
    theirs, _ = sealed_block(g.initial_state(), g.block(), [], timestamp_ms=ours.header.timestamp_ms + 5)
    core.receive_block(ours, source="p", now=1.0, now_ms=NOW_MS)
    engine._ready.commit = ours.hash
    core.tick(now=2.0, now_ms=NOW_MS)
    assert core.tree.final_height == 1
    engine._ready.commit = theirs.hash  # a commit for a block we do not have: pending
    core.tick(now=3.0, now_ms=NOW_MS)
    before = core.tree.safety_alarms
    try:
        core.receive_block(theirs, source="p", now=4.0, now_ms=NOW_MS)
    except Exception as error:  # refused: it forks below the final block
        assert getattr(error, "code", "") == "fork-below-final"
    assert core.tree.safety_alarms == before + 1
    assert core.tree.hash_at(1) == ours.hash
