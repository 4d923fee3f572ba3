"""The consensus engine contract (sans-I/O), in the style of etcd raft's Ready.

An engine is a pure object driven by its node core (node/core.py) through a handful of inputs; everything the
node must do comes back from `ready()` as one `Ready` value, which the node handles in this order:

1. **persist** `Ready.persist` (the engine's puts, deletes and key ranges to delete) in one atomic store batch;
   when `Ready.durable` is set, that batch and every block written before it are synced to disk first;
2. **send** `Ready.messages` (to every validator, or to one validator through the signed, deduplicated, flooded
   envelope of consensus/envelope.py, which reaches it when it is not a direct neighbour);
3. **apply** the decisions: `propose` (build a block on a parent and have the engine seal it), `proposing` (the
   engine's standing decision to propose or not, with its reason, e.g. PoW mining paused by the partition
   handler), `validate` (check blocks fully on their parent without connecting them; the verdicts come back
   through `on_validated`), `head` (engines with their own fork choice: make this block the active tip),
   `commit` (engines with their own finality: this block and its ancestors are final; the block tree adopts that
   chain), and log `notes`.

So an acknowledgement sent in step 2 leaves only after what it acknowledges is on disk, when the engine asks for
it (`durable`). The node calls `ready()` after every input. Engines never do I/O, never read a clock (time
arrives as `now`, monotonic seconds, and `now_ms`, wall-clock milliseconds for block timestamps) and never use
global randomness (a seeded `Random` comes in `EngineContext.rng`); they never validate transactions or
blocks and never gossip or store by themselves (as in Sawtooth's consensus API). So the same engine object runs
inside the asyncio node and inside the simulator.

Each engine registers itself once, in consensus/registry.py: its name, parameters, chain policy and factory.
Nothing outside consensus/ asks which engine runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from random import Random
from typing import Protocol

from chain import crypto
from chain.block import BlockHeader
from chain.blocktree import ChainPolicy
from chain.chainstore import BlockMeta
from chain.errors import RejectError
from chain.genesis import Genesis

MAX_ENGINE_KIND_CHARS = 32
# A block travels by the block path, never inside an engine message; the largest engine payloads are certificates
# and view-change proofs (2f+1 signed votes with their prepared certificates), well below this. The envelope around
# a message (consensus/envelope.py) must still fit the P2P layer's 1 MiB EngineMsg payload.
MAX_ENGINE_PAYLOAD_BYTES = 1024 * 1024 - 1024
MAX_ENGINE_KEY_BYTES = 256


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
    """Send `message` to validator `to` (an address), or to every node (to=None).

    Either way it travels in a signed envelope flooded through the P2P graph (consensus/envelope.py): every node
    relays it once, up to a hop limit, and only the addressee (or everyone, for to=None) hands it to its engine,
    with the sender's authenticated address.
    """

    message: EngineMessage
    to: bytes | None = None

    def __post_init__(self) -> None:
        if self.to is not None and (type(self.to) is not bytes or len(self.to) != crypto.ADDRESS_BYTES):
            raise ValueError("an engine message goes to a validator address (20 bytes) or to everyone")


@dataclass(slots=True, kw_only=True)
class EngineWrites:
    """Engine state changes of one `Ready`, written in one atomic batch: puts, deletes and key ranges
    `[start, stop)` to delete (a replicated log truncates a suffix, checkpoints drop an old prefix)."""

    puts: dict[bytes, bytes] = field(default_factory=dict)
    deletes: set[bytes] = field(default_factory=set)
    delete_ranges: list[tuple[bytes, bytes]] = field(default_factory=list)

    def put(self, key: bytes, value: bytes) -> None:
        """Write `key` (a later delete range in the same batch does not remove it: ranges go first)."""
        _check_key(key)
        self.deletes.discard(key)
        self.puts[key] = value

    def delete(self, key: bytes) -> None:
        """Delete `key`."""
        _check_key(key)
        self.puts.pop(key, None)
        self.deletes.add(key)

    def delete_range(self, start: bytes, stop: bytes) -> None:
        """Delete every key in `[start, stop)` that exists before this batch."""
        _check_key(start)
        _check_key(stop)
        if start >= stop:
            raise ValueError("a delete range needs start < stop")
        self.delete_ranges.append((start, stop))

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes or self.delete_ranges)


def _check_key(key: bytes) -> None:
    if type(key) is not bytes or not 0 < len(key) <= MAX_ENGINE_KEY_BYTES:
        raise ValueError(f"engine state keys are 1..{MAX_ENGINE_KEY_BYTES} bytes")


class EngineState(Protocol):
    """What an engine persisted earlier, read at start (the node's store under the engine's own prefix)."""

    def get(self, key: bytes) -> bytes | None:
        """One value, or None."""

    def range(self, start: bytes = b"", stop: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Keys in `[start, stop)` in order, with their values."""


