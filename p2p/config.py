"""What the P2P service is configured with and what it needs from the node: `P2PConfig`, the `ChainAccess`
contract the node runtime implements, and (re-exported from the relay core) the `BlockVerdict` it returns for a
submitted block."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from chain.block import Block
from chain.tx import Transaction
from p2p.listener import SocketLimits
from p2p.protocol.codec import DEFAULT_MAX_MESSAGE_BYTES
from p2p.protocol.faults import FaultConfig
from p2p.protocol.messages import check_peer_url
from p2p.protocol.relay import BLOCK_STATUSES, BlockVerdict, ChainView
from p2p.protocol.timing import PEER_TIMEOUT_S, PING_INTERVAL_S, RECONNECT_MAX_S, RECONNECT_MIN_S

__all__ = ["BLOCK_STATUSES", "P2P_SOCKET_LIMITS", "BlockVerdict", "ChainAccess", "ChainView", "FaultConfig",
           "P2PConfig"]

# TCP connections to the P2P port, counted before the websocket upgrade: a node keeps at most max_peers (32) peers,
# and a local testnet puts every node on 127.0.0.1, so the per-address cap leaves room for all of them plus dials
# in flight; the total stays far below a process's descriptor limit.
P2P_SOCKET_LIMITS = SocketLimits(max_connections=256, max_connections_per_address=128, header_timeout_s=10.0,
                                 idle_timeout_s=30.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class P2PConfig:
    """Settings of one node's P2P service (units in the names)."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0: the OS picks; P2PService.port tells which after start()
    advertise_url: str = ""  # default ws://{listen_host}:{port}/p2p
    bootstrap: tuple[str, ...] = ()  # ws:// URLs, always (re)dialed
    target_peers: int = 8  # dial learnt addresses while fewer peers than this are connected
    max_peers: int = 32
    # Slots of max_peers that inbound peers cannot take (at most half of max_peers): our own dials always find
    # room, as Bitcoin Core keeps 8 of its 125 for outbound (docs/P2P.md, "Eclipse by slot filling").
    outbound_slots: int = 8
    max_inbound_per_ip: int = 4  # admitted inbound peers per remote address; 0: no limit
    # Apply the per-address limit and address bans to loopback addresses too. Off by default: on one host every
    # node of a local testnet connects from 127.0.0.1, and the address cannot tell them apart.
    loopback_address_limits: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ban_s: float = 600.0
    ping_interval_s: float = PING_INTERVAL_S
    peer_timeout_s: float = PEER_TIMEOUT_S
    reconnect_min_s: float = RECONNECT_MIN_S
    reconnect_max_s: float = RECONNECT_MAX_S
    rate_messages_per_s: float = 5000.0
    rate_bytes_per_s: float = 64 * 1024 * 1024
    socket_limits: SocketLimits = P2P_SOCKET_LIMITS  # p2p/listener.py: caps and deadlines below the upgrade

    def __post_init__(self) -> None:
        if not 0 <= self.listen_port <= 65535:
            raise ValueError("listen_port must be in 0..65535")
        if self.advertise_url:
            check_peer_url(self.advertise_url)
        if type(self.bootstrap) is not tuple:
            raise ValueError("bootstrap must be a tuple of ws:// URLs")
        for url in self.bootstrap:
            check_peer_url(url)
        if not 0 <= self.target_peers <= self.max_peers or self.max_peers < 1:
            raise ValueError("need 0 <= target_peers <= max_peers and max_peers >= 1")
        if self.outbound_slots < 0 or self.max_inbound_per_ip < 0:
            raise ValueError("outbound_slots and max_inbound_per_ip must not be negative")
        if self.max_message_bytes < 1024:
            raise ValueError("max_message_bytes must be at least 1024")
        for name in ("ban_s", "ping_interval_s", "peer_timeout_s", "reconnect_min_s", "reconnect_max_s",
                     "rate_messages_per_s", "rate_bytes_per_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        if self.peer_timeout_s <= self.ping_interval_s:
            raise ValueError("peer_timeout_s must exceed ping_interval_s (pings keep a live peer from timing out)")


class ChainAccess(ChainView, Protocol):
    """The node's chain as P2P sees it (implemented by the node runtime; tests use fakes): the relay's synchronous
    `ChainView` (p2p/protocol/relay.py), plus what the service awaits or hands on.

    Synchronous methods must be cheap (they run on the event loop); `submit_block` and `submit_tx` are awaited one
    at a time, in arrival order, by the service's importer. Rejections raise `chain.errors.RejectError` with a
    stable code, which decides the sender's penalty (docs/P2P.md).
    """

    chain_id: str
    genesis_hash: bytes

    async def submit_block(self, block: Block, peer: str) -> BlockVerdict:
        """Validate and import a block from `peer` (hex node id); raise RejectError if it is invalid."""

    async def submit_tx(self, tx: Transaction, peer: str) -> None:
        """Admit a transaction from `peer` to the mempool; raise RejectError if refused."""

    def on_engine_message(self, peer: str, kind: str, payload: bytes) -> None:
        """Hand a consensus-engine payload from `peer` to the engine."""
