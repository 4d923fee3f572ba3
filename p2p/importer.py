"""The importer: hands received transactions and blocks to the chain one at a time, in arrival order, and turns
the verdicts into penalties, announcements and sync steps.

One task awaits `ChainAccess.submit_tx` / `submit_block`, so imports never run concurrently (the chain need not be
re-entrant) and sync batches are imported in the order they were downloaded. The queue is bounded: when it is full
the item is dropped and forgotten by the seen-cache (or the sync batch is abandoned), so it can be fetched again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from chain.block import Block
from chain.errors import RejectError
from chain.tx import Transaction
from p2p.config import ChainAccess
from p2p.protocol.inventory import Gossip
from p2p.protocol.limits import Penalty, block_penalty, relayed_block_penalty, tx_penalty
from p2p.protocol.metrics import P2PMetrics
from p2p.protocol.sync import SyncPlanner

log = logging.getLogger("chainlab.p2p")

IMPORT_QUEUE_JOBS = 1_024


@dataclass(frozen=True, slots=True, kw_only=True)
class TxJob:
    """A transaction from `peer`."""

    peer: str
    tx: Transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockJob:
    """A gossiped block from `peer` (it passed precheck and was relayed already)."""

    peer: str
    block: Block


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchJob:
    """A sync batch from `peer`, oldest block first."""

    peer: str
    blocks: tuple[Block, ...]


Job = TxJob | BlockJob | BatchJob


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportHooks:
    """What the importer asks of the service."""

    punish: Callable[[str, Penalty, str, str], None]  # peer, penalty, code, message
    announce_tx: Callable[[bytes, str | None], None]  # hash, exclude
    announce_block: Callable[[Block, str | None], None]  # block, exclude
    poll_sync: Callable[[], None]
    is_banned: Callable[[str], bool]


class Importer:
    """A bounded queue of jobs and the task that imports them."""

    def __init__(
        self, chain: ChainAccess, gossip: Gossip, sync: SyncPlanner, metrics: P2PMetrics, hooks: ImportHooks,
        max_jobs: int = IMPORT_QUEUE_JOBS,
    ) -> None:
        self.chain = chain
        self.gossip = gossip
        self.sync = sync
        self.metrics = metrics
        self.hooks = hooks
        self._queue: asyncio.Queue[Job] = asyncio.Queue(max_jobs)

    def submit(self, job: Job) -> None:
        """Queue `job`; when the queue is full it is dropped (and may be fetched again)."""
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.metrics.frames_dropped["import-queue-full"] += 1
            log.warning("import queue full: dropping a %s from %s", type(job).__name__, job.peer[:16])
            if isinstance(job, TxJob):
                self.gossip.forget(job.tx.hash)
            elif isinstance(job, BlockJob):
                self.gossip.forget(job.block.hash)
            else:
                self.sync.batch_done(imported=False)

    async def run(self) -> None:
        """Import jobs until cancelled."""
        while True:
            job = await self._queue.get()
            if self.hooks.is_banned(job.peer):
                # The rest of what a banned peer sent is not worth validating.
                if isinstance(job, BatchJob):
                    self.sync.batch_done(imported=False)
                continue
            try:
                if isinstance(job, TxJob):
                    await self._import_tx(job)
                elif isinstance(job, BlockJob):
                    await self._import_block(job)
                else:
                    await self._import_batch(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in the chain layer: log it and keep serving the other peers
                log.exception("importing a %s from %s failed", type(job).__name__, job.peer[:16])

    async def _import_tx(self, job: TxJob) -> None:
        try:
            await self.chain.submit_tx(job.tx, job.peer)
        except RejectError as error:
            self.hooks.punish(job.peer, tx_penalty(error.code), error.code, f"tx {job.tx.hash.hex()[:16]}")
            return
        self.hooks.announce_tx(job.tx.hash, job.peer)

    async def _import_block(self, job: BlockJob) -> None:
        try:
            verdict = await self.chain.submit_block(job.block, job.peer)
        except RejectError as error:
            # The block passed our precheck and was relayed before full validation, by its sender as by us: only a
            # fault the sender could have caught cheaply is held against it (docs/P2P.md, misbehaviour).
            self.hooks.punish(job.peer, relayed_block_penalty(error.code), error.code,
                              f"block {job.block.hash.hex()[:16]} is invalid")
            return
        if verdict.status == "orphan":
            self.sync.request_from(job.peer, job.block.height)
            self.hooks.poll_sync()

    async def _import_batch(self, job: BatchJob) -> None:
        last_connected: Block | None = None
        imported = True
        try:
            for block in job.blocks:
                try:
                    verdict = await self.chain.submit_block(block, job.peer)
                except RejectError as error:
                    # Sync serves the sender's validated best chain: every invalid block counts against it.
                    imported = False
                    self.hooks.punish(job.peer, block_penalty(error.code), error.code,
                                      f"sync block {block.hash.hex()[:16]} at height {block.height} is invalid")
                    break
                if verdict.status == "orphan":
                    imported = False  # the batch does not attach where we thought: start from our locator
                    break
                if verdict.status == "connected":
                    last_connected = block
        finally:
            self.sync.batch_done(imported=imported)
        if last_connected is not None and last_connected.height == self.chain.best_height():
            self.hooks.announce_block(last_connected, job.peer)  # peers further behind learn to sync from us
        self.hooks.poll_sync()
