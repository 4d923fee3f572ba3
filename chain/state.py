"""The replicated state machine: accounts {balance, nonce} and records (locks and the fenced register,
chain/locks.py), block application and undo, and the state commitment.

`apply_block(state, block, reward=...)` is a pure function: it never mutates `state`, it returns a new `State`
layered over the old one together with the exact undo record and receipts. `undo_block(state_after, undo)`
gives back a state equal to the one before, commitment included.

State commitment: an additive multiset hash (AdHash) over Z/2^2048. Each account maps to a 2048-bit element
`SHAKE-256("chainlab/account" || address || balance || nonce)`; the accumulator is the sum of all elements mod
2^2048, and the 32-byte commitment in headers is SHA-256 of it. Applying a block subtracts the old element and
adds the new one, once per touched account per block, so the cost is O(accounts touched), and the sum is
independent of order, so recomputing from scratch (`chain verify`) gives the same value. A record (key -> encoded
value) adds the element `SHAKE-256("chainlab/record" || len(key) as u16 || key || value)` to the same sum; the
two domains keep an account and a record from ever sharing an element. Finding two account
sets with the same sum is a generalized-birthday problem; Wagner's algorithm needs about 2^(2*sqrt(2048)) ~ 2^90
work at this modulus (MuHash3072 would resist better at 28 us per element against 1.4 us here; see
docs/FORMATS.md).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from chain.block import Block
from chain.encoding import TAG_ACCOUNT, TAG_UNDO, U64_MAX, check_bytes, check_uint, pack, unpack
from chain.errors import DecodeError, RejectError
from chain.fifo import trimmed
from chain.locks import OpResult, apply_op, check_record_key
from chain.tx import Transaction

ACCUMULATOR_BITS = 2048
ACCUMULATOR_BYTES = ACCUMULATOR_BITS // 8
_MASK = (1 << ACCUMULATOR_BITS) - 1
_ELEMENT_DOMAIN = b"chainlab/account"
_RECORD_DOMAIN = b"chainlab/record"
_MAX_UNDO_ENTRIES = 2 * 20_000 + 1
_MAX_UNDO_BYTES = _MAX_UNDO_ENTRIES * 64 + 1024
# An overlay chain deeper than this is flattened, so lookups stay O(1) however long a State lives in memory.
_MAX_OVERLAY_DEPTH = 8


class Account(NamedTuple):
    """One account: its spendable balance and the nonce its next transaction must carry."""

    balance: int
    nonce: int

    def encode(self) -> bytes:
        """Canonical encoding `[5, 1, balance, nonce]`."""
        return pack(TAG_ACCOUNT, 1, [self.balance, self.nonce])


def decode_account(data: object) -> Account:
    """Decode an account; raise DecodeError for anything else."""
    balance, nonce = unpack(data, TAG_ACCOUNT, 1, 2, 64)
    try:
        return Account(check_uint(balance, "balance"), check_uint(nonce, "nonce"))
    except ValueError as exc:
        raise DecodeError(f"account: {exc}") from exc


_pack_balance_nonce = struct.Struct(">QQ").pack


def account_element(address: bytes, account: Account) -> int:
    """The 2048-bit multiset-hash element of one account."""
    data = _ELEMENT_DOMAIN + address + _pack_balance_nonce(account[0], account[1])
    return int.from_bytes(hashlib.shake_256(data).digest(ACCUMULATOR_BYTES), "little")


def record_element(key: bytes, value: bytes) -> int:
    """The 2048-bit multiset-hash element of one record."""
    data = _RECORD_DOMAIN + len(key).to_bytes(2, "big") + key + value
    return int.from_bytes(hashlib.shake_256(data).digest(ACCUMULATOR_BYTES), "little")


def commitment_of(accumulator: int) -> bytes:
    """32-byte state commitment of an accumulator value."""
    return hashlib.sha256(accumulator.to_bytes(ACCUMULATOR_BYTES, "little")).digest()


def accumulate(accounts: Iterable[tuple[bytes, Account]], records: Iterable[tuple[bytes, bytes]] = ()) -> int:
    """Accumulator of a whole account set and record set, from scratch."""
    total = 0
    for address, account in accounts:
        total += account_element(address, account)
    for key, value in records:
        total += record_element(key, value)
    return total & _MASK


_new_account = tuple.__new__


class AccountSource(Protocol):
    """Where a State's unchanged accounts come from (a dict in memory, the store in a node)."""

    def get_account(self, address: bytes) -> Account | None:
        """The account at `address`, or None when it does not exist."""

    def get_record(self, key: bytes) -> bytes | None:
        """The encoded record at `key` (chain/locks.py), or None when it does not exist."""


