"""Block headers and blocks.

Header encoding: `[2, 1, version, height, parent, timestamp_ms, tx_root, state_root, proposer, seal]`.
Block encoding: `[3, 1, header_bytes, [tx_bytes, ...]]`: the header and every transaction travel as their own
canonical bytes, so hashing them needs no second encoding pass. The block hash is SHA-256 of the header bytes;
`seal_hash` (the header without its seal) is what an engine seals: PoW grinds a nonce over it, primary-backup and
BFT engines sign it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chain import crypto
from chain.encoding import TAG_BLOCK, TAG_HEADER, as_bytes, check_bytes, check_uint, pack, unpack, unpackb_raw
from chain.errors import DecodeError
from chain.merkle import merkle_root
from chain.tx import MAX_TX_BYTES, Transaction, decode_tx

HEADER_VERSION = 1
BLOCK_VERSION = 1
MAX_SEAL_BYTES = 16 * 1024
MAX_HEADER_BYTES = MAX_SEAL_BYTES + 512
MAX_BLOCK_TXS = 20_000
MAX_BLOCK_BYTES = 4 * 1024 * 1024
ZERO_HASH = bytes(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockHeader:
    """A block header; `seal` is opaque bytes whose meaning belongs to the consensus engine."""

    version: int = HEADER_VERSION
    height: int
    parent: bytes
    timestamp_ms: int
    tx_root: bytes
    state_root: bytes
    proposer: bytes  # 20-byte address that receives fees and any block reward
    seal: bytes = b""
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.version != HEADER_VERSION or type(self.version) is not int:
            raise ValueError(f"unsupported header version {self.version!r}")
        check_uint(self.height, "height")
        check_bytes(self.parent, "parent", size=crypto.HASH_BYTES)
        check_uint(self.timestamp_ms, "timestamp_ms")
        check_bytes(self.tx_root, "tx_root", size=crypto.HASH_BYTES)
        check_bytes(self.state_root, "state_root", size=crypto.HASH_BYTES)
        check_bytes(self.proposer, "proposer", size=crypto.ADDRESS_BYTES)
        check_bytes(self.seal, "seal", max_size=MAX_SEAL_BYTES)

    def _unsealed_fields(self) -> list[object]:
        return [
            self.version, self.height, self.parent, self.timestamp_ms, self.tx_root, self.state_root, self.proposer,
        ]

    @property
    def encoded(self) -> bytes:
        """Canonical encoding."""
        if self._encoded is None:
            encoded = pack(TAG_HEADER, HEADER_VERSION, [*self._unsealed_fields(), self.seal])
            object.__setattr__(self, "_encoded", encoded)
        assert self._encoded is not None
        return self._encoded

    @property
    def hash(self) -> bytes:
        """Block hash: SHA-256 of the canonical header encoding."""
        if self._hash is None:
            object.__setattr__(self, "_hash", crypto.sha256(self.encoded))
        assert self._hash is not None
        return self._hash

    @property
    def seal_hash(self) -> bytes:
        """SHA-256 of the header without its seal: what the engine's seal commits to."""
        return crypto.sha256(pack(TAG_HEADER, HEADER_VERSION, self._unsealed_fields()))

    def with_seal(self, seal: bytes) -> BlockHeader:
        """The same header with another seal."""
        return BlockHeader(
            height=self.height, parent=self.parent, timestamp_ms=self.timestamp_ms, tx_root=self.tx_root,
            state_root=self.state_root, proposer=self.proposer, seal=seal,
        )

    def to_json(self) -> dict[str, object]:
        """Plain JSON view."""
        return {
            "hash": self.hash.hex(),
            "version": self.version,
            "height": self.height,
            "parent": self.parent.hex(),
            "timestamp_ms": self.timestamp_ms,
            "tx_root": self.tx_root.hex(),
            "state_root": self.state_root.hex(),
            "proposer": crypto.address_to_text(self.proposer),
            "seal": self.seal.hex(),
        }


