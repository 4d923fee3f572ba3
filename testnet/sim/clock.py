"""Virtual time (pure): the event queue that orders everything, and each node's drifting view of the clock.

The simulator owns one virtual clock (seconds since the run began). Nothing reads a real clock: an event happens
when the queue pops it. Events at the same instant pop in the order they were pushed (a sequence number breaks
the tie), so a run is a pure function of its seed.

Each node sees time through a `NodeClock`: its monotonic `now` (timeouts, heartbeats, ticks) runs at `rate`
(1.0 = exact, 1.01 = 1% fast) from an origin of its own; its wall clock (`now_ms`, block timestamps) is off by a
bounded `offset_ms` but does not drift away, as an NTP-disciplined clock does. (A wall clock that drifted without
bound would soon put nodes beyond the `max_future_block_ms` every chain assumes, and they would refuse each
other's blocks for a reason no real deployment has.) Clock drift is a fault: without it every rate is 1.0 and
every offset 0.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Generic, TypeVar

# Wall-clock milliseconds at virtual time 0 (any date after the genesis timestamp works; this is 2023-11-14).
WALL_EPOCH_MS = 1_700_000_000_000

E = TypeVar("E")


class EventQueue(Generic[E]):
    """A heap of (time, seq, event): pops the earliest event, ties in push order."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, E]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, time_s: float, event: E) -> None:
        """Schedule `event` at virtual time `time_s`."""
        self._seq += 1
        heapq.heappush(self._heap, (time_s, self._seq, event))

    def pop(self) -> tuple[float, E]:
        """The earliest event and its time (IndexError when empty)."""
        time_s, _, event = heapq.heappop(self._heap)
        return time_s, event

    def peek_time(self) -> float | None:
        """Time of the earliest event, or None when empty."""
        return self._heap[0][0] if self._heap else None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeClock:
    """How one node reads virtual time `t`: monotonic seconds and wall-clock milliseconds."""

    rate: float = 1.0  # monotonic seconds per virtual second
    origin_s: float = 1000.0  # the node's monotonic clock at t = 0
    offset_ms: int = 0  # wall clock error (constant)

    def __post_init__(self) -> None:
        if not 0.5 <= self.rate <= 2.0:
            raise ValueError("clock rate must be within [0.5, 2]")

    def now(self, t: float) -> float:
        """The node's monotonic clock at virtual time `t`."""
        return self.origin_s + self.rate * t

    def now_ms(self, t: float) -> int:
        """The node's wall clock (milliseconds) at virtual time `t`: true time plus its bounded error."""
        return WALL_EPOCH_MS + self.offset_ms + int(t * 1000)

    def virtual_interval(self, local_s: float) -> float:
        """Virtual seconds that pass while this node's clock advances `local_s`."""
        return local_s / self.rate
