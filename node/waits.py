"""Client requests that wait on the node's progress: linearizable reads (the engine's read index, then the final
height reaching it) and commit waits of submitted transactions (`POST /v1/transactions?wait=included|final`).

Event-driven, never polled: the runtime hands every Output to these objects (`on_answers` with the engine's read
answers, `on_connected` with each newly connected block, `on_final_height` after any block or finality change),
and each wakes exactly the futures whose condition may now hold. A woken waiter re-checks the node's state before
it answers, so a reorg between the wake-up and the answer is never reported as progress.

Cost per block is O(its transactions) dictionary look-ups, and nothing at all while nobody waits; the final-height
side is a heap of heights. Every wait is bounded (in time and in number) and fails with a typed `RejectError`
(`busy`, `read-timeout`, `stopping`, or the engine's own code) instead of hanging. Loop-thread only.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Iterable

from chain.block import Block
from chain.errors import RejectError
from consensus.engine import ReadResult
from node.api import WAIT_LEVELS, WaitLevel

log = logging.getLogger("chainlab.node")

READ_TIMEOUT_S = 5.0  # the engine's answer and the final height reaching its index, together
MAX_PENDING_READS = 10_000
MAX_TX_WAITS = 100_000


def stopping_error() -> RejectError:
    """What every pending wait fails with when the node stops."""
    return RejectError("stopping", "the node is stopping")


def busy_error(what: str, limit: int) -> RejectError:
    """Too many waits of one kind pending."""
    return RejectError("busy", f"{limit} {what} are pending already; retry later")


class FinalHeightWaits:
    """Futures that complete once the final height reaches a given height."""

    def __init__(self) -> None:
        self._by_height: dict[int, set[asyncio.Future[None]]] = {}
        self._heights: list[int] = []  # heap of the keys of _by_height (a key may linger after its set emptied)
        self._final_height = 0
        self._closed = False

    def __len__(self) -> int:
        return sum(len(futures) for futures in self._by_height.values())

    def wait(self, height: int, final_height: int) -> asyncio.Future[None]:
        """A future done once the final height is at least `height` (at once when `final_height` already is)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._final_height = max(self._final_height, final_height)
        if self._closed:
            future.set_exception(stopping_error())
        elif height <= self._final_height:
            future.set_result(None)
        else:
            if height not in self._by_height:
                self._by_height[height] = set()
                heapq.heappush(self._heights, height)
            self._by_height[height].add(future)
        return future

    def forget(self, height: int, future: asyncio.Future[None]) -> None:
        """Drop a future its waiter gave up on (timeout)."""
        futures = self._by_height.get(height)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._by_height[height]

    def on_final_height(self, final_height: int) -> None:
        """The final height is now `final_height`: complete every future waiting for it or less."""
        self._final_height = max(self._final_height, final_height)
        while self._heights and self._heights[0] <= self._final_height:
            for future in self._by_height.pop(heapq.heappop(self._heights), ()):
                if not future.done():
                    future.set_result(None)

    def close(self) -> None:
        """Fail every pending future with `stopping`; later waits fail at once."""
        self._closed = True
        for futures in self._by_height.values():
            for future in futures:
                if not future.done():
                    future.set_exception(stopping_error())
        self._by_height.clear()
        self._heights.clear()


