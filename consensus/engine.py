"""The consensus engine contract (sans-I/O), in the style of etcd raft's Ready.

An engine is a pure object driven by its node through a handful of inputs; everything the node must do comes
back from `ready()` as one `Ready` value, which the node handles in this order:

1. **persist** `Ready.persist` (engine state, one atomic store batch) before anything else,
2. **send** `Ready.messages` (P2P engine messages: broadcast, to one peer, or relayed excluding the sender),
3. **apply** the decisions (and log `Ready.notes`): `mining` (start/restart/stop the PoW workers), `propose`
   (build a block template on the given parent, have the engine `seal` it, add it to the chain and announce it),
   `finalize` (mark a height final for engines whose finality is not confirmation depth).

The node calls `ready()` after every input. Engines never do I/O, never read a clock (time arrives as `now`,
monotonic seconds, and `now_ms`, wall-clock milliseconds for block timestamps) and never use global randomness;
they never validate transactions or blocks and never gossip or store by themselves (as in Sawtooth's consensus
API). So the same engine object runs inside the asyncio node and inside the simulator.

Inputs: `start`, `tick`, `on_message`, `on_chain_changed` (blocks connected/disconnected after validation),
`on_peer`, `on_transactions_available`,
and the admin switch `set_mining_enabled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from chain.block import BlockHeader
from chain.blocktree import ChainPolicy
from chain.chainstore import BlockMeta

MAX_ENGINE_KIND_CHARS = 32
MAX_ENGINE_PAYLOAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineMessage:
    """An engine-to-engine message; P2P carries it as an opaque typed payload."""

    kind: str  # e.g. "pow/presence", "pb/ack"
    payload: bytes

    def __post_init__(self) -> None:
        if type(self.kind) is not str or not 0 < len(self.kind) <= MAX_ENGINE_KIND_CHARS:
            raise ValueError("engine message kind must be 1..32 characters")
        if type(self.payload) is not bytes or len(self.payload) > MAX_ENGINE_PAYLOAD_BYTES:
            raise ValueError(f"engine payload must be bytes of at most {MAX_ENGINE_PAYLOAD_BYTES}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """Send `message` to one peer (`to`), or to every peer except `exclude` (to=None)."""

    message: EngineMessage
    to: str | None = None
    exclude: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MiningJob:
    """Mine a child of `parent_hash` at `target` (the node builds the template and runs the workers)."""

    parent_hash: bytes
    target: int
    miner: bytes  # address that receives reward and fees


@dataclass(frozen=True, slots=True, kw_only=True)
class MiningDecision:
    """Whether the node should be mining now, and on what; `reason` is shown in status and logs."""

    active: bool
    reason: str
    job: MiningJob | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposeRequest:
    """Build a block on `parent_hash` with this timestamp and hand it to `Engine.seal`."""

    parent_hash: bytes
    timestamp_ms: int
    proposer: bytes


@dataclass(slots=True, kw_only=True)
class Ready:
    """Everything the node must do after an input, in the documented order."""

    persist: dict[str, bytes] = field(default_factory=dict)
    messages: list[Outgoing] = field(default_factory=list)
    mining: MiningDecision | None = None  # None: no change
    propose: ProposeRequest | None = None
    finalize: int | None = None
    notes: list[str] = field(default_factory=list)  # notable decisions, for the node's log

    def is_empty(self) -> bool:
        """True when there is nothing to do."""
        return not (self.persist or self.messages or self.mining or self.propose or self.finalize is not None
                    or self.notes)


class ChainView(Protocol):
    """What an engine may read of the chain (the BlockTree satisfies it)."""

    @property
    def tip(self) -> BlockMeta:
        """The active tip."""

    @property
    def height(self) -> int:
        """Height of the active tip."""

    @property
    def final_height(self) -> int:
        """Height up to which the active chain is final."""

    def meta(self, block_hash: bytes) -> BlockMeta | None:
        """Metadata of any known block."""

    def hash_at(self, height: int) -> bytes | None:
        """Hash of the active chain's block at `height`."""

    def ancestors(self, block_hash: bytes, count: int) -> list[BlockMeta]:
        """`block_hash` and up to count-1 ancestors, newest first."""


class Engine(Protocol):
    """A consensus engine (see the module docstring for the contract)."""

    name: str
    engine_finality: bool  # True: finality comes from `Ready.finalize`, not from confirmation depth

    @property
    def policy(self) -> ChainPolicy:
        """Fork-choice work and header rules for the block tree."""

    def start(self, chain: ChainView, *, now: float, now_ms: int, persisted: dict[str, bytes]) -> None:
        """Begin, with the engine state persisted earlier (empty on first start)."""

    def tick(self, *, now: float, now_ms: int) -> None:
        """Time passed; the node calls this at least every `tick_interval_s`."""

    def on_message(self, peer: str, message: EngineMessage, *, now: float, now_ms: int) -> None:
        """An engine message from `peer` (a malformed one raises chain.errors.RejectError)."""

    def on_chain_changed(
        self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *, now: float,
        now_ms: int,
    ) -> None:
        """The active chain moved (blocks were validated and connected or disconnected)."""

    def on_peer(self, peer: str, up: bool, *, now: float) -> None:
        """A peer connected or went away."""

    def on_transactions_available(self, *, now: float) -> None:
        """The mempool has transactions waiting."""

    def on_sync_gap(self, blocks_behind: int, *, now: float) -> None:
        """How many blocks the best chain the peers have shown us is ahead of ours (0: in step). Mining engines
        pause while behind: a block mined on a chain the node knows to be stale only forks it, and enough of them
        would let it finalize that fork."""

    def set_mining_enabled(self, enabled: bool, *, now: float) -> None:
        """Admin switch (mining engines; others ignore it)."""

    def seal(self, header: BlockHeader) -> BlockHeader:
        """Seal a header built for a ProposeRequest (signature engines); PoW seals in its workers."""

    def ready(self) -> Ready:
        """Take the pending outputs (clears them)."""

    def status(self, *, now: float) -> dict[str, object]:
        """Engine fields for /v1/status."""

    @property
    def tick_interval_s(self) -> float:
        """How often `tick` must be called."""
