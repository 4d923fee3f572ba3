"""The chain layer's view of a `Store`: typed records, the key layout of storage/keys.py, and the one atomic
batch per logical step (store a block, connect it, disconnect it).

Write-ahead ordering (docs/STORAGE.md): a block's body and metadata are written (one batch) before it can be
connected; connecting writes, in one batch, the block's status, its best-chain height entry, every changed
account and record (locks, register: chain/locks.py), its undo record, its transactions' index entries, their
address index entries (chain/addrindex.py), its operations' outcomes, the tip record (hash + state accumulator)
and the final height. Disconnecting is the mirror batch. So the store always
holds the state of exactly the block the tip record names, and a torn sequence of batches (a crash in the middle of
a reorg) leaves a tip that is some valid block of either branch; on restart fork choice simply resumes the reorg.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

from chain.addrindex import AddressTxRef, address_txs, block_entries, build_address_index
from chain.block import Block, BlockHeader, decode_block, decode_header
from chain.encoding import TAG_BLOCK_META, check_uint, pack, unpack
from chain.errors import ChainStoreError as ChainStoreError  # defined beside the other errors, used here first
from chain.errors import DecodeError
from chain.fifo import trimmed
from chain.genesis import Genesis
from chain.state import (
    ACCUMULATOR_BYTES,
    Account,
    Application,
    ElementCache,
    State,
    Undo,
    decode_account,
    decode_undo,
)
from chain.tx import Transaction
from storage import keys
from storage.base import Store

GENESIS_KEY = b"\x00genesis"
SCHEMA_UPGRADES: Mapping[int, Callable[[Store], None]] = {1: build_address_index}
"""The upgrades of this layer's records, by the schema version they start from (storage/schema.py)."""
_MAX_META_BYTES = 32 * 1024
RECENT_BLOCKS = 64  # decoded block bodies kept in memory (ChainStore.get_block)


class BlockStatus(IntEnum):
    """Where a known block stands."""

    STORED = 1  # header and body checked, stored, never connected (a side branch, or not yet reached)
    VALID = 2  # fully validated: it has been connected at least once
    INVALID = 3  # failed full validation, or descends from a block that did


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockMeta:
    """What the block tree keeps in memory per block."""

    header: BlockHeader
    cumulative_work: int
    status: BlockStatus
    seq: int  # first-seen order, the fork-choice tiebreak
    size: int
    tx_count: int
    reason: str = ""  # reject code when INVALID

    @property
    def hash(self) -> bytes:
        """The block hash."""
        return self.header.hash

    @property
    def height(self) -> int:
        """The block height."""
        return self.header.height

    @property
    def parent(self) -> bytes:
        """The parent hash."""
        return self.header.parent

    def with_status(self, status: BlockStatus, reason: str = "") -> BlockMeta:
        """The same metadata with another status."""
        return BlockMeta(header=self.header, cumulative_work=self.cumulative_work, status=status, seq=self.seq,
                         size=self.size, tx_count=self.tx_count, reason=reason)

    def encode(self) -> bytes:
        """`[7, 1, header_bytes, cumulative_work(32 bytes), status, seq, size, tx_count, reason]`."""
        return pack(TAG_BLOCK_META, 1, [
            self.header.encoded, self.cumulative_work.to_bytes(32, "big"), int(self.status), self.seq, self.size,
            self.tx_count, self.reason,
        ])


def decode_meta(data: bytes) -> BlockMeta:
    """Decode block metadata; DecodeError when corrupt."""
    header_bytes, work, status, seq, size, tx_count, reason = unpack(data, TAG_BLOCK_META, 1, 7, _MAX_META_BYTES)
    try:
        if type(work) is not bytes or len(work) != 32 or type(reason) is not str:
            raise ValueError("work or reason malformed")
        return BlockMeta(header=decode_header(header_bytes), cumulative_work=int.from_bytes(work, "big"),
                         status=BlockStatus(status), seq=check_uint(seq, "seq"), size=check_uint(size, "size"),
                         tx_count=check_uint(tx_count, "tx_count"), reason=reason)
    except ValueError as exc:
        raise DecodeError(f"block meta: {exc}") from exc


