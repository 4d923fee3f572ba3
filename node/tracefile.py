"""The file behind a node's causal trace (`[node] trace_file`, docs/TRACING.md).

Each event is one `write` of one whole line to a file opened for appending: a SIGKILL loses no event already
written (the page cache has it), and a stamp is handed out only after its send event is written, so a restarted
node never reuses an id a peer has seen. On opening, a torn last line (a crash mid-write) is cut off, and the
node's last event in the file's tail gives the seq and clocks to go on from.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from causality.recorder import NodeTracer, ResumePoint, resume_point

RESUME_TAIL_BYTES = 256 * 1024  # how much of an existing file is read back to find the node's last event


class TraceFile:
    """An append-only trace file; writes after `close` are dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.resume_lines = _cut_torn_line_and_read_tail(path)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, line: str) -> None:
        """Append one line."""
        if self._fd is not None:
            os.write(self._fd, line.encode())

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _cut_torn_line_and_read_tail(path: Path) -> list[str]:
    if not path.exists():
        return []
    size = path.stat().st_size
    start = max(0, size - RESUME_TAIL_BYTES)
    with path.open("rb+") as handle:
        handle.seek(start)
        tail = handle.read()
        if tail and not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n") + 1
            handle.truncate(start + cut)
            tail = tail[:cut]
    lines = tail.decode("utf-8", "replace").splitlines(keepends=True)
    return lines[1:] if start > 0 else lines  # the first line read may be the end of a longer one


def open_trace(name: str, path: Path, node_id: str) -> tuple[NodeTracer, TraceFile]:
    """The node's tracer writing to `path`, resumed from the node's last event there. OSError, ValueError."""
    file = TraceFile(path)
    try:
        resume: ResumePoint = resume_point(file.resume_lines, name)
        tracer = NodeTracer(name, write=file.write, clock=time.time_ns, node_id=node_id, resume=resume)
    except BaseException:
        file.close()
        raise
    return tracer, file
