"""One simulated node: a real node core with the P2P layer's gossip and sync decisions around it (pure).

The core (`node.core.NodeCore`: block tree, mempool, consensus engine) and the pure P2P bookkeeping
(`p2p.protocol.inventory.Gossip`: seen-cache, per-peer known inventory, pending fetches;
`p2p.protocol.sync.SyncPlanner`: locator sync) are the real objects. What this module does by hand is what
`p2p.relay.Relay`, `p2p.importer.Importer` and `p2p.service.P2PService` do around them in the asyncio node, in the
same order: a pushed block is marked seen, prechecked, relayed onward, then imported, and an orphan makes the node
sync from its sender; transactions go announce -> fetch -> admit -> announce onward; a sync batch is imported in
order and its last connected block re-announced. Imports happen at once (no import queue), and misbehaviour is
recorded, not acted upon (an honest network should produce none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from chain.block import Block
from chain.crypto import PrivateKey
from chain.errors import RejectError
from chain.tx import Transaction
from p2p.protocol.codec import DEFAULT_MAX_MESSAGE_BYTES
from p2p.protocol.inventory import Fetch, Gossip
from p2p.protocol.limits import Penalty, block_penalty, relayed_block_penalty, tx_penalty
from p2p.protocol.messages import MAX_BLOCKS_PER_BATCH
from p2p.protocol.sync import SyncPlanner
from p2p.protocol.timing import FETCH_TIMEOUT_S, PEER_TIMEOUT_S
from storage.base import Store
from testnet.sim.clock import NodeClock
from testnet.sim.core import MiningWorkView, OutputView, SimCore
from testnet.sim.wire import BlockPush, EngineCarrier, SyncAsk, SyncBatch, TxBody, TxGet, TxInv, TxNotFound, Wire

_MAX_RECORDED_FAULTS = 20


class NodeHooks(Protocol):
    """What a node asks of the simulator."""

    def send(self, node: SimNode, peer: str, message: Wire, t: float) -> None:
        """Put `message` on the link from `node` to `peer`."""

    def mining(self, node: SimNode, work: MiningWorkView, t: float) -> None:
        """The node's miners got new work (or were stopped)."""

    def note_event(self, node: SimNode, kind: str, ident: bytes, height: int, t: float) -> None:
        """Something the core reported (a block connected, finality, a reorg), for the trace."""


@dataclass(slots=True, kw_only=True)
class NodeStats:
    """Counters for the run report."""

    blocks_mined: int = 0
    reorgs: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reject code -> count (blocks, txs, engine messages)
    punishments: list[str] = field(default_factory=list)  # the first few penalties with points (a ban in reality)
    punishment_count: int = 0

    def rejection(self, code: str) -> None:
        """Count one rejection."""
        self.rejected[code] = self.rejected.get(code, 0) + 1


