"""Fault injection on outgoing frames (pure): what the testnet's nemesis asks a node's transport to do.

`FaultConfig.plan(rng)` decides the fate of one outgoing frame: dropped (loss), sent once or twice (duplicate),
each copy after `delay_ms` plus a jitter drawn uniformly from [-jitter_ms, +jitter_ms] (never below zero). All
draws come from the injected rng, so a seeded run replays. Handshake frames (Hello, HelloAck, Disconnect) are
exempt: a lossy link still connects eventually, and the loss then hits the traffic the experiment is about.
`peer_delay_ms` adds a fixed delay per peer on top (a latency matrix's row: the testnet's regions); it draws
nothing from the rng, so a matrix leaves a seeded run's draws as they were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from random import Random


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultConfig:
    """Faults applied by a node's P2P transport.

    `blocked_peers` holds node ids (hex) or URLs: all traffic to and from them is dropped and their connections
    are closed or refused (without a ban) until they are unblocked. `peer_delay_ms` maps a peer's node id to a
    delay added to every frame sent to it.
    """

    blocked_peers: frozenset[str] = frozenset()
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    peer_delay_ms: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.blocked_peers, frozenset) or not all(isinstance(p, str) for p in self.blocked_peers):
            raise ValueError("blocked_peers must be a frozenset of node ids or URLs")
        if not isinstance(self.peer_delay_ms, Mapping) or not all(
                isinstance(peer, str) and isinstance(ms, int | float) and not isinstance(ms, bool)
                and math.isfinite(ms) and ms >= 0 for peer, ms in self.peer_delay_ms.items()):
            raise ValueError("peer_delay_ms must map node ids to finite numbers of ms >= 0")
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

    def plan(self, rng: Random, peer: str | None = None) -> tuple[float, ...]:
        """Delays in seconds, one per copy of a frame to send to `peer`: () when the frame is lost."""
        extra_s = self.peer_delay_ms.get(peer, 0.0) / 1000.0 if peer else 0.0
        if not self.shapes_traffic:
            return (extra_s,)
        if self.loss and rng.random() < self.loss:
            return ()
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        return tuple(self._delay_s(rng) + extra_s for _ in range(copies))

    def _delay_s(self, rng: Random) -> float:
        jitter = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.delay_ms + jitter) / 1000.0


NO_FAULTS = FaultConfig()
