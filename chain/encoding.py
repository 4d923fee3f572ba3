"""Canonical encoding: msgpack arrays `[type_tag, version, field, ...]` in a fixed order.

Canonical means one object has exactly one encoding: `decode` re-encodes what it parsed and rejects the input
unless the bytes are identical, so a hash names exactly one object and a peer cannot relabel one by re-encoding it
(smaller int widths, str vs bin, map vs array are all caught by that one comparison). Every failure raises
`DecodeError`, whatever the input was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from chain.errors import DecodeError

# Type tags of every encoded object kind. Tags are never reused.
TAG_TX = 1
TAG_HEADER = 2
TAG_BLOCK = 3
TAG_GENESIS = 4
TAG_ACCOUNT = 5
TAG_UNDO = 6
TAG_BLOCK_META = 7
TAG_LOCK = 8  # lock record (chain/locks.py)
TAG_KV = 9  # fenced register record (chain/locks.py)
# 16.. are reserved for consensus engines, 32.. for P2P messages.

U64_MAX = (1 << 64) - 1


_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
# msgpack >= 1.0 defaults: str as str, arrays as lists, map keys only str/bytes (strict_map_key), no ext hooks.
_unpackb = msgpack.unpackb
# For decoders that inline `unpack`'s accepted path (chain.tx); they must re-encode with this and compare.
packb_canonical = _packb
unpackb_raw = _unpackb


def pack(tag: int, version: int, fields: Sequence[Any]) -> bytes:
    """Encode `fields` under `tag`/`version` canonically."""
    packed: bytes = _packb([tag, version, *fields])
    return packed


def unpack(data: object, tag: int, version: int, field_count: int, max_bytes: int) -> list[Any]:
    """Parse canonical bytes of one object and return its fields (without tag and version).

    Raises DecodeError for anything but the canonical encoding of a `tag`/`version` array of `field_count`
    fields no longer than `max_bytes`.
    """
    # Every transaction of every block passes here: the accepted path is one parse, one re-encode, one compare.
    raw = data if type(data) is bytes else as_bytes(data)
    if len(raw) > max_bytes:
        raise DecodeError(f"{len(raw)} bytes exceeds the limit of {max_bytes}", code="oversize")
    try:
        obj = _unpackb(raw)
    except Exception as exc:  # msgpack raises a zoo of types (ExtraData, ValueError, UnicodeDecodeError, ...)
        raise DecodeError(f"not msgpack: {exc.__class__.__name__}: {exc}") from exc
    if type(obj) is not list or len(obj) != field_count + 2:
        raise DecodeError(f"expected an array of {field_count + 2} items")
    if obj[0] != tag or type(obj[0]) is not int:
        raise DecodeError(f"expected type tag {tag}, got {obj[0]!r}")
    if obj[1] != version or type(obj[1]) is not int:
        raise DecodeError(f"unsupported version {obj[1]!r} for type tag {tag}")
    try:
        canonical = _packb(obj)
    except Exception as exc:
        raise DecodeError(f"cannot re-encode: {exc}") from exc
    if canonical != raw:
        raise DecodeError("non-canonical encoding")
    del obj[:2]
    return obj


def as_bytes(data: object) -> bytes:
    """`data` as bytes (from bytes, bytearray or memoryview); DecodeError for anything else."""
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise DecodeError(f"expected bytes, got {type(data).__name__}")


def check_uint(value: object, name: str, maximum: int = U64_MAX) -> int:
    """Return `value` if it is an int (not bool) in [0, maximum]; else raise ValueError naming the field."""
    if type(value) is not int or not 0 <= value <= maximum:
        raise ValueError(f"{name} must be an integer in [0, {maximum}], got {value!r}")
    return value


def check_bytes(value: object, name: str, *, size: int | None = None, max_size: int | None = None) -> bytes:
    """Return `value` if it is bytes of exactly `size` or at most `max_size` bytes; else raise ValueError."""
    if type(value) is not bytes:
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")
    if size is not None and len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise ValueError(f"{name} must be at most {max_size} bytes, got {len(value)}")
    return value


def check_text(value: object, name: str, *, max_size: int, min_size: int = 0) -> str:
    """Return `value` if it is a printable ASCII str of bounded length; else raise ValueError."""
    if type(value) is not str or not min_size <= len(value) <= max_size:
        raise ValueError(f"{name} must be a string of {min_size}..{max_size} characters")
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"{name} must be printable ASCII")
    return value