class LinearizableReads:
    """Linearizable reads in flight: a request id per read, the engine's answer per id, then the final height.

    `read` allocates the id and calls `request(id)`, which must hand it to the engine (NodeCore.read_index) and
    apply the Output; answers arrive in `on_answers`, from that Output or a later one.
    """

    def __init__(self, final_waits: FinalHeightWaits, *, max_pending: int = MAX_PENDING_READS) -> None:
        self.final_waits = final_waits
        self.max_pending = max_pending
        self._answers: dict[int, asyncio.Future[ReadResult]] = {}
        self._next_id = 1
        self._closed = False

    @property
    def pending(self) -> int:
        """Reads in flight (waiting for the engine or for the final height)."""
        return len(self._answers)

    async def read(self, request: Callable[[int], None], final_height: Callable[[], int], *,
                   timeout_s: float = READ_TIMEOUT_S) -> ReadResult:
        """The engine's successful answer, returned once `final_height()` reaches its index; the caller reads its
        state in the same step (no await in between). RejectError: the engine's error, `read-timeout` after
        `timeout_s`, `busy` when `max_pending` reads are in flight, `stopping` when the node stops."""
        if self._closed:
            raise stopping_error()
        if len(self._answers) >= self.max_pending:
            raise busy_error("linearizable reads", self.max_pending)
        request_id, self._next_id = self._next_id, self._next_id + 1
        answer: asyncio.Future[ReadResult] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = answer
        reached: asyncio.Future[None] | None = None
        result: ReadResult | None = None
        try:
            async with asyncio.timeout(timeout_s):
                request(request_id)  # may answer at once, through on_answers
                result = await answer
                if result.error is not None:
                    raise result.error
                reached = self.final_waits.wait(result.index, final_height())
                await reached
        except TimeoutError:
            stage = "the engine's answer" if result is None else f"the final height to reach {result.index}"
            raise RejectError("read-timeout", f"no linearizable read within {timeout_s:g} s (waiting for {stage})",
                              ) from None
        finally:
            self._answers.pop(request_id, None)
            if reached is not None and result is not None:  # a timeout cancelled it: drop it from its height
                self.final_waits.forget(result.index, reached)
        return result

    def on_answers(self, answers: Iterable[ReadResult]) -> None:
        """The engine answered read requests (unknown ids belong to reads that timed out: dropped)."""
        for answer in answers:
            future = self._answers.get(answer.request_id)
            if future is None:
                log.debug("dropped the engine's answer to read %d: the read is over", answer.request_id)
            elif not future.done():
                future.set_result(answer)

    def close(self) -> None:
        """Fail every read waiting for the engine with `stopping` (the final-height side closes on its own)."""
        self._closed = True
        for future in self._answers.values():
            if not future.done():
                future.set_exception(stopping_error())


class TxCommitWaits:
    """Clients waiting for a transaction to be included in a connected block, or in a final one.

    A waiter registers under its transaction's hash until a connected block holds it, then under that block's
    height until the final height reaches it; each wake-up re-reads where the transaction is.
    """

    def __init__(self, final_waits: FinalHeightWaits, *, max_waits: int = MAX_TX_WAITS) -> None:
        self.final_waits = final_waits
        self.max_waits = max_waits
        self._by_tx: dict[bytes, set[asyncio.Future[None]]] = {}
        self._active = 0
        self._closed = False

    @property
    def active(self) -> int:
        """Waits in progress."""
        return self._active

    async def wait(self, tx_hash: bytes, level: WaitLevel, locate: Callable[[bytes], int | None],
                   final_height: Callable[[], int], *, timeout_s: float) -> bool:
        """True once the transaction is in a connected block of the best chain (`included`) or in a final block
        (`final`); False after `timeout_s`. `locate(hash)` is the height of the best-chain block holding it, or
        None. RejectError `busy` when `max_waits` waits are active, `stopping` when the node stops."""
        if level not in WAIT_LEVELS:
            raise ValueError(f"unknown wait level {level!r}")
        if self._closed:
            raise stopping_error()
        if self._active >= self.max_waits:
            raise busy_error("transaction waits", self.max_waits)
        self._active += 1
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    height = locate(tx_hash)
                    if height is None:
                        await self._until_connected(tx_hash)
                    elif level == "included" or height <= final_height():
                        return True
                    else:  # wait for its height to go final, then look again (a reorg may have moved it)
                        reached = self.final_waits.wait(height, final_height())
                        try:
                            await reached
                        finally:  # done, or cancelled by the timeout: either way no longer waited on
                            self.final_waits.forget(height, reached)
        except TimeoutError:
            return False
        finally:
            self._active -= 1

    async def _until_connected(self, tx_hash: bytes) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._by_tx.setdefault(tx_hash, set()).add(future)
        try:
            await future
        finally:
            futures = self._by_tx.get(tx_hash)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._by_tx[tx_hash]

    def on_connected(self, block: Block) -> None:
        """`block` joined the best chain: wake the waiters of its transactions."""
        if not self._by_tx:
            return
        for tx in block.txs:
            futures = self._by_tx.pop(tx.hash, None)
            if futures is not None:
                for future in futures:
                    if not future.done():
                        future.set_result(None)

    def close(self) -> None:
        """Fail every wait with `stopping`; later waits fail at once."""
        self._closed = True
        for futures in self._by_tx.values():
            for future in futures:
                if not future.done():
                    future.set_exception(stopping_error())
        self._by_tx.clear()
