"""Schema versioning shared by both backends, and `open_store`, which opens a store and checks it.

The version lives under `keys.SCHEMA_KEY` as an ASCII integer. An empty store is stamped with the current
version; a store with the same version is accepted; anything else (another version, data without a version,
a value that is not an integer) raises `SchemaVersionError`. There are no migrations yet: a change to the key
layout or to a stored encoding bumps `SCHEMA_VERSION`.
"""

from __future__ import annotations

import os

from storage.base import SchemaVersionError, Store
from storage.keys import SCHEMA_KEY
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore

SCHEMA_VERSION = 1


def check_schema(store: Store, path: str | None, supported: int = SCHEMA_VERSION) -> int:
    """Return the store's schema version, stamping `supported` (durably) into an empty store.

    Raises `SchemaVersionError` naming `path` when the store holds another version or none it can read.
    """
    raw = store.get(SCHEMA_KEY)
    if raw is None:
        if next(store.iterate(), None) is not None:
            raise SchemaVersionError(path, None, supported)
        store.write_batch({SCHEMA_KEY: str(supported).encode("ascii")}, sync=True)
        return supported
    found = _parse_version(raw)
    if found != supported:
        raise SchemaVersionError(path, found, supported)
    return found


def open_store(
    path: str | os.PathLike[str] | None,
    *,
    create: bool = True,
    supported: int = SCHEMA_VERSION,
) -> Store:
    """Open a schema-checked store: `LevelDBStore` at `path`, or a fresh `MemoryStore` when `path` is None.

    Raises what `LevelDBStore` raises, and `SchemaVersionError` (after closing the store, so the directory
    is not left locked).
    """
    store: Store = MemoryStore() if path is None else LevelDBStore(path, create=create)
    try:
        check_schema(store, None if path is None else os.fspath(path), supported)
    except BaseException:
        store.close()
        raise
    return store


def _parse_version(raw: bytes) -> int | None:
    # Only the canonical spelling counts ("1", not "01" or " 1"), so one version has one encoding.
    if 0 < len(raw) <= 20 and raw.isdigit() and str(int(raw)).encode("ascii") == raw:
        return int(raw)
    return None
