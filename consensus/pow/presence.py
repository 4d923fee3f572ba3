"""Miner presence heartbeats and the failure detector of the partition handler (pure).

Every miner broadcasts a signed heartbeat `[16, 1, genesis_hash, miner_pubkey, seq, time_ms, hops, signature]`
each `heartbeat_interval_s`; nodes relay a heartbeat the first time they see its (miner, seq), with `hops`
incremented, up to MAX_HOPS, so presence crosses several hops of the P2P graph. The signature covers everything
but `hops` and itself, so a relay cannot forge presence, and `seq` (strictly increasing per miner) makes replays
harmless. The failure detector marks a miner reachable while its last fresh heartbeat arrived less than
`timeout_s` ago by the local clock (no clock agreement needed between nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

from chain import crypto
from chain.encoding import U64_MAX, check_bytes, check_uint, pack, unpack
from chain.errors import DecodeError, RejectError

TAG_PRESENCE = 16
KIND = "pow/presence"
MAX_HOPS = 8
_FIELDS = 6
_MAX_BYTES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence:
    """One miner heartbeat."""

    genesis_hash: bytes
    miner: bytes  # compressed public key
    seq: int
    time_ms: int
    hops: int = 0
    signature: bytes = b""

    def __post_init__(self) -> None:
        check_bytes(self.genesis_hash, "genesis_hash", size=32)
        check_bytes(self.miner, "miner", size=crypto.PUBKEY_BYTES)
        check_uint(self.seq, "seq")
        check_uint(self.time_ms, "time_ms")
        check_uint(self.hops, "hops", MAX_HOPS)
        if self.signature:
            check_bytes(self.signature, "signature", size=crypto.SIGNATURE_BYTES)

    @property
    def miner_address(self) -> bytes:
        """Address of the miner (the proposer address its blocks carry)."""
        return crypto.address_of(self.miner)

    def signing_hash(self) -> bytes:
        """What the miner signs (everything but hops and the signature)."""
        return crypto.sha256(pack(TAG_PRESENCE, 1, [self.genesis_hash, self.miner, self.seq, self.time_ms]))

    def encode(self) -> bytes:
        """Canonical encoding."""
        return pack(TAG_PRESENCE, 1, [self.genesis_hash, self.miner, self.seq, self.time_ms, self.hops,
                                      self.signature])

    def relayed(self) -> Presence:
        """The same heartbeat one hop further."""
        return Presence(genesis_hash=self.genesis_hash, miner=self.miner, seq=self.seq, time_ms=self.time_ms,
                        hops=self.hops + 1, signature=self.signature)


def make_presence(key: crypto.PrivateKey, *, genesis_hash: bytes, seq: int, time_ms: int) -> Presence:
    """A signed heartbeat."""
    unsigned = Presence(genesis_hash=genesis_hash, miner=key.public_key, seq=seq, time_ms=min(time_ms, U64_MAX))
    return Presence(genesis_hash=genesis_hash, miner=key.public_key, seq=seq, time_ms=unsigned.time_ms,
                    signature=key.sign(unsigned.signing_hash()))


def decode_presence(data: object, genesis_hash: bytes, *, verify: bool = True) -> Presence:
    """Decode (and, unless `verify` is False, verify) a heartbeat for this network; RejectError (`malformed`,
    `wrong-network`, `bad-signature`) otherwise. Callers that skip verification must call `verify_presence`
    before trusting the heartbeat."""
    fields = unpack(data, TAG_PRESENCE, 1, _FIELDS, _MAX_BYTES)
    try:
        presence = Presence(genesis_hash=fields[0], miner=fields[1], seq=fields[2], time_ms=fields[3], hops=fields[4],
                            signature=fields[5])
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"presence: {exc}") from exc
    if presence.genesis_hash != genesis_hash:
        raise RejectError("wrong-network", "heartbeat for another genesis")
    if verify:
        verify_presence(presence)
    return presence


def verify_presence(presence: Presence) -> None:
    """RejectError('bad-signature') unless the miner signed this heartbeat."""
    if not crypto.verify(presence.miner, presence.signature, presence.signing_hash()):
        raise RejectError("bad-signature", "heartbeat signature does not verify")


@dataclass(slots=True)
class _Heard:
    seq: int
    at: float


class FailureDetector:
    """Per-miner last fresh heartbeat; a miner is reachable while heard from within `timeout_s`."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._heard: dict[bytes, _Heard] = {}

    def is_fresh(self, address: bytes, seq: int) -> bool:
        """True when `seq` is newer than anything seen from this miner (nothing is recorded)."""
        heard = self._heard.get(address)
        return heard is None or seq > heard.seq

    def observe(self, address: bytes, seq: int, now: float) -> bool:
        """Record a heartbeat; True when it is fresh (a higher seq than any seen from this miner)."""
        heard = self._heard.get(address)
        if heard is not None and seq <= heard.seq:
            return False
        self._heard[address] = _Heard(seq, now)
        return True

    def reachable(self, address: bytes, now: float) -> bool:
        """True while the miner's last fresh heartbeat is younger than the timeout."""
        heard = self._heard.get(address)
        return heard is not None and now - heard.at < self.timeout_s

    def last_heard_s(self, address: bytes, now: float) -> float | None:
        """Seconds since the miner's last fresh heartbeat, or None if never heard."""
        heard = self._heard.get(address)
        return None if heard is None else now - heard.at

    def known(self) -> list[bytes]:
        """Every miner ever heard from."""
        return list(self._heard)