class AccountDict(dict[bytes, Account]):
    """An in-memory AccountSource (genesis, tests, the simulator); its records live in `records`."""

    get_account = dict.get  # the C method itself: this lookup sits on the block-validation hot path

    def __init__(self, accounts: Mapping[bytes, Account] | Iterable[tuple[bytes, Account]] = (), *,
                 records: Mapping[bytes, bytes] | None = None) -> None:
        super().__init__(accounts)
        self.records: dict[bytes, bytes] = dict(records) if records is not None else {}

    def get_record(self, key: bytes) -> bytes | None:
        """The record at `key`, or None."""
        return self.records.get(key)


class ElementCache:
    """Bounded memo of each recently touched account's multiset element, keyed by address.

    An element is a pure function of (address, account), so sharing one cache across States is safe; it spares
    recomputing the element an account had before a block touches it again (one SHAKE-256 per touched account).
    """

    __slots__ = ("_entries", "capacity")

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._entries: dict[bytes, tuple[Account, int]] = {}

    def element(self, address: bytes, account: Account) -> int:
        """The element of `account` at `address`, from the memo when it holds this exact account."""
        cached = self._entries.get(address)
        if cached is not None and cached[0] == account:
            return cached[1]
        return account_element(address, account)

    def remember(self, address: bytes, account: Account, element: int) -> None:
        """Memoize an element just computed; the oldest entry goes when full."""
        self.remember_all({address: (account, element)})

    def remember_all(self, elements: Mapping[bytes, tuple[Account, int]]) -> None:
        """Memoize many elements at once (a block's worth); the oldest entries go when full."""
        self._entries.update(elements)
        self.trim()

    def trim(self) -> None:
        """Drop the oldest entries beyond capacity (after writes made directly, as apply_block does)."""
        if len(self._entries) > self.capacity:
            self._entries = trimmed(self._entries, self.capacity)


