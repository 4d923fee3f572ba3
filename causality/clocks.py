"""Logical clocks (pure): Lamport's scalar clock and the vector clock (Fidge 1988, Mattern 1989).

A Lamport clock orders events consistently with causality (a -> b implies L(a) < L(b)) but cannot tell concurrent
events apart. A vector clock can: a -> b if and only if V(a) < V(b) (every entry <=, one <), and a and b are
concurrent when neither is below the other. The rules, for both:

- an internal event or a send ticks the process's own entry;
- a send carries the clock after that tick;
- a receive merges the carried clock (entry-wise maximum; Lamport: maximum) and then ticks.

Clocks here are immutable values (`VectorClock`) with an explicit owner-independent representation: a mapping from
process name to counter, absent entries being 0, so clocks of processes that restarted or never heard of each
other compare without any registration step (gaps are simply entries that jumped).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import Enum
from typing import Any

MAX_ENTRIES = 1024  # a clock carried in a message names at most this many processes
MAX_NAME = 128


class ClockError(ValueError):
    """A clock that is not a mapping of process names to non-negative integers (from a message or a file)."""


class Order(Enum):
    """How two events relate."""

    BEFORE = "before"  # happened before
    AFTER = "after"
    EQUAL = "equal"  # the same clock: the same event (or the same knowledge)
    CONCURRENT = "concurrent"


class VectorClock(Mapping[str, int]):
    """An immutable vector clock; absent entries are 0."""

    __slots__ = ("_entries", "_hash")

    def __init__(self, entries: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        items = entries.items() if isinstance(entries, Mapping) else entries
        self._entries: dict[str, int] = {name: count for name, count in items if count}
        self._hash: int | None = None

    # -- Mapping ---------------------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> int:
        return self._entries[name]

    def get(self, name: str, default: Any = 0) -> Any:  # absent means 0
        return self._entries.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VectorClock):
            return self._entries == other._entries
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._entries.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"VectorClock({dict(sorted(self._entries.items()))})"

    # -- the rules -------------------------------------------------------------------------------------------------

    def tick(self, process: str) -> VectorClock:
        """The clock after a local event (internal or send) of `process`."""
        entries = dict(self._entries)
        entries[process] = entries.get(process, 0) + 1
        return VectorClock(entries)

    def merge(self, other: Mapping[str, int]) -> VectorClock:
        """The entry-wise maximum (what a receive knows before its own tick)."""
        entries = dict(self._entries)
        for name, count in other.items():
            if count > entries.get(name, 0):
                entries[name] = count
        return VectorClock(entries)

    def receive(self, process: str, carried: Mapping[str, int]) -> VectorClock:
        """The clock after `process` receives a message carrying `carried`: merge, then tick."""
        return self.merge(carried).tick(process)

    def compare(self, other: Mapping[str, int]) -> Order:
        """BEFORE when self happened before other, AFTER, EQUAL, or CONCURRENT."""
        less = greater = False
        for name in set(self._entries) | set(other):
            mine, theirs = self._entries.get(name, 0), other.get(name, 0)
            if mine < theirs:
                less = True
            elif mine > theirs:
                greater = True
            if less and greater:
                return Order.CONCURRENT
        if less:
            return Order.BEFORE
        if greater:
            return Order.AFTER
        return Order.EQUAL

    def happened_before(self, other: Mapping[str, int]) -> bool:
        """self -> other."""
        return self.compare(other) is Order.BEFORE

    def concurrent(self, other: Mapping[str, int]) -> bool:
        """Neither happened before the other (and they differ)."""
        return self.compare(other) is Order.CONCURRENT

    def to_json(self) -> dict[str, int]:
        """The JSON form: `{process: counter}`, zero entries left out, names sorted."""
        return dict(sorted(self._entries.items()))

    @classmethod
    def from_json(cls, value: Any) -> VectorClock:
        """Parse a clock from a message or a trace line; ClockError when it is not `{name: non-negative int}` of
        bounded size."""
        if not isinstance(value, Mapping):
            raise ClockError(f"a vector clock is an object of process names to counters, got {type(value).__name__}")
        if len(value) > MAX_ENTRIES:
            raise ClockError(f"a vector clock names at most {MAX_ENTRIES} processes, got {len(value)}")
        entries: dict[str, int] = {}
        for name, count in value.items():
            if not isinstance(name, str) or not name or len(name) > MAX_NAME:
                raise ClockError(f"a vector clock's process name is 1..{MAX_NAME} characters, got {name!r:.60}")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ClockError(f"the vector clock entry of {name!r} must be a non-negative integer, got "
                                 f"{count!r:.40}")
            entries[name] = count
        return cls(entries)


class LamportClock:
    """A Lamport clock as an immutable counter value with the same rules."""

    __slots__ = ("time",)

    def __init__(self, time: int = 0) -> None:
        if time < 0:
            raise ClockError("a Lamport time is non-negative")
        self.time = time

    def tick(self) -> LamportClock:
        """After a local event or a send."""
        return LamportClock(self.time + 1)

    def receive(self, carried: int) -> LamportClock:
        """After receiving a message stamped `carried`: max, then tick."""
        return LamportClock(max(self.time, carried) + 1)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LamportClock) and other.time == self.time

    def __hash__(self) -> int:
        return hash(self.time)

    def __repr__(self) -> str:
        return f"LamportClock({self.time})"
