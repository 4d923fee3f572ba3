"""What the simulator needs of a node core, as a Protocol, and the spec it builds each core from.

The real implementation is `node.core.NodeCore` (the same object the asyncio node drives); the simulator takes
a `CoreFactory` so that this pure package does not import the node package, and so that tests can plug in a core
built around a different engine (a planted bug) without touching consensus/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chain.block import Block
from chain.blocktree import AddResult, BlockTree
from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.mempool import Mempool
from chain.tx import Transaction
from consensus.engine import Engine, EngineMessage, ReadResult
from consensus.envelope import EnvelopeRouter, VerifiedSignatures
from storage.base import Store


class MiningWorkView(Protocol):
    """What the miners should do (node.core.MiningWork)."""

    @property
    def active(self) -> bool:
        """False: stop mining."""

    @property
    def job_id(self) -> int:
        """Job to report a nonce for."""

    @property
    def target(self) -> int:
        """Target the nonce must meet."""


class EngineSendView(Protocol):
    """An engine envelope to broadcast (node.core.PeerBroadcast)."""

    @property
    def message(self) -> EngineMessage:
        """The P2P engine message."""

    @property
    def address(self) -> bytes | None:
        """The validator address it is for: sent to that peer alone when it is one (None: to everyone)."""

    @property
    def exclude(self) -> str | None:
        """The peer it came from (not sent back)."""


class OutputView(Protocol):
    """What a core asks its driver to do after one input (node.core.Output)."""

    @property
    def announce_blocks(self) -> Sequence[Block]:
        """Our own new blocks, to push to every peer."""

    @property
    def announce_txs(self) -> Sequence[tuple[Transaction, str | None, bytes | None]]:
        """Transactions to announce, each with a peer to skip and the validator address to send it to (None:
        every peer)."""

    @property
    def engine_messages(self) -> Sequence[EngineSendView]:
        """Engine messages to send."""

    @property
    def mining(self) -> MiningWorkView | None:
        """New mining work, or None for no change."""

    @property
    def events(self) -> Sequence[dict[str, object]]:
        """block / final / reorg events."""

    @property
    def notes(self) -> Sequence[str]:
        """Log lines."""

    @property
    def fetch_blocks(self) -> Sequence[tuple[str, bytes]]:
        """(peer, hash) of blocks to fetch by hash."""

    @property
    def results(self) -> Sequence[AddResult]:
        """Every block import's result."""

    @property
    def reads(self) -> Sequence[ReadResult]:
        """The engine's answers to linearizable read requests (the simulator's clients wait on them: clients.py)."""

    @property
    def decisions(self) -> Sequence[tuple[str, dict[str, object]]]:
        """The engine's decisions for the causal trace (leader elected, vote cast)."""


class SimCore(Protocol):
    """The inputs the simulator drives (node.core.NodeCore satisfies this)."""

    @property
    def tree(self) -> BlockTree:
        """The node's block tree."""

    @property
    def mempool(self) -> Mempool:
        """The node's mempool."""

    @property
    def engine(self) -> Engine:
        """The node's consensus engine."""

    @property
    def envelopes(self) -> EnvelopeRouter:
        """What seals the node's engine messages (a hand-stepped network reseals and injects with it)."""

    def start(self, *, now: float, now_ms: int) -> OutputView:
        """Start (after creation or a restart)."""

    def tick(self, *, now: float, now_ms: int) -> OutputView:
        """Time passed."""

    def peers_changed(self, peers: set[str], previous: set[str], *, now: float, now_ms: int) -> OutputView:
        """The connected peers changed."""

    def sync_gap(self, peers_best_height: int, *, now: float, now_ms: int) -> OutputView:
        """The best height the peers claim; the core works out how far behind it is and tells its engine."""

    def receive_engine_message(self, peer: str, kind: str, payload: bytes, *, now: float, now_ms: int,
                               ) -> OutputView:
        """An engine message (RejectError if malformed)."""

    def envelope_seen(self, ident: tuple[bytes, int]) -> bool:
        """True when an engine envelope with this (sender, seq) is a copy the core would drop unseen."""

    def precheck_block(self, block: Block, *, now_ms: int) -> bool:
        """Cheap checks before relaying (RejectError); True when the header was checked against its parent."""

    def receive_block(self, block: Block, *, source: str, now: float, now_ms: int, prechecked: bool = False,
                      ) -> OutputView:
        """Import a block (RejectError if invalid)."""

    def receive_tx(self, tx: Transaction, *, source: str | None, now: float, now_ms: int) -> OutputView:
        """Mempool admission (RejectError if refused)."""

    def read_index(self, request_id: int, *, now: float, now_ms: int) -> OutputView:
        """A client's linearizable read: the engine answers in `OutputView.reads`, now or after later inputs."""

    def mined(self, job_id: int, nonce: int, *, now: float, now_ms: int) -> OutputView:
        """A nonce for the current mining job."""

    def housekeeping(self, *, now: float, now_ms: int) -> OutputView:
        """Expire old orphans and mempool entries (every chain.housekeeping.HOUSEKEEPING_S)."""

    def admin(self, action: str, value: object, *, now: float, now_ms: int) -> tuple[OutputView, dict[str, object]]:
        """An engine admin action (RejectError if the engine has none by that name)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreSpec:
    """Everything a factory needs to build (or rebuild, after a crash) one node's core."""

    name: str
    index: int
    genesis: Genesis
    store: Store  # kept across crashes: a restart is a new core over the same store
    key: PrivateKey
    mining: bool = True
    verified_signatures: VerifiedSignatures | None = None  # one per run: nodes need not re-check one signature
    rng_seed: int = 0  # the engine's random.Random seed, derived from the run seed (no draw from the run's Random)


CoreFactory = Callable[[CoreSpec], SimCore]