class MemoryEngineState:
    """An `EngineState` over a dict (tests, and engines' own unit tests)."""

    def __init__(self, values: Mapping[bytes, bytes] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, key: bytes) -> bytes | None:
        """One value, or None."""
        return self.values.get(key)

    def range(self, start: bytes = b"", stop: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Keys in `[start, stop)` in order."""
        for key in sorted(self.values):
            if key >= start and (stop is None or key < stop):
                yield key, self.values[key]

    def apply(self, writes: EngineWrites) -> None:
        """Apply one batch the way the store does (ranges, then deletes, then puts)."""
        for start, stop in writes.delete_ranges:
            for key in [k for k in self.values if start <= k < stop]:
                del self.values[key]
        for key in writes.deletes:
            self.values.pop(key, None)
        self.values.update(writes.puts)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposeRequest:
    """Build a block on `parent_hash` for `proposer` and hand its header to `Engine.seal`. The timestamp is
    `max(now_ms, min_timestamp_ms)` at the moment the node builds it."""

    parent_hash: bytes
    proposer: bytes
    min_timestamp_ms: int = 0
    empty: bool = False  # a block without transactions (Raft's no-op entry at the start of a term)
    only_with_txs: bool = False  # build nothing when the mempool offers no transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposing:
    """The engine's standing decision: whether this node is proposing now, and why (status and logs). Turning it
    off stops any sealing work in progress (PoW workers)."""

    active: bool
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Sealed:
    """`Engine.seal` sealed the header itself (signature engines)."""

    header: BlockHeader


@dataclass(frozen=True, slots=True, kw_only=True)
class Puzzle:
    """`Engine.seal` needs work done outside the engine: find a nonce such that the double SHA-256 of `prefix`
    (the 64-byte midstate block of the header) followed by the nonce meets `target`; hand it to
    `Engine.solved`. The node runs this in worker processes (node/mining.py)."""

    header: BlockHeader
    prefix: bytes
    target: int


SealOutcome = Sealed | Puzzle


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadResult:
    """The engine's answer to `Engine.read_index(request_id)`: a linearizable read may be served once the node's
    final (committed) height reaches `index`, with `term` in its read proof; or `error` (a RejectError with a
    stable code, e.g. `no-leader`, `no-quorum`, `unsupported-read-level`) when it cannot be."""

    request_id: int
    index: int = 0
    term: int = 0
    error: RejectError | None = None


@dataclass(slots=True, kw_only=True)
class Ready:
    """Everything the node must do after an input, in the documented order."""

    persist: EngineWrites = field(default_factory=EngineWrites)
    durable: bool = False  # sync blocks and engine state to disk before `messages` leave
    messages: list[Outgoing] = field(default_factory=list)
    propose: ProposeRequest | None = None
    proposing: Proposing | None = None  # None: no change
    validate: list[bytes] = field(default_factory=list)  # block hashes to validate without connecting
    head: bytes | None = None  # engine fork choice: make this block the active tip
    commit: bytes | None = None  # engine finality: this block and its ancestors are final
    reads: list[ReadResult] = field(default_factory=list)  # answers to read_index requests
    fetch: list[bytes] = field(default_factory=list)  # blocks the engine knows of but the node lacks: fetch them
    notes: list[str] = field(default_factory=list)  # notable decisions, for the node's log
    # Decisions for the causal trace (docs/TRACING.md): (what, detail), e.g. ("leader-elected", {"term": 3}) or
    # ("vote-cast", {"term": 3, "candidate": "ab12cd34"}); `what` is one of causality.events.WHATS.
    decisions: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def is_empty(self) -> bool:
        """True when there is nothing to do."""
        return not (self.persist or self.messages or self.propose or self.proposing or self.validate
                    or self.head is not None or self.commit is not None or self.reads or self.fetch
                    or self.notes or self.decisions)


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
        """Metadata of any known block (connected, side branch, or stored but never connected)."""

    def hash_at(self, height: int) -> bytes | None:
        """Hash of the active chain's block at `height`."""

    def ancestors(self, block_hash: bytes, count: int) -> list[BlockMeta]:
        """`block_hash` and up to count-1 ancestors, newest first."""

    def children(self, block_hash: bytes) -> list[BlockMeta]:
        """Known blocks whose parent is `block_hash`, first seen first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineContext:
    """What an engine is built with: the network, this node's key (None: an observer holding no validator key),
    an injected `Random` (seeded from the node key in the node, from the run seed in the simulator), and
    whether this node may propose at all (`node run --no-mining`)."""

    genesis: Genesis
    key: crypto.PrivateKey | None
    rng: Random
    proposing_allowed: bool = True


class EngineStatus(Protocol):
    """An engine's typed status (a frozen dataclass of its own); `/v1/status` shows `to_json()` as `engine`."""

    def to_json(self) -> dict[str, object]:
        """JSON values, field by field."""


class StatusBase:
    """`to_json` for a frozen status dataclass: its fields, enums by value."""

    def to_json(self) -> dict[str, object]:
        """JSON values, field by field."""
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            out[name] = value.value if isinstance(value, Enum) else value
        return out


class UnsupportedAdmin(RejectError):
    """An admin action the running engine does not have (the RPC answers 400 with code `unsupported`)."""

    def __init__(self, message: str) -> None:
        super().__init__("unsupported", message)


class Engine(Protocol):
    """A consensus engine (see the module docstring for the contract)."""

    name: str

    @property
    def policy(self) -> ChainPolicy:
        """Header rules, fork choice and finality for the block tree."""

    @property
    def tick_interval_s(self) -> float:
        """How often `tick` must be called."""

    def start(self, chain: ChainView, state: EngineState, *, now: float, now_ms: int) -> None:
        """Begin, with the engine state persisted earlier (empty on first start)."""

    def tick(self, *, now: float, now_ms: int) -> None:
        """Time passed; the node calls this at least every `tick_interval_s`."""

    def on_message(self, sender: bytes, message: EngineMessage, *, now: float, now_ms: int) -> None:
        """An engine message from validator address `sender` (authenticated by the envelope's signature);
        a malformed one raises chain.errors.RejectError."""

    def on_chain_changed(
        self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *, now: float,
        now_ms: int,
    ) -> None:
        """The active chain moved (blocks were validated and connected or disconnected)."""

    def on_block_stored(self, chain: ChainView, meta: BlockMeta, *, now: float, now_ms: int) -> None:
        """A block arrived and passed its header and cheap checks, and is stored (connected or not)."""

    def on_validated(self, block_hash: bytes, error: RejectError | None, *, now: float, now_ms: int) -> None:
        """The verdict on a block the engine asked to have validated (`Ready.validate`): None when valid, else
        the reject code. Unknown blocks and blocks whose parent state is not at hand come back as
        RejectError('not-ready')."""

    def on_peers(self, count: int, *, now: float) -> None:
        """The number of connected peers changed."""

    def on_sync_status(self, blocks_behind: int, *, now: float) -> None:
        """How many blocks the best chain the peers have shown is ahead of ours (0: in step)."""

    def on_bootstrap(self, waiting: bool, *, now: float) -> None:
        """True while the node has configured peers and has neither reached one and caught up nor run out its
        grace period (`[mining] startup_grace_s`); then False, once. An engine that seals on its own (PoW) waits:
        two nodes started together could each finalize a chain of their own before they connect."""

    def on_transactions_available(self, *, now: float) -> None:
        """The mempool got transactions (at most once a second)."""

    def admin(self, action: str, value: object, *, now: float) -> dict[str, object]:
        """An admin action (e.g. `mining` on/off for PoW); UnsupportedAdmin when the engine has none by that
        name. Returns the engine's answer for the RPC."""

    def read_index(self, request_id: int, *, now: float) -> None:
        """A client asks for a linearizable read: answer in `Ready.reads` (at once or after a round of messages)
        with the index the node must have committed before it reads, or an error."""

    def write_refusal(self, *, now: float) -> RejectError | None:
        """Why this node refuses client writes now (None: it accepts them), e.g. `no-leader` or `no-quorum` for
        an engine that chooses consistency over availability. Transactions from peers are never refused."""

    def tx_destination(self) -> bytes | None:
        """Where the transactions this node admits should go: None to every peer (gossip: any node may be the
        next proposer), or the validator address of the node that orders them (a leader). The node's own
        address means nowhere: it proposes them itself, and its blocks carry them to the others."""

    def seal(self, header: BlockHeader) -> SealOutcome:
        """Seal a header built for a ProposeRequest: sign it, or set a puzzle for the node's workers."""

    def solved(self, puzzle: Puzzle, nonce: int) -> BlockHeader:
        """The sealed header for a nonce that solves `puzzle` (engines that set puzzles)."""

    def ready(self) -> Ready:
        """Take the pending outputs (clears them)."""

    def status(self, *, now: float) -> EngineStatus:
        """The engine's typed status (/v1/status shows it as `engine`)."""


class EngineBase:
    """No-op defaults for the inputs an engine does not care about, and the pending `Ready`."""

    name = "base"

    def __init__(self) -> None:
        self._ready = Ready()

    def on_block_stored(self, chain: ChainView, meta: BlockMeta, *, now: float, now_ms: int) -> None:
        """Ignored by default."""

    def on_validated(self, block_hash: bytes, error: RejectError | None, *, now: float, now_ms: int) -> None:
        """Ignored by default."""

    def on_peers(self, count: int, *, now: float) -> None:
        """Ignored by default."""

    def on_sync_status(self, blocks_behind: int, *, now: float) -> None:
        """Ignored by default."""

    def on_bootstrap(self, waiting: bool, *, now: float) -> None:
        """Ignored by default."""

    def on_transactions_available(self, *, now: float) -> None:
        """Ignored by default."""

    def admin(self, action: str, value: object, *, now: float) -> dict[str, object]:
        """No admin actions by default."""
        raise UnsupportedAdmin(f"the {self.name} engine has no admin action {action!r}")

    def read_index(self, request_id: int, *, now: float) -> None:
        """No linearizable reads by default: answered at once with `unsupported-read-level`."""
        self._ready.reads.append(ReadResult(request_id=request_id, error=RejectError(
            "unsupported-read-level", f"the {self.name} engine has no linearizable reads; read at latest or final")))

    def write_refusal(self, *, now: float) -> RejectError | None:
        """Writes are always accepted by default."""
        return None

    def tx_destination(self) -> bytes | None:
        """Gossip to every peer by default."""
        return None

    def solved(self, puzzle: Puzzle, nonce: int) -> BlockHeader:
        """Only puzzle-setting engines get solutions."""
        raise AssertionError(f"the {self.name} engine sets no puzzles")

    def ready(self) -> Ready:
        """Take the pending outputs."""
        ready, self._ready = self._ready, Ready()
        return ready
