"""What watching a testnet costs its nodes (`chainlab bench dashboard`, docs/DASHBOARD.md): each node's CPU with the
dashboard's page refreshing once a second against the same node without it.

Windows alternate off / on (`rounds` of each, `window_s` long), so a trend in the nodes' own work (a chain growing,
a mempool filling) falls on both sides alike; a node's cost is the mean of its on-windows minus the mean of its
off-windows, in percent of one core. In the on-windows a client asks GET /api/state once a second, as an open page
does; the figures also say how long a state took to build and how many the page got per second.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from testnet.bench_loop import machine_info, processes_cpu_s
from testnet.dashboard import DashboardServer
from testnet.load import percentile
from testnet.state import TestnetError, load_testnet

PAGE_INTERVAL_S = 1.0


async def _window(pids: list[int], window_s: float, poll: str | None,
                  session: aiohttp.ClientSession) -> tuple[list[float], list[float], int]:
    """Per-node CPU share (of one core) over one window, the state build times seen, and the states fetched."""
    before = [processes_cpu_s([pid]) for pid in pids]
    started = time.monotonic()
    builds: list[float] = []
    fetched = 0
    while time.monotonic() - started < window_s:
        tick = time.monotonic()
        if poll is not None:
            async with session.get(poll) as reply:
                state = await reply.json()
            fetched += 1
            builds.append(float(state["dashboard"]["build_ms"]))
        await asyncio.sleep(max(0.0, PAGE_INTERVAL_S - (time.monotonic() - tick)))
    elapsed = time.monotonic() - started
    after = [processes_cpu_s([pid]) for pid in pids]
    shares = []
    for pid, b, a in zip(pids, before, after, strict=True):
        if a is None or b is None:
            raise TestnetError(f"node process {pid} went away during the measurement")
        shares.append(100 * (a - b) / elapsed)
    return shares, builds, fetched


async def measure(directory: Path, *, window_s: float = 20.0, rounds: int = 3) -> dict[str, Any]:
    """Measure the dashboard's cost on the running testnet in `directory`."""
    testnet = load_testnet(directory)
    records = [r for r in testnet.nodes if r.state == "running" and r.pid]
    if not records:
        raise TestnetError("no running node to measure")
    pids = [int(r.pid) for r in records if r.pid]
    server = DashboardServer(directory, refresh_s=1.0)
    url = await server.start()
    off: list[list[float]] = []
    on: list[list[float]] = []
    builds: list[float] = []
    fetched = 0
    seconds_on = 0.0
    try:
        async with aiohttp.ClientSession(trust_env=False) as session:
            await _window(pids, 2.0, url + "api/state", session)  # warm: the first state fetches the windows
            for _ in range(rounds):
                shares, _, _ = await _window(pids, window_s, None, session)
                off.append(shares)
                started = time.monotonic()
                shares, seen, count = await _window(pids, window_s, url + "api/state", session)
                seconds_on += time.monotonic() - started
                on.append(shares)
                builds += seen
                fetched += count
    finally:
        await server.stop()
    nodes: list[dict[str, Any]] = []
    costs: list[float] = []
    for index, record in enumerate(records):
        off_mean = statistics.fmean(w[index] for w in off)
        on_mean = statistics.fmean(w[index] for w in on)
        nodes.append({"node": record.name, "cpu_off_pct": round(off_mean, 2), "cpu_on_pct": round(on_mean, 2),
                      "cost_pct": round(on_mean - off_mean, 2)})
        costs.append(round(on_mean - off_mean, 2))
    ordered = sorted(builds)
    return {
        "nodes": nodes, "consensus": testnet.consensus, "window_s": window_s, "rounds": rounds,
        "max_cost_pct": max(costs),
        "states_per_s": round(fetched / seconds_on, 2) if seconds_on else 0.0,
        "build_ms": {"p50": percentile(ordered, 0.5), "p95": percentile(ordered, 0.95),
                     "max": ordered[-1] if ordered else None},
        "machine": machine_info(),
    }
