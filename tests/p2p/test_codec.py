"""Frame codec: every message round-trips; whatever bytes come in, decoding raises only FrameError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.encoding import pack
from p2p.protocol.codec import FrameError, decode_frame, encode_frame
from p2p.protocol.messages import (
    MAX_INV_HASHES,
    MESSAGE_TYPES,
    MESSAGES_BY_TAG,
    BlockMsg,
    Blocks,
    Bundle,
    Disconnect,
    EngineMsg,
    GetBlocks,
    GetData,
    GetPeers,
    Hello,
    HelloAck,
    Inv,
    Message,
    NotFound,
    Peers,
    Ping,
    Pong,
    Stamped,
    TxMsg,
)
from tests.conftest import key
from tests.p2p.fakes import pow_chain, transfer

H1, H2 = bytes(range(32)), bytes(range(1, 33))


def samples() -> list[Message]:
    """One instance of every message type, with non-trivial fields."""
    return [
        Hello(protocol_version=1, chain_id="p2p-test", genesis_hash=H1, node_id=key(1).public_key, challenge=H2,
              listen_url="ws://127.0.0.1:9000/p2p", best_height=12, user_agent="chainlab/0.1"),
        HelloAck(signature=bytes(range(64))),
        Ping(nonce=2**64 - 1, sent_ms=123456),
        Pong(nonce=7),
        Inv(kind="tx", hashes=(H1, H2)),
        GetData(kind="block", hashes=(H1,)),
        NotFound(kind="tx", hashes=()),
        TxMsg(raw=transfer(0).encoded),
        BlockMsg(raw=pow_chain(1)[0].encoded),
        GetBlocks(locator=(H1, H2), limit=500),
        Blocks(raws=tuple(b.encoded for b in pow_chain(3))),
        GetPeers(),
        Peers(urls=("ws://127.0.0.1:1/p2p", "wss://example.org/p2p")),
        EngineMsg(kind="heartbeat", payload=b"\x00\x01"),
        Disconnect(code="wrong-genesis", message="peer genesis ..."),
        Bundle(frames=(encode_frame(Pong(nonce=1)), encode_frame(GetPeers()))),
        Stamped(msg_id="node1:3", vc=(("node0", 1), ("node1", 3)), lamport=5, frame=encode_frame(GetPeers())),
    ]


def test_every_message_type_round_trips() -> None:
    messages = samples()
    assert {type(m) for m in messages} == set(MESSAGE_TYPES)
    for message in messages:
        frame = encode_frame(message)
        assert frame[1] == message.TAG
        decoded = decode_frame(frame)
        assert decoded == message
        assert encode_frame(decoded) == frame


def test_tags_are_p2p_tags_and_unique() -> None:
    assert sorted(MESSAGES_BY_TAG) == list(range(32, 49))


@pytest.mark.parametrize("build", [
    lambda: Inv(kind="header", hashes=()),
    lambda: Inv(kind="tx", hashes=(H1,) * (MAX_INV_HASHES + 1)),
    lambda: Inv(kind="tx", hashes=[H1]),  # type: ignore[arg-type]  # a list is not a tuple: messages are immutable
    lambda: GetData(kind="tx", hashes=(b"short",)),
    lambda: GetBlocks(locator=(H1,) * 65, limit=10),
    lambda: GetBlocks(locator=(), limit=0),
    lambda: GetBlocks(locator=(), limit=501),
    lambda: Peers(urls=("http://example.org",)),
    lambda: Peers(urls=("ws://x",) * 101),
    lambda: EngineMsg(kind="", payload=b""),
    lambda: EngineMsg(kind="k" * 33, payload=b""),
    lambda: Hello(protocol_version=1, chain_id="c", genesis_hash=H1, node_id=b"\x02" + bytes(32), challenge=H2),
    lambda: Hello(protocol_version=1, chain_id="c", genesis_hash=H1, node_id=key(1).public_key, challenge=b"x"),
    lambda: HelloAck(signature=bytes(63)),
    lambda: Ping(nonce=-1, sent_ms=0),
    lambda: Disconnect(code="", message=""),
    lambda: TxMsg(raw=bytes(513)),
    lambda: Bundle(frames=(encode_frame(Pong(nonce=1)),)),  # one frame needs no bundle
    lambda: Bundle(frames=(encode_frame(Pong(nonce=1)), b"\x93")),  # too short to be a frame
    lambda: Bundle(frames=(encode_frame(Pong(nonce=1)),
                           encode_frame(Bundle(frames=(encode_frame(Pong(nonce=2)), encode_frame(GetPeers())))))),
])
def test_messages_validate_on_construction(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_disconnect_of_sanitizes_the_message() -> None:
    message = Disconnect.of("timeout", "é" * 1000)
    assert message.message == "?" * 256


def test_oversize_is_rejected_before_parsing() -> None:
    frame = encode_frame(Ping(nonce=1, sent_ms=2))
    with pytest.raises(FrameError) as info:
        decode_frame(frame, max_message_bytes=len(frame) - 1)
    assert info.value.code == "oversize"
    # Garbage that would be malformed is reported as oversize: the size check runs first.
    with pytest.raises(FrameError) as info:
        decode_frame(b"\xc1" * 2000, max_message_bytes=1000)
    assert info.value.code == "oversize"


def test_unknown_tag_and_non_canonical_frames() -> None:
    with pytest.raises(FrameError) as info:
        decode_frame(pack(60, 1, []))
    assert info.value.code == "unknown-message"
    with pytest.raises(FrameError) as info:
        decode_frame(pack(34, 2, [1, 2]))  # Ping, version 2
    assert info.value.code == "malformed"
    # Ping's nonce 1 as a uint64 instead of a fixint: same value, not the canonical bytes.
    wide = bytes([0x94, 34, 1, 0xCF]) + (1).to_bytes(8, "big") + bytes([2])
    with pytest.raises(FrameError):
        decode_frame(wide)
    with pytest.raises(FrameError):
        decode_frame(encode_frame(Pong(nonce=1)) + b"\x00")  # trailing bytes
    with pytest.raises(FrameError):
        decode_frame("text")


def _assert_frame_error_only(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data, max_message_bytes=1 << 20)


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    _assert_frame_error_only(data)


@given(st.sampled_from(range(15)), st.data())
def test_truncations_and_bit_flips_raise_only_frame_error(index: int, data: st.DataObject) -> None:
    frame = encode_frame(samples()[index])
    cut = data.draw(st.integers(0, len(frame)))
    _assert_frame_error_only(frame[:cut])
    position = data.draw(st.integers(0, len(frame) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(frame)
    flipped[position] ^= 1 << bit
    _assert_frame_error_only(bytes(flipped))


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=20,
)


@given(st.sampled_from([*sorted(MESSAGES_BY_TAG), 0, 31, 64]), st.lists(msgpack_values, max_size=10))
def test_arbitrary_msgpack_arrays_raise_only_frame_error(tag: int, fields: list[object]) -> None:
    _assert_frame_error_only(msgpack.packb([tag, 1, *fields], use_bin_type=True))


@given(msgpack_values)
def test_arbitrary_msgpack_values_raise_only_frame_error(value: object) -> None:
    _assert_frame_error_only(msgpack.packb(value, use_bin_type=True))


@given(st.sampled_from(range(15)), st.data())
def test_wrong_field_types_raise_only_frame_error(index: int, data: st.DataObject) -> None:
    message = samples()[index]
    fields = message.fields()
    if not fields:
        return
    position = data.draw(st.integers(0, len(fields) - 1))
    fields[position] = data.draw(msgpack_values)
    _assert_frame_error_only(msgpack.packb([message.TAG, 1, *fields], use_bin_type=True))
