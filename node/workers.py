"""Signature verification in worker processes (the `workers` setting).

`workers = 1` verifies in the calling process. `workers = W > 1` uses W cores: W-1 worker processes and the caller.
The caller applies the state while the workers verify, so it takes a smaller share of the signatures (`_share`).

Each worker is a spawned process on a pipe of its own, not a `ProcessPoolExecutor`: the pool hands work to the pipe
through helper threads that need the GIL, which the caller holds while it applies the block, so a worker could sit
idle for a switch interval or more, and it pickles every (key, signature, digest) tuple. Here the caller writes one
blob per worker itself (all public keys, then all signatures, then all digests: fixed sizes, so no framing) and
reads back one byte per signature. A worker that dies, hangs past `_REPLY_TIMEOUT_S` or still owes the reply of
a submission nobody waited for is replaced before the next block, and the caller verifies any share it did not
get an answer for, so a failure costs time, never a wrong result.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from chain import crypto
from chain.validation import SignatureItems
from node.lifetime import ignore_sigint, sigint_ignored_by_children

_KEY, _SIG, _DIGEST = crypto.PUBKEY_BYTES, crypto.SIGNATURE_BYTES, crypto.HASH_BYTES
_RECORD = _KEY + _SIG + _DIGEST
# Work the caller does on its own between handing out signatures and checking its share (applying the state),
# relative to checking the same transactions' signatures (measured; see docs/PERFORMANCE.md).
_CALLER_WORK_RATIO = 0.15
_JOIN_TIMEOUT_S = 5.0
# A reply later than this means a stuck worker: the caller checks that share itself and replaces the worker. The
# largest block (20,000 signatures) takes a worker about a second.
_REPLY_TIMEOUT_S = 60.0


def serve(conn: Connection) -> None:
    """A worker's loop: verify each blob of records the caller sends and answer one byte (1 valid, 0 not) each.
    Ctrl-C reaches the whole process group: the worker ignores SIGINT and ends when its node closes the pipe."""
    ignore_sigint()
    verify_many = crypto.verify_many
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):  # the caller closed its end or went away
            return
        count = len(data) // _RECORD
        keys_end, sigs_end = count * _KEY, count * (_KEY + _SIG)
        items = [
            (data[i * _KEY : (i + 1) * _KEY], data[keys_end + i * _SIG : keys_end + (i + 1) * _SIG],
             data[sigs_end + i * _DIGEST : sigs_end + (i + 1) * _DIGEST])
            for i in range(count)
        ]
        try:
            conn.send_bytes(bytes(verify_many(items)))
        except OSError:  # the caller closed its end while this blob was being checked
            return


def _share(workers: int) -> float:
    """The caller's fraction of the signatures so that it and every worker finish together: with the caller's
    other work costing r of its signatures' work, caller r + s = worker (1 - s) / (W - 1)."""
    return max(0.0, 1 / workers - _CALLER_WORK_RATIO * (workers - 1) / workers)


def _pack(items: SignatureItems) -> bytes | None:
    """Keys, then signatures, then digests, concatenated; None unless every field has its fixed size."""
    columns = tuple(zip(*items, strict=True))  # keys, signatures, digests
    if any(set(map(len, column)) != {size} for column, size in zip(columns, (_KEY, _SIG, _DIGEST), strict=True)):
        return None
    return b"".join(columns[0] + columns[1] + columns[2])


class _Worker:
    """One spawned verification process and the caller's end of its pipe."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: the node runs asyncio with threads
        self.conn, child = context.Pipe(duplex=True)
        self.process: BaseProcess = context.Process(target=serve, args=(child,), daemon=True,
                                                    name="chainlab-verifier")
        with sigint_ignored_by_children():
            self.process.start()
        child.close()
        self.owed = False  # a blob was sent whose reply has not been read

    def send(self, blob: bytes) -> bool:
        try:
            self.conn.send_bytes(blob)
        except OSError:
            return False
        self.owed = True
        return True

    def receive(self, count: int) -> list[bool] | None:
        data = None
        try:
            if self.conn.poll(_REPLY_TIMEOUT_S):
                data = self.conn.recv_bytes()
        except (EOFError, OSError):
            pass
        self.owed = False
        if data is None or len(data) != count:
            self.kill()  # stuck, gone or out of step: replaced before the next block
            return None
        return [byte == 1 for byte in data]

    @property
    def usable(self) -> bool:
        """Alive, with nothing unread in its pipe (a reply left over from a submission nobody waited for would
        otherwise be read as the next one's)."""
        return self.process.is_alive() and not self.conn.closed and not self.owed

    def kill(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(_JOIN_TIMEOUT_S)

    def stop(self) -> None:
        if self.owed:  # busy with work nobody will read: do not wait for it
            self.kill()
            return
        self.conn.close()  # the worker reads EOF and returns
        self.process.join(_JOIN_TIMEOUT_S)
        if self.process.is_alive():
            self.kill()


class ProcessVerifier:
    """A ParallelVerifier over `workers - 1` spawned processes plus the caller.

    One block at a time: `submit` and its `wait` must not interleave with another submission (the block tree
    validates blocks one after another).
    """

    def __init__(self, workers: int) -> None:
        if workers < 2:
            raise ValueError("a process verifier needs at least 2 workers (1 means in-process)")
        self.workers = workers
        self._pool = [_Worker() for _ in range(workers - 1)]
        self.warm_up()

    def warm_up(self) -> None:
        """Wait until every worker has started, so the first block does not pay for interpreter start-up."""
        for worker in self._pool:
            if worker.send(b""):
                worker.receive(0)

    @property
    def pids(self) -> list[int]:
        """Process ids of the worker processes (to watch, pin or kill them)."""
        return [worker.process.pid for worker in self._pool if worker.process.pid is not None]

    def _replace_unusable(self) -> None:
        for index, worker in enumerate(self._pool):
            if not worker.usable:
                worker.kill()
                self._pool[index] = _Worker()

    def submit(self, items: SignatureItems) -> Callable[[], list[bool]]:
        """Send most of `items` to the workers; the caller's share is verified when it waits."""
        self._replace_unusable()
        local_count = int(len(items) * _share(self.workers))
        remote = items[local_count:]
        chunk = -(-len(remote) // len(self._pool)) if remote else 0
        sent: list[tuple[_Worker | None, SignatureItems]] = []
        for start in range(0, len(remote), chunk or 1):
            part = remote[start : start + chunk]
            blob = _pack(part)
            worker = self._pool[len(sent)]
            sent.append((worker if blob is not None and worker.send(blob) else None, part))

        def wait() -> list[bool]:
            results = crypto.verify_many(items[:local_count])  # read now: a lazy view builds them in parallel
            for worker, part in sent:
                answer = worker.receive(len(part)) if worker is not None else None
                results.extend(answer if answer is not None else crypto.verify_many(part))
            return results

        return wait

    def close(self) -> None:
        """Stop the worker processes."""
        for worker in self._pool:
            worker.stop()
        self._pool = []

    def __enter__(self) -> ProcessVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
