"""One simulated node: a real node core with the real P2P relay core around it (pure).

The node core (`node.core.NodeCore`: block tree, mempool, consensus engine) and the P2P relay core
(`p2p.protocol.relay.Relay`: gossip, sync, import decisions and penalties, the very object `p2p.service.P2PService`
drives) are the production code. What this module adds is what the asyncio node does with I/O: it feeds the relay
the messages the simulated network delivers, carries out its actions (send through the network model, import
through the core at once and feed the verdict back, record a penalty), and drives the core's timers. Imports
happen at once (no import queue, so never dropped for a full queue), and misbehaviour is recorded, not acted upon
(an honest network should produce none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chain import crypto
from chain.block import Block, BlockHeader
from chain.crypto import PrivateKey
from chain.errors import RejectError, RelayedRejectError
from chain.tx import Transaction
from consensus.engine import ReadResult
from p2p.protocol.relay import (
    BLOCK_STATUSES,
    Action,
    BatchJob,
    BatchProgress,
    BlockJob,
    BlockVerdict,
    ImportOutcome,
    Job,
    Punish,
    Relay,
    Send,
    TxJob,
)
from storage.base import Store
from testnet.sim.clock import NodeClock
from testnet.sim.core import MiningWorkView, OutputView, SimCore
from testnet.sim.wire import EngineCarrier, SimCodec, Wire

_MAX_RECORDED_FAULTS = 20
_VERDICTS = {status: BlockVerdict(status=status) for status in BLOCK_STATUSES}


class NodeHooks(Protocol):
    """What a node asks of the simulator."""

    def send(self, node: SimNode, peer: str, message: Wire, t: float) -> None:
        """Put `message` on the link from `node` to `peer`."""

    def mining(self, node: SimNode, work: MiningWorkView, t: float) -> None:
        """The node's miners got new work (or were stopped)."""

    def note_event(self, node: SimNode, kind: str, ident: bytes, height: int, t: float) -> None:
        """Something the core reported (a block connected, finality, a reorg), for the trace."""

    def reorged(self, node: SimNode, depth: int, t: float) -> None:
        """The node's best chain moved to another branch, disconnecting `depth` blocks."""

    def read_answers(self, node: SimNode, answers: Sequence[ReadResult], t: float) -> None:
        """The node's engine answered linearizable read requests."""

    def made_block(self, node: SimNode, block_hash: bytes, height: int, t: float) -> None:
        """The node sealed a block of its own and is about to push it (for the causal trace)."""

    def decision(self, node: SimNode, what: str, detail: dict[str, object], t: float) -> None:
        """The node's engine decided something the causal trace records (a leader elected, a vote cast)."""


@dataclass(slots=True, kw_only=True)
class NodeStats:
    """Counters for the run report."""

    blocks_mined: int = 0
    reorgs: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reject code -> count (blocks, txs, engine messages)
    punishments: list[str] = field(default_factory=list)  # the first few penalties with points (a ban in reality)
    punishment_count: int = 0
    punished: dict[str, int] = field(default_factory=dict)  # peer name -> penalties with points

    def rejection(self, code: str) -> None:
        """Count one rejection."""
        self.rejected[code] = self.rejected.get(code, 0) + 1


class SimChain:
    """The relay core's `ChainView` over a simulated node's core, read at the node's current virtual time."""

    def __init__(self, node: SimNode, core: SimCore) -> None:
        self.node = node
        self.core = core
        self.tree = core.tree
        self.mempool = core.mempool

    def best_height(self) -> int:
        """Our tip height."""
        return self.tree.height

    def has_block(self, block_hash: bytes) -> bool:
        """Known in the tree or waiting as an orphan."""
        return self.tree.meta(block_hash) is not None or block_hash in self.tree.orphans

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        """A stored block's encoding."""
        return self.tree.block_bytes(block_hash)

    def locator(self) -> list[bytes]:
        """Our best chain's locator."""
        return self.tree.locator()

    def blocks_after(self, locator: list[bytes], limit: int) -> list[bytes]:
        """Encoded best-chain blocks after the first locator entry we share (as node/adapters.py serves them)."""
        tree = self.tree
        start = tree.fork_point(locator) + 1
        out = []
        for height in range(start, min(tree.height, start + limit - 1) + 1):
            block_hash = tree.hash_at(height)
            raw = tree.block_bytes(block_hash) if block_hash is not None else None
            if raw is None:
                break
            out.append(raw)
        return out

    def has_tx(self, tx_hash: bytes) -> bool:
        """In the mempool or on the best chain."""
        return tx_hash in self.mempool or self.tree.store.tx_location(tx_hash) is not None

    def tx_bytes(self, tx_hash: bytes) -> bytes | None:
        """A pooled transaction's encoding."""
        tx = self.mempool.get(tx_hash)
        return tx.encoded if tx is not None else None

    def pending_tx_hashes(self, limit: int) -> list[bytes]:
        """The pool's best transactions (announced to a peer that just connected)."""
        return [entry.tx_hash for entry in self.mempool.snapshot()[:limit]]

    def precheck_block(self, block: Block) -> bool:
        """The core's precheck at the node's wall clock now."""
        return self.core.precheck_block(block, now_ms=self.node.clock.now_ms(self.node.t))


