"""node/waits.py on its own: bounds, stale answers, reorgs and shutdown."""

from __future__ import annotations

import asyncio

import pytest

from chain.errors import RejectError
from consensus.engine import ReadResult
from node.waits import FinalHeightWaits, LinearizableReads, TxCommitWaits
from tests.chain.helpers import transfer
from tests.node import FakeNode


def test_reads_beyond_the_bound_are_busy_and_late_answers_are_dropped() -> None:
    async def main() -> None:
        reads = LinearizableReads(FinalHeightWaits(), max_pending=1)
        requested: list[int] = []
        first = asyncio.create_task(reads.read(requested.append, lambda: 5, timeout_s=0.3))
        await asyncio.sleep(0)
        with pytest.raises(RejectError) as caught:
            await reads.read(requested.append, lambda: 5, timeout_s=0.3)
        assert caught.value.code == "busy" and requested == [1]
        with pytest.raises(RejectError) as caught:
            await first
        assert caught.value.code == "read-timeout" and reads.pending == 0
        reads.on_answers([ReadResult(request_id=1, index=1, term=1)])  # too late: ignored
        answer_now = asyncio.create_task(reads.read(
            lambda request_id: reads.on_answers([ReadResult(request_id=request_id, index=5, term=2)]), lambda: 5))
        assert (await answer_now).request_id == 2

    asyncio.run(main())


def test_a_read_waits_for_the_final_height_and_stop_fails_it() -> None:
    async def main() -> None:
        final_waits = FinalHeightWaits()
        reads = LinearizableReads(final_waits)
        read = asyncio.create_task(reads.read(
            lambda request_id: reads.on_answers([ReadResult(request_id=request_id, index=3, term=1)]), lambda: 1))
        await asyncio.sleep(0.01)
        final_waits.on_final_height(2)
        await asyncio.sleep(0.01)
        assert not read.done() and len(final_waits) == 1
        final_waits.on_final_height(3)
        assert (await read).index == 3
        stuck = asyncio.create_task(reads.read(lambda request_id: None, lambda: 3))
        await asyncio.sleep(0.01)
        reads.close()
        with pytest.raises(RejectError) as caught:
            await stuck
        assert caught.value.code == "stopping"
        with pytest.raises(RejectError) as caught:
            await reads.read(lambda request_id: None, lambda: 3)
        assert caught.value.code == "stopping"

    asyncio.run(main())


def test_tx_waits_are_bounded_and_see_a_reorg() -> None:
    async def main() -> None:
        final_waits = FinalHeightWaits()
        waits = TxCommitWaits(final_waits, max_waits=1)
        tx = transfer(4, 5, 10, 2, 0)
        where: dict[bytes, int] = {}
        final = [0]
        waiting = asyncio.create_task(waits.wait(tx.hash, "final", where.get, lambda: final[0], timeout_s=5))
        await asyncio.sleep(0.01)
        with pytest.raises(RejectError) as caught:
            await waits.wait(tx.hash, "included", where.get, lambda: final[0], timeout_s=1)
        assert caught.value.code == "busy"
        fake = FakeNode()
        block = fake.blocks[1]
        fake.pool.add(tx, fake.states[-1], now=0.0)
        block_with_tx = fake.mine()
        assert tx in block_with_tx.txs
        where[tx.hash] = 4
        waits.on_connected(block)  # not its block: no wake-up
        await asyncio.sleep(0.01)
        assert not waiting.done()
        waits.on_connected(block_with_tx)
        await asyncio.sleep(0.01)
        assert not waiting.done() and len(final_waits) == 1  # included at 4, waiting for height 4 to be final
        where[tx.hash] = 6  # a reorg moved it up before height 4 went final
        final[0] = 4
        final_waits.on_final_height(4)
        await asyncio.sleep(0.01)
        assert not waiting.done()
        final[0] = 6
        final_waits.on_final_height(6)
        assert await waiting is True
        assert waits.active == 0 and len(final_waits) == 0

    asyncio.run(main())