def decode_header(data: object) -> BlockHeader:
    """Decode a canonical header; raise DecodeError for anything else."""
    fields = unpack(data, TAG_HEADER, HEADER_VERSION, 8, MAX_HEADER_BYTES)
    version, height, parent, timestamp_ms, tx_root, state_root, proposer, seal = fields
    try:
        header = BlockHeader(
            version=version, height=height, parent=parent, timestamp_ms=timestamp_ms, tx_root=tx_root,
            state_root=state_root, proposer=proposer, seal=seal,
        )
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"header: {exc}") from exc
    object.__setattr__(header, "_encoded", as_bytes(data))
    return header


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """A header and its ordered transactions."""

    header: BlockHeader
    txs: tuple[Transaction, ...] = ()
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.header, BlockHeader):
            raise TypeError("header must be a BlockHeader")
        if type(self.txs) is not tuple:
            raise TypeError("txs must be a tuple of transactions")

    @property
    def hash(self) -> bytes:
        """The block hash (its header's)."""
        return self.header.hash

    @property
    def height(self) -> int:
        """Height of the block (genesis is 0)."""
        return self.header.height

    @property
    def parent(self) -> bytes:
        """Hash of the parent block."""
        return self.header.parent

    @property
    def encoded(self) -> bytes:
        """Canonical encoding."""
        if self._encoded is None:
            body = [self.header.encoded, [tx.encoded for tx in self.txs]]
            object.__setattr__(self, "_encoded", pack(TAG_BLOCK, BLOCK_VERSION, body))
        assert self._encoded is not None
        return self._encoded

    @property
    def size(self) -> int:
        """Encoded size in bytes."""
        return len(self.encoded)

    def computed_tx_root(self) -> bytes:
        """Merkle root of this block's transactions (compare with header.tx_root)."""
        return merkle_root([tx.hash for tx in self.txs])

    def to_json(self, *, full_txs: bool = False) -> dict[str, object]:
        """Plain JSON view with tx hashes, or full transactions."""
        view = self.header.to_json()
        view["size"] = self.size
        view["tx_count"] = len(self.txs)
        view["txs"] = [tx.to_json() for tx in self.txs] if full_txs else [tx.hash.hex() for tx in self.txs]
        return view


def decode_block(data: object) -> Block:
    """Decode a canonical block (header and every transaction); raise DecodeError for anything else."""
    header_bytes, tx_list = unpack(data, TAG_BLOCK, BLOCK_VERSION, 2, MAX_BLOCK_BYTES)
    header = decode_header(header_bytes)
    if type(tx_list) is not list:
        raise DecodeError("block: transactions must be an array")
    if len(tx_list) > MAX_BLOCK_TXS:
        raise DecodeError(f"block: {len(tx_list)} transactions exceed the limit of {MAX_BLOCK_TXS}", code="oversize")
    try:
        txs = tuple(map(decode_tx, tx_list))  # decode_tx refuses non-bytes and oversize items itself
    except DecodeError:
        _raise_first_bad_tx(tx_list)
        raise
    block = Block(header=header, txs=txs)
    object.__setattr__(block, "_encoded", as_bytes(data))
    return block


def peek_block_hash(data: bytes) -> bytes | None:
    """The hash of the header a block's encoding carries, without decoding its header or transactions; None when
    the bytes are not shaped like a block. Nothing is checked: for recognising a copy of a block already seen
    before paying for its decoding, never for accepting one (a forged body under a known header is dropped with
    the copies, and the genuine block is the one we hold)."""
    if len(data) > MAX_BLOCK_BYTES:
        return None
    try:
        obj = unpackb_raw(data)
    except Exception:  # msgpack's zoo of errors: not a block; the full decode reports why
        return None
    if type(obj) is not list or len(obj) != 4 or obj[0] != TAG_BLOCK or type(obj[2]) is not bytes:
        return None
    return crypto.sha256(obj[2])


def _raise_first_bad_tx(tx_list: list[object]) -> None:
    """Raise the DecodeError of the first undecodable transaction, naming its index."""
    for index, tx_bytes in enumerate(tx_list):
        if type(tx_bytes) is not bytes or len(tx_bytes) > MAX_TX_BYTES:
            raise DecodeError(f"block: transaction {index} is not bytes of at most {MAX_TX_BYTES}")
        try:
            decode_tx(tx_bytes)
        except DecodeError as exc:
            raise DecodeError(f"block: transaction {index}: {exc.message}") from exc


def make_block(
    *, parent: BlockHeader | None, height: int, timestamp_ms: int, txs: Sequence[Transaction], state_root: bytes,
    proposer: bytes, seal: bytes = b"", parent_hash: bytes | None = None,
) -> Block:
    """Assemble an (unsealed unless `seal`) block over `txs` with the right tx root."""
    parent_ref = parent.hash if parent is not None else (parent_hash if parent_hash is not None else ZERO_HASH)
    tx_tuple = tuple(txs)
    header = BlockHeader(
        height=height, parent=parent_ref, timestamp_ms=timestamp_ms, tx_root=merkle_root([t.hash for t in tx_tuple]),
        state_root=state_root, proposer=proposer, seal=seal,
    )
    return Block(header=header, txs=tx_tuple)
