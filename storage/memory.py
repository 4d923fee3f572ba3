"""`MemoryStore`: the in-memory backend, used by the simulator and by tests.

Values live in a dict (get is O(1)); a sorted list of the keys, kept with `bisect`, serves ordered iteration.
Writes cost O(n) only when they add or remove keys (a list insert or delete; a memmove in C).
"""

from __future__ import annotations

import weakref
from bisect import bisect_left, insort
from collections.abc import Iterator

from storage.base import StoreBase, StoreClosedError, check_bytes, key_bounds


class MemoryStore(StoreBase):
    """A sorted in-memory map implementing `Store`; `sync` is accepted and ignored.

    Iterators are snapshots, as in LevelDB, but lazy: an iterator reads the live map until the store is about
    to change, and only then copies the pairs it has not yet returned. A scan that is not interleaved with
    writes (the common case, e.g. taking the first key under a prefix) therefore copies nothing.
    """

    def __init__(self) -> None:
        super().__init__(None)
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []
        self._cursors: weakref.WeakSet[_Cursor] = weakref.WeakSet()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        self._check_open()
        check_bytes(key, "key")
        return self._data.get(key)

    def iterate(
        self,
        prefix: bytes = b"",
        start: bytes | None = None,
        stop: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs in key order from a snapshot taken now (see `Store.iterate`)."""
        self._check_open()
        bounds = key_bounds(prefix, start, stop)
        if bounds is None:
            return iter(())
        lower, upper = bounds
        lo = bisect_left(self._keys, lower)
        hi = len(self._keys) if upper is None else bisect_left(self._keys, upper)
        cursor = _Cursor(self, lo, hi, reverse)
        self._cursors.add(cursor)
        return cursor

    def _apply(self, puts: dict[bytes, bytes], deletes: list[bytes], sync: bool) -> None:
        self._freeze_cursors()
        data, keys = self._data, self._keys
        for key in deletes:
            if key in data:
                del data[key]
                del keys[bisect_left(keys, key)]
        for key, value in puts.items():
            if key not in data:
                insort(keys, key)
            data[key] = value

    def _release(self) -> None:
        # Open cursors keep the old containers but fail on their next step, since the store is closed.
        self._cursors = weakref.WeakSet()
        self._data = {}
        self._keys = []

    def _freeze_cursors(self) -> None:
        for cursor in list(self._cursors):
            cursor.freeze()
        self._cursors.clear()


class _Cursor(Iterator[tuple[bytes, bytes]]):
    """One `MemoryStore.iterate` call: walks keys[lo:hi] of the live map until frozen, then its own copy."""

    __slots__ = ("__weakref__", "_data", "_hi", "_keys", "_lo", "_reverse", "_store")

    def __init__(self, store: MemoryStore, lo: int, hi: int, reverse: bool) -> None:
        self._store = store
        self._keys = store._keys
        self._data = store._data
        # The pairs still to return are keys[lo:hi]; reverse walks them from the top.
        self._lo = lo
        self._hi = hi
        self._reverse = reverse

    def freeze(self) -> None:
        """Copy the pairs not yet returned, so that the store can change underneath."""
        keys = self._keys[self._lo : self._hi]
        self._data = {key: self._data[key] for key in keys}
        self._keys = keys
        self._lo, self._hi = 0, len(keys)

    def __next__(self) -> tuple[bytes, bytes]:
        if self._store.closed:
            raise StoreClosedError(None)
        if self._lo >= self._hi:
            raise StopIteration
        if self._reverse:
            self._hi -= 1
            key = self._keys[self._hi]
        else:
            key = self._keys[self._lo]
            self._lo += 1
        return key, self._data[key]
