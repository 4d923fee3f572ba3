"""The node: the pure node core (block tree + mempool + engine, node/core.py) driven on one asyncio loop, with
P2P, RPC, mining workers and a signature-checking pool around it.

Everything CPU-heavy leaves the loop: PoW grinding runs in mining processes (node/mining.py), and signature checks
of incoming blocks run in worker processes when `validation.workers > 1` (they land in the signature cache, so
the block tree's own check finds them done). This module only does I/O: it feeds inputs to the core and carries
out each `Output` (send, mine, publish, log, count).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import prometheus_client

from causality.recorder import NodeTracer
from chain import crypto
from chain.block import Block
from chain.blocktree import AddResult
from chain.errors import RejectError
from chain.housekeeping import HOUSEKEEPING_S
from chain.tx import Transaction
from chain.validation import TxSignatureItems, verify_in_process
from consensus.engine import ReadResult
from consensus.registry import spec_of
from node.adapters import ChainAccessAdapter, NodeApiAdapter
from node.api import EventBroker
from node.config import ConfigError, NodeConfig
from node.core import NodeCore, Output
from node.datadir import OpenChain, open_chain
from node.identity import load_or_create_key, load_p2p_key
from node.lifetime import ignore_sigint
from node.metrics import NodeMetrics
from node.mining import Miner, solve_puzzle
from node.rpc import RpcConfig, RpcServer
from node.syncprogress import SyncProgress
from node.tracefile import TraceFile, open_trace
from node.waits import READ_TIMEOUT_S, FinalHeightWaits, LinearizableReads, TxCommitWaits
from p2p.service import P2PConfig, P2PService
from p2p.tracing import WireTracer

log = logging.getLogger("chainlab.node")

NODE_INFO_FILE = "node.json"
METRICS_REFRESH_S = 0.25  # gauges refresh at most this often as blocks come (and before every scrape)


REORG_LOG_SIZE = 100  # the node's last reorgs, for /v1/reorgs and the explorer's tree page
REORG_LOG_FIELDS = ("time_ms", "depth", "old_tip", "old_height", "new_tip", "new_height", "fork_height")


def wall_ms() -> int:
    """Wall-clock milliseconds (block timestamps)."""
    return int(time.time() * 1000)


class Node:
    """A running chainlab node; `await start()`, then `await wait_stopped()` or `await stop()`."""

    def __init__(self, datadir: str | Path, config: NodeConfig) -> None:
        self.datadir = Path(datadir)
        self.config = config
        self.key = load_or_create_key(self.datadir)
        # The P2P identity: the node key, unless the data directory holds a key of its own for it (a twin's).
        self.p2p_key = load_p2p_key(self.datadir) or self.key
        self.chain: OpenChain = open_chain(self.datadir, create=True)
        self.core = NodeCore(name=config.node.name, tree=self.chain.tree, key=self.key,
                             mining=config.mining.enabled)
        self.tree = self.core.tree
        self.genesis = self.core.genesis
        self.mempool = self.core.mempool
        self.engine = self.core.engine
        self.metrics = prometheus_client.CollectorRegistry()
        self.node_metrics = NodeMetrics(self.metrics)
        self.node_metrics.before_scrape = self._update_metrics
        self._metrics_at = float("-inf")
        self.node_metrics.add_engine_metrics(spec_of(self.genesis).metrics)
        self.events = EventBroker()
        self.final_waits = FinalHeightWaits()
        self.reads = LinearizableReads(self.final_waits)
        self.tx_waits = TxCommitWaits(self.final_waits)
        self.p2p: P2PService | None = None
        self.rpc: RpcServer | None = None
        self.tracer: NodeTracer | None = None
        self.reorg_log: deque[dict[str, object]] = deque(maxlen=REORG_LOG_SIZE)  # newest first: /v1/reorgs
        self._trace_file: TraceFile | None = None
        self.miner: Miner | None = None
        self.sync_progress = SyncProgress()
        self._bootstrap_deadline: float | None = None  # while set, mining waits for a configured peer
        self._stopping = False
        self._verify_pool: ProcessPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[None]] = set()
        self._stopped = asyncio.Event()
        self._import_lock = asyncio.Lock()
        self._mining_job: tuple[int, int] | None = None  # (miner generation, core job id)
        self._mining_active: bool | None = None
        self._known_peers: set[str] = set()
        self.started_at = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind P2P and RPC, start the engine, miners and timers."""
        self._loop = asyncio.get_running_loop()
        if self.config.validation.workers > 1:
            import multiprocessing

            self._verify_pool = ProcessPoolExecutor(self.config.validation.workers,
                                                    mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=ignore_sigint)
        p2p = self.config.p2p
        self.tracer = self._open_trace()
        self.p2p = service = P2PService(
            P2PConfig(listen_host=p2p.host, listen_port=p2p.port, bootstrap=tuple(p2p.bootstrap),
                      target_peers=p2p.target_peers, max_peers=p2p.max_peers, advertise_url=p2p.advertise_url,
                      socket_limits=p2p.socket_limits()),
            # Handshake challenges must be unpredictable: the system's randomness, not a seeded generator.
            self.p2p_key, ChainAccessAdapter(self), rng=random.SystemRandom(),
        )
        if self.tracer is not None:
            service.tracer = WireTracer(self.tracer)
        await service.start()
        self.node_metrics.watch_p2p(service.metrics)
        self.node_metrics.watch_listener("p2p", service.listener.counters)
        rpc = self.config.rpc
        self.rpc = server = RpcServer(RpcConfig(host=rpc.host, port=rpc.port, admin_token=rpc.admin_token or None,
                                                socket_limits=rpc.socket_limits()),
                                      NodeApiAdapter(self))
        self.node_metrics.watch_listener("rpc", server.listener.counters)
        await server.start()
        if self.core.spec.seals_with_workers and self.config.mining.enabled:
            self._start_miner()
        if p2p.bootstrap and self.core.spec.seals_with_workers and self.config.mining.enabled:
            # No split at birth: two nodes started together could each finalize a chain of their own.
            grace = self.config.mining.startup_grace_s
            self._bootstrap_deadline = time.monotonic() + grace
            self.engine.on_bootstrap(True, now=time.monotonic())
            log.info("mining waits to reach a configured peer and catch up (at most %.0f s)", grace)
        self.apply(self.core.start(now=time.monotonic(), now_ms=wall_ms()))
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="engine-tick"))
        self._tasks.append(asyncio.create_task(self._housekeeping_loop(), name="housekeeping"))
        self._update_metrics()
        self._write_node_info()
        log.info("node %s up: height %d, p2p %s, rpc %s, node id %s", self.config.node.name, self.tree.height,
                 service.url, server.url, self.p2p_key.public_key.hex()[:16])
        for warning in self.core.spec.start_warnings(self.genesis, self.key.address, self.config.mining.enabled):
            log.warning("genesis: %s", warning)

    @property
    def trace_path(self) -> Path | None:
        """The file of `[node] trace_file`; None when tracing is off."""
        return self.datadir / self.config.node.trace_file if self.config.node.trace_file else None

    def _open_trace(self) -> NodeTracer | None:
        """The causal trace of `[node] trace_file` (docs/TRACING.md), or None when tracing is off."""
        path = self.trace_path
        if path is None:
            return None
        try:
            tracer, self._trace_file = open_trace(self.config.node.name, path, self.key.public_key.hex())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"[node] trace_file {path}: {exc}") from exc
        log.info("tracing causality to %s (resumed from event %d)", path, tracer.resumed_from)
        return tracer

    def _trace(self, out: Output) -> None:
        """The core's decisions as internal events, before the messages they cause are sent."""
        tracer = self.tracer
        if tracer is None:
            return
        for what, detail in out.decisions:  # the engine's: leader elected, vote cast
            tracer.internal(what, detail)
        made = "block-mined" if self.core.spec.seals_with_workers else "block-proposed"
        for block in out.announce_blocks:
            tracer.internal(made, {"block": block.hash.hex(), "height": block.height})
        for event in out.events:
            kind = event.get("type")
            if kind == "block":
                tracer.internal("block-connected", {"block": event["hash"], "height": event["height"]})
            elif kind == "final":
                tracer.internal("block-final", {"block": event["hash"], "height": event["height"]})
            elif kind == "reorg":  # the event's own fields: hashes, depth, old and new tip, fork height
                tracer.internal("reorg", {key: value for key, value in event.items() if key != "type"})
        if out.mining is not None and self._mining_active != out.mining.active:
            tracer.internal("mining-resumed" if out.mining.active else "mining-paused",
                            {"reason": out.mining.reason})

    def _write_node_info(self) -> None:
        """`node.json` in the data directory: how tools find a running node (pid, bound URLs, node id)."""
        assert self.p2p is not None and self.rpc is not None, "written once both servers are bound"
        info = {"pid": os.getpid(), "name": self.config.node.name, "p2p_url": self.p2p.url, "rpc_url": self.rpc.url,
                "node_id": self.p2p_key.public_key.hex(), "address": crypto.address_to_text(self.key.address)}
        path = self.datadir / NODE_INFO_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)

    async def stop(self) -> None:
        """Graceful shutdown: stop mining, finish the current import, close P2P, RPC and the store."""
        if self._stopped.is_set():
            return
        self._stopping = True  # from here the admin switch no longer starts mining workers
        log.info("shutting down")
        # Waiting RPC clients get a `stopping` answer now rather than a dropped connection at the server's stop.
        self.reads.close()
        self.tx_waits.close()
        self.final_waits.close()
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
            if self._trace_file is not None:
                self._trace_file.close()
        (self.datadir / NODE_INFO_FILE).unlink(missing_ok=True)
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Until stop() has finished."""
        await self._stopped.wait()

    def install_signal_handlers(self) -> None:
        """SIGTERM, SIGINT and SIGHUP (its terminal closed) stop the node gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, lambda: self._spawn(self.stop()))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.engine.tick_interval_s)
            now, now_ms = time.monotonic(), wall_ms()
            if self.p2p is not None:
                peers = set(self.p2p.peer_ids())
                if peers != self._known_peers:
                    self.apply(self.core.peers_changed(peers, self._known_peers, now=now, now_ms=now_ms))
                    self._known_peers = peers
                self.apply(self.core.sync_gap(self.p2p.sync_pause_height, now=now, now_ms=now_ms))
                self._observe_sync()  # the start and the end of a sync are noticed within a tick
                if self._bootstrap_deadline is not None:
                    self._check_bootstrap(now, now_ms)
            self.apply(self.core.tick(now=now, now_ms=now_ms))

    def _check_bootstrap(self, now: float, now_ms: int) -> None:
        """End the start-up wait once a peer is reached and we are caught up, or at the deadline (logged)."""
        assert self.p2p is not None and self._bootstrap_deadline is not None
        if self._known_peers and not self.p2p.syncing:
            log.info("reached %d peer(s) and caught up at height %d: mining may start", len(self._known_peers),
                     self.tree.height)
        elif now >= self._bootstrap_deadline:
            log.warning("no configured peer reached and caught up with within %.0f s (%s): mining alone",
                        self.config.mining.startup_grace_s, ", ".join(self.config.p2p.bootstrap))
        else:
            return
        self._bootstrap_deadline = None
        self.apply(self.core.bootstrap_status(False, now=now, now_ms=now_ms))

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            self.apply(self.core.housekeeping(now=time.monotonic(), now_ms=wall_ms()))
            self._observe_sync()
            self._update_metrics()

    def _observe_sync(self) -> None:
        if self.p2p is None:
            return
        height, target = self.p2p.sync_progress
        line = self.sync_progress.observe(time.monotonic(), height=height, target_height=target,
                                          syncing=self.p2p.syncing)
        if line is not None:
            log.info("%s", line)

    # -- carrying out the core's decisions -----------------------------------------------------------------------

    def apply(self, out: Output) -> None:
        """Do what the core decided: log, count, send, mine, publish."""
        self._trace(out)
        for note in out.notes:
            log.info("%s", note)
        if out.results:
            self._observe_sync()
        if out.tip_note is not None:
            # While syncing, the progress line every few seconds says it; each block's line goes to debug.
            log.log(logging.DEBUG if self.sync_progress.syncing else logging.INFO, "%s", out.tip_note)
        for result in out.results:
            self._count(result)
            for block in result.connected:
                self.tx_waits.on_connected(block)
        self._count_alarms()
        if out.reads:
            self.reads.on_answers(out.reads)
        if out.results or out.events:
            self.final_waits.on_final_height(self.tree.final_height)
        if self.p2p is not None:
            # Blocks first: an engine message about a block (a Raft append naming it) should not overtake it.
            for block in out.announce_blocks:
                self.p2p.announce_block(block)
            for message in out.engine_messages:
                self.p2p.send_engine(message.message.kind, message.message.payload, exclude=message.exclude,
                                     address=message.address)
            for tx, exclude, destination in out.announce_txs:
                self.p2p.announce_tx(tx.hash, exclude=exclude, address=destination)
            for peer, block_hash in out.fetch_blocks:
                self.p2p.want_blocks(peer, [block_hash])
        if out.mining is not None:
            work = out.mining
            if self._mining_active != work.active:
                log.info("mining %s: %s", "on" if work.active else "off", work.reason)
                self._mining_active = work.active
            self.node_metrics.set_mining(work.active, self._reachable_share())
            if work.active and self.miner is None and not self._stopping and self._loop is not None:
                self._start_miner()
            if self.miner is not None:
                if work.active:
                    generation = self.miner.start_job(work.prefix, work.target, first_nonce=random.getrandbits(40))
                    self._mining_job = (generation, work.job_id)
                else:
                    self._mining_job = None
                    self.miner.stop_job()
        for event in out.events:
            self.events.publish(event)
            if event.get("type") == "reorg":
                self.reorg_log.appendleft({key: event[key] for key in REORG_LOG_FIELDS if key in event})
        if (out.results or out.events) and time.monotonic() - self._metrics_at >= METRICS_REFRESH_S:
            self._update_metrics()

    def _count(self, result: AddResult) -> None:
        metrics = self.node_metrics
        for _, rejection in result.rejected:
            metrics.blocks_rejected.labels(code=rejection.code).inc()
        if result.disconnected:
            metrics.observe_reorg(len(result.disconnected), len(result.connected))
        metrics.blocks_connected.inc(len(result.connected))

    def _count_alarms(self) -> None:
        alarms = self.tree.take_alarms()
        if alarms:
            self.node_metrics.safety_alarms.inc(len(alarms))

    def _spawn(self, work: Awaitable[None]) -> None:
        """Run `work` as a task the node keeps a reference to until it is done."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- inputs from the transport, the RPC and the miners -------------------------------------------------------

    def on_engine_message(self, peer: str, kind: str, payload: bytes) -> None:
        """An engine message from P2P (RejectError propagates: P2P penalizes the peer)."""
        self.apply(self.core.receive_engine_message(peer, kind, payload, now=time.monotonic(), now_ms=wall_ms()))

    async def import_block(self, block: Block, source: str, *, prechecked: bool = False) -> AddResult:
        """Validate and import a block from a peer (signatures checked off the loop first when configured)."""
        await asyncio.sleep(0)  # let the writers flush what was just relayed before the loop is busy importing
        await self._preverify_signatures(block.txs)
        async with self._import_lock:
            try:
                out = self.core.receive_block(block, source=source, now=time.monotonic(), now_ms=wall_ms(),
                                              prechecked=prechecked)
            except RejectError as error:
                self.node_metrics.blocks_rejected.labels(code=error.code).inc()
                self._count_alarms()  # a refused block can still be evidence of conflicting finality
                raise
            self.apply(out)
            return out.results[0]

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
        futures = [self._loop.run_in_executor(self._verify_pool, verify_in_process, TxSignatureItems(part)[:])
                   for part in parts]
        verified: list[bytes] = []
        for part, results in zip(parts, await asyncio.gather(*futures), strict=True):
            verified.extend(tx.hash for tx, ok in zip(part, results, strict=True) if ok)
        cache.add_many(verified)
        self.node_metrics.signatures_preverified.inc(len(verified))

    def _on_nonce_found(self, generation: int, nonce: int) -> None:
        if self._mining_job is None or self._mining_job[0] != generation:
            return
        _, job_id = self._mining_job
        self._mining_job = None
        self.apply(self.core.mined(job_id, nonce, now=time.monotonic(), now_ms=wall_ms()))

    async def submit_tx(self, tx: Transaction, source: str | None = None) -> None:
        """Mempool admission (RejectError with its code), then relay and refresh the mining template."""
        out = self.core.receive_tx(tx, source=source, now=time.monotonic(), now_ms=wall_ms())
        if source is None and self.tracer is not None:  # a client's write entering the system
            self.tracer.internal("tx-accepted", {"tx": tx.hash.hex()})
        self.apply(out)

    async def read_index(self) -> ReadResult:
        """A linearizable read's go-ahead: the engine's answer, returned once the final height has reached its
        index (read the state before the next await). RejectError: the engine's code, `read-timeout` after
        READ_TIMEOUT_S, `busy`, `stopping`."""
        return await self.reads.read(self._request_read, lambda: self.tree.final_height, timeout_s=READ_TIMEOUT_S)

    def _request_read(self, request_id: int) -> None:
        self.apply(self.core.read_index(request_id, now=time.monotonic(), now_ms=wall_ms()))

    def write_refusal(self) -> RejectError | None:
        """Why client transactions are refused now (the engine's say), or None."""
        return self.core.write_refusal(now=time.monotonic())

    def _start_miner(self) -> None:
        assert self._loop is not None
        self.miner = Miner(self.config.mining.processes, self.config.mining.hashrate_hps,
                           nice=self.config.mining.nice)
        self.miner.watch(self._loop, self._on_nonce_found)

    async def mine_now(self, count: int, proposer: bytes) -> list[bytes]:
        """Mine `count` blocks paying `proposer` now, one on another, whatever the engine decided (regtest's
        generatetoaddress), through the same import path as a worker's block; their hashes. A block that lands
        on the tip while one is ground is built on instead. RejectError: `mining-unsupported` (not a PoW
        engine), `stopping`, or `block-rejected` with the reason."""
        hashes: list[bytes] = []
        while len(hashes) < count:
            if self._stopping:
                raise RejectError("stopping", "the node is stopping")
            job = self.core.demand_job(proposer, now_ms=wall_ms())
            parent = job.draft.header.parent

            def still_wanted(parent: bytes = parent) -> bool:
                return self.tree.tip.hash == parent and not self._stopping

            nonce = await solve_puzzle(job.puzzle.prefix, job.puzzle.target, still_wanted)
            if nonce is None:
                continue
            async with self._import_lock:
                if self.tree.tip.hash != parent:
                    continue
                block, out = self.core.mined_on_demand(job, nonce, now=time.monotonic(), now_ms=wall_ms())
                self.apply(out)
            if not any(connected.hash == block.hash for result in out.results for connected in result.connected):
                raise RejectError("block-rejected", "; ".join(out.notes) or "the mined block did not connect")
            hashes.append(block.hash)
        return hashes

    def admin(self, action: str, value: object) -> dict[str, object]:
        """An admin action for the engine (consensus.engine.UnsupportedAdmin when it has none by that name). A
        node whose engine seals with workers and was started without them gets them when its engine first asks
        for work (before, a switched-on PoW engine said it mined while nothing ground a nonce)."""
        if self._stopping:
            return {"stopping": True}
        out, answer = self.core.admin(action, value, now=time.monotonic(), now_ms=wall_ms())
        self.apply(out)
        return answer

    # -- views ---------------------------------------------------------------------------------------------------

    def _reachable_share(self) -> float | None:
        share = self.engine.status(now=time.monotonic()).to_json().get("reachable_share")
        return float(share) if isinstance(share, int | float) else None

    def status(self) -> dict[str, object]:
        """The /v1/status document."""
        status = self.core.status(now=time.monotonic())
        status.update({
            "node": self.config.node.name,
            "peers": len(self.p2p.peer_ids()) if self.p2p is not None else 0,
            "p2p_url": self.p2p.url if self.p2p is not None else None,
            # The id peers know this node by (p2p.key when present, else the node key in `node_id`): what a
            # fault spec's blocked_peers names.
            "p2p_node_id": self.p2p_key.public_key.hex(),
            "bootstrap_peers": self.p2p.configured_peers() if self.p2p is not None else [],
            "syncing": bool(self.p2p.syncing) if self.p2p is not None else False,
            "sync_target_height": self.p2p.sync_progress[1] if self.p2p is not None else self.tree.height,
            "sync": self._sync_view(),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        })
        return status

    def _sync_view(self) -> dict[str, object] | None:
        """Height, target, blocks/s and ETA while syncing; None otherwise."""
        if self.p2p is None or not self.p2p.syncing:
            return None
        height, target = self.p2p.sync_progress
        return self.sync_progress.view(height=height, target_height=target).to_json()

    def _update_metrics(self) -> None:
        """The gauges (height, mempool, peers, the engine's status fields): at most every METRICS_REFRESH_S as
        blocks and events come (each refresh asks the engine for its whole status), at every housekeeping round,
        and before every scrape."""
        self._metrics_at = time.monotonic()
        metrics = self.node_metrics
        metrics.chain_height.set(self.tree.height)
        metrics.final_height.set(self.tree.final_height)
        metrics.orphans.set(len(self.tree.orphans))
        metrics.observe_mempool(len(self.mempool), self.mempool.size_bytes)
        if self.p2p is not None:
            metrics.peers.set(len(self.p2p.peer_ids()))
            metrics.syncing.set(1 if self.p2p.syncing else 0)
        engine_status = self.engine.status(now=time.monotonic()).to_json()
        metrics.observe_engine_status(engine_status)
        share = engine_status.get("reachable_share")
        if isinstance(share, int | float):
            metrics.reachable_hash_share.set(share)
