"""The client history: every operation the load made and saw, one JSON object per line in `<dir>/history.jsonl`.

Each operation is an `invoke` record followed later by its completion with the same process, op and key: `ok` (it
happened), `fail` (it certainly did not happen: the node refused it or could not be reached), or `info` (unknown:
a timeout or a connection lost mid-request). Records are
`{index, time_ns, type, process, node, op, key, value, error}`; `index` increases by one per record across runs of
the load on the same testnet. Ops (docs/TESTNET.md): `transfer` (submit a signed transfer; key = tx hash),
`included` and `final` (the observer saw the transaction in a best-chain block, then final; value = height and
block).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

OP_TYPES = ("invoke", "ok", "fail", "info")
RECORD_FIELDS = ("index", "time_ns", "type", "process", "node", "op", "key")  # value and error may be left out
log = logging.getLogger(__name__)
FLUSH_EVERY_S = 1.0  # records reach the file within a second, for the dashboard that reads it as it grows


class HistoryError(ValueError):
    """A history file that cannot be read; the message names the line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Op:
    """One history record."""

    index: int
    time_ns: int
    type: str
    process: str
    node: str
    op: str
    key: str
    value: Any = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.type not in OP_TYPES:
            raise ValueError(f"op type must be one of {', '.join(OP_TYPES)}, got {self.type!r}")

    def to_json(self) -> dict[str, Any]:
        """The JSON line's object."""
        return asdict(self)


class HistoryWriter:
    """Appends records to a history file; safe to call from several threads. Indices continue the file's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._next = last_index(path) + 1
        self._out: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._unflushed = 0
        self._flushed_at = time.monotonic()

    def record(self, type: str, *, process: str, node: str, op: str, key: str, value: Any = None,
               error: str | None = None) -> Op:
        """Append one record stamped with the wall clock (ns) and the next index."""
        with self._lock:
            entry = Op(index=self._next, time_ns=time.time_ns(), type=type, process=process, node=node, op=op,
                       key=key, value=value, error=error)
            self._next += 1
            self._out.write(json.dumps(entry.to_json(), separators=(",", ":")) + "\n")
            self._unflushed += 1
            now = time.monotonic()
            if self._unflushed >= 256 or now - self._flushed_at >= FLUSH_EVERY_S:
                self._out.flush()
                self._unflushed = 0
                self._flushed_at = now
            return entry

    def flush(self) -> None:
        """Write buffered records to the file."""
        with self._lock:
            self._out.flush()
            self._unflushed = 0

    def close(self) -> None:
        """Flush and close."""
        with self._lock:
            if not self._out.closed:
                self._out.close()


def last_index(path: Path) -> int:
    """The index of the file's last complete record, -1 for a missing or empty file."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, 2)
            size = stream.tell()
            stream.seek(max(0, size - 64 * 1024))
            tail = stream.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return -1
    for line in reversed(tail):
        try:
            return int(json.loads(line)["index"])
        except (ValueError, KeyError, TypeError):
            continue
    return -1


def parse_ops(lines: Iterable[str], source: str = "history",
              on_torn_line: Callable[[int], None] | None = None) -> list[Op]:
    """Parse history lines (each with its newline, as a text stream gives them); any bad line is an error, except a
    torn last line: one without a newline (a crash mid-write) after at least one good record, which is skipped and
    reported to `on_torn_line` (its line number; a warning in the log without one). A bad line that ends with a
    newline, or one with nothing good before it, is not a torn write but a file that is not a history."""
    ops: list[Op] = []
    pending: tuple[int, str] | None = None  # (line number, error) of a bad line that may be a torn last line
    for number, line in enumerate(lines, start=1):
        if pending is not None:
            raise HistoryError(pending[1])
        if not line.strip():
            continue
        try:
            ops.append(_op_from_line(line))
        except (ValueError, KeyError, TypeError) as exc:
            error = f"{source} line {number}: not a history record ({exc})"
            if line.endswith("\n") or not ops:
                raise HistoryError(error) from None
            pending = (number, error)
    if pending is not None:
        if on_torn_line is not None:
            on_torn_line(pending[0])
        else:
            log.warning("%s line %d: torn last line (no newline, not a record) ignored", source, pending[0])
    return ops


def _op_from_line(line: str) -> Op:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise TypeError(f"a JSON {type(data).__name__}, not an object")
    missing = [name for name in RECORD_FIELDS if name not in data]
    if missing:
        raise ValueError(f"no {', '.join(missing)} field")
    return Op(index=int(data["index"]), time_ns=int(data["time_ns"]), type=str(data["type"]),
              process=str(data["process"]), node=str(data["node"]), op=str(data["op"]), key=str(data["key"]),
              value=data.get("value"), error=data.get("error"))


def read_history(path: Path, on_torn_line: Callable[[int], None] | None = None) -> list[Op]:
    """Every record of a history file (empty when there is none); HistoryError names the first bad line, a line
    that is not UTF-8 included. A torn last line is skipped as parse_ops says."""
    try:
        with open(path, "rb") as stream:
            return parse_ops(_decoded(stream, str(path)), str(path), on_torn_line)
    except FileNotFoundError:
        return []


def _decoded(stream: IO[bytes], source: str) -> Iterator[str]:
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if not raw.endswith(b"\n"):  # a last line torn inside a character: parse_ops judges it as torn
                yield raw.decode("utf-8", "replace")
                continue
            raise HistoryError(f"{source} line {number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                               f"{exc.start + 1})") from None


def acknowledged_final(ops: Iterable[Op]) -> dict[str, int]:
    """Transactions a client saw final: tx hash -> the height it was final at (`ok` records of op `final`)."""
    final: dict[str, int] = {}
    for op in ops:
        if op.op == "final" and op.type == "ok":
            height = op.value.get("height") if isinstance(op.value, dict) else None
            final[op.key] = int(height) if isinstance(height, int) else 0
    return final


def accepted(ops: Iterable[Op]) -> set[str]:
    """Transactions some node accepted (`ok` records of op `transfer`)."""
    return {op.key for op in ops if op.op == "transfer" and op.type == "ok"}


def check_well_formed(ops: Iterable[Op]) -> list[str]:
    """Problems with the history itself: indices not increasing by one, a completion without an open invoke of
    the same process, or a process invoking while its previous op is still open. Empty when well formed."""
    problems: list[str] = []
    open_ops: dict[str, Op] = {}
    previous: int | None = None
    for op in ops:
        if previous is not None and op.index != previous + 1:
            problems.append(f"index {op.index} follows {previous}")
        previous = op.index
        if op.type == "invoke":
            if op.process in open_ops:
                problems.append(f"process {op.process} invokes {op.op} at index {op.index} while index "
                                f"{open_ops[op.process].index} is open")
            open_ops[op.process] = op
        else:
            started = open_ops.pop(op.process, None)
            if started is None or (started.op, started.key) != (op.op, op.key):
                problems.append(f"{op.type} at index {op.index} ({op.process} {op.op}) has no matching invoke")
    return problems
