"""The node: store + block tree + mempool + consensus engine + P2P + RPC on one asyncio loop.

Everything CPU-heavy leaves the loop: PoW grinding runs in mining processes (node/mining.py), and signature checks
of incoming blocks run in worker processes when `validation.workers > 1` (they land in the signature cache, so
the block tree's own check finds them done). The engine is driven as consensus/engine.py documents: after every
input the node takes `engine.ready()` and persists, then sends, then applies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import prometheus_client

from chain import crypto
from chain.block import Block, BlockHeader, make_block
from chain.blocktree import AddResult, TipInfo
from chain.errors import RejectError
from chain.mempool import Mempool, PoolEntryView
from chain.state import apply_block
from chain.tx import Transaction
from chain.validation import check_block_cheap, verify_in_process
from consensus.engine import Engine, EngineMessage, MiningDecision, ProposeRequest, Ready
from consensus.registry import engine_for
from node.api import AccountView, BlockPosition, EventBroker, EventSubscription, TxState, TxStatus
from node.config import NodeConfig
from node.datadir import OpenChain, open_chain
from node.identity import load_or_create_key
from node.metrics import NodeMetrics
from node.mining import Miner

log = logging.getLogger("chainlab.node")

NODE_INFO_FILE = "node.json"
TEMPLATE_REFRESH_S = 1.0  # rebuild a mining template for new transactions at most this often
MEMPOOL_MAX_AGE_S = 3600.0


def wall_ms() -> int:
    """Wall-clock milliseconds (block timestamps)."""
    return int(time.time() * 1000)


class Node:
    """A running chainlab node; `await start()`, then `await wait_stopped()` or `await stop()`."""

    def __init__(self, datadir: str | Path, config: NodeConfig) -> None:
        self.datadir = Path(datadir)
        self.config = config
        self.key = load_or_create_key(self.datadir)
        self.chain: OpenChain = open_chain(self.datadir, create=True)
        self.tree = self.chain.tree
        self.genesis = self.chain.genesis
        self.mempool = Mempool.from_genesis(self.genesis, self.tree.signatures)
        self.engine: Engine = engine_for(self.genesis, self.key, mining=config.mining.enabled)
        self.metrics = prometheus_client.CollectorRegistry()
        self.node_metrics = NodeMetrics(self.metrics)
        self.events = EventBroker()
        self.rng = random.Random()
        self.p2p: Any = None
        self.rpc: Any = None
        self.miner: Miner | None = None
        self._verify_pool: ProcessPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[None]] = set()
        self._stopped = asyncio.Event()
        self._mining_job: tuple[int, BlockHeader, Block] | None = None  # generation, unsealed header, draft
        self._mining_decision: MiningDecision | None = None
        self._template_built_at = 0.0
        self._import_lock = asyncio.Lock()
        self.started_at = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind P2P and RPC, start the engine, miners and timers."""
        from node.rpc import RpcConfig, RpcServer
        from p2p.service import P2PConfig, P2PService

        self._loop = asyncio.get_running_loop()
        if self.config.validation.workers > 1:
            import multiprocessing

            self._verify_pool = ProcessPoolExecutor(self.config.validation.workers,
                                                    mp_context=multiprocessing.get_context("spawn"))
        p2p = self.config.p2p
        self.p2p = P2PService(
            P2PConfig(listen_host=p2p.host, listen_port=p2p.port, bootstrap=tuple(p2p.bootstrap),
                      target_peers=p2p.target_peers, max_peers=p2p.max_peers, advertise_url=p2p.advertise_url),
            self.key, ChainAccessAdapter(self), rng=random.Random(self.rng.getrandbits(64)),
        )
        await self.p2p.start()
        rpc = self.config.rpc
        self.rpc = RpcServer(RpcConfig(host=rpc.host, port=rpc.port, admin_token=rpc.admin_token or None),
                             NodeApiAdapter(self))
        await self.rpc.start()
        if self.genesis.consensus == "pow" and self.config.mining.enabled:
            self.miner = Miner(self.config.mining.processes, self.config.mining.hashrate_hps,
                               nice=self.config.mining.nice)
            self.miner.watch(self._loop, self._on_nonce_found)
        self.engine.start(self.tree, now=time.monotonic(), now_ms=wall_ms(),
                          persisted=self.chain.tree.store.engine_state(self.engine.name))
        self._drive_engine()
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="engine-tick"))
        self._tasks.append(asyncio.create_task(self._housekeeping_loop(), name="housekeeping"))
        self._update_metrics()
        self._write_node_info()
        log.info("node %s up: height %d, p2p %s, rpc %s, node id %s", self.config.node.name, self.tree.height,
                 self.p2p.url, self.rpc.url, self.key.public_key.hex()[:16])

    def _write_node_info(self) -> None:
        """`node.json` in the data directory: how tools find a running node (pid, bound URLs, node id)."""
        info = {"pid": os.getpid(), "name": self.config.node.name, "p2p_url": self.p2p.url, "rpc_url": self.rpc.url,
                "node_id": self.key.public_key.hex(), "address": crypto.address_to_text(self.key.address)}
        path = self.datadir / NODE_INFO_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)

    async def stop(self) -> None:
        """Graceful shutdown: stop mining, finish the current import, close P2P, RPC and the store."""
        if self._stopped.is_set():
            return
        log.info("shutting down")
        if self.miner is not None:
            self.miner.close(self._loop)
            self.miner = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._import_lock:  # let an import in progress finish its batch
            if self.p2p is not None:
                await self.p2p.stop()
            if self.rpc is not None:
                await self.rpc.stop()
            self.events.close()
            if self._verify_pool is not None:
                self._verify_pool.shutdown(wait=True, cancel_futures=True)
            self.chain.close()
        (self.datadir / NODE_INFO_FILE).unlink(missing_ok=True)
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Until stop() has finished."""
        await self._stopped.wait()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the node gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))

    async def _tick_loop(self) -> None:
        known_peers: set[str] = set()
        while True:
            await asyncio.sleep(self.engine.tick_interval_s)
            now = time.monotonic()
            if self.p2p is not None:
                peers = {str(p["node_id"]) for p in self.p2p.peers()}
                for peer in peers - known_peers:
                    self.engine.on_peer(peer, True, now=now)
                for peer in known_peers - peers:
                    self.engine.on_peer(peer, False, now=now)
                known_peers = peers
            self.engine.tick(now=now, now_ms=wall_ms())
            self._drive_engine()

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            self.tree.orphans.expire(time.monotonic())
            update = self.mempool.expire(time.monotonic(), MEMPOOL_MAX_AGE_S)
            if update.dropped:
                log.info("expired %d mempool transactions", len(update.dropped))
            self._update_metrics()

    # -- engine --------------------------------------------------------------------------------------------------

    def _drive_engine(self) -> None:
        """Handle engine outputs until it has nothing more: persist, then send, then apply."""
        for _ in range(16):
            ready: Ready = self.engine.ready()
            if ready.is_empty():
                return
            for note in ready.notes:
                log.info("%s", note)
            if ready.persist:
                self.tree.store.put_engine_state(self.engine.name, ready.persist)
            for outgoing in ready.messages:
                if self.p2p is not None:
                    self.p2p.send_engine(outgoing.message.kind, outgoing.message.payload, to=outgoing.to,
                                         exclude=outgoing.exclude)
            if ready.mining is not None:
                self._apply_mining(ready.mining)
            if ready.propose is not None:
                self._propose(ready.propose)
            if ready.finalize is not None and self.tree.finalize(ready.finalize):
                self._publish_final()

    def on_engine_message(self, peer: str, kind: str, payload: bytes) -> None:
        """An engine message from P2P (RejectError propagates: P2P penalizes the peer)."""
        self.engine.on_message(peer, EngineMessage(kind=kind, payload=payload), now=time.monotonic(),
                               now_ms=wall_ms())
        self._drive_engine()

    # -- blocks --------------------------------------------------------------------------------------------------

    async def import_block(self, block: Block, source: str, *, prechecked: bool = False) -> AddResult:
        """Validate and import a block (from a peer, or our own), then tell engine, mempool and subscribers."""
        await asyncio.sleep(0)  # let the writers flush what was just relayed before the loop is busy importing
        await self._preverify_signatures(block.txs)
        async with self._import_lock:
            before_tip = self.tree.tip
            try:
                result = self.tree.add_block(block, now_ms=wall_ms(), source=source, prechecked=prechecked)
            except RejectError as error:
                self.node_metrics.blocks_rejected.labels(code=error.code).inc()
                raise
            for rejected_hash, rejection in result.rejected:
                log.warning("block %s rejected: %s", rejected_hash.hex()[:16], rejection)
                self.node_metrics.blocks_rejected.labels(code=rejection.code).inc()
            if result.alarms:
                self.node_metrics.safety_alarms.inc(len(result.alarms))
            if result.tip_changed:
                self._after_tip_change(result, before_tip.hash)
            return result

    async def _preverify_signatures(self, txs: Sequence[Transaction]) -> None:
        """Check a block's uncached signatures in the worker pool, off the event loop; good ones go in the cache
        (bad ones are left for the block tree, which reports them with the usual code)."""
        if self._verify_pool is None or self._loop is None:
            return
        cache = self.tree.signatures.cache
        pending = [tx for tx in txs if tx.hash not in cache]
        if len(pending) < 64:
            return
        chunks = self.config.validation.workers
        size = -(-len(pending) // chunks)
        parts = [pending[i:i + size] for i in range(0, len(pending), size)]
        futures = [self._loop.run_in_executor(self._verify_pool, verify_in_process,
                                              [(t.sender, t.signature, t.signing_hash) for t in part])
                   for part in parts]
        for part, results in zip(parts, await asyncio.gather(*futures), strict=True):
            for tx, ok in zip(part, results, strict=True):
                if ok:
                    cache.add(tx.hash)

    def _after_tip_change(self, result: AddResult, old_tip: bytes) -> None:
        now = time.monotonic()
        connected_metas = [m for m in (self.tree.meta(b.hash) for b in result.connected) if m is not None]
        disconnected_metas = [m for m in (self.tree.meta(b.hash) for b in result.disconnected) if m is not None]
        if result.disconnected:
            self.mempool.on_reorg(result.disconnected, result.connected, self.tree.state, now=now)
            self.node_metrics.observe_reorg(len(result.disconnected), len(result.connected))
            log.info("reorg: %d disconnected, %d connected, tip %s at %d", len(result.disconnected),
                     len(result.connected), self.tree.tip.hash.hex()[:16], self.tree.height)
            self.events.publish({"type": "reorg", "disconnected": [b.hash.hex() for b in result.disconnected],
                                 "connected": [b.hash.hex() for b in result.connected]})
        else:
            for block in result.connected:
                self.mempool.on_block_connected(block, self.tree.state)
        for block in result.connected:
            self.node_metrics.blocks_connected.inc()
            self.events.publish({"type": "block", "height": block.height, "hash": block.hash.hex(),
                                 "txs": len(block.txs), "proposer": crypto.address_to_text(block.header.proposer),
                                 "time_ms": wall_ms()})
        if result.connected:
            tip = result.connected[-1]
            log.info("block %d %s  %d tx  final %d", tip.height, tip.hash.hex()[:16], len(tip.txs),
                     self.tree.final_height)
        if self.tree.final_height > result.final_height_before:
            self._publish_final()
        self.engine.on_chain_changed(self.tree, connected_metas, disconnected_metas, now=now, now_ms=wall_ms())
        self._drive_engine()
        self._update_metrics()

    def _publish_final(self) -> None:
        height = self.tree.final_height
        final_hash = self.tree.hash_at(height)
        self.events.publish({"type": "final", "height": height, "hash": final_hash.hex() if final_hash else None})

    # -- block production ----------------------------------------------------------------------------------------

    def _template(self, parent_hash: bytes, proposer: bytes, timestamp_ms: int) -> Block:
        """A block on the tip with the mempool's best transactions, committing to its resulting state."""
        if parent_hash != self.tree.tip.hash:
            raise RuntimeError("templates are built on the current tip only")
        parent_header = self.tree.tip.header
        rules = self.tree.rules
        txs = self.mempool.template(self.tree.state, max_txs=rules.max_block_txs,
                                    max_bytes=rules.max_block_bytes - 4096)
        draft = make_block(parent=parent_header, height=parent_header.height + 1, timestamp_ms=timestamp_ms, txs=txs,
                           state_root=bytes(32), proposer=proposer)
        after = apply_block(self.tree.state, draft, reward=self.tree.policy.block_reward(draft.header)).state
        return make_block(parent=parent_header, height=parent_header.height + 1, timestamp_ms=timestamp_ms, txs=txs,
                          state_root=after.commitment, proposer=proposer)

    def _apply_mining(self, decision: MiningDecision) -> None:
        previous = self._mining_decision
        self._mining_decision = decision
        self.node_metrics.set_mining(decision.active, self._reachable_share())
        if previous is None or previous.active != decision.active:
            log.info("mining %s: %s", "on" if decision.active else "off", decision.reason)
        if self.miner is None:
            return
        if not decision.active or decision.job is None:
            self.miner.stop_job()
            self._mining_job = None
            return
        job = decision.job
        from consensus.pow.policy import PowPolicy
        from consensus.pow.seal import encode_seal, mining_prefix

        policy = self.tree.policy
        assert isinstance(policy, PowPolicy)
        timestamp_ms = max(wall_ms(), policy.median_time_past_ms(self.tree.tip, self.tree) + 1)
        draft = self._template(job.parent_hash, job.miner, timestamp_ms)
        header = draft.header.with_seal(encode_seal(job.target, 0))
        generation = self.miner.start_job(mining_prefix(header.seal_hash, job.target), job.target,
                                          first_nonce=self.rng.getrandbits(40))
        self._mining_job = (generation, header, draft)
        self._template_built_at = time.monotonic()

    def _on_nonce_found(self, generation: int, nonce: int) -> None:
        job = self._mining_job
        if job is None or job[0] != generation:
            return
        from consensus.pow.seal import decode_seal, encode_seal

        _, header, draft = job
        target, _ = decode_seal(header.seal)
        block = Block(header=header.with_seal(encode_seal(target, nonce)), txs=draft.txs)
        self._mining_job = None
        self._spawn(self._publish_own_block(block))

    async def _publish_own_block(self, block: Block) -> None:
        try:
            result = await self.import_block(block, source="self")
        except RejectError as error:
            log.error("our own block %s was rejected: %s", block.hash.hex()[:16], error)
            return
        if result.status == "connected":
            self.tree.make_durable()  # an announced block survives a power loss
            if self.p2p is not None:
                self.p2p.announce_block(block)

    def _propose(self, request: ProposeRequest) -> None:
        """Build, seal (engine), import and announce a block (signature engines)."""
        if request.parent_hash != self.tree.tip.hash:
            return
        draft = self._template(request.parent_hash, request.proposer, request.timestamp_ms)
        sealed = self.engine.seal(draft.header)
        self._spawn(self._publish_own_block(Block(header=sealed, txs=draft.txs)))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task the node keeps a reference to until it is done."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _reachable_share(self) -> float | None:
        status = self.engine.status(now=time.monotonic())
        share = status.get("reachable_share")
        return float(share) if isinstance(share, int | float) else None

    # -- transactions --------------------------------------------------------------------------------------------

    async def submit_tx(self, tx: Transaction, source: str = "rpc") -> None:
        """Mempool admission (RejectError with its code), then relay and refresh the mining template."""
        self.mempool.add(tx, self.tree.state, now=time.monotonic())
        if self.p2p is not None:
            self.p2p.announce_tx(tx.hash, exclude=None if source == "rpc" else source)
        now = time.monotonic()
        if now - self._template_built_at >= TEMPLATE_REFRESH_S:
            self._template_built_at = now
            self.engine.on_transactions_available(now=now)
            self._drive_engine()

    # -- views ---------------------------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """The /v1/status document."""
        tree = self.tree
        final_hash = tree.hash_at(tree.final_height)
        return {
            "node": self.config.node.name,
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
            "peers": len(self.p2p.peers()) if self.p2p is not None else 0,
            "p2p_url": self.p2p.url if self.p2p is not None else None,
            "mempool_size": len(self.mempool),
            "syncing": bool(self.p2p.syncing) if self.p2p is not None else False,
            "safety_alarms": tree.safety_alarms,
            "orphans": len(tree.orphans),
            "min_fee": int(self.genesis.param("min_fee")),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "engine": self.engine.status(now=time.monotonic()),
        }

    def _update_metrics(self) -> None:
        metrics = self.node_metrics
        metrics.chain_height.set(self.tree.height)
        metrics.final_height.set(self.tree.final_height)
        metrics.orphans.set(len(self.tree.orphans))
        metrics.observe_mempool(len(self.mempool), self.mempool.size_bytes)
        if self.p2p is not None:
            metrics.peers.set(len(self.p2p.peers()))
            metrics.syncing.set(1 if self.p2p.syncing else 0)
        share = self._reachable_share()
        if share is not None:
            metrics.reachable_hash_share.set(share)


