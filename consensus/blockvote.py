"""A vote on a block (pure): the body `[tag, 1, block_hash, height]` that engines send about one block, each
engine under its own tag (primary-backup's acknowledgement 17, round-robin's acknowledgement and commit 19). The
envelope around it (consensus/envelope.py) names and authenticates the voter."""

from __future__ import annotations

from chain.encoding import check_bytes, check_uint, pack, unpack
from chain.errors import DecodeError

_MAX_BYTES = 128


def encode_block_vote(tag: int, block_hash: bytes, height: int) -> bytes:
    """The body `[tag, 1, block_hash, height]`."""
    return pack(tag, 1, [block_hash, height])


def decode_block_vote(data: object, tag: int, what: str) -> tuple[bytes, int]:
    """(block_hash, height) of a `tag` vote; DecodeError naming `what` otherwise."""
    fields = unpack(data, tag, 1, 2, _MAX_BYTES)
    try:
        return check_bytes(fields[0], "block_hash", size=32), check_uint(fields[1], "height")
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"{what}: {exc}") from exc
