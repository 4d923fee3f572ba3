"""The event queue and node clocks."""

from __future__ import annotations

import pytest

from testnet.sim.clock import WALL_EPOCH_MS, EventQueue, NodeClock


def test_queue_pops_by_time_then_push_order() -> None:
    queue: EventQueue[str] = EventQueue()
    for time_s, name in [(2.0, "c"), (1.0, "a"), (2.0, "d"), (1.0, "b")]:
        queue.push(time_s, name)
    assert queue.peek_time() == 1.0
    assert [queue.pop() for _ in range(4)] == [(1.0, "a"), (1.0, "b"), (2.0, "c"), (2.0, "d")]
    assert not queue
    assert queue.peek_time() is None


def test_node_clock_drifts_and_converts_intervals() -> None:
    clock = NodeClock(rate=1.01, origin_s=500.0, offset_ms=-1500)
    assert clock.now(100.0) == pytest.approx(601.0)
    assert clock.now_ms(100.0) == WALL_EPOCH_MS - 1500 + 100_000  # the wall clock's error stays bounded
    assert clock.virtual_interval(1.01) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        NodeClock(rate=3.0)
