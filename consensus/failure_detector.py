"""A heartbeat failure detector (pure): last-heard times, a timeout, and suspicion.

The classic eventually-perfect detector of the crash-failure model (Chandra and Toueg): a process is *suspected*
once nothing was heard from it for `timeout_s` by the local clock, and trusted again when it is heard from. No
clock agreement between nodes is needed; under partial synchrony (message delay bounded after some unknown time)
a correct process is eventually never suspected, while a crashed or cut-off one is suspected within one timeout
of its last message. The PoW partition handler uses it for miner presence; the BFT engines use it for liveness.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Suspicion:
    """A change of verdict about one process: `suspected` True when it just timed out, False when heard again."""

    process: bytes
    suspected: bool
    at: float


class FailureDetector:
    """Per-process last-heard times; a process is trusted while heard from within `timeout_s`."""

    def __init__(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError("a failure detector needs a positive timeout")
        self.timeout_s = timeout_s
        self._heard: dict[bytes, float] = {}
        self._suspected: set[bytes] = set()

    def heard(self, process: bytes, now: float) -> Suspicion | None:
        """Something arrived from `process` now; a Suspicion(False) when it was suspected before."""
        self._heard[process] = now
        if process in self._suspected:
            self._suspected.discard(process)
            return Suspicion(process=process, suspected=False, at=now)
        return None

    def trusted(self, process: bytes, now: float) -> bool:
        """True while the process was heard from less than the timeout ago."""
        at = self._heard.get(process)
        return at is not None and now - at < self.timeout_s

    def poll(self, now: float) -> list[Suspicion]:
        """Processes that timed out since the last poll (suspicion events, sorted by process)."""
        events = []
        for process in sorted(self._heard):
            if process not in self._suspected and not self.trusted(process, now):
                self._suspected.add(process)
                events.append(Suspicion(process=process, suspected=True, at=now))
        return events

    def last_heard_s(self, process: bytes, now: float) -> float | None:
        """Seconds since the process was last heard from, or None if never."""
        at = self._heard.get(process)
        return None if at is None else now - at

    def known(self) -> list[bytes]:
        """Every process ever heard from."""
        return list(self._heard)
