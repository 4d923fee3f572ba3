"""`chainlab sim --trace FILE`'s writer: the trace's lines are made in a second process, on the other core.

The simulator's tracer (testnet/sim/causal.py) only numbers events and keeps one small tuple per event; at each
flush it hands a batch to `TraceWriter.send`, which marshals it down a pipe. The child (`python -m cli.simtrace
FILE`, which imports only causality/formatter.py) feeds the batches to a `TraceFormatter` (the vector clocks and
the JSON) and writes FILE. So the run pays for the records and the pipe, not for the lines (docs/PERFORMANCE.md
"Simulator tracing"); the file is the same, line for line, as an inline formatter's. The pipe is widened to
1 MiB where Linux allows, so the run does not wait while the child starts.

The child is spawned, not forked: a fork would make the parent pay a copy-on-write fault for every page of its
heap that it touches afterwards, which in CPython (reference counts) is most of them. It ignores Ctrl-C and ends
at the end of the pipe: when the run ends, fails or is interrupted, the parent closes the pipe and waits for it;
if the parent is killed, the pipe closes all the same and the child writes what it has and exits.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from causality.formatter import TraceFormatter

_LENGTH_BYTES = 8
_PIPE_BYTES = 1 << 20


class TraceWriter:
    """A child process writing FILE from the record batches it is sent."""

    def __init__(self, path: Path) -> None:
        path.open("w").close()  # OSError here, naming the file, before anything is started
        root = str(Path(__file__).resolve().parents[1])
        search_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        self._child = subprocess.Popen([sys.executable, "-m", "cli.simtrace", str(path.resolve())],
                                       stdin=subprocess.PIPE, env={**os.environ, "PYTHONPATH": search_path})
        assert self._child.stdin is not None
        self._pipe: IO[bytes] = self._child.stdin
        with contextlib.suppress(OSError, ImportError, AttributeError):  # Linux only; a smaller pipe still works
            import fcntl
            fcntl.fcntl(self._pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)

    def send(self, records: list[Any]) -> None:
        """Hand one batch of records to the writer."""
        data = marshal.dumps(records)
        with contextlib.suppress(BrokenPipeError):  # the child died: close() reports it
            self._pipe.write(len(data).to_bytes(_LENGTH_BYTES, "little") + data)

    def close(self) -> bool:
        """End the pipe and wait until the file is written; False if the writer failed."""
        with contextlib.suppress(BrokenPipeError):
            self._pipe.close()
        return self._child.wait() == 0


def main(path: str) -> int:
    """The child: format the batches read from stdin into `path` until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pipe = sys.stdin.buffer
    with open(path, "w", encoding="utf-8") as out:
        formatter = TraceFormatter(out.write)
        while True:
            header = pipe.read(_LENGTH_BYTES)
            if len(header) < _LENGTH_BYTES:
                return 0
            formatter.feed(marshal.loads(pipe.read(int.from_bytes(header, "little"))))


if __name__ == "__main__":
    status = main(sys.argv[1])
    sys.stdout.flush()
    os._exit(status)  # the file is closed: skip the interpreter's teardown, which the run would wait for
