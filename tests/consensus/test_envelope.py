"""The signed, deduplicated, flooded envelope: verified once, relayed once up to the hop limit, delivered only to
its addressee, forgeries refused without shadowing the genuine message, sequence numbers never reused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chain import crypto
from chain.errors import RejectError
from consensus import envelope as env
from consensus.engine import EngineMessage, Outgoing
from tests.conftest import key

GENESIS = bytes(range(32))
A, B, C = key(60), key(61), key(62)


def router(k: crypto.PrivateKey | None, reserved: int = 0, now_ms: int = 1_000) -> env.EnvelopeRouter:
    r = env.EnvelopeRouter(GENESIS, k)
    r.start(reserved, now_ms)
    return r


def sealed(sender: crypto.PrivateKey, *, to: bytes | None = None, body: bytes = b"hello") -> bytes:
    payload, _ = router(sender).seal(Outgoing(message=EngineMessage(kind="test/hello", payload=body), to=to))
    return payload


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    checked: list[bytes] = []
    real = crypto.verify

    def counting(public_key: bytes, signature: bytes, digest: bytes) -> bool:
        checked.append(public_key)
        return real(public_key, signature, digest)

    monkeypatch.setattr(env.crypto, "verify", counting)
    return checked


def test_each_envelope_is_verified_delivered_and_relayed_once(verifications: list[bytes]) -> None:
    payload = sealed(A)
    b = router(B)
    received = b.receive(payload)
    assert received is not None and received.sender == A.address
    assert received.deliver == EngineMessage(kind="test/hello", payload=b"hello")
    assert received.relay is not None and env.decode_envelope(received.relay, GENESIS).hops == 1
    assert b.receive(payload) is None and b.receive(received.relay) is None  # copies over other paths
    assert verifications == [A.public_key]  # recognised before any signature check


def test_hop_limit_stops_the_flood() -> None:
    payload = sealed(A)
    envelope = env.decode_envelope(payload, GENESIS)
    for _ in range(env.MAX_HOPS):
        envelope = envelope.relayed()
    received = router(B).receive(envelope.encode())
    assert received is not None and received.deliver is not None and received.relay is None


def test_addressed_messages_reach_only_their_validator_but_are_relayed_by_all() -> None:
    payload = sealed(A, to=C.address)
    at_b = router(B).receive(payload)
    assert at_b is not None and at_b.deliver is None and at_b.relay is not None  # B passes it on
    assert at_b.addressee == C.address  # the driver sends the relay straight to C when C is its neighbour
    at_c = router(C).receive(at_b.relay)
    assert at_c is not None and at_c.deliver is not None and at_c.sender == A.address
    assert at_c.relayed and not at_b.relayed  # C knows B only passed A's statement on: B is not to blame for it
    assert at_c.relay is None  # for C alone: nobody else needs a copy


def test_broadcast_messages_are_relayed_by_their_receivers_too() -> None:
    at_b = router(B).receive(sealed(A))
    assert at_b is not None and at_b.deliver is not None and at_b.relay is not None and at_b.addressee is None


def test_a_forged_copy_neither_counts_nor_shadows_the_genuine_one() -> None:
    payload = sealed(A)
    forged = payload[:-64] + bytes(64)
    b = router(B)
    with pytest.raises(RejectError) as info:
        b.receive(forged)
    assert info.value.code == "bad-signature"
    assert b.receive(payload) is not None  # the genuine message still gets through


@pytest.mark.parametrize(("payload", "code"), [
    (lambda: env.Envelope(genesis_hash=bytes(32), sender=A.public_key, seq=1, to=b"", kind="k", body=b"",
                          signature=bytes(64)).encode(), "wrong-network"),
    (lambda: b"\x00garbage", "malformed"),
    (lambda: sealed(A)[:-1], "malformed"),
])
def test_refusals_carry_their_code(payload, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RejectError) as info:
        router(B).receive(payload())
    assert info.value.code == code


def test_own_envelopes_coming_back_are_dropped() -> None:
    a = router(A)
    payload, _ = a.seal(Outgoing(message=EngineMessage(kind="k", payload=b"")))
    assert a.receive(payload) is None
    assert router(A).receive(payload) is None  # also after a restart (the seen-set is gone)


def test_sequence_numbers_are_never_reused_across_restarts_whatever_the_clock() -> None:
    first = env.EnvelopeRouter(GENESIS, A)
    reservation = first.start(0, now_ms=5_000)
    assert reservation is not None
    seqs = []
    for _ in range(3):
        payload, _ = first.seal(Outgoing(message=EngineMessage(kind="k", payload=b"")))
        seqs.append(env.decode_envelope(payload, GENESIS).seq)
    restarted = env.EnvelopeRouter(GENESIS, A)
    restarted.start(reservation, now_ms=1)  # the clock went backwards
    payload, _ = restarted.seal(Outgoing(message=EngineMessage(kind="k", payload=b"")))
    assert env.decode_envelope(payload, GENESIS).seq > max(seqs)


def test_seen_set_is_bounded() -> None:
    b = env.EnvelopeRouter(GENESIS, B, seen_capacity=8)
    b.start(0, 0)
    a = router(A)
    for body in range(40):
        payload, _ = a.seal(Outgoing(message=EngineMessage(kind="k", payload=bytes([body]))))
        assert b.receive(payload) is not None
    assert len(b._seen) <= 8


def test_the_largest_engine_message_fits_the_p2p_frame() -> None:
    from consensus.engine import MAX_ENGINE_PAYLOAD_BYTES
    from p2p.protocol.messages import MAX_ENGINE_PAYLOAD_BYTES as P2P_LIMIT

    payload, _ = router(A).seal(Outgoing(message=EngineMessage(kind="k" * 32, payload=bytes(MAX_ENGINE_PAYLOAD_BYTES)),
                                         to=B.address))
    assert len(payload) <= P2P_LIMIT
    assert router(B).receive(payload) is not None


def test_a_direct_envelope_for_us_over_its_senders_own_connection_needs_no_signature_check() -> None:
    forged = sealed(A, to=B.address)[:-64] + bytes(64)  # a bad signature: only the channel vouches for it
    assert router(B).receive(forged, channel_key=A.public_key) is not None  # A's own authenticated connection
    for channel in (None, C.public_key):  # no channel, or a connection that is not A's: checked, refused
        with pytest.raises(RejectError):
            router(B).receive(forged, channel_key=channel)
    broadcast = sealed(A)[:-64] + bytes(64)  # for everyone: we would relay it, so it is always checked
    with pytest.raises(RejectError):
        router(B).receive(broadcast, channel_key=A.public_key)
    hop = env.decode_envelope(sealed(A, to=B.address), GENESIS).relayed().encode()  # relayed once: checked
    assert router(B).receive(hop, channel_key=A.public_key) is not None
    with pytest.raises(RejectError):
        router(B).receive(_with_bad_signature(hop), channel_key=A.public_key)


def _with_bad_signature(payload: bytes) -> bytes:
    return replace(env.decode_envelope(payload, GENESIS), signature=bytes(64)).encode()
