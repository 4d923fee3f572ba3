"""The transaction pool: admission policy, per-sender nonce queues, eviction, replacement and block templates.

Pure (DESIGN.md section 1): time arrives as `now` (monotonic seconds) and the account state as the tip
`State` the caller passes in; nothing here reads a clock or does I/O. Every rejection is a `RejectError` with
a stable code (docs/MEMPOOL.md lists them); everything the pool drops is reported back as `Dropped` values
and counted in `drop_counts`, so the node can log and export metrics.

Invariants kept after every public call, relative to the state last passed in:

- transactions are keyed by hash and by (sender address, nonce); at most one per (sender, nonce);
- per sender, no queued nonce is below the account nonce, and the running cost (amount + fee) of the queue in
  nonce order never exceeds the balance, so every "ready" prefix is payable;
- removing a transaction for eviction or expiry removes the sender's higher nonces too (they would wait
  behind a gap forever).

Costs: add and remove are O(log n) in the pool size (two heaps with lazy deletion, compacted when half stale)
plus O(max_per_sender) for the sender's own queue, a configured constant.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chain import crypto
from chain.block import Block
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.state import Account, State
from chain.tx import MAX_TX_BYTES, Transaction
from chain.validation import Rules, SignatureChecker, check_tx

MIB = 1024 * 1024
_NO_ACCOUNT = Account(0, 0)
# A heap holding more than twice the live entries (plus this slack) is rebuilt: amortized O(1) per removal.
_COMPACT_SLACK = 1024

# Fee rate = fee / encoded size. A pooled transaction is at most MAX_TX_BYTES long, so with
# L = lcm(1..MAX_TX_BYTES) the integer fee * (L // size) is exactly L times the rate: ordering by it is the
# same as comparing fee_a * size_b with fee_b * size_a (no float rounding), and heaps compare plain ints at
# C speed.
_RATE_SCALE = math.lcm(*range(1, MAX_TX_BYTES + 1))
_SCALE_FOR_SIZE = (0, *(_RATE_SCALE // size for size in range(1, MAX_TX_BYTES + 1)))


def fee_rate_key(fee: int, size_bytes: int) -> int:
    """An exact integer that orders transactions by fee / size (size at most MAX_TX_BYTES)."""
    return fee * _SCALE_FOR_SIZE[size_bytes]


class DropReason(StrEnum):
    """Why a transaction left the pool (metric label)."""

    INCLUDED = "included"  # a connected block contains it
    REPLACED = "replaced"  # replace-by-fee: same sender and nonce, higher fee
    EVICTED = "evicted"  # the pool was full and a better-paying transaction came
    STALE_NONCE = "stale-nonce"  # the account nonce moved past it (a conflicting transaction was included)
    UNAFFORDABLE = "unaffordable"  # the balance no longer covers it after the sender's lower nonces
    EXPIRED = "expired"  # older than the caller's max age


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropped:
    """One transaction that left the pool, and why."""

    tx_hash: bytes
    reason: DropReason


@dataclass(frozen=True, slots=True, kw_only=True)
class AddResult:
    """An admitted transaction: whether it is ready now, and what it pushed out (replaced, evicted,
    unaffordable)."""

    tx_hash: bytes
    ready: bool  # every nonce from the account nonce up to it is queued: a template can include it
    dropped: tuple[Dropped, ...] = ()

    @property
    def replaced(self) -> bytes | None:
        """Hash of the transaction this one replaced, if any."""
        return next((d.tx_hash for d in self.dropped if d.reason is DropReason.REPLACED), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolUpdate:
    """What a block connection, reorg or expiry did to the pool."""

    dropped: tuple[Dropped, ...] = ()
    readded: tuple[bytes, ...] = ()  # reorg: transactions of disconnected blocks back in the pool
    not_readded: tuple[tuple[bytes, str], ...] = ()  # reorg: (hash, reject code) of those refused

    def counts(self) -> dict[str, int]:
        """Dropped transactions per reason."""
        out: dict[str, int] = {}
        for item in self.dropped:
            out[item.reason.value] = out.get(item.reason.value, 0) + 1
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolEntryView:
    """One pooled transaction as the RPC lists it; `fee_rate` (fee per byte) is for display only."""

    tx_hash: bytes
    fee: int
    fee_rate: float
    sender: bytes  # address
    nonce: int
    size_bytes: int
    time_added: float

    def to_json(self) -> dict[str, object]:
        """Plain JSON view."""
        return {
            "hash": self.tx_hash.hex(), "fee": self.fee, "fee_rate": self.fee_rate,
            "sender": crypto.address_to_text(self.sender), "nonce": self.nonce, "size": self.size_bytes,
            "time_added": self.time_added,
        }


@dataclass(frozen=True, slots=True)
class _Entry:
    tx: Transaction
    sender: bytes  # address
    cost: int  # amount + fee
    rate: int  # fee_rate_key
    time_added: float
    seq: int  # unique per insertion: tells a live heap item from a stale one for a re-added hash


class Mempool:
    """A bounded pool of valid loose transactions in per-sender nonce queues, and the block templates built
    from it.

    `state` arguments are the current tip state; the pool trusts it for nonces and balances and never mutates
    it.
    """

    def __init__(
        self, rules: Rules, signatures: SignatureChecker, *, max_count: int = 50_000,
        max_bytes: int = 32 * MIB, min_fee: int = 1, max_per_sender: int = 64, max_nonce_gap: int = 64,
        rbf_bump_percent: int = 10,
    ) -> None:
        for name, value, least in (
            ("max_count", max_count, 1), ("max_bytes", max_bytes, 1), ("min_fee", min_fee, 0),
            ("max_per_sender", max_per_sender, 1), ("max_nonce_gap", max_nonce_gap, 0),
            ("rbf_bump_percent", rbf_bump_percent, 0),
        ):
            if type(value) is not int or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        self.rules = rules
        self.signatures = signatures
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.min_fee = min_fee
        self.max_per_sender = max_per_sender
        self.max_nonce_gap = max_nonce_gap
        self.rbf_bump_percent = rbf_bump_percent
        self._by_hash: dict[bytes, _Entry] = {}
        self._senders: dict[bytes, dict[int, _Entry]] = {}  # address -> nonce -> entry
        self._sender_costs: dict[bytes, int] = {}  # address -> total cost of its queued transactions
        self._size_bytes = 0
        # (rate, -hash, seq, hash): lowest rate first; among equal rates the larger hash goes first, the
        # reverse of the template's order, so eviction takes what a template would take last.
        self._eviction_heap: list[tuple[int, int, int, bytes]] = []
        self._age_heap: list[tuple[float, int, bytes]] = []  # (time_added, seq, hash)
        self._next_seq = 0
        self._drop_counts: dict[str, int] = {}

    @classmethod
    def from_genesis(cls, genesis: Genesis, signatures: SignatureChecker, **limits: Any) -> Mempool:
        """A pool for the network `genesis` defines (its rules and `min_fee`); `limits` override defaults."""
        limits.setdefault("min_fee", genesis.param("min_fee"))
        return cls(Rules.from_genesis(genesis), signatures, **limits)

    # ----------------------------------------------------------------------------------------------- queries

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> Transaction | None:
        """The pooled transaction with this id, or None."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx

    @property
    def size_bytes(self) -> int:
        """Sum of the encoded sizes of all pooled transactions."""
        return self._size_bytes

    @property
    def drop_counts(self) -> dict[str, int]:
        """Cumulative removals per reason (DropReason values, and `not-readded:<code>` for reorg refusals)."""
        return dict(self._drop_counts)

    def pending_nonce(self, address: bytes, state: State) -> int:
        """The nonce a wallet should use next: the account nonce plus the contiguous queued run from it."""
        nonce = (state.get(address) or _NO_ACCOUNT).nonce
        queue = self._senders.get(address, {})
        while nonce in queue:
            nonce += 1
        return nonce

    def transactions(self) -> list[Transaction]:
        """Every pooled transaction, oldest admission first."""
        return [entry.tx for entry in self._by_hash.values()]

    def txs_from(self, address: bytes) -> list[Transaction]:
        """The sender's pooled transactions in nonce order (ready and future)."""
        queue = self._senders.get(address, {})
        return [queue[nonce].tx for nonce in sorted(queue)]

    def snapshot(self) -> list[PoolEntryView]:
        """Every pooled transaction, best fee rate first (ties by hash)."""
        entries = sorted(self._by_hash.values(), key=lambda e: (-e.rate, e.tx.hash))
        return [
            PoolEntryView(
                tx_hash=e.tx.hash, fee=e.tx.fee, fee_rate=e.tx.fee / e.tx.size, sender=e.sender,
                nonce=e.tx.nonce, size_bytes=e.tx.size, time_added=e.time_added,
            )
            for e in entries
        ]

    # ----------------------------------------------------------------------------------------- admission

    def add(self, tx: Transaction, state: State, *, now: float) -> AddResult:
        """Admit `tx` against the tip `state`, or raise RejectError with a stable code (docs/MEMPOOL.md).

        Cheap policy checks come first and the signature (`check_tx`, which records the id in the shared
        SignatureCache so block validation skips it later) last, so only transactions about to be admitted
        cost a verification. Nothing changes on rejection, except that the sender's queue is first brought in
        line with `state` (stale or unaffordable entries dropped, as `on_block_connected` would).
        """
        if tx.hash in self._by_hash:
            raise RejectError("already-known", tx.hash.hex())
        # check_tx repeats these two; checking them first keeps a foreign or oversized tx out of the policy
        # checks (a tx for another chain would otherwise get a misleading nonce or balance code).
        if tx.chain_id != self.rules.chain_id:
            raise RejectError(
                "bad-chain-id", f"transaction for chain {tx.chain_id!r}, this is {self.rules.chain_id!r}"
            )
        if tx.size > MAX_TX_BYTES:
            raise RejectError("oversize", f"transaction of {tx.size} bytes")
        if tx.fee < self.min_fee:
            raise RejectError("fee-too-low", f"fee {tx.fee}, minimum {self.min_fee}")
        address = tx.sender_address
        account = state.get(address) or _NO_ACCOUNT
        dropped: list[Dropped] = []
        if address in self._senders:
            self._recheck_sender(address, account, dropped)
        queue = self._senders.get(address, {})
        replaced = self._check_nonce_and_replacement(tx, account, queue)
        cost = tx.amount + tx.fee
        unaffordable: list[_Entry] = []
        queue_cost_after = self._sender_costs.get(address, 0) + cost - (0 if replaced is None else replaced.cost)
        if queue_cost_after > account.balance:  # otherwise the whole queue stays payable: skip the walk
            spent = sum(entry.cost for nonce, entry in queue.items() if nonce < tx.nonce) + cost
            if spent > account.balance:
                raise RejectError(
                    "insufficient-funds",
                    f"balance {account.balance} cannot cover {spent} (this tx and the sender's lower nonces)",
                )
            unaffordable = _unaffordable_above(queue, tx.nonce, spent, account.balance)
        leaving = ([replaced] if replaced is not None else []) + unaffordable
        rate = fee_rate_key(tx.fee, tx.size)
        eviction_roots = self._plan_eviction(tx, address, rate, leaving)
        check_tx(tx, self.rules, self.signatures)

        if replaced is not None:
            self._remove(replaced, DropReason.REPLACED, dropped)
        for entry in unaffordable:
            self._remove(entry, DropReason.UNAFFORDABLE, dropped)
        for root in eviction_roots:
            self._remove_from(root.sender, root.tx.nonce, DropReason.EVICTED, dropped)
        self._insert(_Entry(tx, address, cost, rate, now, self._next_seq))
        # Ready when every nonce from the account nonce up to tx.nonce is queued; all queued nonces are at
        # least the account nonce, so counting those below tx.nonce is enough (and appending is the common case).
        queue = self._senders[address]
        below = len(queue) - 1 if max(queue) == tx.nonce else sum(1 for nonce in queue if nonce < tx.nonce)
        ready = below == tx.nonce - account.nonce
        return AddResult(tx_hash=tx.hash, ready=ready, dropped=tuple(dropped))

    def _check_nonce_and_replacement(
        self, tx: Transaction, account: Account, queue: dict[int, _Entry]
    ) -> _Entry | None:
        """Nonce window, replace-by-fee and per-sender limit; returns the entry `tx` would replace."""
        if tx.nonce < account.nonce:
            raise RejectError("nonce-too-low", f"nonce {tx.nonce}, account nonce {account.nonce}")
        if tx.nonce - account.nonce > self.max_nonce_gap:
            raise RejectError(
                "nonce-gap-too-large",
                f"nonce {tx.nonce} is more than {self.max_nonce_gap} above the account nonce {account.nonce}",
            )
        old = queue.get(tx.nonce)
        if old is not None:
            old_fee = old.tx.fee
            if tx.fee <= old_fee or tx.fee * 100 < old_fee * (100 + self.rbf_bump_percent):
                raise RejectError(
                    "replacement-fee-too-low",
                    f"fee {tx.fee} must exceed {old_fee} by at least {self.rbf_bump_percent}% to replace "
                    f"{old.tx.hash.hex()}",
                )
        elif len(queue) >= self.max_per_sender:
            raise RejectError("sender-queue-full", f"sender already has {len(queue)} queued transactions")
        return old

    def _plan_eviction(
        self, tx: Transaction, address: bytes, rate: int, leaving: list[_Entry]
    ) -> list[_Entry]:
        """The eviction roots that make room for `tx` (each takes its sender's higher nonces with it), or
        raise `mempool-full`. Changes nothing: heap items popped while planning are pushed back."""
        leaving_hashes = {entry.tx.hash for entry in leaving}
        excess_count = len(self._by_hash) - len(leaving) + 1 - self.max_count
        excess_bytes = self._size_bytes - sum(entry.tx.size for entry in leaving) + tx.size - self.max_bytes
        if excess_count <= 0 and excess_bytes <= 0:
            return []
        if tx.size > self.max_bytes:
            raise RejectError("mempool-full", f"{tx.size} bytes exceed the pool's {self.max_bytes}")
        roots: list[_Entry] = []
        popped: list[tuple[int, int, int, bytes]] = []
        try:
            while excess_count > 0 or excess_bytes > 0:
                entry = self._pop_live_eviction_item(popped)
                if entry is None:
                    raise RejectError("mempool-full", "nothing left that could be evicted")
                if entry.tx.hash in leaving_hashes:
                    continue
                if entry.rate >= rate:
                    raise RejectError(
                        "mempool-full", f"fee rate {tx.fee}/{tx.size} is not above the pool's lowest "
                        f"{entry.tx.fee}/{entry.tx.size}"
                    )
                if entry.sender == address and entry.tx.nonce < tx.nonce:
                    raise RejectError("mempool-full", "making room would evict this sender's lower nonces")
                for nonce, queued in self._senders[entry.sender].items():
                    if nonce >= entry.tx.nonce and queued.tx.hash not in leaving_hashes:
                        leaving_hashes.add(queued.tx.hash)
                        excess_count -= 1
                        excess_bytes -= queued.tx.size
                roots.append(entry)
        finally:
            for item in popped:
                heapq.heappush(self._eviction_heap, item)
        return roots

    def _pop_live_eviction_item(self, popped: list[tuple[int, int, int, bytes]]) -> _Entry | None:
        heap = self._eviction_heap
        while heap:
            item = heapq.heappop(heap)
            entry = self._by_hash.get(item[3])
            if entry is not None and entry.seq == item[2]:
                popped.append(item)
                return entry
            # a stale item (its transaction left the pool) is simply dropped
        return None

    # --------------------------------------------------------------------------------------------- templates

    def template(self, state: State, *, max_txs: int, max_bytes: int) -> list[Transaction]:
        """Transactions for the next block on `state`, best fee rate first, that `apply_block` accepts.

        Per sender the nonces run consecutively from the account nonce and each one is affordable at its
        place (incoming transfers are ignored, which can only under-estimate a balance); across senders a heap
        of each sender's next transaction picks the highest fee rate (ties: smaller hash). `max_bytes` bounds
        the sum of the transactions' encoded sizes; a sender whose next transaction does not fit is skipped
        entirely.
        """
        heap: list[tuple[int, bytes, _Entry, int]] = []  # (-rate, hash, entry, balance left before it)
        for address, queue in self._senders.items():
            account = state.get(address) or _NO_ACCOUNT
            entry = queue.get(account.nonce)
            if entry is not None and entry.cost <= account.balance:
                heap.append((-entry.rate, entry.tx.hash, entry, account.balance))
        heapq.heapify(heap)
        chosen: list[Transaction] = []
        used_bytes = 0
        while heap and len(chosen) < max_txs:
            _, _, entry, balance = heapq.heappop(heap)
            if used_bytes + entry.tx.size > max_bytes:
                continue
            chosen.append(entry.tx)
            used_bytes += entry.tx.size
            balance -= entry.cost
            following = self._senders[entry.sender].get(entry.tx.nonce + 1)
            if following is not None and following.cost <= balance:
                heapq.heappush(heap, (-following.rate, following.tx.hash, following, balance))
        return chosen

    # ------------------------------------------------------------------------------------- chain updates

    def remove_included(self, block_txs: Iterable[Transaction]) -> PoolUpdate:
        """Drop the pooled transactions among `block_txs` (their senders' other transactions stay)."""
        dropped: list[Dropped] = []
        for tx in block_txs:
            entry = self._by_hash.get(tx.hash)
            if entry is not None:
                self._remove(entry, DropReason.INCLUDED, dropped)
        return PoolUpdate(dropped=tuple(dropped))

    def on_block_connected(self, block: Block, state: State) -> PoolUpdate:
        """`block` became the tip and `state` is the state after it: drop what it included and what it made
        invalid (nonce below the new account nonce, or no longer affordable); valid future transactions
        stay."""
        dropped = list(self.remove_included(block.txs).dropped)
        # Only a block's senders lose balance or gain nonce; recipients and the proposer only gain.
        for address in sorted({tx.sender_address for tx in block.txs}):
            if address in self._senders:
                self._recheck_sender(address, state.get(address) or _NO_ACCOUNT, dropped)
        return PoolUpdate(dropped=tuple(dropped))

    def on_reorg(
        self, disconnected_blocks: Sequence[Block], connected_blocks: Sequence[Block], state: State, *,
        now: float,
    ) -> PoolUpdate:
        """The chain switched branches and `state` is the new tip's state: drop what the connected blocks
        include or invalidate, then return the disconnected blocks' transactions to the pool (lowest nonce
        first).

        A returning transaction that the new branch includes is skipped; one that is now invalid or refused by
        policy is not raised but reported in `not_readded` with its reject code (the caller logs it).
        """
        dropped: list[Dropped] = []
        connected_hashes: set[bytes] = set()
        touched: set[bytes] = set()  # every address whose balance may have fallen or nonce changed
        for block in connected_blocks:
            connected_hashes.update(tx.hash for tx in block.txs)
            touched.update(tx.sender_address for tx in block.txs)
            dropped.extend(self.remove_included(block.txs).dropped)
        returning: dict[bytes, Transaction] = {}
        for block in disconnected_blocks:
            touched.add(block.header.proposer)
            for tx in block.txs:
                touched.update((tx.sender_address, tx.recipient))
                if tx.hash not in connected_hashes:
                    returning[tx.hash] = tx
        for address in sorted(touched):
            if address in self._senders:
                self._recheck_sender(address, state.get(address) or _NO_ACCOUNT, dropped)
        readded: list[bytes] = []
        not_readded: list[tuple[bytes, str]] = []
        for tx in sorted(returning.values(), key=lambda t: (t.sender_address, t.nonce, t.hash)):
            if tx.hash in self._by_hash:
                continue
            try:
                result = self.add(tx, state, now=now)
            except RejectError as exc:
                not_readded.append((tx.hash, exc.code))
                self._count(f"not-readded:{exc.code}")
                continue
            readded.append(tx.hash)
            dropped.extend(result.dropped)
        return PoolUpdate(dropped=tuple(dropped), readded=tuple(readded), not_readded=tuple(not_readded))

    def expire(self, now: float, max_age_s: float) -> PoolUpdate:
        """Drop transactions added more than `max_age_s` before `now`, with their senders' higher nonces."""
        dropped: list[Dropped] = []
        heap = self._age_heap
        cutoff = now - max_age_s
        while heap and heap[0][0] < cutoff:
            _, seq, tx_hash = heapq.heappop(heap)
            entry = self._by_hash.get(tx_hash)
            if entry is not None and entry.seq == seq:
                self._remove_from(entry.sender, entry.tx.nonce, DropReason.EXPIRED, dropped)
        return PoolUpdate(dropped=tuple(dropped))

    # ------------------------------------------------------------------------------------------- internals

    def _recheck_sender(self, address: bytes, account: Account, dropped: list[Dropped]) -> None:
        """Bring one sender's queue in line with its account: no stale nonce, a payable running cost."""
        queue = self._senders[address]
        if min(queue) >= account.nonce and self._sender_costs[address] <= account.balance:
            return  # the common case, without sorting
        for nonce in sorted(queue):
            if nonce < account.nonce:
                self._remove(queue[nonce], DropReason.STALE_NONCE, dropped)
        spent = 0
        for nonce in sorted(queue):
            spent += queue[nonce].cost
            if spent > account.balance:
                self._remove_from(address, nonce, DropReason.UNAFFORDABLE, dropped)
                break

    def _insert(self, entry: _Entry) -> None:
        tx_hash = entry.tx.hash
        self._next_seq += 1
        self._by_hash[tx_hash] = entry
        self._senders.setdefault(entry.sender, {})[entry.tx.nonce] = entry
        self._sender_costs[entry.sender] = self._sender_costs.get(entry.sender, 0) + entry.cost
        self._size_bytes += entry.tx.size
        heapq.heappush(self._eviction_heap, (entry.rate, -int.from_bytes(tx_hash, "big"), entry.seq, tx_hash))
        heapq.heappush(self._age_heap, (entry.time_added, entry.seq, tx_hash))

    def _remove(self, entry: _Entry, reason: DropReason, dropped: list[Dropped]) -> None:
        tx_hash = entry.tx.hash
        del self._by_hash[tx_hash]
        queue = self._senders[entry.sender]
        del queue[entry.tx.nonce]
        if queue:
            self._sender_costs[entry.sender] -= entry.cost
        else:
            del self._senders[entry.sender]
            del self._sender_costs[entry.sender]
        self._size_bytes -= entry.tx.size
        self._count(reason.value)
        dropped.append(Dropped(tx_hash=tx_hash, reason=reason))
        self._compact_heaps_if_stale()

    def _remove_from(self, address: bytes, nonce: int, reason: DropReason, dropped: list[Dropped]) -> None:
        """Remove the sender's transactions with nonce >= `nonce`, lowest first."""
        queue = self._senders.get(address, {})
        for queued_nonce in sorted(n for n in queue if n >= nonce):
            self._remove(queue[queued_nonce], reason, dropped)

    def _count(self, key: str) -> None:
        self._drop_counts[key] = self._drop_counts.get(key, 0) + 1

    def _compact_heaps_if_stale(self) -> None:
        # Rebuilt in place: callers (expire) may hold a reference to a heap list while removing.
        live = len(self._by_hash)
        if len(self._eviction_heap) > 2 * live + _COMPACT_SLACK:
            self._eviction_heap[:] = [
                (e.rate, -int.from_bytes(e.tx.hash, "big"), e.seq, e.tx.hash) for e in self._by_hash.values()
            ]
            heapq.heapify(self._eviction_heap)
        if len(self._age_heap) > 2 * live + _COMPACT_SLACK:
            self._age_heap[:] = [(e.time_added, e.seq, e.tx.hash) for e in self._by_hash.values()]
            heapq.heapify(self._age_heap)


def _unaffordable_above(queue: dict[int, _Entry], nonce: int, spent: int, balance: int) -> list[_Entry]:
    """Entries above `nonce` from the first one the balance no longer covers (`spent`: cost up to `nonce`)."""
    higher = sorted(n for n in queue if n > nonce)
    for index, queued_nonce in enumerate(higher):
        spent += queue[queued_nonce].cost
        if spent > balance:
            return [queue[n] for n in higher[index:]]
    return []
