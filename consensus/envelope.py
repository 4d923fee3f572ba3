"""The signed, deduplicated, flooded envelope for validator-to-validator messages (pure).

Every engine message travels in an envelope `[18, 1, genesis_hash, sender_pubkey, seq, to, kind, body, hops,
signature]`: the sender signs everything but `hops`; `seq` is unique per sender (it increases across restarts);
`to` is a validator address, or empty for everyone. Every node relays an envelope the first time it sees its
(sender, seq), with `hops` incremented, up to `MAX_HOPS`, so a message reaches its addressee when it is not a
direct neighbour; only the addressee (or everyone, for an empty `to`) hands it to its engine, naming the sender
by its authenticated address. An addressed envelope goes straight to its addressee when that is a neighbour (the
driver looks the address up among its peers: `Received.addressee`, node.core.PeerBroadcast.address), and the
addressee relays nothing: a Raft append to a neighbour costs one frame and one signature check, not a flood to
every node and a check on each. A node looks an envelope up in its bounded seen-set before it checks the signature,
so each of the many copies that reach it costs a dictionary lookup and only the first a signature check; nothing
enters the seen-set until its signature verifies, so a forgery cannot shadow the real message.

PoW presence heartbeats, primary-backup acknowledgements and the BFT engines' votes all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import crypto
from chain.encoding import U64_MAX, check_bytes, check_text, check_uint, pack, unpack
from chain.errors import DecodeError, RejectError
from chain.fifo import trimmed
from consensus.engine import MAX_ENGINE_KIND_CHARS, MAX_ENGINE_PAYLOAD_BYTES, EngineMessage, Outgoing

TAG_ENVELOPE = 18
ENVELOPE_KIND = "envelope"  # the kind of every engine message on the P2P wire
MAX_HOPS = 8
SEEN_CAPACITY = 65_536
# Sequence numbers are reserved in blocks and the reservation persisted, so a restarted node never reuses one,
# whatever its clock did; within a run they start at the wall clock in microseconds.
SEQ_RESERVATION = 1 << 16
_FIELDS = 8
_MAX_BYTES = MAX_ENGINE_PAYLOAD_BYTES + 1024  # the P2P EngineMsg payload limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One engine message with its sender's signature."""

    genesis_hash: bytes
    sender: bytes  # compressed public key
    seq: int
    to: bytes  # validator address, or b"" for everyone
    kind: str
    body: bytes
    hops: int = 0
    signature: bytes = b""

    def __post_init__(self) -> None:
        check_bytes(self.genesis_hash, "genesis_hash", size=32)
        check_bytes(self.sender, "sender", size=crypto.PUBKEY_BYTES)
        check_uint(self.seq, "seq")
        if self.to:
            check_bytes(self.to, "to", size=crypto.ADDRESS_BYTES)
        elif type(self.to) is not bytes:
            raise TypeError("to must be bytes")
        check_text(self.kind, "kind", min_size=1, max_size=MAX_ENGINE_KIND_CHARS)
        check_bytes(self.body, "body", max_size=MAX_ENGINE_PAYLOAD_BYTES)
        check_uint(self.hops, "hops", MAX_HOPS)
        if self.signature:
            check_bytes(self.signature, "signature", size=crypto.SIGNATURE_BYTES)

    def signing_hash(self) -> bytes:
        """What the sender signs (everything but hops and the signature)."""
        return crypto.sha256(pack(TAG_ENVELOPE, 1, [self.genesis_hash, self.sender, self.seq, self.to, self.kind,
                                                    self.body]))

    def encode(self) -> bytes:
        """Canonical encoding."""
        return pack(TAG_ENVELOPE, 1, [self.genesis_hash, self.sender, self.seq, self.to, self.kind, self.body,
                                      self.hops, self.signature])

    def relayed(self) -> Envelope:
        """The same envelope one hop further."""
        return Envelope(genesis_hash=self.genesis_hash, sender=self.sender, seq=self.seq, to=self.to, kind=self.kind,
                        body=self.body, hops=self.hops + 1, signature=self.signature)

    @property
    def sender_address(self) -> bytes:
        """The sender's address."""
        return crypto.address_of(self.sender)


def decode_envelope(data: object, genesis_hash: bytes) -> Envelope:
    """Decode an envelope for this network (the signature is not checked here: `verify_envelope`);
    DecodeError or RejectError('wrong-network') otherwise."""
    return _envelope_of(unpack(data, TAG_ENVELOPE, 1, _FIELDS, _MAX_BYTES), genesis_hash)


def _envelope_of(fields: list[Any], genesis_hash: bytes) -> Envelope:
    try:
        envelope = Envelope(genesis_hash=fields[0], sender=fields[1], seq=fields[2], to=fields[3], kind=fields[4],
                            body=fields[5], hops=fields[6], signature=fields[7])
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"envelope: {exc}") from exc
    if envelope.genesis_hash != genesis_hash:
        raise RejectError("wrong-network", "engine message for another genesis")
    return envelope


def envelope_ident(payload: bytes) -> tuple[bytes, int] | None:
    """(sender, seq) of an encoded envelope, what a router's seen-set holds; None when it does not decode."""
    try:
        fields = unpack(payload, TAG_ENVELOPE, 1, _FIELDS, _MAX_BYTES)
    except (DecodeError, ValueError, TypeError):
        return None
    sender, seq = fields[1], fields[2]
    return (sender, seq) if type(sender) is bytes and type(seq) is int else None


