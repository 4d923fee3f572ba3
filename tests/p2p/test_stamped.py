"""Stamped frames (a tracing node's clocks on the wire, docs/TRACING.md): round trip, the `bad-clock` refusals,
and the session that unwraps them whether or not its node traces."""

from __future__ import annotations

from typing import Any

import pytest

from chain.block import make_block
from chain.crypto import sha256
from chain.encoding import pack
from p2p.protocol.codec import FrameError, decode_frame, encode_frame
from p2p.protocol.limits import connection_penalty
from p2p.protocol.messages import MAX_CLOCK_ENTRIES, BlockMsg, Bundle, GetPeers, Inv, Ping, Stamped, TxMsg
from p2p.protocol.session import MessageReceived, ProtocolViolation
from p2p.tracing import label
from tests.conftest import key
from tests.p2p.test_session import handshake, session

INV = Inv(kind="block", hashes=(bytes(range(32)),))


def stamped(**overrides: Any) -> Stamped:
    fields: dict[str, Any] = {"msg_id": "node1:4", "vc": (("node0", 2), ("node1", 4)), "lamport": 9,
                              "frame": encode_frame(INV)}
    fields.update(overrides)
    return Stamped(**fields)


def test_a_stamped_frame_round_trips_canonically() -> None:
    message = stamped()
    frame = encode_frame(message)
    assert decode_frame(frame) == message
    assert encode_frame(decode_frame(frame)) == frame


@pytest.mark.parametrize(("overrides", "why"), [
    ({"msg_id": "node1"}, "node:seq"),
    ({"msg_id": "node1:0"}, "node:seq"),
    ({"msg_id": "node1:x"}, "node:seq"),
    ({"msg_id": "node1:5"}, "sender's entry"),
    ({"vc": ()}, "pairs"),
    ({"vc": (("node1", 4), ("node0", 2))}, "sorted"),
    ({"vc": (("node0", 2), ("node0", 3), ("node1", 4))}, "sorted"),
    ({"vc": (("node0", 0), ("node1", 4))}, "counter"),
    ({"vc": (("node0", -1), ("node1", 4))}, "counter"),
    ({"vc": (("node0", True), ("node1", 4))}, "counter"),
    ({"vc": (("", 2), ("node1", 4))}, "names"),
    ({"vc": (("nöde", 2), ("node1", 4))}, "names"),
    ({"vc": (("node0", 2, 3), ("node1", 4))}, "pairs"),
    ({"vc": (*((f"n{i:05d}", 1) for i in range(MAX_CLOCK_ENTRIES)), ("node1", 4))}, "pairs"),
    ({"lamport": 0}, "lamport"),
])
def test_a_malformed_clock_is_refused_with_bad_clock(overrides: dict[str, Any], why: str) -> None:
    good = stamped()
    fields = [overrides.get(name, value) for name, value in
              zip(("msg_id", "vc", "lamport", "frame"), good.fields(), strict=True)]
    frame = pack(Stamped.TAG, 1, fields)
    with pytest.raises(FrameError) as caught:
        decode_frame(frame)
    assert caught.value.code == "bad-clock"
    assert why in caught.value.message
    assert connection_penalty("bad-clock").disconnect  # a peer that sends one is banned like any malformed frame


def test_a_stamped_bundle_or_a_stamp_inside_a_stamp_is_malformed() -> None:
    bundle = encode_frame(Bundle(frames=(encode_frame(INV), encode_frame(INV))))
    for inner in (bundle, encode_frame(stamped())):
        with pytest.raises(FrameError) as caught:
            decode_frame(pack(Stamped.TAG, 1, ["node1:4", [["node1", 4]], 9, inner]))
        assert caught.value.code == "malformed"


def test_the_session_unwraps_a_stamp_and_hands_it_on_with_the_message() -> None:
    dialer, acceptor = session(key(1), outbound=True, seed=1), session(key(2), outbound=False, seed=2)
    handshake(dialer, acceptor)
    stamp = stamped(frame=dialer.send(INV))
    assert acceptor.receive(encode_frame(stamp), 1.0) == [MessageReceived(message=INV, stamp=stamp)]
    # Inside a bundle too, each frame with its own stamp (or none).
    bundle = Bundle(frames=(encode_frame(stamp), dialer.send(INV)))
    assert acceptor.receive(encode_frame(bundle), 1.0) == [MessageReceived(message=INV, stamp=stamp),
                                                           MessageReceived(message=INV)]


def test_a_stamped_ping_or_a_stamp_before_the_handshake_is_a_violation() -> None:
    dialer, acceptor = session(key(1), outbound=True, seed=1), session(key(2), outbound=False, seed=2)
    early = session(key(3), outbound=False, seed=3)
    with pytest.raises(ProtocolViolation):
        early.receive(encode_frame(stamped()), 0.0)
    handshake(dialer, acceptor)
    with pytest.raises(ProtocolViolation):
        acceptor.receive(encode_frame(stamped(frame=encode_frame(Ping(nonce=1, sent_ms=0)))), 1.0)


def test_traced_messages_are_named_as_the_simulator_names_them() -> None:
    block = make_block(parent=None, height=1, timestamp_ms=1, proposer=bytes(20), txs=[], state_root=bytes(32))
    assert label(BlockMsg(raw=block.encoded)) == ("block", block.hash.hex()[:16])
    assert label(INV) == ("block-inv", bytes(range(32)).hex()[:16])
    assert label(TxMsg(raw=b"\x01\x02")) == ("tx", sha256(b"\x01\x02").hex()[:16])
    assert label(GetPeers()) is None  # peer exchange is not traced


def test_a_tracing_node_stamps_what_it_traces_and_the_stamp_is_valid() -> None:
    from causality.recorder import NodeTracer
    from p2p.tracing import WireTracer

    lines: list[str] = []
    wire = WireTracer(NodeTracer("node0", write=lines.append, clock=lambda: 5))
    bare = encode_frame(INV)
    frame = wire.stamp("peer-id", INV, bare)
    message = decode_frame(frame)
    assert message == Stamped(msg_id="node0:2", vc=(("node0", 2),), lamport=2, frame=bare)
    assert wire.stamp("peer-id", GetPeers(), encode_frame(GetPeers())) == encode_frame(GetPeers())
    assert len(lines) == 2  # node-start and the send: peer exchange is not traced
