"""The node core (pure): block tree + mempool + consensus engine, driven by the asyncio node and by the simulator.

Everything a node decides lives here; the drivers only do I/O. Each input (`start`, `tick`, `receive_block`,
`receive_tx`, `receive_engine_message`, `peers_changed`, `mined`, `set_mining`) returns an `Output` telling the
driver what to send, what to mine, what to publish and what to log. The engine is driven as consensus/engine.py
documents (persist, then send, then apply) inside the core, so both drivers follow the same order.

No clocks and no randomness here: `now` (monotonic seconds) and `now_ms` (wall-clock milliseconds for block
timestamps) come from the driver, which for the simulator is a virtual clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chain import crypto
from chain.block import Block, BlockHeader, make_block
from chain.blocktree import AddResult, BlockTree
from chain.chainstore import ChainStore
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.housekeeping import MEMPOOL_MAX_AGE_S
from chain.mempool import Mempool
from chain.state import apply_block
from chain.tx import Transaction
from chain.validation import SignatureChecker, check_block_cheap
from consensus.engine import Engine, EngineMessage, MiningDecision, Outgoing, ProposeRequest
from consensus.registry import chain_policy, engine_for
from storage.base import Store

TEMPLATE_REFRESH_S = 1.0  # rebuild a mining template for new transactions at most this often
MAX_ENGINE_ROUNDS = 16


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
    announce_txs: list[tuple[Transaction, str | None]] = field(default_factory=list)  # (tx, peer to skip)
    engine_messages: list[Outgoing] = field(default_factory=list)
    mining: MiningWork | None = None  # None: no change
    events: list[dict[str, object]] = field(default_factory=list)  # block / final / reorg, for subscribers
    notes: list[str] = field(default_factory=list)  # log lines
    results: list[AddResult] = field(default_factory=list)  # every block import, for metrics


@dataclass(slots=True)
class _Job:
    job_id: int
    header: BlockHeader  # unsealed: seal carries the target and nonce 0
    draft: Block


class NodeCore:
    """One node's decisions over its block tree, mempool and engine."""

    def __init__(self, *, name: str, tree: BlockTree, key: crypto.PrivateKey, mining: bool = True,
                 engine: Engine | None = None) -> None:
        self.name = name
        self.tree = tree
        self.genesis = tree.genesis
        self.key = key
        self.mempool = Mempool.from_genesis(self.genesis, tree.signatures)
        self.engine: Engine = engine if engine is not None else engine_for(self.genesis, key, mining=mining)
        self._job: _Job | None = None
        self._job_ids = 0
        self._mining_decision: MiningDecision | None = None
        self._template_refreshed_at = float("-inf")
        self._sync_gap = 0  # blocks the peers' best chain is ahead of ours, as last told to the engine

    @classmethod
    def over_store(cls, *, name: str, genesis: Genesis, store: Store, key: crypto.PrivateKey, mining: bool = True,
                   signatures: SignatureChecker | None = None, engine: Engine | None = None) -> NodeCore:
        """A core over `store` (created for `genesis` if empty): what the simulator builds for each node."""
        tree = BlockTree(ChainStore(store), genesis, chain_policy(genesis), signatures=signatures,
                         confirmation_finality=genesis.consensus == "pow")
        return cls(name=name, tree=tree, key=key, mining=mining, engine=engine)

    # -- inputs --------------------------------------------------------------------------------------------------

    def start(self, *, now: float, now_ms: int) -> Output:
        """Start the engine with what it persisted before."""
        out = Output()
        self.engine.start(self.tree, now=now, now_ms=now_ms, persisted=self.tree.store.engine_state(self.engine.name))
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def tick(self, *, now: float, now_ms: int) -> Output:
        """Time passed (call every `engine.tick_interval_s`)."""
        out = Output()
        self.engine.tick(now=now, now_ms=now_ms)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def peers_changed(self, peers: set[str], previous: set[str], *, now: float, now_ms: int) -> Output:
        """The connected peers are now `peers` (they were `previous`)."""
        out = Output()
        for peer in peers - previous:
            self.engine.on_peer(peer, True, now=now)
        for peer in previous - peers:
            self.engine.on_peer(peer, False, now=now)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def sync_gap(self, peers_best_height: int, *, now: float, now_ms: int) -> Output:
        """The best height the peers claim (the P2P sync planner's view); with the orphan pool's highest block it
        says how far behind the network this node is, which the engine acts on (PoW pauses mining)."""
        tree = self.tree
        gap = max(0, max(peers_best_height, tree.orphans.max_height()) - tree.height)
        out = Output()
        if gap != self._sync_gap:
            self._sync_gap = gap
            self.engine.on_sync_gap(gap, now=now)
            self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def receive_engine_message(self, peer: str, kind: str, payload: bytes, *, now: float, now_ms: int) -> Output:
        """An engine message from a peer; RejectError for a malformed or forged one."""
        out = Output()
        self.engine.on_message(peer, EngineMessage(kind=kind, payload=payload), now=now, now_ms=now_ms)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def precheck_block(self, block: Block, *, now_ms: int) -> bool:
        """Header, seal/PoW and merkle root: what must hold before a block is relayed. Raises RejectError; returns
        True when the header could be checked against its parent (the import then need not repeat it)."""
        tree = self.tree
        parent = tree.meta(block.parent)
        if parent is not None:
            if block.height != parent.height + 1:
                raise RejectError("bad-height", f"height {block.height} on a parent at {parent.height}")
            tree.policy.check_header(block.header, parent, tree, now_ms)
        elif self.genesis.consensus == "pow":
            from consensus.pow.seal import check_pow

            check_pow(block.header)  # without the parent, at least its own target must be met
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
        self.mempool.add(tx, self.tree.state, now=now)
        out.announce_txs.append((tx, source))
        if now - self._template_refreshed_at >= TEMPLATE_REFRESH_S:
            self._template_refreshed_at = now
            self.engine.on_transactions_available(now=now)
            self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def set_mining(self, enabled: bool, *, now: float, now_ms: int) -> Output:
        """Admin switch."""
        out = Output()
        self.engine.set_mining_enabled(enabled, now=now)
        self._drive_engine(out, now=now, now_ms=now_ms)
        return out

    def mined(self, job_id: int, nonce: int, *, now: float, now_ms: int) -> Output:
        """A miner found `nonce` for job `job_id`: seal, import and announce the block (stale jobs are ignored)."""
        out = Output()
        job = self._job
        if job is None or job.job_id != job_id:
            return out
        from consensus.pow.seal import decode_seal, encode_seal

        self._job = None
        target, _ = decode_seal(job.header.seal)
        block = Block(header=job.header.with_seal(encode_seal(target, nonce)), txs=job.draft.txs)
        self._publish_own(block, now=now, now_ms=now_ms, out=out)
        return out

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
        result = self.tree.add_block(block, now_ms=now_ms, source=source, prechecked=prechecked)
        out.results.append(result)
        for rejected_hash, rejection in result.rejected:
            out.notes.append(f"block {rejected_hash.hex()[:16]} rejected: {rejection}")
        if result.tip_changed:
            self._after_tip_change(result, out, now=now, now_ms=now_ms)
        return result

    def _after_tip_change(self, result: AddResult, out: Output, *, now: float, now_ms: int) -> None:
        tree = self.tree
        connected = [m for m in (tree.meta(b.hash) for b in result.connected) if m is not None]
        disconnected = [m for m in (tree.meta(b.hash) for b in result.disconnected) if m is not None]
        if result.disconnected:
            self.mempool.on_reorg(result.disconnected, result.connected, tree.state, now=now)
            out.notes.append(f"reorg: {len(result.disconnected)} disconnected, {len(result.connected)} connected, "
                             f"tip {tree.tip.hash.hex()[:16]} at {tree.height}")
            out.events.append({"type": "reorg", "disconnected": [b.hash.hex() for b in result.disconnected],
                               "connected": [b.hash.hex() for b in result.connected]})
        else:
            for block in result.connected:
                self.mempool.on_block_connected(block, tree.state)
        for block in result.connected:
            out.events.append({"type": "block", "height": block.height, "hash": block.hash.hex(),
                               "txs": len(block.txs), "proposer": crypto.address_to_text(block.header.proposer),
                               "time_ms": now_ms})
        if result.connected:
            tip = result.connected[-1]
            out.notes.append(f"block {tip.height} {tip.hash.hex()[:16]}  {len(tip.txs)} tx  final "
                             f"{tree.final_height}")
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
        if result.status == "connected":
            self.tree.make_durable()  # an announced block survives a power loss
            out.announce_blocks.append(block)

    # -- the engine ----------------------------------------------------------------------------------------------

    def _drive_engine(self, out: Output, *, now: float, now_ms: int) -> None:
        """Take engine outputs until none are left: persist, then send, then apply."""
        for _ in range(MAX_ENGINE_ROUNDS):
            ready = self.engine.ready()
            if ready.is_empty():
                return
            out.notes.extend(ready.notes)
            if ready.persist:
                self.tree.store.put_engine_state(self.engine.name, ready.persist)
            out.engine_messages.extend(ready.messages)
            if ready.mining is not None:
                out.mining = self._mining_work(ready.mining, now_ms=now_ms)
            if ready.propose is not None:
                self._propose(ready.propose, now=now, now_ms=now_ms, out=out)
            if ready.finalize is not None and self.tree.finalize(ready.finalize):
                out.events.append(self._final_event())

    def _mining_work(self, decision: MiningDecision, *, now_ms: int) -> MiningWork:
        self._mining_decision = decision
        if not decision.active or decision.job is None:
            self._job = None
            return MiningWork(active=False, reason=decision.reason)
        from consensus.pow.policy import PowPolicy
        from consensus.pow.seal import encode_seal, mining_prefix

        job = decision.job
        policy = self.tree.policy
        if not isinstance(policy, PowPolicy):
            raise AssertionError("mining decisions come from the PoW engine only")
        timestamp_ms = max(now_ms, policy.median_time_past_ms(self.tree.tip, self.tree) + 1)
        draft = self.template(job.parent_hash, job.miner, timestamp_ms)
        header = draft.header.with_seal(encode_seal(job.target, 0))
        self._job_ids += 1
        self._job = _Job(job_id=self._job_ids, header=header, draft=draft)
        return MiningWork(active=True, reason=decision.reason, job_id=self._job_ids, target=job.target,
                          prefix=mining_prefix(header.seal_hash, job.target))

    def _propose(self, request: ProposeRequest, *, now: float, now_ms: int, out: Output) -> None:
        if request.parent_hash != self.tree.tip.hash:
            return
        draft = self.template(request.parent_hash, request.proposer, request.timestamp_ms)
        sealed = self.engine.seal(draft.header)
        self._publish_own(Block(header=sealed, txs=draft.txs), now=now, now_ms=now_ms, out=out)

    def template(self, parent_hash: bytes, proposer: bytes, timestamp_ms: int) -> Block:
        """A block on the tip with the mempool's best transactions, committing to its resulting state."""
        tree = self.tree
        if parent_hash != tree.tip.hash:
            raise RuntimeError("templates are built on the current tip only")
        parent_header = tree.tip.header
        rules = tree.rules
        txs = self.mempool.template(tree.state, max_txs=rules.max_block_txs, max_bytes=rules.max_block_bytes - 4096)
        draft = make_block(parent=parent_header, height=parent_header.height + 1, timestamp_ms=timestamp_ms, txs=txs,
                           state_root=bytes(32), proposer=proposer)
        after = apply_block(tree.state, draft, reward=tree.policy.block_reward(draft.header)).state
        return make_block(parent=parent_header, height=parent_header.height + 1, timestamp_ms=timestamp_ms, txs=txs,
                          state_root=after.commitment, proposer=proposer)

    # -- views ---------------------------------------------------------------------------------------------------

    @property
    def mining_decision(self) -> MiningDecision | None:
        """The engine's last mining decision."""
        return self._mining_decision

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
            "engine": self.engine.status(now=now),
        }