class State:
    """An immutable account set: a base source plus the changes layered on it, and its accumulator.

    A State over a mutable base (the node's store) is valid until the base is advanced; the node advances the base
    only after writing a block's changes and then rebases its tip State on it (`State(base=..., accumulator=...)`).
    """

    __slots__ = ("_base", "_changes", "_depth", "_record_changes", "accumulator", "elements")

    def __init__(
        self, base: AccountSource, accumulator: int, changes: Mapping[bytes, Account | None] | None = None,
        *, elements: ElementCache | None = None, record_changes: Mapping[bytes, bytes | None] | None = None,
        _depth: int = 0,
    ) -> None:
        self._base = base
        self._changes: Mapping[bytes, Account | None] = changes if changes is not None else {}
        self._record_changes: Mapping[bytes, bytes | None] = record_changes if record_changes is not None else {}
        self._depth = _depth
        self.accumulator = accumulator
        self.elements = elements if elements is not None else ElementCache()

    @classmethod
    def from_balances(cls, balances: Mapping[bytes, int]) -> State:
        """A fresh state of accounts with the given balances and nonce 0 (genesis)."""
        accounts = AccountDict({address: Account(balance, 0) for address, balance in balances.items()})
        elements = ElementCache()
        total = 0
        for address, account in accounts.items():
            element = account_element(address, account)
            elements.remember(address, account, element)
            total += element
        return cls(accounts, total & _MASK, elements=elements)

    def get(self, address: bytes) -> Account | None:
        """The account at `address`, or None."""
        changes = self._changes
        if address in changes:
            return changes[address]
        return self._base.get_account(address)

    get_account = get  # a State is itself an AccountSource, which is how overlays stack

    def get_record(self, key: bytes) -> bytes | None:
        """The encoded record at `key` (chain/locks.py), or None."""
        changes = self._record_changes
        if key in changes:
            return changes[key]
        return self._base.get_record(key)

    @property
    def commitment(self) -> bytes:
        """32-byte state commitment."""
        return commitment_of(self.accumulator)

    @property
    def changes(self) -> Mapping[bytes, Account | None]:
        """Accounts this State changed relative to its base (None = deleted): what a node writes to its store."""
        return self._changes

    @property
    def record_changes(self) -> Mapping[bytes, bytes | None]:
        """Records this State changed relative to its base (None = deleted)."""
        return self._record_changes

    def layered(self, changes: Mapping[bytes, Account | None], accumulator: int,
                record_changes: Mapping[bytes, bytes | None] | None = None) -> State:
        """A new State with `changes` (and `record_changes`) applied on top of this one."""
        if self._depth >= _MAX_OVERLAY_DEPTH and isinstance(self._base, State | AccountDict):
            return self._flattened_with(changes, accumulator, record_changes or {})
        return State(self, accumulator, changes, elements=self.elements, record_changes=record_changes,
                     _depth=self._depth + 1)

    def _flattened_with(self, changes: Mapping[bytes, Account | None], accumulator: int,
                        record_changes: Mapping[bytes, bytes | None]) -> State:
        merged: dict[bytes, Account | None] = {}
        merged_records: dict[bytes, bytes | None] = {}
        layers: list[tuple[Mapping[bytes, Account | None], Mapping[bytes, bytes | None]]] = [
            (changes, record_changes)]
        node: AccountSource = self
        while isinstance(node, State):
            layers.append((node._changes, node._record_changes))
            node = node._base
        for layer, record_layer in reversed(layers):
            merged.update(layer)
            merged_records.update(record_layer)
        if isinstance(node, AccountDict) and len(merged) + len(merged_records) > max(1024, len(node) // 4):
            # Fold into a new base once the overlay is a sizeable fraction of it: the copy costs O(base) but
            # happens only after O(base) changes, so a long in-memory chain stays linear overall.
            base = AccountDict(node, records=node.records)
            for address, account in merged.items():
                if account is None:
                    base.pop(address, None)
                else:
                    base[address] = account
            for key, value in merged_records.items():
                if value is None:
                    base.records.pop(key, None)
                else:
                    base.records[key] = value
            return State(base, accumulator, {}, elements=self.elements, _depth=0)
        return State(node, accumulator, merged, elements=self.elements, record_changes=merged_records, _depth=1)

    def items(self) -> Iterator[tuple[bytes, Account]]:
        """Every existing account (only for in-memory bases; the node iterates its store instead)."""
        merged: dict[bytes, Account | None] = {}
        layers: list[Mapping[bytes, Account | None]] = []
        node: AccountSource = self
        while isinstance(node, State):
            layers.append(node._changes)
            node = node._base
        if not isinstance(node, AccountDict):
            raise TypeError("only an in-memory state can list its accounts")
        merged.update(node)
        for layer in reversed(layers):
            merged.update(layer)
        return ((address, account) for address, account in merged.items() if account is not None)

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        """Every existing record (only for in-memory bases)."""
        merged: dict[bytes, bytes | None] = {}
        layers: list[Mapping[bytes, bytes | None]] = []
        node: AccountSource = self
        while isinstance(node, State):
            layers.append(node._record_changes)
            node = node._base
        if not isinstance(node, AccountDict):
            raise TypeError("only an in-memory state can list its records")
        merged.update(node.records)
        for layer in reversed(layers):
            merged.update(layer)
        return ((key, value) for key, value in merged.items() if value is not None)

    def total_supply(self) -> int:
        """Sum of all balances (in-memory states only)."""
        return sum(account.balance for _, account in self.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class Undo:
    """Exactly what a block changed: each touched account's previous value (None = did not exist) and the
    previous accumulator."""

    previous: tuple[tuple[bytes, Account | None], ...]
    previous_accumulator: int
    previous_records: tuple[tuple[bytes, bytes | None], ...] = ()  # each touched record's previous value

    def __post_init__(self) -> None:
        check_uint(self.previous_accumulator, "previous_accumulator", _MASK)
        if type(self.previous) is not tuple:
            raise ValueError("undo entries are a tuple of (address, Account or None)")
        # Entries are checked one by one where they come from outside (decode_undo); apply_block builds them from
        # checked transactions, and a per-entry pass here cost 1.6 us per transaction on the validation hot path.

    def encode(self) -> bytes:
        """Canonical encoding `[6, 1, accumulator_bytes, [[address, balance, nonce] | [address], ...]]`, or, when
        the block touched records, `[6, 2, accumulator_bytes, account_entries, [[key, value] | [key], ...]]`."""
        entries = [[a] if acc is None else [a, acc.balance, acc.nonce] for a, acc in self.previous]
        accumulator_bytes = self.previous_accumulator.to_bytes(ACCUMULATOR_BYTES, "little")
        if not self.previous_records:
            return pack(TAG_UNDO, 1, [accumulator_bytes, entries])
        record_entries = [[key] if value is None else [key, value] for key, value in self.previous_records]
        return pack(TAG_UNDO, 2, [accumulator_bytes, entries, record_entries])


def decode_undo(data: object) -> Undo:
    """Decode undo data (either version); raise DecodeError for anything else."""
    try:
        accumulator_bytes, entries = unpack(data, TAG_UNDO, 1, 2, _MAX_UNDO_BYTES)
        record_entries: object = []
    except DecodeError as first:
        try:
            accumulator_bytes, entries, record_entries = unpack(data, TAG_UNDO, 2, 3, _MAX_UNDO_BYTES)
        except DecodeError:
            raise first from None
        if record_entries == []:
            raise DecodeError("undo: version 2 without record entries (version 1 is the canonical form)") from None
    try:
        check_bytes(accumulator_bytes, "accumulator", size=ACCUMULATOR_BYTES)
        if type(entries) is not list:
            raise ValueError("entries must be an array")
        previous: list[tuple[bytes, Account | None]] = []
        for entry in entries:
            if type(entry) is not list or len(entry) not in (1, 3):
                raise ValueError("an undo entry is [address] or [address, balance, nonce]")
            address = check_bytes(entry[0], "address", size=20)
            account = None
            if len(entry) == 3:
                account = Account(check_uint(entry[1], "balance"), check_uint(entry[2], "nonce"))
            previous.append((address, account))
        if type(record_entries) is not list:
            raise ValueError("record entries must be an array")
        previous_records: list[tuple[bytes, bytes | None]] = []
        for entry in record_entries:
            if type(entry) is not list or len(entry) not in (1, 2):
                raise ValueError("a record undo entry is [key] or [key, value]")
            value = None if len(entry) == 1 else check_bytes(entry[1], "record value", max_size=1024)
            previous_records.append((check_record_key(entry[0]), value))
        return Undo(previous=tuple(previous), previous_accumulator=int.from_bytes(accumulator_bytes, "little"),
                    previous_records=tuple(previous_records))
    except ValueError as exc:
        raise DecodeError(f"undo: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """Outcome of one included transaction (a valid block has only successful ones)."""

    tx_hash: bytes
    index: int
    fee: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Application:
    """Result of `apply_block`: the new state, the undo record, and (on demand) one receipt per transaction."""

    state: State
    undo: Undo
    block: Block
    op_results: tuple[OpResult, ...] = ()  # one per operation transaction, in block order

    @property
    def receipts(self) -> tuple[Receipt, ...]:
        """One receipt per transaction, in block order (built on demand: most callers never read them)."""
        return tuple(Receipt(tx_hash=tx.hash, index=i, fee=tx.fee) for i, tx in enumerate(self.block.txs))


def apply_block(state: State, block: Block, *, reward: int = 0) -> Application:
    """Apply `block`'s transactions, fees and `reward` (both to the proposer) to `state`.

    Checks what only state can tell (nonce, balance, u64 overflow) and raises RejectError with code `bad-nonce`,
    `insufficient-funds` or `overflow` naming the transaction. Signatures, sizes, the tx root and the state
    commitment are `validation`'s job. `state` is never changed. An operation transaction (chain/locks.py) pays
    its fee and uses its nonce like a transfer, then its operation is applied; a refused operation changes no
    record, and its outcome is in `op_results` either way.
    """
    # Hot path (runs for every transaction of every block): locals only, no helper calls per transaction.
    # touched: address -> [balance, nonce, account before the block or None]
    touched: dict[bytes, list[Any]] = {}
    overlay, base_get = state._changes, state._base.get_account  # State.get, inlined
    sha256 = hashlib.sha256
    txs = block.txs
    fees = 0
    has_operations = False
    for tx in txs:
        address = sha256(tx.sender).digest()[:20]
        sender = touched.get(address)
        if sender is None:
            account = overlay[address] if address in overlay else base_get(address)
            sender = touched[address] = [0, 0, None] if account is None else [account[0], account[1], account]
        nonce = tx.nonce
        if nonce != sender[1]:
            raise RejectError("bad-nonce", f"tx {txs.index(tx)} {tx.hash.hex()}: nonce {nonce}, expected {sender[1]}")
        amount = tx.amount
        fee = tx.fee
        cost = amount + fee
        if cost > sender[0]:
            raise RejectError("insufficient-funds",
                              f"tx {txs.index(tx)} {tx.hash.hex()}: needs {cost}, balance {sender[0]}")
        sender[0] -= cost
        sender[1] = nonce + 1
        address = tx.recipient
        recipient = touched.get(address)
        if recipient is None:
            account = overlay[address] if address in overlay else base_get(address)
            recipient = touched[address] = [0, 0, None] if account is None else [account[0], account[1], account]
        balance = recipient[0] + amount
        if balance > U64_MAX:
            raise RejectError("overflow", f"tx {txs.index(tx)} {tx.hash.hex()}: recipient balance would exceed u64")
        recipient[0] = balance
        fees += fee
        if tx.op is not None:
            has_operations = True
    if fees or reward:
        address = block.header.proposer
        proposer = touched.get(address)
        if proposer is None:
            account = overlay[address] if address in overlay else base_get(address)
            proposer = touched[address] = [0, 0, None] if account is None else [account[0], account[1], account]
        balance = proposer[0] + fees + reward
        if balance > U64_MAX:
            raise RejectError("overflow", "proposer balance would exceed u64")
        proposer[0] = balance

    accumulator = state.accumulator
    elements = state.elements
    entries = elements._entries  # written in place (no per-block temporary dict), trimmed once at the end
    cached = entries.get
    shake, domain, pack_balance_nonce = hashlib.shake_256, _ELEMENT_DOMAIN, _pack_balance_nonce
    from_bytes = int.from_bytes
    changes: dict[bytes, Account | None] = {}
    previous: list[tuple[bytes, Account | None]] = []
    for address, (balance, nonce, before) in touched.items():
        if before is not None:
            if before[0] == balance and before[1] == nonce:
                continue
            hit = cached(address)
            accumulator -= hit[1] if hit is not None and hit[0] == before else account_element(address, before)
        changes[address] = after = _new_account(Account, (balance, nonce))  # tuple.__new__: NamedTuple's costs 1 us
        # account_element, inlined: this runs for every account every block touches
        element = from_bytes(shake(domain + address + pack_balance_nonce(balance, nonce)).digest(ACCUMULATOR_BYTES),
                             "little")
        entries[address] = (after, element)
        accumulator += element
        previous.append((address, before))
    elements.trim()
    if not has_operations:
        undo = Undo(previous=tuple(previous), previous_accumulator=state.accumulator)
        return Application(state=state.layered(changes, accumulator & _MASK), undo=undo, block=block)
    op_results, record_changes, previous_records, accumulator = _apply_operations(state, block, accumulator)
    undo = Undo(previous=tuple(previous), previous_accumulator=state.accumulator,
                previous_records=previous_records)
    return Application(state=state.layered(changes, accumulator & _MASK, record_changes), undo=undo, block=block,
                       op_results=op_results)


def _apply_operations(state: State, block: Block, accumulator: int) -> tuple[
        tuple[OpResult, ...], dict[bytes, bytes | None], tuple[tuple[bytes, bytes | None], ...], int]:
    """Apply the block's operation transactions in block order (they touch records only, so applying them after
    the transfers gives the same state as interleaving); returns the results, the record changes, the records'
    previous values and the updated accumulator."""
    written: dict[bytes, bytes | None] = {}

    def read(key: bytes) -> bytes | None:
        return written[key] if key in written else state.get_record(key)

    height = block.header.height
    results: list[OpResult] = []
    for index, tx in enumerate(block.txs):
        op = tx.op
        if op is None:
            continue
        sender = tx.recipient  # an operation's recipient is its sender's address (chain/tx.py)
        code, writes, token, expires_at = apply_op(read, op, sender, height, index)
        written.update(writes)
        results.append(OpResult(index=index, tx_hash=tx.hash, sender=sender, op=op, code=code, token=token,
                                expires_at=expires_at))
    record_changes: dict[bytes, bytes | None] = {}
    previous_records: list[tuple[bytes, bytes | None]] = []
    for key, value in written.items():
        before = state.get_record(key)
        if before == value:
            continue
        if before is not None:
            accumulator -= record_element(key, before)
        if value is not None:
            accumulator += record_element(key, value)
        record_changes[key] = value
        previous_records.append((key, before))
    return tuple(results), record_changes, tuple(previous_records), accumulator


def undo_block(state: State, undo: Undo) -> State:
    """The state before the block whose `undo` record this is (`state` must be the state right after it)."""
    return state.layered(dict(undo.previous), undo.previous_accumulator, dict(undo.previous_records))


def check_operation(state: State, tx: Transaction, height: int) -> None:
    """Raise RejectError with the operation's reject code when `tx`'s operation would be refused in a block at
    `height` on `state` (client admission: a client learns at once what a block would only record, and keeps its
    fee). Passing it does not promise the outcome: another transaction may change the lock first."""
    assert tx.op is not None, "only operation transactions have an outcome"
    code, _, _, _ = apply_op(state.get_record, tx.op, tx.recipient, height, 0)
    if code != "ok":
        raise RejectError(code, f"{tx.op.kind} would be refused at height {height}")