class SimNode:
    """A node of the simulation: name, key, store and clock survive crashes; the core and P2P state do not."""

    def __init__(self, *, index: int, name: str, key: PrivateKey, store: Store, clock: NodeClock, hashrate_hps: float,
                 hooks: NodeHooks, codec: SimCodec | None = None) -> None:
        self.index = index
        self.name = name
        self.key = key
        self.store = store
        self.clock = clock
        self.hashrate_hps = hashrate_hps
        self.hooks = hooks
        self.codec = codec if codec is not None else SimCodec()
        self.core: SimCore | None = None
        self.relay: Relay | None = None
        self.t = 0.0  # virtual time of the input being handled
        self.incarnation = 0  # bumped by every crash: stale timers of a dead incarnation are ignored
        self.mining_generation = 0  # bumped by every new mining work: stale block-found draws are ignored
        self.stats = NodeStats()
        # validator address -> node name, for envelopes addressed to one validator (node.core.PeerBroadcast)
        self.peer_of_address: dict[bytes, str] = {}
        # every block this node proposed, kept across crashes: a leader's blocks may be truncated from every
        # store by the end of a run, and the one-leader-per-term check must still see that it led
        self.proposed: list[BlockHeader] = []

    # -- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the node runs."""
        return self.core is not None

    @property
    def peers(self) -> list[str]:
        """Connected peers, sorted (none while down)."""
        return self.relay.peers if self.relay is not None else []

    def boot(self, core: SimCore, t: float) -> None:
        """Run `core` (new, or rebuilt over the old store after a crash) with fresh P2P state."""
        self.t = t
        self.core = core
        self.relay = Relay(SimChain(self, core), decode_block=self.codec.decode_block,
                           decode_tx=self.codec.decode_tx)
        self._apply(core.start(now=self.clock.now(t), now_ms=self.clock.now_ms(t)))
        self._flush()

    def crash(self) -> None:
        """Lose every volatile thing: core, mempool, engine state not persisted, peers, mining."""
        self.core = None
        self.relay = None
        self.incarnation += 1
        self.mining_generation += 1

    def _core(self) -> SimCore:
        core = self.core
        if core is None:
            raise AssertionError(f"{self.name} is down: the simulator must not drive it")
        return core

    def _relay(self) -> Relay:
        relay = self.relay
        if relay is None:
            raise AssertionError(f"{self.name} is down: the simulator must not drive it")
        return relay

    # -- links ---------------------------------------------------------------------------------------------------

    def link_up(self, peer: str, peer_height: int, t: float) -> None:
        """A connection to `peer` became ready (the handshake told us its height)."""
        self.t = t
        core, relay = self._core(), self._relay()
        previous = set(relay.peers)
        now = self.clock.now(t)
        self._act(relay.peer_up(peer, peer_height, now))
        if self.core is not None:
            self._apply(core.peers_changed(set(relay.peers), previous, now=now, now_ms=self.clock.now_ms(t)))
        self._flush()

    def link_down(self, peer: str, t: float) -> None:
        """The connection to `peer` closed (the peer crashed, or timed out behind a partition)."""
        self.t = t
        core, relay = self._core(), self._relay()
        if peer not in relay.peers:
            return
        previous = set(relay.peers)
        now = self.clock.now(t)
        self._act(relay.peer_down(peer, now))
        self._apply(core.peers_changed(set(relay.peers), previous, now=now, now_ms=self.clock.now_ms(t)))
        self._flush()

    # -- timers --------------------------------------------------------------------------------------------------

    def tick(self, t: float) -> None:
        """Engine tick, then the P2P maintenance the service runs on its timer (fetch retries, sync)."""
        self.t = t
        core, relay = self._core(), self._relay()
        now, now_ms = self.clock.now(t), self.clock.now_ms(t)
        self._apply(core.tick(now=now, now_ms=now_ms))
        self._act(relay.tick(now))
        self._apply(core.sync_gap(relay.sync.pause_height(now), now=now, now_ms=now_ms))
        self._flush()

    def housekeeping(self, t: float) -> None:
        """Expire old orphans and mempool entries (as the node's housekeeping loop does)."""
        self.t = t
        self._apply(self._core().housekeeping(now=self.clock.now(t), now_ms=self.clock.now_ms(t)))
        self._flush()

    def block_found(self, generation: int, job_id: int, t: float) -> None:
        """The exponential draw for our current mining work came due: hand the core a nonce."""
        if generation != self.mining_generation or self.core is None:
            return
        self.t = t
        self.stats.blocks_mined += 1
        # The simulated network runs at the maximum target, which every nonce meets.
        self._apply(self.core.mined(job_id, 0, now=self.clock.now(t), now_ms=self.clock.now_ms(t)))
        self._flush()

    # -- client --------------------------------------------------------------------------------------------------

    def submit_tx(self, tx: Transaction, t: float) -> str | None:
        """A client submits `tx` here (as over RPC); the reject code, or None when admitted."""
        self.t = t
        core = self._core()
        try:
            out = core.receive_tx(tx, source=None, now=self.clock.now(t), now_ms=self.clock.now_ms(t))
        except RejectError as error:
            return error.code
        self._apply(out)
        self._flush()
        return None

    def admin(self, action: str, value: object, t: float) -> dict[str, object]:
        """An engine admin action (the simulator switches Byzantine behaviours with it)."""
        self.t = t
        out, answer = self._core().admin(action, value, now=self.clock.now(t), now_ms=self.clock.now_ms(t))
        self._apply(out)
        self._flush()
        return answer

    def read_index(self, request_id: int, t: float) -> None:
        """A client asks for a linearizable read here; the engine's answer reaches the hooks' `read_answers`."""
        self.t = t
        self._apply(self._core().read_index(request_id, now=self.clock.now(t), now_ms=self.clock.now_ms(t)))
        self._flush()

    # -- messages ------------------------------------------------------------------------------------------------

    def receive(self, peer: str, message: Wire, t: float) -> None:
        """A message from `peer` arrived."""
        self.t = t
        if isinstance(message, EngineCarrier):
            if message.ident is not None and self._core().envelope_seen(message.ident):
                return  # a copy seen before: the core would drop it without effect (and nothing is pending)
            self._on_engine(peer, message)
        else:
            self._act(self._relay().on_message(peer, message, self.clock.now(t)))
        self._flush()

    def _on_engine(self, peer: str, message: EngineCarrier) -> None:
        core = self._core()
        t = self.t
        try:
            out = core.receive_engine_message(peer, message.engine_kind, message.payload, now=self.clock.now(t),
                                              now_ms=self.clock.now_ms(t))
        except RejectError as error:
            # The service logs an engine's rejection and keeps the connection; an honest run has none. A relayed
            # statement is its author's fault, not the relaying peer's.
            self.stats.rejection(f"engine:{error.code}")
            author = peer
            if isinstance(error, RelayedRejectError):
                author = self.peer_of_address.get(error.origin, crypto.address_to_text(error.origin)[:12])
            self._record_fault(author, f"engine message {message.engine_kind}: {error.code}"
                                       + (f" (relayed by {peer})" if author != peer else ""))
            return
        self._apply(out)

    # -- the relay core's actions --------------------------------------------------------------------------------

    def _act(self, actions: list[Action]) -> None:
        """Carry out the relay's actions in order: send, import at once (feeding the verdict back), punish."""
        for action in actions:
            if isinstance(action, Send):
                if self.relay is not None and action.peer in self.relay.peers:
                    self.hooks.send(self, action.peer, action.message, self.t)
            elif isinstance(action, Punish):
                self.stats.rejection(action.code)
                if action.penalty.points:
                    self._record_fault(action.peer, f"{action.reason}: {action.code} (+{action.penalty.points})")
            elif self.core is not None:
                self._import(action.job)

    def _import(self, job: Job) -> None:
        """What the asyncio node's importer does with a job, synchronously."""
        core, relay = self._core(), self._relay()
        t = self.t
        now, now_ms = self.clock.now(t), self.clock.now_ms(t)
        if isinstance(job, TxJob):
            try:
                out = core.receive_tx(job.tx, source=job.peer, now=now, now_ms=now_ms)
            except RejectError as error:
                self._act(relay.tx_imported(job, error))
                return
            self._apply(out)
            self._act(relay.tx_imported(job, None))
        elif isinstance(job, BlockJob):
            self._act(relay.block_imported(job, self._import_block(job.block, job.peer, job.prechecked), now))
        else:
            self._import_batch(job)

    def _import_block(self, block: Block, peer: str, prechecked: bool) -> ImportOutcome:
        core = self._core()
        t = self.t
        try:
            out = core.receive_block(block, source=peer, now=self.clock.now(t), now_ms=self.clock.now_ms(t),
                                     prechecked=prechecked)
        except RejectError as error:
            return error
        self._apply(out)
        return _VERDICTS[out.results[0].status if out.results else "duplicate"]

    def _import_batch(self, job: BatchJob) -> None:
        progress = BatchProgress()
        for block in job.blocks:
            if not progress.record(block, self._import_block(block, job.peer, False)):
                break
        if self.relay is not None:
            self._act(self.relay.batch_imported(job, progress, self.clock.now(self.t)))

    def _flush(self) -> None:
        """Send the transaction announcements the input queued (the service sends them once per loop iteration)."""
        relay = self.relay
        if relay is not None and relay.announcements_pending:
            self._act(relay.take_announcements())

    # -- the node core's output ----------------------------------------------------------------------------------

    def _apply(self, out: OutputView) -> None:
        """Do what the core asked: push blocks, announce transactions, send engine messages, mine, trace, hand
        the engine's read answers to the clients (the core has applied the input: a read is served from the
        state it left)."""
        if out.reads:
            self.hooks.read_answers(self, out.reads, self.t)
        for what, detail in out.decisions:  # before the messages they cause
            self.hooks.decision(self, what, detail, self.t)
        if not (out.announce_blocks or out.announce_txs or out.engine_messages or out.events
                or out.mining is not None or out.fetch_blocks):
            return  # most inputs (a relayed heartbeat seen before, say) ask for nothing
        relay = self._relay()
        t = self.t
        for peer, block_hash in out.fetch_blocks:
            self._act(relay.want_blocks(peer, [block_hash], self.clock.now(t)))
        for block in out.announce_blocks:
            self.proposed.append(block.header)
            self.hooks.made_block(self, block.hash, block.height, t)
            self._act(relay.announce_block(block))
        for tx, exclude, destination in out.announce_txs:
            relay.announce_tx(tx.hash, exclude, only=self.peer_of_address.get(destination) if destination else None)
        peers = relay.peers
        for outgoing in out.engine_messages:
            message = EngineCarrier.of(outgoing.message.kind, outgoing.message.payload)
            direct = self.peer_of_address.get(outgoing.address) if outgoing.address is not None else None
            if direct is not None and direct in peers:
                self.hooks.send(self, direct, message, t)
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
            depth = event.get("depth")
            self.hooks.reorged(self, depth if isinstance(depth, int) else 0, t)
            connected = event.get("connected")
            last = connected[-1] if isinstance(connected, list) and connected else ""
            self.hooks.note_event(self, "reorg", bytes.fromhex(str(last)), -1, t)
            return
        value, height = event.get("hash"), event.get("height")
        self.hooks.note_event(self, kind, bytes.fromhex(value) if isinstance(value, str) else b"",
                              height if isinstance(height, int) else -1, t)

    def _record_fault(self, peer: str, what: str) -> None:
        self.stats.punishment_count += 1
        self.stats.punished[peer] = self.stats.punished.get(peer, 0) + 1
        if len(self.stats.punishments) < _MAX_RECORDED_FAULTS:
            self.stats.punishments.append(f"{self.name} <- {peer}: {what}")
