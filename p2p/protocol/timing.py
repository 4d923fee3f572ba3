"""P2P timing defaults (pure), defined once: `p2p.config.P2PConfig`, the service and the simulator import them, so
sync requests, fetch retries and peer timeouts expire alike in the asyncio node and in a simulated run."""

from __future__ import annotations

PING_INTERVAL_S = 2.0  # a ready session pings this often
PEER_TIMEOUT_S = 10.0  # a peer silent this long is disconnected; also the sync request timeout
RECONNECT_MIN_S = 0.5  # first redial delay after a lost connection
RECONNECT_MAX_S = 30.0  # the redial backoff grows up to this


def fetch_timeout_s(peer_timeout_s: float) -> float:
    """The GetData timeout that goes with a peer timeout (half of it, at least a second)."""
    return max(1.0, peer_timeout_s / 2)


def tip_announce_s(peer_timeout_s: float) -> float:
    """How often a node announces its tip again to every peer (half a peer timeout): a lost push or sync answer
    delays a peer's catching up by at most this long."""
    return peer_timeout_s / 2


FETCH_TIMEOUT_S = fetch_timeout_s(PEER_TIMEOUT_S)  # a GetData unanswered this long goes to the next announcer