class StoreAccounts:
    """An AccountSource reading the store's account records through a bounded write-through cache.

    Like Bitcoin Core's coins cache: accounts just written or read are served from memory, so connecting a block
    reads LevelDB only for accounts untouched for a while.
    """

    def __init__(self, store: Store, cache_entries: int = 100_000) -> None:
        self._store = store
        self._cache: dict[bytes, Account | None] = {}  # bounded by chain.fifo.trimmed
        self._cache_entries = cache_entries

    def get_account(self, address: bytes) -> Account | None:
        """The stored account, or None."""
        cache = self._cache
        if address in cache:
            return cache[address]
        raw = self._store.get(keys.ACCOUNT + address)
        account = None if raw is None else decode_account(raw)
        self._remember({address: account})
        return account

    def _remember(self, accounts: Mapping[bytes, Account | None]) -> None:
        cache = self._cache
        cache.update(accounts)
        if len(cache) > self._cache_entries:
            self._cache = trimmed(cache, self._cache_entries)

    def get_record(self, key: bytes) -> bytes | None:
        """The stored record (chain/locks.py), or None. Uncached: records are few and read by operations only."""
        return self._store.get(keys.record_key(key))

    def written(self, changes: Mapping[bytes, Account | None]) -> None:
        """Tell the cache what a batch just wrote."""
        self._remember(changes)

    def forget(self) -> None:
        """Drop the cache (after a batch failed, so memory cannot disagree with disk)."""
        self._cache.clear()