class VerifiedSignatures:
    """Envelope signatures known to be good, shared by several routers of one process (the simulator's nodes all
    check the same heartbeat; a real node checks each envelope once anyway). A signature verifies or not, whoever
    asks, so sharing changes no verdict."""

    def __init__(self, capacity: int = SEEN_CAPACITY) -> None:
        self.capacity = capacity
        self._good: dict[tuple[bytes, bytes, bytes], None] = {}

    def check(self, envelope: Envelope) -> bool:
        """True when the sender signed `envelope` (checked once per signature)."""
        key = (envelope.sender, envelope.signature, envelope.signing_hash())
        if key in self._good:
            return True
        if not crypto.verify(*key):
            return False
        self._good[key] = None
        self._good = trimmed(self._good, self.capacity)
        return True


def verify_envelope(envelope: Envelope, verified: VerifiedSignatures | None = None) -> None:
    """RejectError('bad-signature') unless the sender signed this envelope."""
    good = verified.check(envelope) if verified is not None else crypto.verify(
        envelope.sender, envelope.signature, envelope.signing_hash())
    if not good:
        raise RejectError("bad-signature", "engine message signature does not verify")


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """What to do with an envelope that arrived: hand `deliver` to the engine as from `sender` (None: not for
    us), and relay `relay` (an encoded envelope one hop further; None when it was for us alone) to `addressee`
    when that is a neighbour, else to every peer but the one it came from."""

    sender: bytes
    deliver: EngineMessage | None
    relay: bytes | None
    addressee: bytes | None = None  # the validator address it is for (None: everyone)
    relayed: bool = False  # it came over one or more hops: the peer that handed it over is not its author


class EnvelopeRouter:
    """Seals a node's outgoing engine messages and routes incoming ones (dedup, verify, relay, deliver)."""

    def __init__(self, genesis_hash: bytes, key: crypto.PrivateKey | None, *,
                 seen_capacity: int = SEEN_CAPACITY, verified: VerifiedSignatures | None = None) -> None:
        """`verified`: a memo of good signatures shared with other routers of this process (the simulator)."""
        self.genesis_hash = genesis_hash
        self.verified = verified
        self.key = key
        self.address = key.address if key is not None else None
        self._seen: dict[tuple[bytes, int], None] = {}
        self._seen_capacity = seen_capacity
        self._seq = 0
        self._reserved = 0

    def start(self, reserved: int, now_ms: int) -> int | None:
        """Resume above the persisted reservation (and the clock); returns the new reservation to persist."""
        self._seq = max(reserved, min(now_ms, U64_MAX // 2000) * 1000)
        self._reserved = self._seq
        return self._reserve()

    def _reserve(self) -> int | None:
        if self._seq < self._reserved:
            return None
        self._reserved = self._seq + SEQ_RESERVATION
        return self._reserved

    def seal(self, outgoing: Outgoing) -> tuple[bytes, int | None]:
        """The encoded envelope of `outgoing`, and a new sequence reservation to persist first (or None)."""
        if self.key is None:
            raise AssertionError("a node without a key sends no engine messages")
        self._seq += 1
        reservation = self._reserve()
        message = outgoing.message
        unsigned = Envelope(genesis_hash=self.genesis_hash, sender=self.key.public_key, seq=self._seq,
                            to=outgoing.to or b"", kind=message.kind, body=message.payload)
        signed = Envelope(genesis_hash=self.genesis_hash, sender=unsigned.sender, seq=unsigned.seq, to=unsigned.to,
                          kind=unsigned.kind, body=unsigned.body, signature=self.key.sign(unsigned.signing_hash()))
        self._remember((signed.sender, signed.seq))
        return signed.encode(), reservation

    def receive(self, payload: bytes, channel_key: bytes | None = None) -> Received | None:
        """Route an envelope from a peer; None for a copy seen before (or our own, come back around);
        RejectError/DecodeError for a malformed or forged one.

        `channel_key`: the node key the connection it came over proved (the P2P handshake signs a challenge with
        it). An envelope that its sender handed us directly (no hop) over its own authenticated connection, for us
        alone, needs no signature check: the channel already says who sent it, and nobody else will see it (an
        envelope we relay is always checked, so that we never pass on a forgery)."""
        fields = unpack(payload, TAG_ENVELOPE, 1, _FIELDS, _MAX_BYTES)
        # Most arrivals are copies: look (sender, seq) up before building and checking the envelope. The key is
        # only a lookup: nothing is recorded until the envelope checks out, so a malformed one cannot shadow it.
        try:
            if (fields[1], fields[2]) in self._seen:
                return None
        except TypeError:  # an unhashable field: malformed, reported by the full decode below
            pass
        envelope = _envelope_of(fields, self.genesis_hash)
        ident = (envelope.sender, envelope.seq)
        if self.key is not None and envelope.sender == self.key.public_key:
            return None  # ours, from before a restart
        only_us = bool(envelope.to) and envelope.to == self.address
        if not (only_us and envelope.hops == 0 and channel_key is not None and envelope.sender == channel_key):
            verify_envelope(envelope, self.verified)
        self._remember(ident)
        relay = envelope.relayed().encode() if envelope.hops < MAX_HOPS and not only_us else None
        for_us = not envelope.to or only_us
        deliver = EngineMessage(kind=envelope.kind, payload=envelope.body) if for_us else None
        return Received(sender=envelope.sender_address, deliver=deliver, relay=relay, addressee=envelope.to or None,
                        relayed=envelope.hops > 0)

    def has_seen(self, ident: tuple[bytes, int]) -> bool:
        """True when an envelope with this (sender, seq) would be dropped as a copy seen before."""
        return ident in self._seen

    def _remember(self, ident: tuple[bytes, int]) -> None:
        self._seen[ident] = None
        self._seen = trimmed(self._seen, self._seen_capacity)