class ChainAccessAdapter:
    """What P2P may ask of the node (p2p.service.ChainAccess)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.chain_id = node.genesis.chain_id
        self.genesis_hash = node.genesis.hash
        self._prechecked: dict[bytes, None] = {}  # blocks that passed precheck_block, not yet submitted

    def best_height(self) -> int:
        """Our tip height."""
        return self.node.tree.height

    def has_block(self, block_hash: bytes) -> bool:
        """Known in the tree or waiting as an orphan."""
        return self.node.tree.meta(block_hash) is not None or block_hash in self.node.tree.orphans

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        """A stored block's encoding."""
        return self.node.tree.block_bytes(block_hash)

    def locator(self) -> list[bytes]:
        """Our best chain's locator."""
        return self.node.tree.locator()

    def blocks_after(self, locator: list[bytes], limit: int) -> list[bytes]:
        """Encoded best-chain blocks after the first locator entry we share."""
        tree = self.node.tree
        start = tree.fork_point(locator) + 1
        out = []
        for height in range(start, min(tree.height, start + limit - 1) + 1):
            block_hash = tree.hash_at(height)
            raw = tree.block_bytes(block_hash) if block_hash else None
            if raw is None:
                break
            out.append(raw)
        return out

    def has_tx(self, tx_hash: bytes) -> bool:
        """In the mempool or on the best chain."""
        return tx_hash in self.node.mempool or self.node.tree.store.tx_location(tx_hash) is not None

    def tx_bytes(self, tx_hash: bytes) -> bytes | None:
        """A pooled transaction's encoding."""
        tx = self.node.mempool.get(tx_hash)
        return tx.encoded if tx is not None else None

    def precheck_block(self, block: Block) -> None:
        """Header, seal/PoW and merkle root: what must hold before we relay a block."""
        try:
            self._precheck(block)
        except RejectError as error:
            self.node.node_metrics.blocks_rejected.labels(code=error.code).inc()
            log.warning("block %s from a peer failed precheck: %s", block.hash.hex()[:16], error)
            raise
        if self.node.tree.meta(block.parent) is not None:  # the full header check ran: import need not repeat it
            self._prechecked[block.hash] = None
            while len(self._prechecked) > 64:
                del self._prechecked[next(iter(self._prechecked))]

    def _precheck(self, block: Block) -> None:
        tree = self.node.tree
        parent = tree.meta(block.parent)
        if parent is not None:
            if block.height != parent.height + 1:
                raise RejectError("bad-height", f"height {block.height} on a parent at {parent.height}")
            tree.policy.check_header(block.header, parent, tree, wall_ms())
        elif self.node.genesis.consensus == "pow":
            from consensus.pow.seal import check_pow

            check_pow(block.header)  # without the parent, at least its own target must be met
        check_block_cheap(block, tree.rules, now_ms=wall_ms())

    async def submit_block(self, block: Block, peer: str) -> Any:
        """Full validation and import."""
        from p2p.service import BlockVerdict

        prechecked = self._prechecked.pop(block.hash, 0) is None
        result = await self.node.import_block(block, source=peer, prechecked=prechecked)
        return BlockVerdict(status=result.status, missing_parent=result.missing_parent)

    async def submit_tx(self, tx: Transaction, peer: str) -> None:
        """Mempool admission of a gossiped transaction."""
        await self.node.submit_tx(tx, source=peer)

    def on_engine_message(self, peer: str, kind: str, payload: bytes) -> None:
        """Hand an engine payload to the engine."""
        self.node.on_engine_message(peer, kind, payload)


