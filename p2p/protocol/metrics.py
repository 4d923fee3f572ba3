"""P2P counters (pure values the node exposes on /metrics)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True, kw_only=True)
class P2PMetrics:
    """Counters since start: messages and bytes by direction, bans, disconnects and dropped frames by reason."""

    messages_in: Counter[str] = field(default_factory=Counter)  # by message kind
    messages_out: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    bans: int = 0
    disconnects: Counter[str] = field(default_factory=Counter)  # by reason code, whichever side gave it
    refusals_received: Counter[str] = field(default_factory=Counter)  # reason codes peers sent us in Disconnect
    frames_dropped: Counter[str] = field(default_factory=Counter)  # by cause: loss, blocked, rate-limited, ...
    engine_rejects: Counter[str] = field(default_factory=Counter)  # engine messages refused, by reject code
    dials: int = 0
    dial_failures: int = 0

    def snapshot(self) -> dict[str, object]:
        """A plain-dict copy (for JSON or Prometheus rendering)."""
        return {
            "messages_in": dict(self.messages_in),
            "messages_out": dict(self.messages_out),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "bans": self.bans,
            "disconnects": dict(self.disconnects),
            "refusals_received": dict(self.refusals_received),
            "frames_dropped": dict(self.frames_dropped),
            "engine_rejects": dict(self.engine_rejects),
            "dials": self.dials,
            "dial_failures": self.dial_failures,
        }
