"""chainlab storage: the synchronous `Store` protocol, its LevelDB and in-memory backends, the chain's key
layout (`storage.keys`) and schema versioning. See docs/STORAGE.md.
"""

from storage.base import (
    SchemaVersionError,
    Store,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    WriteBatch,
)
from storage.leveldb import LevelDBStore
from storage.memory import MemoryStore
from storage.schema import SCHEMA_VERSION, check_schema, open_store

__all__ = [
    "SCHEMA_VERSION",
    "LevelDBStore",
    "MemoryStore",
    "SchemaVersionError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "WriteBatch",
    "check_schema",
    "open_store",
]
