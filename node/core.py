"""The node core (pure): block tree + mempool + consensus engine, driven by the asyncio node and by the simulator.

Everything a node decides lives here; the drivers only do I/O. Each input (`start`, `tick`, `receive_block`,
`receive_tx`, `receive_engine_message`, `peers_changed`, `sync_gap`, `mined`, `admin`) returns an `Output` telling
the driver what to send, what to seal in its workers, what to publish and what to log. The engine is driven as
consensus/engine.py documents (persist with its durability request, then send, then apply) inside the core, so
both drivers follow the same order; engine messages leave in the signed, flooded envelope (consensus/envelope.py)
and arriving ones are routed by it. The core never asks which engine runs: the engine's spec
(consensus/registry.py) and its outputs say everything.

No clocks and no randomness here: `now` (monotonic seconds) and `now_ms` (wall-clock milliseconds for block
timestamps) come from the driver, which for the simulator is a virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from random import Random

from chain import crypto
from chain.block import Block, make_block
from chain.blocktree import AddResult, BlockTree
from chain.chainstore import ChainStore
from chain.errors import RejectError, RelayedRejectError
from chain.genesis import Genesis
from chain.housekeeping import MEMPOOL_MAX_AGE_S
from chain.leases import LeaseWatch
from chain.mempool import Mempool
from chain.state import check_operation
from chain.tx import Transaction
from chain.validation import SignatureChecker, check_block_cheap
from consensus.engine import Engine, EngineMessage, Outgoing, ProposeRequest, Puzzle, ReadResult, Ready, Sealed
from consensus.envelope import ENVELOPE_KIND, EnvelopeRouter, VerifiedSignatures
from consensus.registry import check_genesis, engine_for
from storage.base import Store

TEMPLATE_REFRESH_S = 1.0  # rebuild a mining template for new transactions at most this often
MAX_ENGINE_ROUNDS = 16
_CORE_STATE = "node"  # the core's own persisted state (the envelope sequence reservation), beside the engine's
_ENVELOPE_SEQ_KEY = b"envelope_seq"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerBroadcast:
    """An engine envelope for the P2P layer. Addressed (`address`, a validator address): to the ready peer whose
    node key has that address when there is one; otherwise, and for everyone (`address` None), to every ready peer
    except `exclude` (the peer it came from), to be relayed on (consensus/envelope.py)."""

    message: EngineMessage
    exclude: str | None = None
    address: bytes | None = None


class StoreEngineState:
    """The engine's persisted state, read from the node's store (consensus.engine.EngineState)."""

    def __init__(self, store: ChainStore, engine: str) -> None:
        self._store = store
        self._engine = engine

    def get(self, key: bytes) -> bytes | None:
        """One value, or None."""
        return self._store.engine_value(self._engine, key)

    def range(self, start: bytes = b"", stop: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Keys in `[start, stop)` in order."""
        return self._store.engine_range(self._engine, start, stop)


@dataclass(frozen=True, slots=True, kw_only=True)
class MiningWork:
    """What the miners should do: stop (`active` False), or grind `prefix` (the 64-byte midstate block of
    `header`) for a nonce meeting `target`, reporting it with `job_id`."""

    active: bool
    reason: str
    job_id: int = 0
    target: int = 0
    prefix: bytes = b""


@dataclass(slots=True)
class Output:
    """What the driver must do after one input."""

    announce_blocks: list[Block] = field(default_factory=list)  # push to peers (our own new blocks)
    # (tx, peer to skip, validator address to send it to: None for every peer), see Engine.tx_destination
    announce_txs: list[tuple[Transaction, str | None, bytes | None]] = field(default_factory=list)
    engine_messages: list[PeerBroadcast] = field(default_factory=list)
    mining: MiningWork | None = None  # None: no change
    events: list[dict[str, object]] = field(default_factory=list)  # block / final / reorg, for subscribers
    notes: list[str] = field(default_factory=list)  # log lines
    tip_note: str | None = None  # the new tip's log line (the driver summarises these while it syncs)
    results: list[AddResult] = field(default_factory=list)  # every block import, for metrics
    fetch_blocks: list[tuple[str, bytes]] = field(default_factory=list)  # (peer, hash): blocks to fetch by hash
    reads: list[ReadResult] = field(default_factory=list)  # the engine's answers to read_index requests
    decisions: list[tuple[str, dict[str, object]]] = field(default_factory=list)  # the engine's, for the trace


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandJob:
    """A block to mine now, regtest style (`NodeCore.demand_job`): solve `puzzle` (off the event loop), then hand
    the nonce to `NodeCore.mined_on_demand`."""

    puzzle: Puzzle
    draft: Block


