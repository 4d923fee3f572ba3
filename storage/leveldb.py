"""`LevelDBStore`: the on-disk backend, LevelDB through plyvel."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import plyvel

from storage.base import StoreBase, StoreClosedError, StoreError, StoreLockedError, check_bytes, key_bounds

# Directories opened by this process. LevelDB locks its directory with fcntl, and a failed second open in the
# same process closes a descriptor of the LOCK file, which drops the fcntl lock of the first open: another
# process could then open the directory too. So a second open in this process is refused before LevelDB runs.
_open_paths: set[str] = set()
_open_paths_lock = threading.Lock()


class LevelDBStore(StoreBase):
    """A `Store` in a LevelDB directory; one open store per directory across all processes.

    Raises `StoreLockedError` when the directory is already open (here or in another process) and
    `StoreError` when it cannot be opened (missing with `create=False`, corrupt, unreadable). Reads and
    iterators run on LevelDB snapshots; batches are written with `sync` as asked.
    """

    def __init__(self, path: str | os.PathLike[str], create: bool = True) -> None:
        self.path = os.fspath(path)
        super().__init__(self.path)
        self._lock_key = os.path.realpath(self.path)
        with _open_paths_lock:
            if self._lock_key in _open_paths:
                raise StoreLockedError(self.path)
            _open_paths.add(self._lock_key)
        try:
            self._db = _open(self.path, create)
        except BaseException:
            with _open_paths_lock:
                _open_paths.discard(self._lock_key)
            raise

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        self._check_open()
        check_bytes(key, "key")
        try:
            value: bytes | None = self._db.get(key)
        except plyvel.Error as exc:
            raise StoreError(self.path, f"read failed: {_reason(exc)}") from exc
        return value

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
        snapshot = self._db.snapshot()
        if reverse:
            # plyvel 1.5 treats `start` as exclusive on the first step of a reverse walk, so a range whose top
            # key is `start` comes back empty. The lower bound of a reverse walk is enforced here instead.
            raw = snapshot.iterator(stop=upper, reverse=True)
            return self._walk(snapshot, raw, floor=lower)
        raw = snapshot.iterator(start=lower, stop=upper)
        return self._walk(snapshot, raw, floor=b"")

    def _walk(self, snapshot: Any, raw: Any, floor: bytes) -> Iterator[tuple[bytes, bytes]]:
        try:
            while True:
                if self._closed:
                    raise StoreClosedError(self.path)
                try:
                    key, value = next(raw)
                except StopIteration:
                    return
                except plyvel.Error as exc:
                    raise StoreError(self.path, f"read failed: {_reason(exc)}") from exc
                if key < floor:
                    return
                yield key, value
        finally:
            if not self._closed:
                raw.close()
                snapshot.release()

    def _apply(self, puts: dict[bytes, bytes], deletes: list[bytes], sync: bool) -> None:
        try:
            with self._db.write_batch(transaction=True, sync=sync) as batch:
                for key in deletes:
                    batch.delete(key)
                for key, value in puts.items():
                    batch.put(key, value)
        except plyvel.Error as exc:
            raise StoreError(self.path, f"write failed: {_reason(exc)}") from exc

    def _release(self) -> None:
        try:
            self._db.close()
        finally:
            with _open_paths_lock:
                _open_paths.discard(self._lock_key)


def _open(path: str, create: bool) -> Any:
    try:
        # A bloom filter saves a disk read for most gets of absent keys (hash lookups are the common case).
        return plyvel.DB(path, create_if_missing=create, bloom_filter_bits=10)
    except plyvel.IOError as exc:
        if "lock" in _reason(exc).lower():
            raise StoreLockedError(path) from exc
        raise StoreError(path, f"cannot open: {_reason(exc)}") from exc
    except plyvel.Error as exc:
        raise StoreError(path, f"cannot open: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    # plyvel puts LevelDB's status message in args[0] as bytes.
    if exc.args and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", "replace")
    return str(exc)
