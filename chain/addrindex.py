"""The address index: every best-chain transaction under its sender's and its recipient's address, newest last.

Key `b"X" + address (20) + height (8) + position (4)`, value empty (storage/keys.py): the key says all, and the
transaction is read from the block at that height. An empty value is not a detail: with the transaction's hash as
the value, `chainlab bench store` measured store_overhead 0.36-0.38 against 0.18 without the index; with empty
values, 0.11-0.15 (100 blocks of 1,000 transfers, 2026-12-06, docs/PERFORMANCE.md). The entries of a
block are written in the very batch that connects it and deleted in the batch that disconnects it
(chain/chainstore.py), so the index always describes exactly the chain the tip record names; a reverse range scan
of one address's prefix lists its transactions newest first, and a page costs a seek plus one step per entry,
whatever the length of the chain.

A self-transfer (sender == recipient) has one entry. Block rewards and fees are not transactions (they are paid to
the header's proposer), so they are not indexed.

`build_address_index` is the schema upgrade 1 -> 2 (storage/schema.py): it indexes a store written before the
index existed, from the best chain, in bounded batches, and can be interrupted at any point.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chain.block import Block, decode_block
from chain.errors import ChainStoreError
from storage import keys
from storage.base import Store

UPGRADE_PROGRESS_KEY = keys.ADDRESS_INDEX_UPGRADE_KEY
"""While `build_address_index` runs: the tip hash it indexes up to (32) and the next height to index (8)."""
UPGRADE_BATCH_KEYS = 20_000  # index entries per batch of the upgrade (~0.7 MB of keys)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressTxRef:
    """One entry of the index: transaction number `position` of the best-chain block at `height`."""

    height: int
    position: int


def block_entries(block: Block) -> dict[bytes, bytes]:
    """The index entries of `block` (key -> empty value), for the sender and the recipient of each of its
    transactions (one entry when they are the same address)."""
    entries: dict[bytes, bytes] = {}
    prefix = keys.ADDRESS_TX
    height = block.height.to_bytes(keys.HEIGHT_BYTES, "big")
    # Keys built inline (addresses are checked values of decoded transactions): two per transaction of every block.
    for position, tx in enumerate(block.txs):
        suffix = height + position.to_bytes(keys.POSITION_BYTES, "big")
        entries[prefix + tx.sender_address + suffix] = b""
        entries[prefix + tx.recipient + suffix] = b""
    return entries


def address_txs(store: Store, address: bytes, *, before: tuple[int, int] | None, limit: int) -> list[AddressTxRef]:
    """Up to `limit` entries of `address`, newest first, strictly older than `before` = (height, position) when
    given. One reverse range scan of the address's prefix."""
    if limit < 0:
        raise ValueError("limit must not be negative")
    prefix = keys.address_tx_prefix(address)
    stop = None if before is None else keys.address_tx_key(address, *before)
    found: list[AddressTxRef] = []
    if limit == 0:
        return found
    for key, _ in store.iterate(prefix=prefix, stop=stop, reverse=True):
        _, height, position = keys.address_tx_from_key(key)
        found.append(AddressTxRef(height=height, position=position))
        if len(found) >= limit:
            break
    return found


def build_address_index(store: Store) -> None:
    """Schema upgrade 1 -> 2: index every transaction of the best chain, in batches of about `UPGRADE_BATCH_KEYS`
    entries, each written with the progress record (`UPGRADE_PROGRESS_KEY`).

    Crash-safe: a run killed at any point leaves whole batches and a progress record; the next run resumes after
    the last batch written. If the tip moved meanwhile (an older chainlab, which keeps no index, ran on the store),
    entries of blocks it may have disconnected could be stale, so the next run drops the index and starts over.
    The caller writes the new schema version once this returns (storage.schema.check_schema).
    """
    tip = store.get(keys.TIP_KEY)
    if tip is None:  # no chain yet (the genesis batch was never written): nothing to index
        store.write_batch({}, [UPGRADE_PROGRESS_KEY])
        return
    tip_hash = tip[:32]
    next_height = _resume_height(store, tip_hash)
    batch: dict[bytes, bytes] = {}
    for height, block in _best_chain_from(store, next_height):
        batch.update(block_entries(block))
        if len(batch) >= UPGRADE_BATCH_KEYS:
            batch[UPGRADE_PROGRESS_KEY] = tip_hash + (height + 1).to_bytes(8, "big")
            store.write_batch(batch)
            batch = {}
    store.write_batch(batch, [UPGRADE_PROGRESS_KEY])


def _resume_height(store: Store, tip_hash: bytes) -> int:
    progress = store.get(UPGRADE_PROGRESS_KEY)
    if progress is not None and len(progress) == 40 and progress[:32] == tip_hash:
        return int.from_bytes(progress[32:], "big")
    # A first run, or the tip moved since the last one: clear what an earlier run may have left, in bounded batches.
    while True:
        doomed = [key for key, _ in _take(store.iterate(prefix=keys.ADDRESS_TX), UPGRADE_BATCH_KEYS)]
        if not doomed:
            return 0
        store.write_batch({}, doomed)


def _best_chain_from(store: Store, height: int) -> Iterator[tuple[int, Block]]:
    for key, block_hash in store.iterate(prefix=keys.HEIGHT, start=keys.height_key(height)):
        raw = store.get(keys.block_key(block_hash))
        if raw is None:
            raise ChainStoreError(f"best-chain block {block_hash.hex()} has no body")
        yield keys.height_from_key(key), decode_block(raw)


def _take(pairs: Iterator[tuple[bytes, bytes]], count: int) -> Iterator[tuple[bytes, bytes]]:
    for index, pair in enumerate(pairs):
        if index >= count:
            return
        yield pair
