"""The contract between the RPC server (node/rpc.py) and the node runtime.

`NodeAPI` is everything the RPC layer may ask of a running node; the node implements it, and the RPC tests
implement it with an in-memory fake. The value types it returns are frozen dataclasses defined here, so neither
side depends on the other's internals. `EventBroker` is a ready-made implementation of the event side
(`subscribe`): bounded per-subscriber queues that drop the oldest event for a slow reader and tell it so.

Threading: every method is called from the event loop thread that runs the RPC server; synchronous methods must
not block for long (they run on the loop).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import prometheus_client

from chain.block import Block, BlockHeader
from chain.blocktree import TipInfo
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.mempool import PoolEntryView
from chain.tx import Transaction

TxState = Literal["pending", "included", "final", "unknown"]
ReadLevel = Literal["latest", "final", "linearizable"]
READ_LEVELS: tuple[ReadLevel, ...] = ("latest", "final", "linearizable")
WaitLevel = Literal["included", "final"]
WAIT_LEVELS: tuple[WaitLevel, ...] = ("included", "final")
TX_STATES: tuple[TxState, ...] = ("pending", "included", "final", "unknown")
DEFAULT_MAX_QUEUED_EVENTS = 256
TxDirection = Literal["sent", "received", "self"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockPosition:
    """Where a known block sits: its height, whether the best chain holds it, and whether it is final."""

    height: int
    on_best_chain: bool
    final: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TxStatus:
    """What the node knows about one transaction id.

    `pending`: in the mempool; `included`: in a block of the best chain that is not final yet; `final`: in a final
    block; `unknown`: neither (never seen, dropped from the mempool, or only on a side branch). `height`,
    `block_hash` and `index` are set for included and final transactions; `tx` is the transaction when the node
    has its body.
    """

    status: TxState
    height: int | None = None
    block_hash: bytes | None = None
    index: int | None = None
    tx: Transaction | None = None
    outcome: str | None = None  # an included operation's outcome: "ok" or its reject code (chain/locks.py)

    def __post_init__(self) -> None:
        if self.status not in TX_STATES:
            raise ValueError(f"unknown transaction status {self.status!r}")
        located = self.height is not None and self.block_hash is not None and self.index is not None
        if self.status in ("included", "final") and not located:
            raise ValueError(f"a {self.status} transaction needs height, block_hash and index")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordView:
    """A lock or register record read at a level: `height` is the block the read reflects; `record` is the
    record's encoding (chain/locks.py), None when absent."""

    record: bytes | None
    height: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountView:
    """An account read at a level: `height` is the block the read reflects (the tip or the final block).

    `pending_nonce` (the nonce a wallet should use next, counting the sender's pooled transactions) is given for
    `latest` reads only; a `final` read has None.
    """

    balance: int
    nonce: int
    height: int
    pending_nonce: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountTx:
    """One transaction of an account's history: transaction number `position` of the best-chain block
    `block_hash` at `height`; `final` when that height is final; `confirmations` counts the block and those above
    it up to the tip."""

    tx: Transaction
    height: int
    block_hash: bytes
    position: int
    final: bool
    confirmations: int

    def direction(self, address: bytes) -> TxDirection:
        """How the transaction moved coins for `address` (its sender, its recipient, or both)."""
        sender = self.tx.sender_address
        if sender == self.tx.recipient:
            return "self"
        return "sent" if sender == address else "received"


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountTxPage:
    """A page of an account's history, newest first. `older` is where the next page starts, (height, position)
    of the last entry of this page, or None when there is no older transaction; `pending` are the account's own
    pooled transactions (given with the first page only)."""

    txs: tuple[AccountTx, ...]
    older: tuple[int, int] | None
    pending: tuple[Transaction, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadProof:
    """Why a linearizable read is linearizable: the engine confirmed (in `term`) that nothing was committed past
    `read_index` when the read arrived, and the read reflects the final block at `applied_height` (at least
    `read_index`), whose hash is `block_hash`."""

    term: int
    read_index: int
    applied_height: int
    block_hash: bytes

    def __post_init__(self) -> None:
        if self.applied_height < self.read_index:
            raise ValueError(f"a read at height {self.applied_height} is not past its read index {self.read_index}")

    def to_json(self) -> dict[str, object]:
        """The `read_proof` object of the account answer."""
        return {"term": self.term, "read_index": self.read_index, "applied_height": self.applied_height,
                "block_hash": self.block_hash.hex()}


@runtime_checkable
class EventSubscription(Protocol):
    """An async iterator of event dicts (`{"type": "block" | "final" | "reorg" | "dropped" | ..., ...}`).

    The iterator ends (StopAsyncIteration) after `close()` or when the node shuts the stream down. A slow reader
    loses the oldest events and is then told how many with a `{"type": "dropped", "count": n}` event.
    """

    def __aiter__(self) -> AsyncIterator[dict[str, object]]:
        """The subscription itself."""
        ...

    async def __anext__(self) -> dict[str, object]:
        """The next event; waits for one."""
        ...

    def close(self) -> None:
        """Stop the subscription and release its queue; idempotent."""
        ...


class NodeAPI(Protocol):
    """What the RPC server may ask of the node. Raise only the errors documented per method: anything else is a
    bug and becomes a 500 `internal` answer with a logged traceback."""

    metrics: prometheus_client.CollectorRegistry
    @property
    def genesis(self) -> Genesis:
        """The network's genesis: GET /v1/genesis serves it, so a toolkit attaching by URL learns the rules."""

    def status(self) -> dict[str, object]:
        """JSON-ready summary: chain_id, genesis (hex), consensus, height, head (hex), final_height, final_hash
        (hex), peers (count), mempool_size, syncing (bool), engine (dict: e.g. mining on/off, reason,
        reachable_share), and optionally min_fee (the CLI uses it as the default fee)."""
        ...

    def block(self, ref: int | bytes) -> Block | None:
        """The block at height `ref` on the best chain, or with hash `ref` on any branch; None when unknown."""
        ...

    def block_height_info(self, block_hash: bytes) -> BlockPosition:
        """Position of a block that `block` just returned (KeyError for an unknown hash)."""
        ...

    def op_outcome(self, tx_hash: bytes) -> str | None:
        """The recorded outcome ("ok" or a reject code) of a lock or register operation on the best chain; None
        for anything else."""
        ...

    def blocks_range(self, from_height: int, limit: int) -> list[Block]:
        """Up to `limit` consecutive blocks of the best chain starting at `from_height` (fewer near the tip)."""
        ...

    def describe_seal(self, header: BlockHeader) -> dict[str, object]:
        """A block's seal as the engine reads it (consensus.spec.EngineSpec.seal_view)."""

    def reorgs(self) -> list[dict[str, object]]:
        """The node's last reorgs, newest first: time_ms, depth, old_tip, old_height, new_tip, new_height,
        fork_height."""

    def tips(self) -> list[TipInfo]:
        """Every known branch tip (as chain.blocktree.BlockTree.tips)."""
        ...

    async def submit_tx(self, tx: Transaction) -> None:
        """Admit `tx` to the mempool and relay it; raise chain.errors.RejectError with its code if refused."""
        ...

    def tx_status(self, tx_hash: bytes) -> TxStatus:
        """Where the transaction with this id is (status `unknown` when nowhere)."""
        ...

    def account(self, address: bytes, at: ReadLevel) -> AccountView:
        """The account at `address` as of the tip (`latest`) or the final block (`final`); a never-used address
        reads as balance 0, nonce 0. (`linearizable` reads go through `account_linearizable`.)"""
        ...

    def account_txs(self, address: bytes, before: tuple[int, int] | None, limit: int) -> AccountTxPage:
        """Up to `limit` best-chain transactions sent or received by `address`, newest first, strictly older than
        `before` = (height, position) when given; read from the store's address index (a range scan, never a scan
        of the chain). The first page (`before` None) also lists the account's pooled transactions."""
        ...

    async def account_linearizable(self, address: bytes) -> tuple[AccountView, ReadProof]:
        """The account as of the final block once the engine's read index is final, with the proof. RejectError
        with the engine's code (`no-leader`, `no-quorum`, `unsupported-read-level`, ...), `read-timeout`, `busy`
        (too many reads pending) or `stopping`."""
        ...

    def record(self, key: bytes, at: ReadLevel) -> RecordView:
        """The lock or register record at state key `key` (chain/locks.py) as of the tip (`latest`) or the final
        block (`final`). (`linearizable` reads go through `record_linearizable`.)"""
        ...

    async def record_linearizable(self, key: bytes) -> tuple[RecordView, ReadProof]:
        """The record as of the final block once the engine's read index is final, with the proof; errors as
        `account_linearizable`."""
        ...

    def write_refusal(self) -> RejectError | None:
        """Why the node refuses client transactions now (`no-leader`, `no-quorum`, ...), or None."""
        ...

    async def wait_for_tx(self, tx_hash: bytes, level: WaitLevel, timeout_s: float) -> TxStatus | None:
        """Once the submitted transaction is in a connected block of the best chain (`included`) or in a final
        block (`final`): its status; None after `timeout_s`. RejectError `busy` (too many waits) or `stopping`."""
        ...

    def mempool(self) -> list[PoolEntryView]:
        """Every pooled transaction, best fee rate first (chain.mempool.Mempool.snapshot)."""
        ...

    def peers(self) -> list[dict[str, object]]:
        """JSON-ready rows, one per connected peer (id, url, direction, height, ...)."""
        ...

    def configured_peers(self) -> list[dict[str, object]]:
        """JSON-ready rows, one per configured peer address (bootstrap or admin-added): url, state
        (connected | connecting | waiting | banned), node_id, failures, last_error, last_error_s_ago,
        next_dial_in_s."""
        ...

    def subscribe(self) -> EventSubscription:
        """A new event subscription (see EventBroker)."""
        ...

    def set_faults(self, spec: dict[str, object]) -> dict[str, object]:
        """Install the fault-injection spec and return the faults now in force; ValueError for a bad spec."""
        ...

    def trace_path(self) -> Path | None:
        """The node's causal trace file (`[node] trace_file`, docs/TRACING.md); None when it does not trace."""
        ...

    def set_mining(self, enabled: bool) -> dict[str, object]:
        """Switch mining on or off; returns the engine's mining state. ValueError when the engine does not mine."""
        ...

    def engine_admin(self, action: str, value: object) -> dict[str, object]:
        """An engine admin action (Raft: transfer-leader, add-member, remove-member); RejectError with its code
        (`unsupported` when the engine has no such action)."""
        ...

    def remove_peer(self, target: str) -> list[str]:
        """Forget the peer address or node id `target` and disconnect it; the node ids disconnected. ValueError
        when the node knows no such address or peer."""
        ...

    async def mine_blocks(self, count: int, address: bytes | None) -> list[bytes]:
        """Mine `count` blocks now paying `address` (None: the node's own), through the normal import path; their
        hashes. RejectError `mining-unsupported` on engines that do not mine, or another code."""
        ...

    def connect_peer(self, url: str) -> None:
        """Start connecting to the peer at `url` (ws:// or wss://); ValueError for a URL the node refuses."""
        ...


_CLOSED = object()


class QueueSubscription:
    """One subscriber's bounded queue of events (an EventSubscription).

    `push` never blocks and never fails: when the queue holds `max_queued` events the oldest goes, and the reader
    gets `{"type": "dropped", "count": n}` before the next event it does receive. Use from one event loop thread.
    """

    def __init__(self, max_queued: int = DEFAULT_MAX_QUEUED_EVENTS, broker: EventBroker | None = None) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self.max_queued = max_queued
        self.dropped_total = 0
        self._broker = broker
        self._queue: collections.deque[dict[str, object]] = collections.deque()
        self._unreported_drops = 0
        self._closed = False
        self._wakeup = asyncio.Event()

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._closed

    def push(self, event: Mapping[str, object]) -> None:
        """Queue an event (a copy), dropping the oldest queued one when full; ignored once closed."""
        if self._closed:
            return
        if len(self._queue) >= self.max_queued:
            self._queue.popleft()
            self._unreported_drops += 1
            self.dropped_total += 1
        self._queue.append(dict(event))
        self._wakeup.set()

    def __aiter__(self) -> QueueSubscription:
        return self

    async def __anext__(self) -> dict[str, object]:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._unreported_drops:
                count, self._unreported_drops = self._unreported_drops, 0
                return {"type": "dropped", "count": count}
            if self._queue:
                return self._queue.popleft()
            self._wakeup.clear()
            await self._wakeup.wait()

    def close(self) -> None:
        """End the iteration (a waiting reader wakes up with StopAsyncIteration) and forget queued events."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._wakeup.set()
        if self._broker is not None:
            self._broker.forget(self)


class EventBroker:
    """Fans events out to subscribers, each with its own bounded queue (see QueueSubscription).

    The node calls `publish` for each new block, finality advance, reorg, ...; `NodeAPI.subscribe` can return
    `broker.subscribe()`. Use from the event loop thread only.
    """

    def __init__(self, max_queued: int = DEFAULT_MAX_QUEUED_EVENTS) -> None:
        self.max_queued = max_queued
        self._subscribers: set[QueueSubscription] = set()

    @property
    def subscriber_count(self) -> int:
        """Open subscriptions."""
        return len(self._subscribers)

    def subscribe(self) -> QueueSubscription:
        """A new subscription that receives every event published from now on."""
        subscription = QueueSubscription(self.max_queued, broker=self)
        self._subscribers.add(subscription)
        return subscription

    def publish(self, event: Mapping[str, object]) -> None:
        """Deliver `event` (a JSON-ready mapping with a "type") to every subscriber."""
        if "type" not in event:
            raise ValueError("an event needs a 'type'")
        for subscription in list(self._subscribers):
            subscription.push(event)

    def forget(self, subscription: QueueSubscription) -> None:
        """Stop delivering to `subscription` (its close() calls this)."""
        self._subscribers.discard(subscription)

    def close(self) -> None:
        """Close every subscription (node shutdown)."""
        for subscription in list(self._subscribers):
            subscription.close()