class NodeApiAdapter:
    """What the RPC server may ask of the node (node.api.NodeAPI)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.metrics = node.metrics

    def status(self) -> dict[str, object]:
        """The status document."""
        return self.node.status()

    def block(self, ref: int | bytes) -> Block | None:
        """By best-chain height or by hash."""
        tree = self.node.tree
        block_hash = tree.hash_at(ref) if isinstance(ref, int) else ref
        return tree.get_block(block_hash) if block_hash is not None else None

    def block_height_info(self, block_hash: bytes) -> BlockPosition:
        """Height, best-chain membership and finality of a known block."""
        tree = self.node.tree
        meta = tree.meta(block_hash)
        if meta is None:
            raise KeyError(block_hash.hex())
        on_best = tree.is_on_best_chain(block_hash)
        final = on_best and meta.height <= tree.final_height
        return BlockPosition(height=meta.height, on_best_chain=on_best, final=final)

    def blocks_range(self, from_height: int, limit: int) -> list[Block]:
        """Consecutive best-chain blocks."""
        tree = self.node.tree
        out = []
        for height in range(from_height, min(tree.height, from_height + limit - 1) + 1):
            block = self.block(height)
            if block is not None:
                out.append(block)
        return out

    def tips(self) -> list[TipInfo]:
        """Branch tips."""
        return self.node.tree.tips()

    async def submit_tx(self, tx: Transaction) -> None:
        """Admission and relay."""
        await self.node.submit_tx(tx)

    def tx_status(self, tx_hash: bytes) -> TxStatus:
        """pending | included | final | unknown."""
        node = self.node
        pooled = node.mempool.get(tx_hash)
        if pooled is not None:
            return TxStatus(status="pending", tx=pooled)
        location = node.tree.store.tx_location(tx_hash)
        if location is None:
            return TxStatus(status="unknown")
        block_hash, index = location
        meta = node.tree.meta(block_hash)
        if meta is None or not node.tree.is_on_best_chain(block_hash):
            return TxStatus(status="unknown")
        block = node.tree.get_block(block_hash)
        tx = block.txs[index] if block is not None and index < len(block.txs) else None
        status: TxState = "final" if meta.height <= node.tree.final_height else "included"
        return TxStatus(status=status, height=meta.height, block_hash=block_hash, index=index, tx=tx)

    def account(self, address: bytes, at: str) -> AccountView:
        """As of the tip, or of the final block (the tip state with the non-final blocks' undo applied)."""
        tree = self.node.tree
        if at == "latest":
            account = tree.state.get(address)
            balance, nonce = (account.balance, account.nonce) if account else (0, 0)
            pending = self.node.mempool.pending_nonce(address, tree.state)
            return AccountView(balance=balance, nonce=nonce, height=tree.height, pending_nonce=pending)
        account = None
        found = False
        for height in range(tree.height, tree.final_height, -1):  # newest first: the oldest undo wins
            block_hash = tree.hash_at(height)
            assert block_hash is not None
            for changed, previous in tree.store.get_undo(block_hash).previous:
                if changed == address:
                    account, found = previous, True
        if not found:
            account = tree.state.get(address)
        balance, nonce = (account.balance, account.nonce) if account else (0, 0)
        return AccountView(balance=balance, nonce=nonce, height=tree.final_height)

    def mempool(self) -> list[PoolEntryView]:
        """The pool, best fee rate first."""
        return self.node.mempool.snapshot()

    def peers(self) -> list[dict[str, object]]:
        """Connected peers."""
        return self.node.p2p.peers() if self.node.p2p is not None else []

    def subscribe(self) -> EventSubscription:
        """A new event stream."""
        return self.node.events.subscribe()

    def set_faults(self, spec: dict[str, object]) -> dict[str, object]:
        """Fault injection in the P2P transport (testnet nemesis)."""
        from p2p.service import FaultConfig

        allowed = {"blocked_peers", "delay_ms", "jitter_ms", "loss", "duplicate"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))} (known: {', '.join(sorted(allowed))})")
        blocked = spec.get("blocked_peers", [])
        if not isinstance(blocked, list) or not all(isinstance(p, str) for p in blocked):
            raise ValueError("blocked_peers must be a list of node ids or urls")
        numbers: dict[str, float] = {}
        for name in ("delay_ms", "jitter_ms", "loss", "duplicate"):
            value = spec.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            numbers[name] = float(value)
        for name in ("loss", "duplicate"):
            if numbers[name] > 1:
                raise ValueError(f"{name} is a probability in [0, 1]")
        faults = FaultConfig(blocked_peers=frozenset(blocked), **numbers)
        self.node.p2p.set_faults(faults)
        log.warning("faults set: %s", spec)
        return {"blocked_peers": sorted(blocked), **numbers}

    def set_mining(self, enabled: bool) -> dict[str, object]:
        """Admin mining switch."""
        self.node.engine.set_mining_enabled(enabled, now=time.monotonic())
        self.node._drive_engine()
        return {"mining_enabled": enabled}

    def connect_peer(self, url: str) -> None:
        """Dial a peer."""
        self.node.p2p.connect(url)
