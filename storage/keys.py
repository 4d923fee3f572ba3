"""The chain's key layout: one-byte prefixes and pure helpers that build and parse keys.

| key                               | value (encoded by the chain layer)            |
|-----------------------------------|-----------------------------------------------|
| b"B" + block hash (32)            | block body                                    |
| b"M" + block hash (32)            | block metadata: height, cumulative work, status |
| b"H" + height (8, big-endian)     | hash of the best-chain block at that height   |
| b"A" + address (20)               | account                                       |
| b"R" + record key (b"L"/b"K" + name) | lock or register record (chain/locks.py)     |
| b"O" + tx hash (32)               | outcome (reject code or "ok") of a best-chain operation transaction |
| b"U" + block hash (32)            | undo data of the block                        |
| b"T" + tx hash (32)               | tx index entry: block hash + position         |
| b"X" + address (20) + height (8) + position (4) | empty: a best-chain tx the address sent or received |
| b"E" + engine name                | consensus engine state                        |
| b"\\x00tip"                        | hash of the best-chain tip                    |
| b"\\x00final"                      | final height                                  |
| b"\\x00schema"                     | schema version, ASCII integer (storage/schema.py) |
| b"\\x00upgrade/address-index"      | while the schema upgrade 1 -> 2 runs: tip hash (32) + next height (8) |

Heights are big-endian so that byte order is numeric order: iterating b"H" in reverse starts at the top of
the best chain, and iterating b"X" + address in reverse gives that address's transactions newest first (heights
and positions are big-endian). Every builder raises ValueError on a wrong length or range, so a malformed key never
reaches the store (a value of the wrong type raises TypeError).
"""

from __future__ import annotations

BLOCK = b"B"
BLOCK_META = b"M"
HEIGHT = b"H"
ACCOUNT = b"A"
RECORD = b"R"
OUTCOME = b"O"
UNDO = b"U"
TX_INDEX = b"T"
ADDRESS_TX = b"X"
ENGINE = b"E"

TIP_KEY = b"\x00tip"
FINAL_KEY = b"\x00final"
SCHEMA_KEY = b"\x00schema"
ADDRESS_INDEX_UPGRADE_KEY = b"\x00upgrade/address-index"

HASH_BYTES = 32
ADDRESS_BYTES = 20
HEIGHT_BYTES = 8
POSITION_BYTES = 4
MAX_ENGINE_NAME_BYTES = 64

_HASH_PREFIXES = frozenset({BLOCK, BLOCK_META, UNDO, TX_INDEX, OUTCOME})


def block_key(block_hash: bytes) -> bytes:
    """Key of a block body."""
    return BLOCK + _sized(block_hash, HASH_BYTES, "block hash")


def block_meta_key(block_hash: bytes) -> bytes:
    """Key of a block's metadata (height, cumulative work, status)."""
    return BLOCK_META + _sized(block_hash, HASH_BYTES, "block hash")


def undo_key(block_hash: bytes) -> bytes:
    """Key of a block's undo data."""
    return UNDO + _sized(block_hash, HASH_BYTES, "block hash")


def tx_index_key(tx_hash: bytes) -> bytes:
    """Key of a transaction's index entry."""
    return TX_INDEX + _sized(tx_hash, HASH_BYTES, "tx hash")


def hash_from_key(key: bytes) -> bytes:
    """The 32-byte hash in a block, block-metadata, undo or tx-index key."""
    if len(key) != 1 + HASH_BYTES or key[:1] not in _HASH_PREFIXES:
        raise ValueError(f"not a hash key: {key!r}")
    return key[1:]


def height_key(height: int) -> bytes:
    """Key of the best-chain block hash at `height` (0 <= height < 2**64)."""
    return HEIGHT + _height_bytes(height)


def height_from_key(key: bytes) -> int:
    """The height in a key built by `height_key`."""
    if len(key) != 1 + HEIGHT_BYTES or key[:1] != HEIGHT:
        raise ValueError(f"not a height key: {key!r}")
    return int.from_bytes(key[1:], "big")


def address_tx_prefix(address: bytes) -> bytes:
    """The prefix of every address-index key of `address`."""
    return ADDRESS_TX + _sized(address, ADDRESS_BYTES, "address")


def address_tx_key(address: bytes, height: int, position: int) -> bytes:
    """Key of the address index: transaction number `position` (0 <= position < 2**32) of the best-chain block
    at `height` sent or received by `address`."""
    return address_tx_prefix(address) + _height_bytes(height) + _position_bytes(position)


def address_tx_from_key(key: bytes) -> tuple[bytes, int, int]:
    """(address, height, position) of a key built by `address_tx_key`."""
    if len(key) != 1 + ADDRESS_BYTES + HEIGHT_BYTES + POSITION_BYTES or key[:1] != ADDRESS_TX:
        raise ValueError(f"not an address-index key: {key!r}")
    cut = 1 + ADDRESS_BYTES
    return key[1:cut], int.from_bytes(key[cut:cut + HEIGHT_BYTES], "big"), int.from_bytes(key[cut + HEIGHT_BYTES:],
                                                                                              "big")


def account_key(address: bytes) -> bytes:
    """Key of an account."""
    return ACCOUNT + _sized(address, ADDRESS_BYTES, "address")


def address_from_key(key: bytes) -> bytes:
    """The 20-byte address in a key built by `account_key`."""
    if len(key) != 1 + ADDRESS_BYTES or key[:1] != ACCOUNT:
        raise ValueError(f"not an account key: {key!r}")
    return key[1:]


def record_key(key: bytes) -> bytes:
    """Store key of a state record (a lock or register key of chain/locks.py, 2..65 bytes)."""
    if not 2 <= len(key) <= 65:
        raise ValueError(f"record key of {len(key)} bytes")
    return RECORD + key


def outcome_key(tx_hash: bytes) -> bytes:
    """Key of an operation transaction's outcome."""
    return OUTCOME + _sized(tx_hash, HASH_BYTES, "tx hash")


def engine_key(name: str) -> bytes:
    """Key of a consensus engine's persisted state; `name` is a short ASCII identifier such as "raft"."""
    if not name or not name.isascii() or not name.isprintable():
        raise ValueError(f"engine name must be non-empty printable ASCII: {name!r}")
    if len(name) > MAX_ENGINE_NAME_BYTES:
        raise ValueError(f"engine name longer than {MAX_ENGINE_NAME_BYTES} bytes: {name!r}")
    return ENGINE + name.encode("ascii")


def _height_bytes(height: int) -> bytes:
    return _uint_bytes(height, HEIGHT_BYTES, "height")


def _position_bytes(position: int) -> bytes:
    return _uint_bytes(position, POSITION_BYTES, "position")


def _uint_bytes(value: int, size: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{what} out of range: {value}")
    return value.to_bytes(size, "big")


def _sized(value: bytes, size: int, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(value)}: {value!r}")
    return value
