"""The `Store` protocol, the `WriteBatch` accumulator and the storage errors.

A store is a synchronous, ordered map from bytes to bytes. Keys iterate in byte order; every change goes
through one atomic batch. The pure layers (chain/, consensus/) read and write through this protocol only, so
the same code runs on LevelDB in the node and on the in-memory backend in the simulator.

Batch rule, shared by every backend: within one `write_batch` call the deletes are applied before the puts,
so a key that is both deleted and put ends up holding the put value ("puts win").
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

MEMORY_PATH = ":memory:"
"""What error messages name as the path of a store that lives in memory."""

Puts = Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]
"""The puts of a batch: a mapping, or (key, value) pairs applied in order (a later pair wins)."""


class StoreError(Exception):
    """Base class of every storage error; the message always names the store's path."""

    def __init__(self, path: str | None, message: str) -> None:
        self.path = path if path is not None else MEMORY_PATH
        super().__init__(f"store {self.path}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other constructor arguments than `args`, so pickling (e.g. across processes)
        # rebuilds the error from its message and attributes instead of calling the constructor.
        return (_rebuild_error, (type(self), str(self), dict(self.__dict__)))


def _rebuild_error(cls: type[StoreError], message: str, state: dict[str, Any]) -> StoreError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class StoreClosedError(StoreError):
    """The store was used after `close()`."""

    def __init__(self, path: str | None) -> None:
        super().__init__(path, "used after close")


class StoreLockedError(StoreError):
    """Another process (or another open store in this process) holds the store's directory."""

    def __init__(self, path: str | None) -> None:
        super().__init__(path, "locked by another open store (is another node running on this directory?)")


class SchemaVersionError(StoreError):
    """The store holds a schema version this build cannot read.

    `found` is the stored version, or None when the store has data but no readable version (a missing key or
    a value that is not an ASCII integer).
    """

    def __init__(self, path: str | None, found: int | None, supported: int) -> None:
        self.found = found
        self.supported = supported
        if found is None:
            detail = f"no readable schema version (this build reads version {supported})"
        elif found > supported:
            detail = f"schema version {found} is newer than this build reads ({supported}); upgrade chainlab"
        else:
            detail = f"schema version {found} is not supported (this build reads version {supported})"
        super().__init__(path, detail)


class WriteBatch:
    """Puts and deletes collected in memory, then applied atomically by `Store.write`.

    Operations on the same key replace each other in call order: `put(k, v)` then `delete(k)` deletes `k`,
    and `delete(k)` then `put(k, v)` puts `v`. `len(batch)` counts the distinct keys touched and
    `size_bytes` the key and value bytes pending (keys only, for deletes).
    """

    __slots__ = ("_deletes", "_puts", "_size_bytes")

    def __init__(self) -> None:
        self._puts: dict[bytes, bytes] = {}
        self._deletes: set[bytes] = set()
        self._size_bytes = 0

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value` when the batch is written."""
        check_bytes(key, "key")
        check_bytes(value, "value")
        self._forget(key)
        self._puts[key] = value
        self._size_bytes += len(key) + len(value)

    def delete(self, key: bytes) -> None:
        """Remove `key` (if present) when the batch is written."""
        check_bytes(key, "key")
        self._forget(key)
        self._deletes.add(key)
        self._size_bytes += len(key)

    def clear(self) -> None:
        """Drop every pending operation."""
        self._puts.clear()
        self._deletes.clear()
        self._size_bytes = 0

    @property
    def puts(self) -> Mapping[bytes, bytes]:
        """The pending puts (a read-only view)."""
        return self._puts

    @property
    def deletes(self) -> frozenset[bytes]:
        """The pending deletes; never overlaps `puts`."""
        return frozenset(self._deletes)

    @property
    def size_bytes(self) -> int:
        """Bytes of keys and values pending, a measure for flushing a batch before it grows too big."""
        return self._size_bytes

    def __len__(self) -> int:
        return len(self._puts) + len(self._deletes)

    def _forget(self, key: bytes) -> None:
        old = self._puts.pop(key, None)
        if old is not None:
            self._size_bytes -= len(key) + len(old)
        elif key in self._deletes:
            self._deletes.remove(key)
            self._size_bytes -= len(key)


@runtime_checkable
class Store(Protocol):
    """A synchronous ordered key-value store (see the module docstring for the batch rule)."""

    @property
    def closed(self) -> bool:
        """True once `close()` has been called."""
        ...

    def get(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None."""
        ...

    def iterate(
        self,
        prefix: bytes = b"",
        start: bytes | None = None,
        stop: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs in byte order of the key (descending if `reverse`).

        Only keys that start with `prefix` and lie in [start, stop) are returned; every bound is optional.
        The pairs are a snapshot taken by this call: writes made while iterating are not seen. Stepping an
        iterator after its store is closed raises `StoreClosedError`.
        """
        ...

    def write_batch(self, puts: Puts, deletes: Iterable[bytes] = (), sync: bool = False) -> None:
        """Apply the deletes, then the puts, atomically: all of them or (on any error) none.

        With `sync` the call returns only once the batch is durable on disk (no-op in memory).
        """
        ...

    def write(self, batch: WriteBatch, sync: bool = False) -> None:
        """Apply a `WriteBatch` atomically, like `write_batch`."""
        ...

    def close(self) -> None:
        """Release the store; idempotent. Later use raises `StoreClosedError`."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class StoreBase(abc.ABC):
    """Plumbing shared by the backends: batch staging and validation, close handling, context manager.

    Both backends stage a batch here before touching their data, so atomicity and the puts-win rule hold
    identically in both. Not part of the `Store` protocol; backends only.
    """

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close()` has been called."""
        return self._closed

    def write_batch(self, puts: Puts, deletes: Iterable[bytes] = (), sync: bool = False) -> None:
        """Apply the deletes, then the puts, atomically (see `Store.write_batch`)."""
        self._check_open()
        staged = _stage_puts(puts)
        dropped = _stage_deletes(deletes, staged)
        if staged or dropped:
            self._apply(staged, dropped, sync)

    def write(self, batch: WriteBatch, sync: bool = False) -> None:
        """Apply a `WriteBatch` atomically."""
        self.write_batch(batch.puts, batch.deletes, sync=sync)

    def close(self) -> None:
        """Release the store; idempotent."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(self._path)

    @abc.abstractmethod
    def _apply(self, puts: dict[bytes, bytes], deletes: list[bytes], sync: bool) -> None:
        """Write a validated batch; `deletes` holds no key of `puts`. Must be all or nothing."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Free the backend's resources (called once, by `close`)."""


def key_bounds(prefix: bytes, start: bytes | None, stop: bytes | None) -> tuple[bytes, bytes | None] | None:
    """The half-open key range [lower, upper) selected by a prefix and optional start/stop.

    `upper` is None when the range is unbounded above; the result is None when the range is empty.
    """
    check_bytes(prefix, "prefix")
    lower = prefix
    if start is not None:
        check_bytes(start, "start")
        lower = max(lower, start)
    upper = prefix_end(prefix)
    if stop is not None:
        check_bytes(stop, "stop")
        upper = stop if upper is None else min(upper, stop)
    if upper is not None and lower >= upper:
        return None
    return lower, upper


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix`, or None if there is none."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def check_bytes(value: object, what: str) -> None:
    """Raise TypeError unless `value` is exactly `bytes` (mutable buffers would alias stored data)."""
    if type(value) is not bytes:
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def _stage_puts(puts: Puts) -> dict[bytes, bytes]:
    pairs = puts.items() if isinstance(puts, Mapping) else puts
    staged: dict[bytes, bytes] = {}
    for key, value in pairs:
        check_bytes(key, "key")
        check_bytes(value, "value")
        staged[key] = value
    return staged


def _stage_deletes(deletes: Iterable[bytes], staged: Mapping[bytes, bytes]) -> list[bytes]:
    if isinstance(deletes, bytes | bytearray | memoryview | str):
        raise TypeError("deletes must be an iterable of keys, not a single key")
    dropped: list[bytes] = []
    for key in deletes:
        check_bytes(key, "key")
        if key not in staged:
            dropped.append(key)
    return dropped
