"""Miner presence heartbeats (pure): the message behind the partition handler's reachability.

Every miner floods `[16, 1, time_ms]` as engine message kind `pow/presence` each `heartbeat_interval_s`. It
travels in the signed, deduplicated envelope of consensus/envelope.py, which names the miner (its signature) and
relays it up to 8 hops, so presence crosses several hops of the P2P graph and a relay cannot forge it.
"""

from __future__ import annotations

from chain.encoding import U64_MAX, check_uint, pack, unpack
from chain.errors import DecodeError

TAG_PRESENCE = 16
KIND = "pow/presence"


def encode_presence(time_ms: int) -> bytes:
    """A heartbeat body."""
    return pack(TAG_PRESENCE, 1, [min(time_ms, U64_MAX)])


def decode_presence(data: object) -> int:
    """The heartbeat's time_ms; DecodeError for anything else."""
    fields = unpack(data, TAG_PRESENCE, 1, 1, 64)
    try:
        return check_uint(fields[0], "time_ms")
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"presence: {exc}") from exc
