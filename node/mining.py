"""PoW mining in worker processes: never on the event loop.

The node hands a job (the 64-byte midstate prefix of the header and the target) to `mining_processes` workers,
each grinding its own stride of nonces. A shared job generation number lets the node abandon the current job at
once when the tip changes: workers check it between chunks of `CHUNK` nonces. Found nonces come back through a
pipe the event loop watches (`loop.add_reader`), so no thread is involved. `hashrate_hps` caps the total rate
(each worker sleeps to keep its share), which is how a local testnet gives its miners exact shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from node.lifetime import ignore_sigint, set_parent_death_signal, sigint_ignored_by_children

CHUNK = 2048
_PADDING = bytes(8)


def grind_range(prefix: bytes, target: int, start: int, stop: int, stride: int) -> tuple[int | None, int]:
    """Search nonces start, start+stride, ... below stop; (nonce or None, hashes done). The hot loop."""
    midstate = hashlib.sha256(prefix)
    sha256 = hashlib.sha256
    target_bytes = target.to_bytes(32, "big")  # equal-length big-endian bytes compare like the integers
    padding = _PADDING
    done = 0
    for nonce in range(start, stop, stride):
        inner = midstate.copy()
        inner.update(nonce.to_bytes(8, "big") + padding)
        done += 1
        if sha256(inner.digest()).digest() <= target_bytes:
            return nonce, done
    return None, done


def measure_hashes(seconds: float) -> int:
    """Hashes one process grinds in `seconds` with the node's own loop, on a target nothing meets."""
    prefix = os.urandom(64)
    done, nonce, deadline = 0, 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _, hashes = grind_range(prefix, 0, nonce, nonce + 4096, 1)
        nonce += 4096
        done += hashes
    return done


def _worker_main(index: int, processes: int, jobs: Connection, results: Connection, generation: Any,
                 hashes: Any, rate_cap_hps: float, parent_pid: int) -> None:
    """A worker process: wait for a job, grind until found or superseded, report, repeat.

    Ctrl-C reaches the whole foreground process group: the worker ignores SIGINT (no KeyboardInterrupt traceback)
    and leaves stopping to its node, which sends it None; if the node dies without doing so, the parent-death
    signal ends the worker."""
    ignore_sigint()
    set_parent_death_signal(signal.SIGKILL, parent_pid)
    while True:
        try:
            job = jobs.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        job_generation, prefix, target, first_nonce = job
        nonce = first_nonce + index
        started = time.monotonic()
        done_here = 0
        # With a cap, chunks hold ~10 ms of capped work and each waits for its turn *before* it runs, so no job
        # (a new one starts at every block) begins with an uncapped burst.
        chunk = CHUNK if rate_cap_hps <= 0 else max(1, min(CHUNK, int(rate_cap_hps * 0.01)))
        while generation.value == job_generation:
            if rate_cap_hps > 0:
                wait_s = (done_here + chunk) / rate_cap_hps - (time.monotonic() - started)
                if wait_s > 0:
                    time.sleep(min(wait_s, 0.5))
                    if generation.value != job_generation or jobs.poll():
                        break
            found, done = grind_range(prefix, target, nonce, nonce + chunk * processes, processes)
            nonce += chunk * processes
            done_here += done
            with hashes.get_lock():
                hashes.value += done
            if found is not None:
                results.send((job_generation, found))
                break
            if jobs.poll():  # a newer job (or stop) is waiting
                break


async def solve_puzzle(prefix: bytes, target: int, still_wanted: Callable[[], bool], *,
                       chunk: int = 1 << 14) -> int | None:
    """A nonce for one puzzle, ground in chunks on a thread (the loop stays responsive between chunks); None once
    `still_wanted()` turns false (e.g. the tip moved). For on-demand mining, where a block is wanted now and the
    worker processes may not exist."""
    loop = asyncio.get_running_loop()
    start = random.getrandbits(40)
    while still_wanted():
        found, _ = await loop.run_in_executor(None, grind_range, prefix, target, start, start + chunk, 1)
        if found is not None:
            return found
        start += chunk
    return None


class Miner:
    """A pool of mining processes with one current job."""

    def __init__(self, processes: int, hashrate_hps: float = 0.0, *, nice: int = 0) -> None:
        if processes < 1:
            raise ValueError("mining needs at least one process")
        context = multiprocessing.get_context("spawn")
        self.processes = processes
        self.hashrate_hps = hashrate_hps
        self._generation: Synchronized[int] = context.Value("Q", 0)
        self._hashes: Synchronized[int] = context.Value("Q", 0)
        self._job_pipes: list[Connection] = []
        self._result_pipes: list[Connection] = []
        self._workers = []
        per_worker_cap = hashrate_hps / processes if hashrate_hps > 0 else 0.0
        parent_pid = os.getpid()
        for index in range(processes):
            job_recv, job_send = context.Pipe(duplex=False)
            result_recv, result_send = context.Pipe(duplex=False)
            worker = context.Process(
                target=_worker_main, name=f"chainlab-miner-{index}", daemon=True,
                args=(index, processes, job_recv, result_send, self._generation, self._hashes, per_worker_cap,
                      parent_pid),
            )
            with sigint_ignored_by_children():
                worker.start()
            if nice:
                # best effort: an unprivileged process cannot lower a nice value, raising is fine
                with contextlib.suppress(OSError, AttributeError):
                    os.setpriority(os.PRIO_PROCESS, worker.pid or 0, nice)
            self._workers.append(worker)
            self._job_pipes.append(job_send)
            self._result_pipes.append(result_recv)
        self._current: int | None = None
        self._on_found: Callable[[int, int], None] | None = None
        self._watched = False

    @property
    def hashes(self) -> int:
        """Hashes computed by all workers so far."""
        return int(self._hashes.value)

    def watch(self, loop: asyncio.AbstractEventLoop, on_found: Callable[[int, int], None]) -> None:
        """Call `on_found(job_generation, nonce)` on the event loop when a worker finds a nonce."""
        self._on_found = on_found
        for pipe in self._result_pipes:
            loop.add_reader(pipe.fileno(), self._drain, pipe)
        self._watched = True

    def _drain(self, pipe: Connection) -> None:
        while pipe.poll():
            try:
                job_generation, nonce = pipe.recv()
            except (EOFError, OSError):
                return
            if job_generation == self._current and self._on_found is not None:
                self._current = None  # one block per job
                self._on_found(job_generation, nonce)

    def start_job(self, prefix: bytes, target: int, first_nonce: int = 0) -> int:
        """Abandon any current job and grind this one; returns its generation number."""
        if len(prefix) != 64:
            raise ValueError("the mining prefix is one 64-byte SHA-256 block")
        with self._generation.get_lock():
            self._generation.value += 1
            generation = int(self._generation.value)
        self._current = generation
        for pipe in self._job_pipes:
            pipe.send((generation, prefix, target, first_nonce))
        return generation

    def stop_job(self) -> None:
        """Abandon the current job (workers go idle)."""
        with self._generation.get_lock():
            self._generation.value += 1
        self._current = None

    def close(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Stop and reap every worker."""
        self.stop_job()
        if loop is not None and self._watched:
            for pipe in self._result_pipes:
                loop.remove_reader(pipe.fileno())
        for pipe in self._job_pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(None)
        for worker in self._workers:
            worker.join(timeout=2)
            if worker.is_alive():
                worker.kill()
                worker.join(timeout=2)
        for pipe in self._job_pipes + self._result_pipes:
            pipe.close()
