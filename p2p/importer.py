"""The importer: the one task that hands received transactions and blocks to the chain, one at a time, in arrival
order, and feeds each verdict back to the pure relay core (p2p/protocol/relay.py), which decides what follows.

One task awaits `ChainAccess.submit_tx` / `submit_block`, so imports never run concurrently (the chain need not be
re-entrant; the node checks signatures off the loop while it awaits) and sync batches are imported in the order
they were downloaded. The queue is bounded: when it is full the job is dropped and the relay told
(`Relay.job_dropped`), so its items can be fetched again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from chain.errors import RejectError
from p2p.config import ChainAccess
from p2p.protocol.metrics import P2PMetrics
from p2p.protocol.relay import (
    Action,
    BatchJob,
    BatchProgress,
    BlockJob,
    ImportOutcome,
    Job,
    Relay,
    TxJob,
)

__all__ = ["IMPORT_QUEUE_JOBS", "BatchJob", "BlockJob", "ImportHooks", "Importer", "Job", "TxJob"]

log = logging.getLogger("chainlab.p2p")

IMPORT_QUEUE_JOBS = 1_024


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportHooks:
    """What the importer asks of the service."""

    act: Callable[[list[Action]], None]  # carry out the relay's actions
    is_banned: Callable[[str], bool]


class Importer:
    """A bounded queue of jobs and the task that imports them."""

    def __init__(
        self, chain: ChainAccess, relay: Relay, metrics: P2PMetrics, hooks: ImportHooks,
        max_jobs: int = IMPORT_QUEUE_JOBS, now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain = chain
        self.relay = relay
        self.metrics = metrics
        self.hooks = hooks
        self._now = now
        self._queue: asyncio.Queue[Job] = asyncio.Queue(max_jobs)
        self.batches = 0  # sync batches queued or being imported: the node is still catching up meanwhile

    def submit(self, job: Job) -> None:
        """Queue `job`; when the queue is full it is dropped (and may be fetched again)."""
        try:
            self._queue.put_nowait(job)
            if isinstance(job, BatchJob):
                self.batches += 1
        except asyncio.QueueFull:
            self.metrics.frames_dropped["import-queue-full"] += 1
            log.warning("import queue full: dropping a %s from %s", type(job).__name__, job.peer[:16])
            self.relay.job_dropped(job)

    async def run(self) -> None:
        """Import jobs until cancelled."""
        while True:
            job = await self._queue.get()
            try:
                await self._run_one(job)
            finally:
                if isinstance(job, BatchJob):
                    self.batches -= 1

    async def _run_one(self, job: Job) -> None:
        if self.hooks.is_banned(job.peer):
            # The rest of what a banned peer sent is not worth validating.
            self.relay.job_dropped(job)
            return
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
            self.relay.job_dropped(job)

    async def _import_tx(self, job: TxJob) -> None:
        try:
            await self.chain.submit_tx(job.tx, job.peer)
        except RejectError as error:
            self.hooks.act(self.relay.tx_imported(job, error))
            return
        self.hooks.act(self.relay.tx_imported(job, None))

    async def _import_block(self, job: BlockJob) -> None:
        outcome: ImportOutcome
        try:
            outcome = await self.chain.submit_block(job.block, job.peer)
        except RejectError as error:
            outcome = error
        self.hooks.act(self.relay.block_imported(job, outcome, self._now()))

    async def _import_batch(self, job: BatchJob) -> None:
        progress = BatchProgress()
        for block in job.blocks:
            outcome: ImportOutcome
            try:
                outcome = await self.chain.submit_block(block, job.peer)
            except RejectError as error:
                outcome = error
            if not progress.record(block, outcome):
                break
        self.hooks.act(self.relay.batch_imported(job, progress, self._now()))