class ChainStore:
    """Typed reads and atomic writes of chain records."""

    def __init__(self, store: Store, recent_blocks: int = RECENT_BLOCKS) -> None:
        self.store = store
        self.accounts = StoreAccounts(store)
        self.elements = ElementCache()
        self._unsynced_writes = False
        # Decoded bodies of the blocks stored or read last (bounded by chain.fifo.trimmed): a block is immutable,
        # and the newest ones are read again and again (a wait for a transaction answers from its block, a reorg
        # walks the tip, a client pages the latest blocks), each read otherwise decoding every transaction anew.
        self._recent: dict[bytes, Block] = {}
        self._recent_capacity = recent_blocks

    # -- reads -------------------------------------------------------------------------------------------------

    def genesis_hash(self) -> bytes | None:
        """Hash of the genesis this store was created for, or None for an empty store."""
        return self.store.get(GENESIS_KEY)

    def load_metas(self) -> Iterator[BlockMeta]:
        """Every stored block's metadata."""
        for _, value in self.store.iterate(prefix=keys.BLOCK_META):
            yield decode_meta(value)

    def get_block(self, block_hash: bytes) -> Block | None:
        """A stored block body, or None."""
        block = self._recent.get(block_hash)
        if block is not None:
            return block
        raw = self.store.get(keys.block_key(block_hash))
        if raw is None:
            return None
        block = decode_block(raw)
        self._remember_block(block)
        return block

    def _remember_block(self, block: Block) -> None:
        self._recent[block.hash] = block
        if len(self._recent) > self._recent_capacity:
            self._recent = trimmed(self._recent, self._recent_capacity)

    def get_block_bytes(self, block_hash: bytes) -> bytes | None:
        """A stored block's encoding, undecoded."""
        return self.store.get(keys.block_key(block_hash))

    def get_undo(self, block_hash: bytes) -> Undo:
        """The undo record of a connected block."""
        raw = self.store.get(keys.undo_key(block_hash))
        if raw is None:
            raise ChainStoreError(f"no undo data for connected block {block_hash.hex()}")
        return decode_undo(raw)

    def tip(self) -> tuple[bytes, int]:
        """(tip hash, state accumulator)."""
        raw = self.store.get(keys.TIP_KEY)
        if raw is None or len(raw) != 32 + ACCUMULATOR_BYTES:
            raise ChainStoreError("the store has no valid tip record")
        return raw[:32], int.from_bytes(raw[32:], "little")

    def final_height(self) -> int:
        """Height up to which the best chain is final."""
        raw = self.store.get(keys.FINAL_KEY)
        return 0 if raw is None else int.from_bytes(raw, "big")

    def hash_at(self, height: int) -> bytes | None:
        """Hash of the best-chain block at `height`, or None above the tip."""
        return self.store.get(keys.height_key(height))

    def tx_location(self, tx_hash: bytes) -> tuple[bytes, int] | None:
        """(block hash, index) of a transaction on the best chain, or None."""
        raw = self.store.get(keys.tx_index_key(tx_hash))
        if raw is None:
            return None
        return raw[:32], int.from_bytes(raw[32:], "big")

    def address_history(self, address: bytes, *, before: tuple[int, int] | None, limit: int,
                        ) -> list[tuple[AddressTxRef, bytes, Transaction]]:
        """Up to `limit` best-chain transactions sent or received by `address`, newest first, strictly older than
        `before` = (height, position) when given: (index entry, block hash, transaction). Reads one range of the
        address index (chain/addrindex.py), then each entry's block through the height index."""
        history = []
        for ref in address_txs(self.store, address, before=before, limit=limit):
            block_hash = self.hash_at(ref.height)
            block = self.get_block(block_hash) if block_hash is not None else None
            tx = block.txs[ref.position] if block is not None and ref.position < len(block.txs) else None
            if block is None or tx is None or address not in (tx.sender_address, tx.recipient):
                raise ChainStoreError(f"address index entry {ref} does not match the best chain")
            history.append((ref, block.hash, tx))
        return history

    def tx_outcome(self, tx_hash: bytes) -> str | None:
        """The outcome ("ok" or a reject code) of a best-chain operation transaction, or None."""
        raw = self.store.get(keys.outcome_key(tx_hash))
        return None if raw is None else raw.decode("ascii")

    def iter_records(self) -> Iterator[tuple[bytes, bytes]]:
        """Every stored record (chain verify)."""
        cut = len(keys.RECORD)
        for key, value in self.store.iterate(prefix=keys.RECORD):
            yield key[cut:], value

    def tip_state(self) -> State:
        """The state at the tip, reading accounts from the store."""
        _, accumulator = self.tip()
        return State(self.accounts, accumulator, elements=self.elements)

    def iter_accounts(self) -> Iterator[tuple[bytes, Account]]:
        """Every stored account (chain verify, testnet checks)."""
        for key, value in self.store.iterate(prefix=keys.ACCOUNT):
            yield keys.address_from_key(key), decode_account(value)

    # -- writes: one batch per logical step ----------------------------------------------------------------------

    def init_genesis(self, genesis: Genesis) -> None:
        """Write genesis block, its accounts, tip and final height 0 (one batch, synced)."""
        block = genesis.block()
        meta = BlockMeta(header=block.header, cumulative_work=0, status=BlockStatus.VALID, seq=0, size=block.size,
                         tx_count=0)
        state = genesis.initial_state()
        puts = {
            GENESIS_KEY: genesis.hash,
            keys.block_key(block.hash): block.encoded,
            keys.block_meta_key(block.hash): meta.encode(),
            keys.height_key(0): block.hash,
            keys.TIP_KEY: block.hash + state.accumulator.to_bytes(ACCUMULATOR_BYTES, "little"),
            keys.FINAL_KEY: (0).to_bytes(8, "big"),
        }
        for address, account in state.items():
            puts[keys.account_key(address)] = account.encode()
        self.store.write_batch(puts, sync=True)

    def put_block(self, block: Block, meta: BlockMeta) -> None:
        """Store a new block's body and metadata (before it can be connected)."""
        self._write({keys.block_key(block.hash): block.encoded, keys.block_meta_key(block.hash): meta.encode()}, ())
        self._remember_block(block)

    def put_meta(self, meta: BlockMeta) -> None:
        """Rewrite one block's metadata (e.g. marking it invalid)."""
        self._write({keys.block_meta_key(meta.hash): meta.encode()}, ())

    def forget_block(self, block_hash: bytes) -> None:
        """Delete a pruned block's body, metadata and undo."""
        self._recent.pop(block_hash, None)
        self._write({}, (keys.block_key(block_hash), keys.block_meta_key(block_hash), keys.undo_key(block_hash)))

    def connect(self, block: Block, application: Application, meta: BlockMeta, final_height: int,
                sync: bool) -> None:
        """The connect batch of `block` (see the module docstring)."""
        puts: dict[bytes, bytes] = {
            keys.block_meta_key(block.hash): meta.encode(),
            keys.height_key(block.height): block.hash,
            keys.undo_key(block.hash): application.undo.encode(),
            keys.TIP_KEY: block.hash + application.state.accumulator.to_bytes(ACCUMULATOR_BYTES, "little"),
            keys.FINAL_KEY: final_height.to_bytes(8, "big"),
        }
        deletes = []
        changes = application.state.changes
        # Keys built inline (addresses and hashes are already checked values): thousands per block.
        account_prefix, tx_prefix = keys.ACCOUNT, keys.TX_INDEX
        for address, account in changes.items():
            if account is None:
                deletes.append(account_prefix + address)
            else:
                puts[account_prefix + address] = account.encode()
        block_hash = block.hash
        for index, tx in enumerate(block.txs):
            puts[tx_prefix + tx.hash] = block_hash + index.to_bytes(4, "big")
        puts.update(block_entries(block))
        for key, value in application.state.record_changes.items():
            if value is None:
                deletes.append(keys.record_key(key))
            else:
                puts[keys.record_key(key)] = value
        for result in application.op_results:
            puts[keys.outcome_key(result.tx_hash)] = result.code.encode("ascii")
        self._write(puts, deletes, sync=sync, accounts=changes)

    def disconnect(self, block: Block, undo: Undo, parent_hash: bytes, final_height: int) -> None:
        """The disconnect batch of the tip `block`, restoring its parent's state."""
        puts: dict[bytes, bytes] = {
            keys.TIP_KEY: parent_hash + undo.previous_accumulator.to_bytes(ACCUMULATOR_BYTES, "little"),
            keys.FINAL_KEY: final_height.to_bytes(8, "big"),
        }
        deletes = [keys.height_key(block.height), keys.undo_key(block.hash)]
        restored: dict[bytes, Account | None] = dict(undo.previous)
        for address, account in restored.items():
            if account is None:
                deletes.append(keys.account_key(address))
            else:
                puts[keys.account_key(address)] = account.encode()
        deletes.extend(keys.tx_index_key(tx.hash) for tx in block.txs)
        deletes.extend(block_entries(block))
        for key, value in undo.previous_records:
            if value is None:
                deletes.append(keys.record_key(key))
            else:
                puts[keys.record_key(key)] = value
        deletes.extend(keys.outcome_key(tx.hash) for tx in block.txs if tx.op is not None)
        self._write(puts, deletes, accounts=restored)

    def set_final_height(self, height: int, *, sync: bool = True) -> None:
        """Record an engine-driven final height (synced by default: finality is a promise to clients; an engine
        whose commit index is derived again after a restart, as Raft's, leaves it to the next synced write)."""
        self._write({keys.FINAL_KEY: height.to_bytes(8, "big")}, (), sync=sync)

    def write_engine_state(self, engine: str, puts: Mapping[bytes, bytes], deletes: Iterable[bytes] = (),
                           delete_ranges: Iterable[tuple[bytes, bytes]] = (), *, sync: bool = True) -> None:
        """Engine state changes (Ready.persist) in one atomic batch under the engine's prefix: the ranges
        `[start, stop)` are deleted first, then `deletes`, then `puts`. Synced by default: the engine writes
        before the messages that depend on it go out."""
        prefix = keys.engine_key(f"{engine}/")
        doomed = [prefix + key for key in deletes]
        for start, stop in delete_ranges:
            doomed.extend(key for key, _ in self.store.iterate(prefix=prefix, start=prefix + start,
                                                               stop=prefix + stop))
        staged = {prefix + key: value for key, value in puts.items()}
        self._write(staged, [key for key in doomed if key not in staged], sync=sync)

    def engine_value(self, engine: str, key: bytes) -> bytes | None:
        """One value the engine persisted."""
        return self.store.get(keys.engine_key(f"{engine}/") + key)

    def engine_range(self, engine: str, start: bytes = b"", stop: bytes | None = None,
                     ) -> Iterator[tuple[bytes, bytes]]:
        """The engine's keys in `[start, stop)` in order, without its prefix."""
        prefix = keys.engine_key(f"{engine}/")
        cut = len(prefix)
        for key, value in self.store.iterate(prefix=prefix, start=prefix + start if start else None,
                                             stop=prefix + stop if stop is not None else None):
            yield key[cut:], value

    def make_durable(self) -> None:
        """fsync what was written without sync (before announcing a block, on shutdown)."""
        if self._unsynced_writes:
            self.store.write_batch({}, (), sync=True)
            self._unsynced_writes = False

    def _write(self, puts: Mapping[bytes, bytes], deletes: list[bytes] | tuple[bytes, ...], *, sync: bool = False,
               accounts: Mapping[bytes, Account | None] | None = None) -> None:
        try:
            self.store.write_batch(puts, deletes, sync=sync)
        except BaseException:
            self.accounts.forget()
            raise
        self._unsynced_writes = not sync  # a synced write syncs every write before it (one log)
        if accounts:
            self.accounts.written(accounts)
