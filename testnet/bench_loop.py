"""A closed-loop load: each of N asyncio clients runs one operation, waits for its outcome, then runs the next.

The driver knows nothing of what an operation is (a chainlab transfer waited to finality, an etcd put): it times
each call, counts the ones that complete inside the measured window (after a warm-up), tallies error codes, and
reads this process's CPU time over the window, so a report can show what the load itself cost. The summary
helpers are pure and unit-tested (tests/testnet/test_bench_loop.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testnet.load import percentile

log = logging.getLogger("chainlab.testnet.bench")

# One operation of client `index`: None when it succeeded, else a short error code (the client retries after a
# pause, so a failing target does not turn the loop into a busy spin).
Operation = Callable[[int], Awaitable[str | None]]
ERROR_PAUSE_S = 0.05


@dataclass(kw_only=True)
class LoopResult:
    """What the clients did inside the measured window (time.monotonic() `window_start`..`window_end`)."""

    clients: int
    window_start: float
    window_end: float
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0
    server_cpu_s: float | None = None  # the measured servers' CPU over the window, when a probe was given

    @property
    def window_s(self) -> float:
        """Length of the measured window."""
        return self.window_end - self.window_start

    def summary(self) -> dict[str, Any]:
        """Completed operations, their rate, latency percentiles, errors and the client's own CPU share."""
        window = max(self.window_s, 1e-9)
        return {
            "ops": len(self.latencies_s),
            "ops_per_s": round(len(self.latencies_s) / window, 1),
            **latency_summary(self.latencies_s),
            "errors": dict(sorted(self.errors.items())),
            "client_cpu_s": round(self.cpu_s, 3),
            # one process: 1.0 would mean the load generator used a whole core for the window
            "client_cpu_share": round(self.cpu_s / window, 3),
            "client_cpu_per_op_us": round(self.cpu_s / len(self.latencies_s) * 1e6, 1) if self.latencies_s else None,
            "server_cpu_s": None if self.server_cpu_s is None else round(self.server_cpu_s, 3),
            # cores the servers used together over the window, and their CPU per completed operation
            "server_cpu_share": None if self.server_cpu_s is None else round(self.server_cpu_s / window, 3),
            "server_cpu_per_op_us": (round(self.server_cpu_s / len(self.latencies_s) * 1e6, 1)
                                     if self.server_cpu_s is not None and self.latencies_s else None),
        }


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 (nearest rank) and max of `latencies_s`, in milliseconds rounded to 0.01; None when empty."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    values = list(latencies_s)
    return {"p50_ms": ms(percentile(values, 0.5)), "p99_ms": ms(percentile(values, 0.99)),
            "max_ms": ms(max(values) if values else None)}


async def run_closed_loop(clients: int, operation: Operation, *, duration_s: float, warmup_s: float,
                          after_window: Callable[[], Awaitable[None]] | None = None,
                          server_cpu: Callable[[], float | None] | None = None) -> LoopResult:
    """Run `clients` closed-loop clients for `warmup_s` + `duration_s` (then, while they keep running,
    `after_window`, e.g. a fail-over phase); only operations that complete inside the window count.
    `server_cpu` reads the CPU seconds the servers have used so far (None when it cannot): read at both ends of
    the window, it gives what the load cost them."""
    if clients < 1 or duration_s <= 0 or warmup_s < 0:
        raise ValueError("need at least one client, a positive duration and a non-negative warm-up")
    started = time.monotonic()  # not time.monotonic(): uvloop's counts whole milliseconds
    result = LoopResult(clients=clients, window_start=started + warmup_s, window_end=started + warmup_s + duration_s)

    stopping = False

    async def client(index: int) -> None:
        while not stopping:  # besides the cancellation below, which an operation may swallow by accident
            begun = time.monotonic()
            error = await operation(index)
            done = time.monotonic()
            inside = result.window_start <= done <= result.window_end
            if error is None:
                if inside:
                    result.latencies_s.append(done - begun)
            else:
                if inside:
                    result.errors[error] += 1
                await asyncio.sleep(ERROR_PAUSE_S)

    tasks = [asyncio.ensure_future(client(index)) for index in range(clients)]
    try:
        await _sleep_watching(tasks, warmup_s)
        cpu_start = time.process_time()
        server_start = server_cpu() if server_cpu is not None else None
        await _sleep_watching(tasks, duration_s)
        result.cpu_s = time.process_time() - cpu_start
        server_end = server_cpu() if server_cpu is not None else None
        if server_start is not None and server_end is not None:
            result.server_cpu_s = server_end - server_start
        if after_window is not None:
            await after_window()
    finally:
        stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


async def _sleep_watching(tasks: Sequence[asyncio.Future[None]], seconds: float) -> None:
    """Sleep, but raise at once if a client died of a bug (an operation must return error codes, not raise)."""
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()


def processes_cpu_s(pids: Sequence[int | None]) -> float | None:
    """User plus system CPU seconds the processes `pids` have used (Linux /proc); None when one cannot be read
    (gone, not Linux), so a window across a restart reports nothing rather than a wrong figure."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for pid in pids:
        if pid is None:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()  # the command name may hold spaces; fields 14, 15 follow it
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def machine_info() -> dict[str, Any]:
    """CPU count and model, platform and Python version: what a figure was measured on."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    affinity = getattr(os, "sched_getaffinity", None)
    return {"cpu_count": os.cpu_count(), "cpus_usable": len(affinity(0)) if affinity else os.cpu_count(),
            "cpu_model": model, "platform": platform.platform(terse=True), "python": platform.python_version()}
