"""PeerSession: the handshake, its refusals (reported on both sides), state rules and heartbeats, driven by
hand with manual time."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random
from typing import Any

import pytest

from chain.crypto import PrivateKey
from p2p.protocol.codec import FrameError, decode_frame, encode_frame
from p2p.protocol.messages import Disconnect, GetPeers, Hello, HelloAck, Inv, Ping, Pong
from p2p.protocol.session import (
    HandshakeComplete,
    HandshakeRefused,
    HelloReceived,
    LocalProtocolError,
    MessageReceived,
    PeerClosed,
    PeerSession,
    PongReceived,
    ProtocolViolation,
    Reply,
    SessionState,
    handshake_digest,
)
from tests.conftest import key

GENESIS_HASH = bytes(range(32))


def session(identity: PrivateKey, *, outbound: bool, seed: int, now: float = 0.0, **overrides: Any) -> PeerSession:
    settings: dict[str, Any] = {"chain_id": "p2p-test", "genesis_hash": GENESIS_HASH, "protocol_version": 1}
    settings.update(overrides)
    return PeerSession(identity=identity, outbound=outbound, rng=Random(seed), now=now, **settings)


def replies(events: Sequence[object]) -> list[bytes]:
    return [e.frame for e in events if isinstance(e, Reply)]


def handshake(dialer: PeerSession, acceptor: PeerSession, now: float = 0.0) -> tuple[list[object], list[object]]:
    """Run the handshake to completion; every event each side produced."""
    dialer_events: list[object] = []
    acceptor_events: list[object] = []
    to_acceptor = [dialer.start()]
    while to_acceptor:
        to_dialer = []
        for frame in to_acceptor:
            events = acceptor.receive(frame, now)
            acceptor_events.extend(events)
            to_dialer.extend(replies(events))
        to_acceptor = []
        for frame in to_dialer:
            events = dialer.receive(frame, now)
            dialer_events.extend(events)
            to_acceptor.extend(replies(events))
    return dialer_events, acceptor_events


def test_handshake_succeeds_and_authenticates_both_sides() -> None:
    dialer = session(key(1), outbound=True, seed=1, best_height=5, listen_url="ws://127.0.0.1:1/p2p")
    acceptor = session(key(2), outbound=False, seed=2, best_height=9)
    dialer_events, acceptor_events = handshake(dialer, acceptor)
    assert dialer.state is SessionState.READY and acceptor.state is SessionState.READY
    assert dialer.peer_id == key(2).public_key.hex() and acceptor.peer_id == key(1).public_key.hex()
    assert [type(e) for e in acceptor_events] == [HelloReceived, Reply, Reply, HandshakeComplete]
    assert [type(e) for e in dialer_events] == [HelloReceived, Reply, HandshakeComplete]
    complete = acceptor_events[-1]
    assert isinstance(complete, HandshakeComplete)
    assert complete.hello.best_height == 5 and complete.hello.listen_url == "ws://127.0.0.1:1/p2p"


def test_the_acceptor_speaks_only_after_the_dialer() -> None:
    acceptor = session(key(2), outbound=False, seed=2)
    with pytest.raises(LocalProtocolError):
        acceptor.start()
    dialer = session(key(1), outbound=True, seed=1)
    with pytest.raises(LocalProtocolError):
        dialer.receive(b"", 0.0)  # must start() first


@pytest.mark.parametrize(("overrides", "code"), [
    ({"genesis_hash": bytes(32)}, "wrong-genesis"),
    ({"chain_id": "other-chain"}, "wrong-chain-id"),
    ({"protocol_version": 2}, "bad-version"),
])
def test_mismatched_networks_are_refused_with_the_reason_on_both_sides(overrides: dict[str, Any],
                                                                        code: str) -> None:
    dialer = session(key(1), outbound=True, seed=1, **overrides)
    acceptor = session(key(2), outbound=False, seed=2)
    with pytest.raises(HandshakeRefused) as refused:
        acceptor.receive(dialer.start(), 0.0)
    assert refused.value.code == code
    goodbye = acceptor.close(refused.value.code, refused.value.message)
    assert acceptor.state is SessionState.CLOSED
    events = dialer.receive(goodbye, 0.0)
    assert events == [PeerClosed(code=code, message=refused.value.message[:256])]
    assert dialer.state is SessionState.CLOSED


def test_the_dialer_refuses_an_acceptor_of_another_network_too() -> None:
    dialer = session(key(1), outbound=True, seed=1)
    acceptor = session(key(2), outbound=False, seed=2, genesis_hash=bytes(32))
    dialer.start()
    forged_hello = encode_frame(acceptor.our_hello)
    with pytest.raises(HandshakeRefused) as refused:
        dialer.receive(forged_hello, 0.0)
    assert refused.value.code == "wrong-genesis"


def test_forged_ack_is_refused() -> None:
    dialer = session(key(1), outbound=True, seed=1)
    acceptor = session(key(2), outbound=False, seed=2)
    events = acceptor.receive(dialer.start(), 0.0)
    hello_frame, _ack = replies(events)
    dialer.receive(hello_frame, 0.0)
    # An impostor claiming key(2)'s id signs with another key.
    digest = handshake_digest(dialer.our_hello.challenge, key(2).public_key, key(1).public_key, GENESIS_HASH)
    forged = encode_frame(HelloAck(signature=key(3).sign(digest)))
    with pytest.raises(HandshakeRefused) as refused:
        dialer.receive(forged, 0.0)
    assert refused.value.code == "bad-handshake-signature"
    assert dialer.state is SessionState.AWAITING_ACK


def test_an_ack_for_another_challenge_is_refused() -> None:
    dialer = session(key(1), outbound=True, seed=1)
    acceptor = session(key(2), outbound=False, seed=2)
    events = acceptor.receive(dialer.start(), 0.0)
    hello_frame, _ack = replies(events)
    dialer.receive(hello_frame, 0.0)
    replayed = HelloAck(signature=key(2).sign(handshake_digest(bytes(32), key(2).public_key, key(1).public_key,
                                                                GENESIS_HASH)))
    with pytest.raises(HandshakeRefused):
        dialer.receive(encode_frame(replayed), 0.0)


def test_self_connection_is_refused() -> None:
    dialer = session(key(1), outbound=True, seed=1)
    acceptor = session(key(1), outbound=False, seed=2)
    with pytest.raises(HandshakeRefused) as refused:
        acceptor.receive(dialer.start(), 0.0)
    assert refused.value.code == "self-connection"


@pytest.mark.parametrize("early", [Inv(kind="tx", hashes=()), Ping(nonce=1, sent_ms=0), GetPeers(),
                                   HelloAck(signature=bytes(64))])
def test_messages_before_ready_are_violations(early: object) -> None:
    acceptor = session(key(2), outbound=False, seed=2)
    with pytest.raises(ProtocolViolation) as violation:
        acceptor.receive(encode_frame(early), 0.0)  # type: ignore[arg-type]
    assert violation.value.code == "unexpected-message"


def test_handshake_messages_after_ready_are_violations() -> None:
    dialer = session(key(1), outbound=True, seed=1)
    acceptor = session(key(2), outbound=False, seed=2)
    handshake(dialer, acceptor)
    with pytest.raises(ProtocolViolation):
        acceptor.receive(encode_frame(dialer.our_hello), 0.0)
    with pytest.raises(ProtocolViolation):
        acceptor.receive(encode_frame(HelloAck(signature=bytes(64))), 0.0)


def test_frames_that_are_not_messages_raise_frame_error() -> None:
    acceptor = session(key(2), outbound=False, seed=2, max_message_bytes=64)
    with pytest.raises(FrameError) as error:
        acceptor.receive(bytes(65), 0.0)
    assert error.value.code == "oversize"
    with pytest.raises(FrameError) as error:
        acceptor.receive(b"\x00", 0.0)
    assert error.value.code == "malformed"


def test_sending_before_ready_is_our_bug() -> None:
    dialer = session(key(1), outbound=True, seed=1)
    with pytest.raises(LocalProtocolError):
        dialer.send(GetPeers())
    acceptor = session(key(2), outbound=False, seed=2)
    handshake(dialer, acceptor)
    assert decode_frame(dialer.send(GetPeers())) == GetPeers()
    with pytest.raises(LocalProtocolError):
        dialer.send(Disconnect(code="x"))  # close() says goodbye


def test_application_messages_and_goodbye_when_ready() -> None:
    dialer = session(key(1), outbound=True, seed=1)
    acceptor = session(key(2), outbound=False, seed=2)
    handshake(dialer, acceptor)
    inv = Inv(kind="block", hashes=(bytes(32),))
    assert acceptor.receive(dialer.send(inv), 1.0) == [MessageReceived(message=inv)]
    assert acceptor.receive(dialer.close("shutdown", "bye"), 1.0) == [PeerClosed(code="shutdown", message="bye")]
    assert acceptor.state is SessionState.CLOSED
    assert acceptor.receive(b"anything", 2.0) == []  # closed sessions ignore stragglers


def test_ping_pong_measures_rtt_and_silence_expires() -> None:
    dialer = session(key(1), outbound=True, seed=1)
    acceptor = session(key(2), outbound=False, seed=2)
    handshake(dialer, acceptor, now=10.0)
    assert dialer.ping_due(10.5, interval_s=2.0) is None
    ping = dialer.ping_due(12.0, interval_s=2.0)
    assert ping is not None
    [pong_reply] = acceptor.receive(ping, 12.1)
    assert isinstance(pong_reply, Reply) and isinstance(pong_reply.message, Pong)
    [measured] = dialer.receive(pong_reply.frame, 12.25)
    assert isinstance(measured, PongReceived) and measured.rtt_s == pytest.approx(0.25)
    assert dialer.rtt_s == pytest.approx(0.25)
    assert dialer.receive(encode_frame(Pong(nonce=12345)), 12.3) == []  # unknown nonce: ignored
    assert not dialer.expired(15.0, timeout_s=5.0)
    assert dialer.expired(17.4, timeout_s=5.0)
    silent = session(key(3), outbound=False, seed=3, now=0.0)
    assert silent.expired(10.1, timeout_s=10.0)  # the handshake itself is bounded


def test_hello_fields_reach_the_peer() -> None:
    dialer = session(key(1), outbound=True, seed=1, user_agent="test/1")
    hello = decode_frame(dialer.start())
    assert isinstance(hello, Hello)
    assert hello.node_id == key(1).public_key and hello.user_agent == "test/1" and len(hello.challenge) == 32