@dataclass(slots=True)
class _Job:
    job_id: int
    puzzle: Puzzle
    draft: Block


class NodeCore:
    """One node's decisions over its block tree, mempool and engine."""

    def __init__(self, *, name: str, tree: BlockTree, key: crypto.PrivateKey, mining: bool = True,
                 engine: Engine | None = None, rng: Random | None = None,
                 verified_signatures: VerifiedSignatures | None = None) -> None:
        """`mining` False: the engine starts with proposing switched off (`node run --no-mining`). `rng`: the
        engine's randomness (default: seeded from the node key, so a node's draws are its own but repeatable).
        `verified_signatures`: envelope signatures known good, shared across the simulator's nodes."""
        self.name = name
        self.tree = tree
        self.genesis = tree.genesis
        self.key = key
        self.spec = check_genesis(self.genesis)
        self.mempool = Mempool.from_genesis(self.genesis, tree.signatures)
        self.leases = LeaseWatch(tree.store.tx_outcome)  # lock events for /v1/events (chain/leases.py)
        self.rng = rng if rng is not None else Random(crypto.sha256(b"engine-rng" + key.public_key))
        self.engine: Engine = engine if engine is not None else engine_for(
            self.genesis, key, rng=self.rng, proposing_allowed=mining)
        self.envelopes = EnvelopeRouter(self.genesis.hash, key, verified=verified_signatures)
        self._job: _Job | None = None
        self._job_ids = 0
        self._proposing_reason = "starting"
        self._proposing_active: bool | None = None
        self._pending_commit: bytes | None = None  # committed by the engine before the block arrived
        self._template_refreshed_at = float("-inf")
        self._sync_gap = 0  # blocks the peers' best chain is ahead of ours, as last told to the engine
        self._tx_destination: bytes | None = None  # where our transactions went last (Engine.tx_destination)
        self._envelope_peer: str | None = None  # the peer that last relayed an engine envelope (block fetches)

    @classmethod
    def over_store(cls, *, name: str, genesis: Genesis, store: Store, key: crypto.PrivateKey, mining: bool = True,
                   signatures: SignatureChecker | None = None, engine: Engine | None = None,
                   rng: Random | None = None, verified_signatures: VerifiedSignatures | None = None) -> NodeCore:
        """A core over `store` (created for `genesis` if empty): what the simulator builds for each node."""
        policy = engine.policy if engine is not None else check_genesis(genesis).policy(genesis)
        tree = BlockTree(ChainStore(store), genesis, policy, signatures=signatures)
        return cls(name=name, tree=tree, key=key, mining=mining, engine=engine, rng=rng,
                   verified_signatures=verified_signatures)

    # -- inputs --------------------------------------------------------------------------------------------------

    def start(self, *, now: float, now_ms: int) -> Output:
        """Start the engine with what it persisted before."""
        out = Output()
        stored = self.tree.store.engine_value(_CORE_STATE, _ENVELOPE_SEQ_KEY)
        reservation = self.envelopes.start(int.from_bytes(stored, "big") if stored else 0, now_ms)
        self._reserve(reservation)
        self.engine.start(self.tree, StoreEngineState(self.tree.store, self.engine.name), now=now, now_ms=now_ms)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def tick(self, *, now: float, now_ms: int) -> Output:
        """Time passed (call every `engine.tick_interval_s`)."""
        out = Output()
        self.engine.tick(now=now, now_ms=now_ms)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def _follow_tx_destination(self, out: Output) -> None:
        """A new proposer to send transactions to (a new Raft leader): it gets every transaction we hold, which
        the old one may never have proposed (it crashed, or lost its leadership)."""
        destination = self.engine.tx_destination()
        if destination == self._tx_destination:
            return
        self._tx_destination = destination
        if destination is not None and destination != self.key.address:
            out.announce_txs.extend((tx, None, destination) for tx in self.mempool.transactions())

    def peers_changed(self, peers: set[str], previous: set[str], *, now: float, now_ms: int) -> Output:
        """The connected peers are now `peers` (they were `previous`)."""
        out = Output()
        if peers != previous:
            self.engine.on_peers(len(peers), now=now)
            self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def sync_gap(self, peers_best_height: int, *, now: float, now_ms: int) -> Output:
        """The best height claimed by peers that delivered a valid block (the P2P sync planner's `pause_height`)
        says how far behind the network this node is, which the engine acts on (PoW pauses mining).

        Neither a claim alone nor the orphan pool counts: an orphan's height is a claim too (a block whose
        ancestors nobody showed us, kept up to 20 minutes), so it reaches the pause only through the relay, which
        notes it as its sender's claim (docs/P2P.md, "Height claims")."""
        gap = max(0, peers_best_height - self.tree.height)
        out = Output()
        if gap != self._sync_gap:
            self._sync_gap = gap
            self.engine.on_sync_status(gap, now=now)
            self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def bootstrap_status(self, waiting: bool, *, now: float, now_ms: int) -> Output:
        """Whether the node still waits to reach a configured peer and catch up (the engine holds off sealing)."""
        out = Output()
        self.engine.on_bootstrap(waiting, now=now)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def receive_engine_message(self, peer: str, kind: str, payload: bytes, *, now: float, now_ms: int) -> Output:
        """An engine envelope from a peer: relayed once (unless the engine refuses what it carries) and handed to
        the engine when it is addressed to us; RejectError for a malformed or forged one."""
        out = Output()
        if kind != ENVELOPE_KIND:
            raise RejectError("unknown-engine-message", f"engine messages travel as {ENVELOPE_KIND!r}, not {kind!r}")
        received = self.envelopes.receive(payload, channel_key=_node_key_of(peer))
        if received is None:
            return out  # a copy seen before
        self._envelope_peer = peer
        if received.deliver is not None:
            try:
                self.engine.on_message(received.sender, received.deliver, now=now, now_ms=now_ms)
            except RejectError as error:
                if received.relayed:  # the relaying peer passed on another validator's statement
                    raise RelayedRejectError(error, received.sender) from error
                raise
        if received.relay is not None:
            out.engine_messages.append(PeerBroadcast(message=EngineMessage(kind=ENVELOPE_KIND, payload=received.relay),
                                                     exclude=peer, address=received.addressee))
        self._drive_engine(out, now=now, now_ms=now_ms)
        pending = self._pending_commit
        if pending is not None and self.tree.meta(pending) is None and pending not in self.tree.orphans:
            # The engine committed a block we never got (its push was lost): the peer that relayed the decision
            # most likely has it.
            out.fetch_blocks.append((peer, pending))
        return out

    def envelope_seen(self, ident: tuple[bytes, int]) -> bool:
        """True when an engine envelope with this (sender, seq) is a copy seen before, which
        `receive_engine_message` would drop without effect (the simulator skips delivering it)."""
        return self.envelopes.has_seen(ident)

    def precheck_block(self, block: Block, *, now_ms: int) -> bool:
        """Header, seal/PoW and merkle root: what must hold before a block is relayed. Raises RejectError; returns
        True when the header could be checked against its parent (the import then need not repeat it)."""
        tree = self.tree
        parent = tree.meta(block.parent)
        if parent is not None:
            if block.height != parent.height + 1:
                raise RejectError("bad-height", f"height {block.height} on a parent at {parent.height}")
            tree.policy.check_header(block.header, parent, tree, now_ms)
        else:
            tree.policy.check_detached_header(block.header)  # without the parent, what the seal alone proves
        check_block_cheap(block, tree.rules, now_ms=now_ms)
        return parent is not None

    def receive_block(self, block: Block, *, source: str, now: float, now_ms: int, prechecked: bool = False,
                      ) -> Output:
        """Validate and import a block; RejectError if the block itself is invalid (other blocks that failed on
        the way are in the result's `rejected`)."""
        out = Output()
        self._import(block, source=source, now=now, now_ms=now_ms, prechecked=prechecked, out=out)
        return out

    def receive_tx(self, tx: Transaction, *, source: str | None, now: float, now_ms: int) -> Output:
        """Mempool admission (RejectError with its code), relay, and a template refresh for the miners."""
        out = Output()
        if tx.op is not None and source is None:
            check_operation(self.tree.state, tx, self.tree.height + 1)
        self.mempool.add(tx, self.tree.state, now=now)
        destination = self.engine.tx_destination()
        if destination != self.key.address:  # our own: we propose it ourselves
            out.announce_txs.append((tx, source, destination))
        if now - self._template_refreshed_at >= TEMPLATE_REFRESH_S:
            self._template_refreshed_at = now
            self.engine.on_transactions_available(now=now)
            self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def admin(self, action: str, value: object, *, now: float, now_ms: int) -> tuple[Output, dict[str, object]]:
        """An admin action for the engine (consensus.engine.UnsupportedAdmin if it has none by that name)."""
        out = Output()
        answer = self.engine.admin(action, value, now=now)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out, answer

    def read_index(self, request_id: int, *, now: float, now_ms: int) -> Output:
        """A client's linearizable read: the engine's answer comes in `Output.reads` (now or after later inputs);
        the driver serves the read once the final height reaches the answer's index."""
        out = Output()
        self.engine.read_index(request_id, now=now)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def write_refusal(self, *, now: float) -> RejectError | None:
        """Why client writes are refused now (the engine's say: Raft without a leader or quorum), or None."""
        return self.engine.write_refusal(now=now)

    def mined(self, job_id: int, nonce: int, *, now: float, now_ms: int) -> Output:
        """A worker solved the puzzle of job `job_id` with `nonce`: seal, import and announce the block (stale jobs
        are ignored)."""
        out = Output()
        job = self._job
        if job is None or job.job_id != job_id:
            return out
        self._job = None
        block = Block(header=self.engine.solved(job.puzzle, nonce), txs=job.draft.txs)
        self._publish_own(block, now=now, now_ms=now_ms, out=out)
        return out

    def demand_job(self, proposer: bytes, *, now_ms: int) -> DemandJob:
        """A template on the tip paying `proposer`, to be mined at once whatever the engine decided (bitcoin-cli's
        generatetoaddress). RejectError `mining-unsupported` for an engine that does not seal with work. The
        timestamp is after the tip's, so blocks mined back to back stay after the median of the past."""
        if not self.spec.seals_with_workers:
            raise RejectError("mining-unsupported", f"engine {self.engine.name} does not mine blocks on demand")
        tip = self.tree.tip
        draft = self.template(tip.hash, proposer, max(now_ms, tip.header.timestamp_ms + 1))
        outcome = self.engine.seal(draft.header)
        if not isinstance(outcome, Puzzle):
            raise RejectError("mining-unsupported", f"engine {self.engine.name} seals without work")
        return DemandJob(puzzle=outcome, draft=draft)

    def mined_on_demand(self, job: DemandJob, nonce: int, *, now: float, now_ms: int) -> tuple[Block, Output]:
        """Seal `job` with `nonce` and import it through the same path as a worker's block (validation, store,
        announcement); the block and the output to apply. Whether it connected is in `output.results`."""
        out = Output()
        block = Block(header=self.engine.solved(job.puzzle, nonce), txs=job.draft.txs)
        self._publish_own(block, now=now, now_ms=now_ms, out=out)
        return block, out

    def housekeeping(self, *, now: float, now_ms: int) -> Output:
        """Expire orphans older than the pool's age limit and mempool entries older than `MEMPOOL_MAX_AGE_S` (call
        every `chain.housekeeping.HOUSEKEEPING_S`). The block tree stamps orphans with the wall clock (`now_ms`),
        the mempool its entries with the monotonic one (`now`): each is expired on its own clock."""
        out = Output()
        orphans = self.tree.orphans.expire(now_ms / 1000)
        if orphans:
            out.notes.append(f"expired {orphans} orphan blocks")
        update = self.mempool.expire(now, MEMPOOL_MAX_AGE_S)
        if update.dropped:
            out.notes.append(f"expired {len(update.dropped)} mempool transactions")
        return out

    # -- blocks --------------------------------------------------------------------------------------------------

    def _import(self, block: Block, *, source: str, now: float, now_ms: int, prechecked: bool, out: Output,
                ) -> AddResult:
        try:
            result = self.tree.add_block(block, now_ms=now_ms, source=source, prechecked=prechecked)
        except RejectError as error:
            if block.hash == self._pending_commit and error.code in ("fork-below-final", "bad-prevblk"):
                # The engine committed a block our final chain excludes: that is what the safety alarm is for.
                self.tree.alarm_conflicting_commit(block.hash, block.height)
                self._pending_commit = None
            raise
        out.results.append(result)
        for rejected_hash, rejection in result.rejected:
            out.notes.append(f"block {rejected_hash.hex()[:16]} rejected: {rejection}")
        if result.tip_changed:
            self._after_tip_change(result, out, now=now, now_ms=now_ms)
        if result.stored:
            for stored_hash in result.stored:
                meta = self.tree.meta(stored_hash)
                if meta is not None:
                    self.engine.on_block_stored(self.tree, meta, now=now, now_ms=now_ms)
            if self._pending_commit is not None and self._pending_commit in result.stored:
                self._commit(self._pending_commit, out, now=now, now_ms=now_ms)
            self._drive_engine(out, now=now, now_ms=now_ms)
        return result

    def _after_tip_change(self, result: AddResult, out: Output, *, now: float, now_ms: int) -> None:
        tree = self.tree
        connected = [m for m in (tree.meta(b.hash) for b in result.connected) if m is not None]
        disconnected = [m for m in (tree.meta(b.hash) for b in result.disconnected) if m is not None]
        if result.disconnected:
            self.mempool.on_reorg(result.disconnected, result.connected, tree.state, now=now)
            out.notes.append(f"reorg: {len(result.disconnected)} disconnected, {len(result.connected)} connected, "
                             f"tip {tree.tip.hash.hex()[:16]} at {tree.height}")
            old_tip = max(result.disconnected, key=lambda b: b.height)
            out.events.append({"type": "reorg", "disconnected": [b.hash.hex() for b in result.disconnected],
                               "connected": [b.hash.hex() for b in result.connected],
                               "depth": len(result.disconnected), "old_tip": old_tip.hash.hex(),
                               "old_height": old_tip.height, "new_tip": tree.tip.hash.hex(), "new_height": tree.height,
                               "fork_height": min(b.height for b in result.disconnected) - 1, "time_ms": now_ms})
        else:
            for block in result.connected:
                self.mempool.on_block_connected(block, tree.state)
        for block in result.connected:
            out.events.append({"type": "block", "height": block.height, "hash": block.hash.hex(),
                               "txs": len(block.txs), "proposer": crypto.address_to_text(block.header.proposer),
                               "time_ms": now_ms})
        if result.connected:
            out.events.extend(self.leases.on_tip_change(result.connected, tree.state, tree.height,
                                                        final_height=tree.final_height,
                                                        reorg=bool(result.disconnected)))
        if result.connected:
            tip = result.connected[-1]
            out.tip_note = f"block {tip.height} {tip.hash.hex()[:16]}  {len(tip.txs)} tx  final {tree.final_height}"
        if tree.final_height > result.final_height_before:
            out.events.append(self._final_event())
        self.engine.on_chain_changed(tree, connected, disconnected, now=now, now_ms=now_ms)
        self._drive_engine(out, now=now, now_ms=now_ms)

    def _final_event(self) -> dict[str, object]:
        height = self.tree.final_height
        final_hash = self.tree.hash_at(height)
        return {"type": "final", "height": height, "hash": final_hash.hex() if final_hash else None}

    def _publish_own(self, block: Block, *, now: float, now_ms: int, out: Output) -> None:
        try:
            result = self._import(block, source="self", now=now, now_ms=now_ms, prechecked=False, out=out)
        except RejectError as error:
            out.notes.append(f"our own block {block.hash.hex()[:16]} was rejected: {error}")
            return
        if result.status in ("connected", "stored"):
            self.tree.make_durable()  # an announced block survives a power loss
            out.announce_blocks.append(block)

    # -- the engine ----------------------------------------------------------------------------------------------

    def _drive_engine(self, out: Output, *, now: float, now_ms: int) -> None:
        """Take engine outputs until none are left: persist (durably when asked), then send, then apply."""
        for _ in range(MAX_ENGINE_ROUNDS):
            ready = self.engine.ready()
            if ready.is_empty():
                self._follow_tx_destination(out)
                return
            out.notes.extend(ready.notes)
            out.decisions.extend(ready.decisions)
            self._persist(ready)
            for outgoing in ready.messages:
                out.engine_messages.append(self._seal_envelope(outgoing))
            self._apply(ready, out, now=now, now_ms=now_ms)
        out.notes.append(f"engine {self.engine.name} still had outputs after {MAX_ENGINE_ROUNDS} rounds; "
                         "the rest waits for the next input")

    def _persist(self, ready: Ready) -> None:
        """Step 1: the engine's batch, synced; with `durable`, every block written before it is synced too (a
        LevelDB sync write syncs the log that holds the earlier writes), so the messages of this Ready
        acknowledge only what is on disk."""
        writes = ready.persist
        if writes:
            # Not `durable`, with a synced commit in this same Ready (step 3), the commit's sync covers this batch
            # too (one log): a PBFT commit certificate and its block's finality cost one fsync, not two. A crash
            # between them loses both, as if this Ready never happened; nothing sent in step 2 claimed otherwise.
            covered = not ready.durable and ready.commit is not None and not self.spec.volatile_commit_index
            self.tree.store.write_engine_state(self.engine.name, writes.puts, writes.deletes, writes.delete_ranges,
                                               sync=not covered)
        elif ready.durable:
            self.tree.make_durable()

    def _seal_envelope(self, outgoing: Outgoing) -> PeerBroadcast:
        payload, reservation = self.envelopes.seal(outgoing)
        self._reserve(reservation)
        return PeerBroadcast(message=EngineMessage(kind=ENVELOPE_KIND, payload=payload), address=outgoing.to)

    def _reserve(self, reservation: int | None) -> None:
        if reservation is not None:  # before any envelope of the new block of sequence numbers leaves
            self.tree.store.write_engine_state(_CORE_STATE, {_ENVELOPE_SEQ_KEY: reservation.to_bytes(8, "big")},
                                               sync=True)

    def _apply(self, ready: Ready, out: Output, *, now: float, now_ms: int) -> None:
        """Step 3: proposals, validation requests, fork choice and commits."""
        if ready.proposing is not None:
            self._proposing_reason = ready.proposing.reason
            self._proposing_active = ready.proposing.active
            if not ready.proposing.active:
                self._job = None
                out.mining = MiningWork(active=False, reason=ready.proposing.reason)
        if ready.propose is not None:
            self._propose(ready.propose, now=now, now_ms=now_ms, out=out)
        for block_hash in ready.validate:
            error = self.tree.validate(block_hash)
            self.engine.on_validated(block_hash, error, now=now, now_ms=now_ms)
        if ready.head is not None:
            result = self.tree.set_head(ready.head)
            self._after_engine_move(result, out, now=now, now_ms=now_ms)
        if ready.commit is not None:
            self._commit(ready.commit, out, now=now, now_ms=now_ms)
        out.reads.extend(ready.reads)
        if ready.fetch and self._envelope_peer is not None:
            out.fetch_blocks.extend((self._envelope_peer, block_hash) for block_hash in ready.fetch
                                    if self.tree.meta(block_hash) is None and block_hash not in self.tree.orphans)

    def _commit(self, block_hash: bytes, out: Output, *, now: float, now_ms: int) -> None:
        result = self.tree.commit(block_hash, sync=not self.spec.volatile_commit_index)
        if result.status == "unknown":
            self._pending_commit = block_hash  # applied when the block arrives
            return
        if self._pending_commit == block_hash or result.status == "committed":
            self._pending_commit = None
        self._after_engine_move(result, out, now=now, now_ms=now_ms)

    def _after_engine_move(self, result: AddResult, out: Output, *, now: float, now_ms: int) -> None:
        out.results.append(result)
        for rejected_hash, rejection in result.rejected:
            out.notes.append(f"block {rejected_hash.hex()[:16]} rejected: {rejection}")
        if result.status == "conflict":
            out.notes.append(f"engine {self.engine.name} chose block {result.block_hash.hex()[:16]}, which "
                             "conflicts with the final chain or is invalid; staying put")
        if result.tip_changed:
            self._after_tip_change(result, out, now=now, now_ms=now_ms)
        elif self.tree.final_height > result.final_height_before:
            out.events.append(self._final_event())

    def _propose(self, request: ProposeRequest, *, now: float, now_ms: int, out: Output) -> None:
        if request.parent_hash != self.tree.tip.hash or (request.only_with_txs and not len(self.mempool)):
            return
        draft = self.template(request.parent_hash, request.proposer, max(now_ms, request.min_timestamp_ms),
                              empty=request.empty)
        if request.only_with_txs and not draft.txs:
            return
        outcome = self.engine.seal(draft.header)
        if isinstance(outcome, Sealed):
            self._publish_own(Block(header=outcome.header, txs=draft.txs), now=now, now_ms=now_ms, out=out)
            return
        self._job_ids += 1
        self._job = _Job(job_id=self._job_ids, puzzle=outcome, draft=draft)
        out.mining = MiningWork(active=True, reason=self._proposing_reason, job_id=self._job_ids,
                                target=outcome.target, prefix=outcome.prefix)

    def template(self, parent_hash: bytes, proposer: bytes, timestamp_ms: int, *, empty: bool = False) -> Block:
        """A block on the tip with the mempool's best transactions (none when `empty`), committing to its
        resulting state."""
        tree = self.tree
        if parent_hash != tree.tip.hash:
            raise RuntimeError("templates are built on the current tip only")
        parent_header = tree.tip.header
        rules = tree.rules
        txs = [] if empty else self.mempool.template(tree.state, max_txs=rules.max_block_txs,
                                                     max_bytes=rules.max_block_bytes - 4096)
        draft = make_block(parent=parent_header, height=parent_header.height + 1, timestamp_ms=timestamp_ms, txs=txs,
                           state_root=bytes(32), proposer=proposer)
        after = tree.preview(draft).state
        return make_block(parent=parent_header, height=parent_header.height + 1, timestamp_ms=timestamp_ms, txs=txs,
                          state_root=after.commitment, proposer=proposer)

    # -- views ---------------------------------------------------------------------------------------------------

    @property
    def proposing(self) -> tuple[bool | None, str]:
        """The engine's standing decision to propose (None: not said yet) and its reason."""
        return self._proposing_active, self._proposing_reason

    def status(self, *, now: float) -> dict[str, object]:
        """Chain, mempool and engine fields of /v1/status (the driver adds its transport's)."""
        tree = self.tree
        final_hash = tree.hash_at(tree.final_height)
        return {
            "node": self.name,
            "node_id": self.key.public_key.hex(),
            "address": crypto.address_to_text(self.key.address),
            "chain_id": self.genesis.chain_id,
            "genesis": self.genesis.hash.hex(),
            "consensus": self.genesis.consensus,
            "height": tree.height,
            "head": tree.tip.hash.hex(),
            "head_timestamp_ms": tree.tip.header.timestamp_ms,
            "final_height": tree.final_height,
            "final_hash": final_hash.hex() if final_hash else None,
            "mempool_size": len(self.mempool),
            "safety_alarms": tree.safety_alarms,
            "orphans": len(tree.orphans),
            "min_fee": int(self.genesis.param("min_fee")),
            "write_refusal": _refusal_json(self.write_refusal(now=now)),
            "engine": self.engine.status(now=now).to_json(),
        }


def _refusal_json(refusal: RejectError | None) -> dict[str, str] | None:
    """`{"code", "message"}` of why client writes are refused now, or None while they are accepted."""
    return None if refusal is None else {"code": refusal.code, "message": refusal.message}


def _node_key_of(peer: str) -> bytes | None:
    """The node key a P2P peer id names (the hex of the key its handshake proved), or None for a driver whose
    peers are named otherwise (the simulator's node names)."""
    try:
        key = bytes.fromhex(peer)
    except ValueError:
        return None
    return key if len(key) == crypto.PUBKEY_BYTES else None