class SimNode:
    """A node of the simulation: name, key, store and clock survive crashes; the core and P2P state do not."""

    def __init__(self, *, index: int, name: str, key: PrivateKey, store: Store, clock: NodeClock, hashrate_hps: float,
                 hooks: NodeHooks) -> None:
        self.index = index
        self.name = name
        self.key = key
        self.store = store
        self.clock = clock
        self.hashrate_hps = hashrate_hps
        self.hooks = hooks
        self.core: SimCore | None = None
        self.incarnation = 0  # bumped by every crash: stale timers of a dead incarnation are ignored
        self.mining_generation = 0  # bumped by every new mining work: stale block-found draws are ignored
        self.peers: set[str] = set()
        self.gossip = Gossip(request_timeout_s=FETCH_TIMEOUT_S)
        self.sync = SyncPlanner(timeout_s=PEER_TIMEOUT_S)
        self.stats = NodeStats()

    # -- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the node runs."""
        return self.core is not None

    def boot(self, core: SimCore, t: float) -> None:
        """Run `core` (new, or rebuilt over the old store after a crash) with fresh P2P state."""
        self.core = core
        self.peers = set()
        self.gossip = Gossip(request_timeout_s=FETCH_TIMEOUT_S)
        self.sync = SyncPlanner(timeout_s=PEER_TIMEOUT_S)
        self._apply(core.start(now=self.clock.now(t), now_ms=self.clock.now_ms(t)), t)

    def crash(self) -> None:
        """Lose every volatile thing: core, mempool, engine state not persisted, peers, mining."""
        self.core = None
        self.peers = set()
        self.incarnation += 1
        self.mining_generation += 1

    def _core(self) -> SimCore:
        core = self.core
        if core is None:
            raise AssertionError(f"{self.name} is down: the simulator must not drive it")
        return core

    # -- links ---------------------------------------------------------------------------------------------------

    def link_up(self, peer: str, peer_height: int, t: float) -> None:
        """A connection to `peer` became ready (the handshake told us its height)."""
        core = self._core()
        previous = set(self.peers)
        self.peers.add(peer)
        self.gossip.add_peer(peer)
        self.sync.add_peer(peer, peer_height)
        self._apply(core.peers_changed(set(self.peers), previous, now=self.clock.now(t),
                                       now_ms=self.clock.now_ms(t)), t)
        self._poll_sync(t)

    def link_down(self, peer: str, t: float) -> None:
        """The connection to `peer` closed (the peer crashed, or timed out behind a partition)."""
        core = self._core()
        if peer not in self.peers:
            return
        previous = set(self.peers)
        self.peers.discard(peer)
        now = self.clock.now(t)
        self._send_fetches(self.gossip.remove_peer(peer, now), t)
        self.sync.remove_peer(peer)
        self._apply(core.peers_changed(set(self.peers), previous, now=now, now_ms=self.clock.now_ms(t)), t)

    # -- timers --------------------------------------------------------------------------------------------------

    def tick(self, t: float) -> None:
        """Engine tick, then the P2P maintenance the service runs on its timer (fetch retries, sync)."""
        core = self._core()
        now = self.clock.now(t)
        self._apply(core.tick(now=now, now_ms=self.clock.now_ms(t)), t)
        self._send_fetches(self.gossip.expire(now), t)
        self._poll_sync(t)
        if self.core is not None:
            self._apply(self.core.sync_gap(self.sync.target_height(), now=now, now_ms=self.clock.now_ms(t)), t)

    def housekeeping(self, t: float) -> None:
        """Expire old orphans and mempool entries (as the node's housekeeping loop does)."""
        self._apply(self._core().housekeeping(now=self.clock.now(t), now_ms=self.clock.now_ms(t)), t)

    def block_found(self, generation: int, job_id: int, t: float) -> None:
        """The exponential draw for our current mining work came due: hand the core a nonce."""
        if generation != self.mining_generation or self.core is None:
            return
        self.stats.blocks_mined += 1
        # The simulated network runs at the maximum target, which every nonce meets.
        self._apply(self.core.mined(job_id, 0, now=self.clock.now(t), now_ms=self.clock.now_ms(t)), t)

    # -- client --------------------------------------------------------------------------------------------------

    def submit_tx(self, tx: Transaction, t: float) -> str | None:
        """A client submits `tx` here (as over RPC); the reject code, or None when admitted."""
        core = self._core()
        try:
            out = core.receive_tx(tx, source=None, now=self.clock.now(t), now_ms=self.clock.now_ms(t))
        except RejectError as error:
            return error.code
        self._apply(out, t)
        return None

    # -- messages ------------------------------------------------------------------------------------------------

    def receive(self, peer: str, message: Wire, t: float) -> None:
        """A message from `peer` arrived."""
        if isinstance(message, EngineCarrier):
            self._on_engine(peer, message, t)
        elif isinstance(message, BlockPush):
            self._on_block(peer, message.block, t)
        elif isinstance(message, TxInv):
            wanted = self.gossip.on_inv(peer, "tx", message.hashes, self.clock.now(t), self._has_tx)
            if wanted:
                self.hooks.send(self, peer, TxGet(hashes=tuple(wanted)), t)
        elif isinstance(message, TxGet):
            self._on_tx_get(peer, message, t)
        elif isinstance(message, TxBody):
            self._on_tx(peer, message.tx, t)
        elif isinstance(message, TxNotFound):
            self._send_fetches(self.gossip.on_not_found(peer, message.hashes, self.clock.now(t)), t)
        elif isinstance(message, SyncAsk):
            self.hooks.send(self, peer, SyncBatch(blocks=self._blocks_after(list(message.request.locator),
                                                                            message.request.limit)), t)
        else:
            self._on_batch(peer, message, t)

    def _on_engine(self, peer: str, message: EngineCarrier, t: float) -> None:
        core = self._core()
        try:
            out = core.receive_engine_message(peer, message.engine_kind, message.payload, now=self.clock.now(t),
                                              now_ms=self.clock.now_ms(t))
        except RejectError as error:
            # The service logs an engine's rejection as a bug and keeps the connection; an honest run has none.
            self.stats.rejection(f"engine:{error.code}")
            self._record_fault(peer, f"engine message {message.engine_kind}: {error.code}")
            return
        self._apply(out, t)

    def _on_block(self, peer: str, block: Block, t: float) -> None:
        """Relay.on_block, then Importer._import_block."""
        core = self._core()
        self.sync.note_height(peer, block.height)
        if not self.gossip.on_received(peer, block.hash) or self._has_block(block.hash):
            return
        now_ms = self.clock.now_ms(t)
        try:
            prechecked = core.precheck_block(block, now_ms=now_ms)
        except RejectError as error:
            penalty = block_penalty(error.code)
            if penalty.points == 0:
                self.gossip.forget(block.hash)  # not provably invalid (our clock, say): may come again
            self._punish(peer, penalty, error.code, f"block {block.hash.hex()[:16]} failed precheck")
            return
        self._push_block(block, exclude=peer, t=t)
        try:
            out = core.receive_block(block, source=peer, now=self.clock.now(t), now_ms=now_ms, prechecked=prechecked)
        except RejectError as error:
            self._punish(peer, relayed_block_penalty(error.code), error.code, f"block {block.hash.hex()[:16]}")
            return
        self._apply(out, t)
        if out.results and out.results[0].status == "orphan":
            self.sync.request_from(peer, block.height)
            self._poll_sync(t)

    def _on_tx_get(self, peer: str, message: TxGet, t: float) -> None:
        core = self._core()
        missing = []
        for tx_hash in message.hashes:
            tx = core.mempool.get(tx_hash)
            if tx is None:
                missing.append(tx_hash)
                continue
            self.gossip.mark_known(peer, tx_hash)
            self.hooks.send(self, peer, TxBody(tx=tx), t)
        if missing:
            self.hooks.send(self, peer, TxNotFound(hashes=tuple(missing)), t)

    def _on_tx(self, peer: str, tx: Transaction, t: float) -> None:
        """Relay.on_tx, then Importer._import_tx (the core's output announces it onward)."""
        core = self._core()
        if not self.gossip.on_received(peer, tx.hash) or self._has_tx(tx.hash):
            return
        try:
            out = core.receive_tx(tx, source=peer, now=self.clock.now(t), now_ms=self.clock.now_ms(t))
        except RejectError as error:
            self._punish(peer, tx_penalty(error.code), error.code, f"tx {tx.hash.hex()[:16]}")
            return
        self._apply(out, t)

    def _blocks_after(self, locator: list[bytes], limit: int) -> tuple[Block, ...]:
        """Best-chain blocks after the first locator entry we share (ChainAccess.blocks_after + fit_batch)."""
        tree = self._core().tree
        start = tree.fork_point(locator) + 1
        budget = DEFAULT_MAX_MESSAGE_BYTES - 16
        out: list[Block] = []
        for height in range(start, min(tree.height, start + min(limit, MAX_BLOCKS_PER_BATCH) - 1) + 1):
            block_hash = tree.hash_at(height)
            block = tree.get_block(block_hash) if block_hash is not None else None
            if block is None:
                break
            budget -= block.size + 5
            if budget < 0:
                break
            out.append(block)
        return tuple(out)

    def _on_batch(self, peer: str, message: SyncBatch, t: float) -> None:
        """P2PService._on_blocks, then Importer._import_batch."""
        core = self._core()
        if self.sync.in_flight_peer() != peer:
            return  # unsolicited, or late after a timeout
        blocks = message.blocks
        self.sync.on_blocks(peer, [(b.hash, b.height) for b in blocks], core.tree.height)
        for block in blocks:
            self.gossip.on_received(peer, block.hash)
        if blocks:
            self._poll_sync(t)
            self._import_batch(peer, blocks, t)
        self._poll_sync(t)

    def _import_batch(self, peer: str, blocks: tuple[Block, ...], t: float) -> None:
        core = self._core()
        last_connected: Block | None = None
        imported = True
        for block in blocks:
            try:
                out = core.receive_block(block, source=peer, now=self.clock.now(t), now_ms=self.clock.now_ms(t))
            except RejectError as error:
                imported = False
                self._punish(peer, block_penalty(error.code), error.code, f"sync block at height {block.height}")
                break
            self._apply(out, t)
            status = out.results[0].status if out.results else "duplicate"
            if status == "orphan":
                imported = False
                break
            if status == "connected":
                last_connected = block
        self.sync.batch_done(imported=imported)
        if self.core is not None and last_connected is not None and last_connected.height == core.tree.height:
            self._push_block(last_connected, exclude=peer, t=t)

    # -- output --------------------------------------------------------------------------------------------------

    def _apply(self, out: OutputView, t: float) -> None:
        """Do what the core asked: push blocks, announce transactions, send engine messages, mine, trace."""
        if not (out.announce_blocks or out.announce_txs or out.engine_messages or out.events
                or out.mining is not None):
            return  # most inputs (a relayed heartbeat seen before, say) ask for nothing
        for block in out.announce_blocks:
            self._push_block(block, exclude=None, t=t)
        peers = sorted(self.peers)
        for tx, exclude in out.announce_txs:
            for peer in self.gossip.announce_to(tx.hash, peers, exclude):
                self.hooks.send(self, peer, TxInv(hashes=(tx.hash,)), t)
        for outgoing in out.engine_messages:
            message = EngineCarrier.of(outgoing.message.kind, outgoing.message.payload)
            if outgoing.to is not None:
                if outgoing.to in self.peers:
                    self.hooks.send(self, outgoing.to, message, t)
                continue
            for peer in peers:
                if peer != outgoing.exclude:
                    self.hooks.send(self, peer, message, t)
        if out.mining is not None:
            self.mining_generation += 1
            self.hooks.mining(self, out.mining, t)
        for event in out.events:
            self._trace_event(event, t)

    def _trace_event(self, event: dict[str, object], t: float) -> None:
        kind = str(event.get("type"))
        if kind == "reorg":
            self.stats.reorgs += 1
            connected = event.get("connected")
            last = connected[-1] if isinstance(connected, list) and connected else ""
            self.hooks.note_event(self, "reorg", bytes.fromhex(str(last)), -1, t)
            return
        value, height = event.get("hash"), event.get("height")
        self.hooks.note_event(self, kind, bytes.fromhex(value) if isinstance(value, str) else b"",
                              height if isinstance(height, int) else -1, t)

    def _push_block(self, block: Block, *, exclude: str | None, t: float) -> None:
        """Relay.announce_block: the whole block to every peer not known to have it."""
        for peer in self.gossip.announce_to(block.hash, sorted(self.peers), exclude):
            self.hooks.send(self, peer, BlockPush(block=block), t)

    def _send_fetches(self, fetches: list[Fetch], t: float) -> None:
        for fetch in fetches:
            if fetch.peer in self.peers:
                self.hooks.send(self, fetch.peer, TxGet(hashes=fetch.hashes), t)

    def _poll_sync(self, t: float) -> None:
        core = self.core
        if core is None:
            return
        request = self.sync.poll(self.clock.now(t), core.tree.height, core.tree.locator)
        if request is None:
            return
        if request.peer not in self.peers:
            self.sync.remove_peer(request.peer)
            return
        self.hooks.send(self, request.peer, SyncAsk(request=request.message), t)

    # -- views and bookkeeping -----------------------------------------------------------------------------------

    def _has_block(self, block_hash: bytes) -> bool:
        tree = self._core().tree
        return tree.meta(block_hash) is not None or block_hash in tree.orphans

    def _has_tx(self, tx_hash: bytes) -> bool:
        core = self._core()
        return tx_hash in core.mempool or core.tree.store.tx_location(tx_hash) is not None

    def _punish(self, peer: str, penalty: Penalty, code: str, what: str) -> None:
        self.stats.rejection(code)
        if penalty.points:
            self._record_fault(peer, f"{what}: {code} (+{penalty.points})")

    def _record_fault(self, peer: str, what: str) -> None:
        self.stats.punishment_count += 1
        if len(self.stats.punishments) < _MAX_RECORDED_FAULTS:
            self.stats.punishments.append(f"{self.name} <- {peer}: {what}")
