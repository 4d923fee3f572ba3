"""Chain files: what `chain export` writes and `chain import` reads.

Format: the 8-byte magic `CLCHAIN1`, the 32-byte genesis hash, then blocks in height order, each as a 4-byte
big-endian length and the block's canonical encoding. Reading is bounded (a length above the block size limit
is an error naming the offset), so a hostile or truncated file gives a clear error, never a crash.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from chain.block import MAX_BLOCK_BYTES, Block, decode_block
from chain.errors import DecodeError

MAGIC = b"CLCHAIN1"


class ChainFileError(Exception):
    """A chain file that is not one, is truncated, or holds a malformed block; the message says where."""


def write_chain_file(path: str | os.PathLike[str], genesis_hash: bytes, blocks: Iterable[Block]) -> int:
    """Write `blocks` to `path` atomically (temp file + rename); returns how many were written."""
    temporary = f"{os.fspath(path)}.tmp"
    count = 0
    with open(temporary, "wb") as out:
        out.write(MAGIC + genesis_hash)
        for block in blocks:
            raw = block.encoded
            out.write(len(raw).to_bytes(4, "big") + raw)
            count += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return count


def read_header(stream: BinaryIO, name: str) -> bytes:
    """Check the magic and return the genesis hash the file belongs to."""
    head = stream.read(len(MAGIC) + 32)
    if len(head) != len(MAGIC) + 32 or not head.startswith(MAGIC):
        raise ChainFileError(f"{name} is not a chainlab chain file (bad magic)")
    return head[len(MAGIC):]


def iter_blocks(stream: BinaryIO, name: str) -> Iterator[tuple[int, Block]]:
    """Yield (file offset, block) after the header; ChainFileError on truncation or a malformed block."""
    offset = len(MAGIC) + 32
    while True:
        prefix = stream.read(4)
        if not prefix:
            return
        if len(prefix) != 4:
            raise ChainFileError(f"{name}: truncated length at offset {offset}")
        length = int.from_bytes(prefix, "big")
        if length > MAX_BLOCK_BYTES:
            raise ChainFileError(f"{name}: block of {length} bytes at offset {offset} exceeds {MAX_BLOCK_BYTES}")
        raw = stream.read(length)
        if len(raw) != length:
            raise ChainFileError(f"{name}: truncated block at offset {offset}")
        try:
            block = decode_block(raw)
        except DecodeError as exc:
            raise ChainFileError(f"{name}: malformed block at offset {offset}: {exc}") from exc
        yield offset, block
        offset += 4 + length
