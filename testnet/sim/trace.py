"""The run's trace (pure): a SHA-256 over one canonical line per delivered event.

A line is `<virtual microseconds> <node> <kind> <hash hex>`: every message delivered (kind = the message kind,
hash = what it carries), every block mined, every finality step and reorg, every fault. Re-running a seed with
the same options must give the same digest; any divergence, however small, changes it. Lines are hashed in
chunks, so the trace costs a few bytes of memory whatever the run's length.
"""

from __future__ import annotations

import hashlib

_CHUNK_LINES = 4096


class Trace:
    """A running digest of the trace; `recent` keeps the last few lines for failure reports."""

    __slots__ = ("_digest", "_pending", "events", "keep", "recent")

    def __init__(self, keep: int = 0) -> None:
        self._digest = hashlib.sha256()
        self._pending: list[str] = []
        self.events = 0
        self.keep = keep
        self.recent: list[str] = []

    def record(self, t: float, node: str, kind: str, ident: bytes) -> None:
        """Add one event."""
        line = f"{round(t * 1_000_000)} {node} {kind} {ident.hex()}\n"
        self._pending.append(line)
        self.events += 1
        if self.keep:
            self.recent.append(line)
            if len(self.recent) > 2 * self.keep:
                del self.recent[: self.keep]
        if len(self._pending) >= _CHUNK_LINES:
            self._flush()

    def _flush(self) -> None:
        self._digest.update("".join(self._pending).encode())
        self._pending.clear()

    def hexdigest(self) -> str:
        """The digest of every event recorded so far."""
        self._flush()
        return self._digest.hexdigest()
