"""Fault injection on outgoing frames (pure): what the testnet's nemesis asks a node's transport to do.

`FaultConfig.plan(rng)` decides the fate of one outgoing frame: dropped (loss), sent once or twice (duplicate),
each copy after `delay_ms` plus a jitter drawn uniformly from [-jitter_ms, +jitter_ms] (never below zero). All
draws come from the injected rng, so a seeded run replays. Handshake frames (Hello, HelloAck, Disconnect) are
exempt: a lossy link still connects eventually, and the loss then hits the traffic the experiment is about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from random import Random


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultConfig:
    """Faults applied by a node's P2P transport.

    `blocked_peers` holds node ids (hex) or URLs: all traffic to and from them is dropped and their connections
    are closed or refused (without a ban) until they are unblocked.
    """

    blocked_peers: frozenset[str] = frozenset()
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.blocked_peers, frozenset) or not all(isinstance(p, str) for p in self.blocked_peers):
            raise ValueError("blocked_peers must be a frozenset of node ids or URLs")
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
        for name in ("loss", "duplicate"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]")

    @property
    def shapes_traffic(self) -> bool:
        """True when outgoing frames are delayed, dropped or duplicated."""
        return bool(self.delay_ms or self.jitter_ms or self.loss or self.duplicate)

    def blocks(self, *keys: str | None) -> bool:
        """True when any of `keys` (a node id, a URL) is blocked."""
        return any(key in self.blocked_peers for key in keys if key)

    def plan(self, rng: Random) -> tuple[float, ...]:
        """Delays in seconds, one per copy of a frame to send: () when the frame is lost."""
        if not self.shapes_traffic:
            return (0.0,)
        if self.loss and rng.random() < self.loss:
            return ()
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        return tuple(self._delay_s(rng) for _ in range(copies))

    def _delay_s(self, rng: Random) -> float:
        jitter = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.delay_ms + jitter) / 1000.0


NO_FAULTS = FaultConfig()
