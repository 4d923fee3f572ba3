"""The live table of `chainlab testnet up --foreground`: every node's height, head, final height, peers, mempool
and mining state (or role), refreshed about twice a second, with an optional light load, until Ctrl-C or SIGTERM.

The table re-reads testnet.json at each refresh, so nemesis actions taken from another terminal show at once. On
a terminal it is drawn with rich's Live and Table (redrawn in place, without flicker, fitted to the terminal's
width); piped or redirected, it is printed as plain text every 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from testnet.cells import engine_cell, engine_column, state_cell
from testnet.dashboard import DashboardServer
from testnet.history import HistoryWriter
from testnet.load import LoadGenerator, LoadOptions
from testnet.state import HISTORY_FILE, NodeRecord, Testnet, load_testnet

# A closed terminal (SIGHUP) ends a foreground testnet as Ctrl-C and SIGTERM do.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
COLUMNS = ("NODE", "STATE", "HEIGHT", "HEAD", "FINAL", "PEERS", "MEMPOOL")


def output_closed(stream: TextIO) -> bool:
    """True when `stream` is a pipe or socket whose reader has gone (poll reports an error or hang-up on it), so
    a launcher piped into `tee` or `head` stops at once, not at its next write."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    try:
        events = poller.poll(0)
    except OSError:
        return False
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events)


LEFT = {0, 1, 3, 7}  # text columns; the others are numbers


def table_rows(testnet: Testnet, statuses: Sequence[dict[str, Any] | None]) -> list[tuple[str, ...]]:
    """The header and one row per node."""
    rows: list[tuple[str, ...]] = [(*COLUMNS, engine_column(testnet.consensus))]
    for record, status in zip(testnet.nodes, statuses, strict=True):
        if status is None:
            rows.append((record.name, record.state, "-", "-", "-", "-", "-", "-"))
            continue
        rows.append((record.name, state_cell(record.state, status), str(status["height"]), str(status["head"])[:12],
                     str(status["final_height"]), str(status["peers"]), str(status["mempool_size"]),
                     engine_cell(testnet.consensus, status)))
    return rows


def _title(testnet: Testnet, uptime_s: float) -> str:
    return (f"testnet {testnet.dir}  chain {testnet.chain_id}  {testnet.consensus}  {testnet.topology}  "
            f"up {int(uptime_s) // 60:02d}:{int(uptime_s) % 60:02d}")


def _footer(load: LoadGenerator | None, web_url: str | None = None) -> list[str]:
    lines = []
    if load is not None:
        counts = load.counts
        lines.append(f"load {load.options.tps:g} tx/s: {counts.submitted} sent, {counts.accepted} accepted, "
                     f"{counts.failed} rejected, {counts.unknown} unknown, {counts.included} included, "
                     f"{counts.final} final ({load.current_tps():.1f} tx/s accepted now)")
    if web_url:
        lines.append(f"dashboard {web_url}")
    lines.append("Ctrl-C stops the testnet")
    return lines


def render(testnet: Testnet, statuses: Sequence[dict[str, Any] | None], *, uptime_s: float,
           load: LoadGenerator | None, web_url: str | None = None) -> str:
    """The table as plain text (for a pipe or a file)."""
    lines = [_title(testnet, uptime_s), *format_rows(table_rows(testnet, statuses), left=LEFT),
             *_footer(load, web_url)]
    return "\n".join(lines)


def render_rich(testnet: Testnet, statuses: Sequence[dict[str, Any] | None], *, uptime_s: float,
                load: LoadGenerator | None, web_url: str | None = None) -> Group:
    """The table for a terminal (rich)."""
    header, *rows = table_rows(testnet, statuses)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for index, name in enumerate(header):
        table.add_column(name, justify="left" if index in LEFT else "right", no_wrap=index != len(header) - 1)
    for row in rows:
        table.add_row(*row, style="dim" if row[1] not in ("running",) and not row[1].startswith("syncing") else None)
    return Group(Text(_title(testnet, uptime_s), style="bold"), table,
                 *(Text(line) for line in _footer(load, web_url)))


def format_rows(rows: Sequence[Sequence[str]], left: set[int]) -> list[str]:
    """Rows as aligned text: columns in `left` are left-aligned, the others (numbers) right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) if i in left else cell.rjust(width)
                      for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]


async def _status(session: aiohttp.ClientSession, record: NodeRecord) -> dict[str, Any] | None:
    if record.state != "running":
        return None
    try:
        async with session.get(record.rpc_url + "/v1/status", timeout=aiohttp.ClientTimeout(total=1.0)) as reply:
            if reply.status != 200:
                return None
            result: dict[str, Any] = json.loads(await reply.read())
            return result
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def foreground(directory: Path, *, load_tps: float | None = None, refresh_s: float = 0.5,
                     out: TextIO | None = None, web_port: int | None = None,
                     on_web: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Show the live table (and run the load, and serve the dashboard on 127.0.0.1:`web_port` unless it is None,
    telling `on_web` its URL) until SIGINT, SIGTERM or SIGHUP, or until its output is closed (a pipe whose reader
    went away: BrokenPipeError is not raised, the table just stops); returns the load summary, if any."""
    stream = out or sys.stdout
    interactive = stream.isatty()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    testnet = load_testnet(directory)
    started = time.monotonic()
    generator: LoadGenerator | None = None
    history: HistoryWriter | None = None
    load_task: asyncio.Task[dict[str, Any]] | None = None
    if load_tps:
        history = HistoryWriter(directory / HISTORY_FILE)
        generator = LoadGenerator(testnet, LoadOptions(tps=load_tps, duration_s=None, settle_timeout_s=0.0),
                                  history)
        load_task = asyncio.ensure_future(generator.run(stop))
    web: DashboardServer | None = None
    web_url: str | None = None
    frame = 0
    live = Live(console=Console(file=stream), auto_refresh=False, transient=False) if interactive else None
    try:
        if web_port is not None:
            web = DashboardServer(directory, port=web_port)
            web_url = await web.start()
            if on_web is not None:
                on_web(f"dashboard: {web_url}")
        if live is not None:
            live.start()
        async with aiohttp.ClientSession(trust_env=False) as session:
            while not stop.is_set():
                if output_closed(stream):
                    break
                testnet = load_testnet(directory)
                statuses = await asyncio.gather(*(_status(session, r) for r in testnet.nodes))
                uptime_s = time.monotonic() - started
                try:
                    if live is not None:
                        live.update(render_rich(testnet, statuses, uptime_s=uptime_s, load=generator,
                                                web_url=web_url), refresh=True)
                    elif frame % 10 == 0:
                        stream.write(render(testnet, statuses, uptime_s=uptime_s, load=generator, web_url=web_url)
                                     + "\n\n")
                        stream.flush()
                except BrokenPipeError:
                    break
                frame += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), refresh_s)
        return await load_task if load_task is not None else None
    finally:
        if live is not None:
            with contextlib.suppress(OSError):  # the terminal may be gone
                live.stop()
        stop.set()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
        if load_task is not None and not load_task.done():
            load_task.cancel()
            await asyncio.gather(load_task, return_exceptions=True)
        if history is not None:
            history.close()
        if web is not None:
            await web.stop()
