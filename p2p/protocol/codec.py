"""Frame codec: one P2P message per websocket binary frame, in the canonical encoding of chain/encoding.py.

A frame is the msgpack array `[tag, version, field, ...]`. Every P2P message has at most 8 fields, so a canonical
frame always starts with a fixarray byte (0x92..0x9f) followed by the tag as a positive fixint; the decoder reads
the tag from there, then lets `chain.encoding.unpack` parse the frame and insist on the canonical bytes. The size
limit is checked before any parsing. Whatever the input, decoding raises only `FrameError`.
"""

from __future__ import annotations

from chain.encoding import as_bytes, pack, unpack
from chain.errors import DecodeError
from p2p.protocol.messages import MESSAGE_VERSION, MESSAGES_BY_TAG, Bundle, Message

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_FIXARRAY_MIN, _FIXARRAY_MAX = 0x92, 0x9F


class FrameError(DecodeError):
    """Bytes from a peer that are not one valid P2P message.

    Codes: `oversize` (above the frame limit; nothing was parsed), `unknown-message` (a tag we do not know),
    `bad-clock` (a Stamped frame's clock is malformed), `malformed` (anything else: not canonical msgpack, wrong
    field count or types, a field out of bounds).
    """

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message, code=code)


def encode_frame(message: Message) -> bytes:
    """The canonical frame of `message`."""
    return pack(message.TAG, MESSAGE_VERSION, message.fields())


def decode_frame(data: object, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Decode one frame; raise FrameError (with a stable code) for anything but a valid message."""
    try:
        raw = as_bytes(data)
    except DecodeError as exc:
        raise FrameError(exc.message) from exc
    if len(raw) > max_message_bytes:
        raise FrameError(f"frame of {len(raw)} bytes exceeds the limit of {max_message_bytes}", code="oversize")
    if len(raw) < 2 or not _FIXARRAY_MIN <= raw[0] <= _FIXARRAY_MAX or raw[1] >= 0x80:
        raise FrameError("not a P2P frame: expected a short array starting with a small tag")
    tag = raw[1]
    cls = MESSAGES_BY_TAG.get(tag)
    if cls is None:
        raise FrameError(f"unknown message tag {tag}", code="unknown-message")
    try:
        fields = unpack(raw, tag, MESSAGE_VERSION, cls.field_count(), max_message_bytes)
    except DecodeError as exc:
        raise FrameError(f"{cls.__name__}: {exc.message}", code=exc.code) from exc
    try:
        return cls.from_fields(fields)
    except (TypeError, ValueError) as exc:  # a ClockFieldError carries its own code (`bad-clock`)
        raise FrameError(f"{cls.__name__}: {exc}", code=getattr(exc, "code", "malformed")) from exc


def split_frames(data: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[bytes]:
    """The frames one websocket message carries: itself, or the frames of a Bundle, in order (each still to be
    decoded on its own). FrameError for a malformed bundle."""
    if len(data) < 2 or data[1] != Bundle.TAG:
        return [data]
    bundle = decode_frame(data, max_message_bytes)
    assert isinstance(bundle, Bundle), "the tag says Bundle"
    return list(bundle.frames)
