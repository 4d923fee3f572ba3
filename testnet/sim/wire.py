"""What travels between simulated nodes (pure): the P2P protocol's own messages, as values rather than frames.

Relay and sync messages are the real ones of p2p/protocol/messages.py (`Inv`, `GetData`, `NotFound`, `TxMsg`,
`BlockMsg`, `GetBlocks`, `Blocks`), made and read by the same relay core the asyncio node runs
(p2p/protocol/relay.py). Engine messages travel as an `EngineCarrier`, which hashes its payload once for the trace
however many peers it goes to. The handshake, pings, peer exchange and framing are not simulated (links are
modelled, see links.py).

Bodies travel encoded, as on a real link; `SimCodec` decodes them for every node of a run and remembers what it
decoded (blocks and transactions are immutable values, so a remembered decoding is the decoding), so a block
relayed to seven nodes is decoded once, not seven times.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.block import Block, decode_block
from chain.crypto import sha256
from chain.fifo import trimmed
from chain.tx import Transaction, decode_tx
from consensus.envelope import ENVELOPE_KIND, envelope_ident
from p2p.protocol.labels import relay_label
from p2p.protocol.messages import Message

MEMO_BLOCKS = 4_096
MEMO_TXS = 65_536


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineCarrier:
    """An engine message (EngineMsg): an opaque typed payload; `digest` (its SHA-256) names it in the trace."""

    engine_kind: str
    payload: bytes
    digest: bytes
    ident: tuple[bytes, int] | None = None  # the envelope's (sender, seq); None if it does not decode

    @classmethod
    def of(cls, engine_kind: str, payload: bytes) -> EngineCarrier:
        """The carrier of one engine message (hashed and parsed once, however many peers it goes to)."""
        return cls(engine_kind=engine_kind, payload=payload, digest=sha256(payload),
                   ident=envelope_ident(payload) if engine_kind == ENVELOPE_KIND else None)


Wire = Message | EngineCarrier


class SimCodec:
    """Decoders for the relay core, shared by every node of a run, remembering recent results by encoding."""

    def __init__(self) -> None:
        self._blocks: dict[bytes, Block] = {}
        self._txs: dict[bytes, Transaction] = {}

    def decode_block(self, raw: bytes) -> Block:
        """`chain.block.decode_block(raw)` (DecodeError alike), remembered."""
        block = self._blocks.get(raw)
        if block is None:
            block = decode_block(raw)
            self._blocks[raw] = block
            self._blocks = trimmed(self._blocks, MEMO_BLOCKS)
        return block

    def decode_tx(self, raw: bytes) -> Transaction:
        """`chain.tx.decode_tx(raw)` (DecodeError alike), remembered."""
        tx = self._txs.get(raw)
        if tx is None:
            tx = decode_tx(raw)
            self._txs[raw] = tx
            self._txs = trimmed(self._txs, MEMO_TXS)
        return tx

    def block_hash(self, raw: bytes) -> bytes:
        """The hash of an encoded block."""
        return self.decode_block(raw).hash

    def tx_hash(self, raw: bytes) -> bytes:
        """The hash of an encoded transaction."""
        return self.decode_tx(raw).hash

    def label(self, message: Wire) -> tuple[str, bytes]:
        """(kind, hash) naming `message` in the trace: `engine` (payload SHA-256), else as a node names it
        (p2p/protocol/labels.py)."""
        if isinstance(message, EngineCarrier):
            return "engine", message.digest
        label = relay_label(message, self.block_hash, self.tx_hash)
        if label is None:
            raise AssertionError(f"the simulator does not carry {message.name}")
        return label
