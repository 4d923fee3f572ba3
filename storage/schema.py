"""Schema versioning shared by both backends, and `open_store`, which opens a store and checks it.

The version lives under `keys.SCHEMA_KEY` as an ASCII integer. An empty store is stamped with the current
version; a store with the same version is accepted; an older store is upgraded in place when the caller passes the
upgrades that lead to the current version; anything else (a newer version, an older one without its upgrades, data
without a version, a value that is not an integer) raises `SchemaVersionError`. A change to the key layout or to a
stored encoding bumps `SCHEMA_VERSION` and comes with its upgrade.

Upgrades: `upgrades[n]` brings a store from version n to n + 1. The layer that owns the records writes it (this
layer cannot read them: the address index of version 2 is built by chain.addrindex.build_address_index), and the
node passes them in (node/datadir.py). An upgrade must be safe to interrupt and to run again: it writes in bounded
batches and resumes from what it finds. The new version is written after the upgrade returns, synced, so a store
killed in the middle still reads as the old version and is upgraded again on the next open.

| version | what changed | upgrade from the previous one |
|---|---|---|
| 1 | the first layout | |
| 2 | the address index `b"X"` (storage/keys.py) | index the best chain's transactions |
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from storage.base import SchemaVersionError, Store
from storage.keys import SCHEMA_KEY
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore

SCHEMA_VERSION = 2

Upgrade = Callable[[Store], None]
"""Brings a store from one schema version to the next; safe to interrupt and to run again."""

log = logging.getLogger("chainlab.storage")


def check_schema(store: Store, path: str | None, supported: int = SCHEMA_VERSION,
                 upgrades: Mapping[int, Upgrade] | None = None) -> int:
    """Return the store's schema version, stamping `supported` (durably) into an empty store, and upgrading an
    older store with `upgrades` (version n -> the upgrade to n + 1) when every step is there.

    Raises `SchemaVersionError` naming `path` when the store holds another version or none it can read.
    """
    raw = store.get(SCHEMA_KEY)
    if raw is None:
        if next(store.iterate(), None) is not None:
            raise SchemaVersionError(path, None, supported)
        store.write_batch({SCHEMA_KEY: str(supported).encode("ascii")}, sync=True)
        return supported
    found = _parse_version(raw)
    steps = upgrades or {}
    if found is not None and found < supported and all(version in steps for version in range(found, supported)):
        for version in range(found, supported):
            log.info("store %s: upgrading the schema from version %d to %d", path, version, version + 1)
            steps[version](store)
            store.write_batch({SCHEMA_KEY: str(version + 1).encode("ascii")}, sync=True)
        return supported
    if found != supported:
        raise SchemaVersionError(path, found, supported)
    return found


def open_store(
    path: str | os.PathLike[str] | None,
    *,
    create: bool = True,
    supported: int = SCHEMA_VERSION,
    upgrades: Mapping[int, Upgrade] | None = None,
) -> Store:
    """Open a schema-checked store: `LevelDBStore` at `path`, or a fresh `MemoryStore` when `path` is None; an
    older store is upgraded with `upgrades` (see `check_schema`).

    Raises what `LevelDBStore` raises, and `SchemaVersionError` (after closing the store, so the directory
    is not left locked).
    """
    store: Store = MemoryStore() if path is None else LevelDBStore(path, create=create)
    try:
        check_schema(store, None if path is None else os.fspath(path), supported, upgrades)
    except BaseException:
        store.close()
        raise
    return store


def _parse_version(raw: bytes) -> int | None:
    # Only the canonical spelling counts ("1", not "01" or " 1"), so one version has one encoding.
    if 0 < len(raw) <= 20 and raw.isdigit() and str(int(raw)).encode("ascii") == raw:
        return int(raw)
    return None
