"""Messages between simulated nodes: the P2P protocol's message kinds, carried as values instead of frames.

Each kind stands for one message of p2p/protocol/messages.py (named in its docstring); the sync request is the
real `GetBlocks`. Blocks and transactions travel as the decoded objects (they are immutable), so no node pays for
encoding; the handshake, pings, peer exchange and framing are not simulated (links are modelled, see links.py).
Every message names itself for the trace: `kind` and `ident` (a hash that identifies the content).
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.block import Block
from chain.crypto import sha256
from chain.tx import Transaction
from p2p.protocol.messages import GetBlocks


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockPush:
    """A whole block pushed to a peer (BlockMsg)."""

    block: Block
    kind = "block"

    def ident(self) -> bytes:
        """The block hash."""
        return self.block.hash


@dataclass(frozen=True, slots=True, kw_only=True)
class TxInv:
    """Transaction hashes announced (Inv, kind tx)."""

    hashes: tuple[bytes, ...]
    kind = "tx-inv"

    def ident(self) -> bytes:
        """The first hash (announcements carry one hash each in the simulator)."""
        return self.hashes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class TxGet:
    """Transaction bodies requested (GetData, kind tx)."""

    hashes: tuple[bytes, ...]
    kind = "tx-get"

    def ident(self) -> bytes:
        """The first hash."""
        return self.hashes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class TxBody:
    """A transaction body (TxMsg)."""

    tx: Transaction
    kind = "tx"

    def ident(self) -> bytes:
        """The transaction hash."""
        return self.tx.hash


@dataclass(frozen=True, slots=True, kw_only=True)
class TxNotFound:
    """Requested transactions the peer does not have (NotFound, kind tx)."""

    hashes: tuple[bytes, ...]
    kind = "tx-notfound"

    def ident(self) -> bytes:
        """The first hash."""
        return self.hashes[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncAsk:
    """A sync request (the real GetBlocks message)."""

    request: GetBlocks
    kind = "getblocks"

    def ident(self) -> bytes:
        """The first locator hash (our tip, or the sync frontier)."""
        return self.request.locator[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncBatch:
    """A sync answer: consecutive best-chain blocks after the fork point, oldest first (Blocks)."""

    blocks: tuple[Block, ...]
    kind = "blocks"

    def ident(self) -> bytes:
        """The last block's hash, or 32 zero bytes for an empty batch."""
        return self.blocks[-1].hash if self.blocks else bytes(32)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineCarrier:
    """An engine message (EngineMsg): an opaque typed payload; `digest` (its SHA-256) names it in the trace."""

    engine_kind: str
    payload: bytes
    digest: bytes
    kind = "engine"

    @classmethod
    def of(cls, engine_kind: str, payload: bytes) -> EngineCarrier:
        """The carrier of one engine message (hashed once, however many peers it goes to)."""
        return cls(engine_kind=engine_kind, payload=payload, digest=sha256(payload))

    def ident(self) -> bytes:
        """SHA-256 of the payload."""
        return self.digest


Wire = BlockPush | TxInv | TxGet | TxBody | TxNotFound | SyncAsk | SyncBatch | EngineCarrier
