"""The testnet dashboard (docs/DASHBOARD.md): one page that shows every node of a testnet.

`chainlab testnet web --dir D` serves it, and so does `chainlab testnet up --foreground` (`make run`), which prints
its URL. The page (testnet/dashboard/, with the explorer's common.js and stylesheet) asks GET /api/state once a
second. A state is built at most once per `refresh_s` however many pages are open, from what the launcher's files say
(testnet.json, events.jsonl, history.jsonl and check.json, each read from where the last read stopped) and from two
small requests per running node (status and tips), plus the blocks of a head not seen yet. testnet/dashview.py
turns all that into the JSON the page draws.

Read-only: the server has no route that changes anything, never sends an admin token (the state is built field by
field, not copied from testnet.json), and listens on the loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from node.rpc import EXPLORER_DIR, EXPLORER_HEADERS
from testnet.cells import engine_cell, state_cell
from testnet.dashview import (
    TREE_HEIGHTS,
    BlockCache,
    EventLog,
    LoadFigures,
    NodeView,
    check_view,
    lines_complete,
    partition_view,
    tree_layout,
)
from testnet.state import CHECK_FILE, EVENTS_FILE, HISTORY_FILE, NodeRecord, Testnet, TestnetError, load_testnet

log = logging.getLogger("chainlab.testnet.dashboard")

DASHBOARD_DIR = Path(__file__).with_name("dashboard")
FILES = {
    "": (DASHBOARD_DIR / "index.html", "text/html"),
    "dashboard.js": (DASHBOARD_DIR / "dashboard.js", "text/javascript"),
    "dashboard.css": (DASHBOARD_DIR / "dashboard.css", "text/css"),
    "common.js": (EXPLORER_DIR / "common.js", "text/javascript"),
    "explorer.css": (EXPLORER_DIR / "explorer.css", "text/css"),
}
REQUEST_TIMEOUT_S = 1.0
MAX_READ_BYTES = 4 << 20  # per file and state: a huge history is taken in steps, not in one read
BRANCH_FETCHES = 30  # side-branch blocks fetched per node and state


class TailReader:
    """Reads what was appended to a file since the last call (complete lines only); starts over when the file was
    replaced by a shorter one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_lines(self) -> list[bytes]:
        """The complete lines appended since the last call ([] when the file does not exist yet)."""
        try:
            with open(self.path, "rb") as source:
                size = source.seek(0, 2)
                if size < self._offset:
                    self._offset, self._partial = 0, b""
                source.seek(self._offset)
                data = source.read(MAX_READ_BYTES)
        except FileNotFoundError:
            return []
        self._offset += len(data)
        lines, self._partial = lines_complete(self._partial + data)
        return [line for line in lines if line.strip()]


def _json_lines(lines: list[bytes]) -> list[dict[str, Any]]:
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line another tool tore or wrote by hand; the checks report it, the dashboard skips it
        if isinstance(record, dict):
            records.append(record)
    return records


class DashboardSource:
    """Builds the dashboard's state of the testnet in `directory`, at most once per `refresh_s`."""

    def __init__(self, directory: Path, *, refresh_s: float = 1.0) -> None:
        self.directory = directory
        self.refresh_s = refresh_s
        self.blocks = BlockCache()
        self.events = EventLog()
        self.load = LoadFigures()
        self._events = TailReader(directory / EVENTS_FILE)
        self._history = TailReader(directory / HISTORY_FILE)
        self._unreachable: dict[str, str] = {}
        self._heights: dict[str, int] = {}  # each node's height at the last state, by RPC URL
        self._last_views: dict[str, NodeView] = {}  # each node's head as last seen, shown while it is down
        self._remembered: dict[str, int] = {}  # heads and tips seen (hash -> height), drawn when since abandoned
        self._state: dict[str, Any] | None = None
        self._built_at = 0.0
        self._lock = asyncio.Lock()
        self.builds = 0

    async def state(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """The current state; pages asking within `refresh_s` of the last build share it."""
        async with self._lock:
            if self._state is None or time.monotonic() - self._built_at >= self.refresh_s:
                self._state = await self._build(session)
                self._built_at = time.monotonic()
                self.builds += 1
            return self._state

    async def _build(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            testnet = load_testnet(self.directory)
        except TestnetError as exc:
            return {"error": {"code": "no-testnet", "message": str(exc)}, "time_ms": int(time.time() * 1000)}
        self.events.feed(_json_lines(self._events.read_lines()))
        for record in _json_lines(self._history.read_lines()):
            self.load.feed(record)
        polled = await asyncio.gather(*(self._poll(session, record) for record in testnet.nodes))
        views = []
        for node, (status, tips, _) in zip(testnet.nodes, polled, strict=True):
            if status is not None:
                self._last_views[node.name] = NodeView(
                    name=node.name, head=str(status["head"]), height=int(status["height"]),
                    final_height=int(status["final_height"]), tips=tips)
            if node.name in self._last_views:  # a node down or not answering: where it was when last seen
                views.append(self._last_views[node.name])
        top = max((view.height for view in views), default=0)
        self.blocks.prune_below(top - 4 * TREE_HEIGHTS)
        tree = tree_layout(self.blocks, views, remembered=self._remembered)
        for view in views:
            self._remembered[view.head] = view.height
            for tip in view.tips:
                if isinstance(tip.get("hash"), str) and isinstance(tip.get("height"), int):
                    self._remembered[tip["hash"]] = tip["height"]
        self._remembered = {h: height for h, height in self._remembered.items() if height > top - TREE_HEIGHTS}
        return {
            "testnet": {"dir": testnet.dir, "chain_id": testnet.chain_id, "consensus": testnet.consensus,
                        "topology": testnet.topology, "nodes": len(testnet.nodes)},
            "time_ms": int(time.time() * 1000),
            "nodes": [self._node_json(testnet, record, status, error)
                      for record, (status, _, error) in zip(testnet.nodes, polled, strict=True)],
            "partition": partition_view([r.name for r in testnet.nodes],
                                        {r.name: r.faults.blocked for r in testnet.nodes},
                                        {r.name: r.faults.netem() for r in testnet.nodes}),
            "tree": tree,
            "events": self.events.to_json(),
            "load": self.load.to_json(time.time_ns()) if self.load.counts["submitted"] else None,
            "check": check_view(self._read_check()),
            "dashboard": {"refresh_s": self.refresh_s, "build_ms": round((time.perf_counter() - started) * 1000, 1)},
        }

    def _node_json(self, testnet: Testnet, record: NodeRecord, status: dict[str, Any] | None,
                   error: str | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "name": record.name, "state": state_cell(record.state, status), "rpc_url": record.rpc_url,
            "explorer": record.rpc_url + "/explorer/" if record.rpc_url else None, "error": error,
            "blocked": sorted(record.faults.blocked), "netem": record.faults.netem(),
        }
        if status is not None:
            row.update(height=status.get("height"), head=status.get("head"), final_height=status.get("final_height"),
                       peers=status.get("peers"), mempool=status.get("mempool_size"),
                       engine=engine_cell(testnet.consensus, status))
        return row

    def _read_check(self) -> dict[str, Any] | None:
        try:
            result = json.loads((self.directory / CHECK_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # no check yet (or one being written): the page says "no check yet"
        return result if isinstance(result, dict) else None

    async def _poll(self, session: aiohttp.ClientSession, record: NodeRecord,
                    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
        """The node's status and tips, and the blocks of its head and side branches not fetched yet; an error
        string instead when it cannot be reached (logged when that starts and when it ends)."""
        if record.state != "running":
            self._reachable(record.name, None)
            return None, [], None
        try:
            status = await self._get(session, record.rpc_url + "/v1/status")
            tips_reply = await self._get(session, record.rpc_url + "/v1/tips")
            tips = [t for t in tips_reply.get("tips", []) if isinstance(t, dict)]
            await self._fetch_blocks(session, record.rpc_url, status, tips)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            error = f"cannot reach {record.rpc_url}: {type(exc).__name__}: {exc}".rstrip(": ")
            self._reachable(record.name, error)
            return None, [], error
        self._reachable(record.name, None)
        return status, tips, None

    def _reachable(self, name: str, error: str | None) -> None:
        before = self._unreachable.get(name)
        if error is not None and before is None:
            log.warning("dashboard: %s: %s", name, error)
            self._unreachable[name] = error
        elif error is None and before is not None:
            log.info("dashboard: %s answers again", name)
            del self._unreachable[name]

    async def _get(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as reply:
            if reply.status != 200:
                raise ValueError(f"HTTP {reply.status} from {url}")
            body = json.loads(await reply.read())
        if not isinstance(body, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return body

    async def _fetch_blocks(self, session: aiohttp.ClientSession, base: str, status: dict[str, Any],
                            tips: list[dict[str, Any]]) -> None:
        head, height = str(status["head"]), int(status["height"])
        bottom = max(0, height - TREE_HEIGHTS + 1)
        if head not in self.blocks:
            seen = self._heights.get(base)
            # Most of the time only the newest block or two are new; a node seen first or far behind: the window.
            low = max(bottom, height - 3) if seen is not None and height - seen <= 3 else bottom
            await self._range(session, base, low, height)
            if low > bottom and not self.blocks.reaches(head, bottom):
                await self._range(session, base, bottom, low - 1)
        fetches = 0
        for tip in tips:
            tip_hash, tip_height = tip.get("hash"), tip.get("height")
            if not isinstance(tip_hash, str) or not isinstance(tip_height, int) or tip_height < bottom:
                continue
            while tip_hash not in self.blocks and fetches < BRANCH_FETCHES:
                ref = self.blocks.add_json(await self._get(session, f"{base}/v1/blocks/{tip_hash}"))
                fetches += 1
                if ref is None or ref.height <= bottom:
                    break
                tip_hash = ref.parent
        self._heights[base] = height

    async def _range(self, session: aiohttp.ClientSession, base: str, low: int, high: int) -> None:
        reply = await self._get(session, f"{base}/v1/blocks?from={low}&limit={high - low + 1}")
        for block in reply.get("blocks", []):
            if isinstance(block, dict):
                self.blocks.add_json(block)


class DashboardServer:
    """Serves the page and its state on `host:port` (port 0: one the OS picks)."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 0, refresh_s: float = 1.0) -> None:
        self.source = DashboardSource(directory, refresh_s=refresh_s)
        self.host = host
        self.port = port
        self._files = {route: (path.read_bytes(), kind) for route, (path, kind) in FILES.items()}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> str:
        """Bind and serve; returns the page's URL."""
        app = web.Application()
        app.router.add_get("/api/state", self._api_state, allow_head=False)
        app.router.add_get("/favicon.ico", self._no_icon, allow_head=False)
        app.router.add_get("/", self._file, allow_head=False)
        app.router.add_get("/{file}", self._file, allow_head=False)
        self._session = aiohttp.ClientSession(trust_env=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise TestnetError(f"the dashboard cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
                               ) from None
        self.port = int(self._runner.addresses[0][1])
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}/"
        return self.url

    async def stop(self) -> None:
        """Stop serving and close the node connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _api_state(self, request: web.Request) -> web.Response:
        assert self._session is not None
        state = await self.source.state(self._session)
        return web.Response(text=json.dumps(state), content_type="application/json",
                            headers={**EXPLORER_HEADERS, "Cache-Control": "no-store"})

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _file(self, request: web.Request) -> web.Response:
        entry = self._files.get(request.match_info.get("file", ""))
        if entry is None:
            return web.Response(status=404, text=json.dumps({"error": {"code": "not-found", "message":
                                                                       f"no {request.path} here"}}),
                                content_type="application/json")
        body, kind = entry
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=EXPLORER_HEADERS)


async def serve(directory: Path, *, host: str, port: int, on_ready: Callable[[str], None],
                refresh_s: float = 1.0) -> None:
    """`chainlab testnet web`: serve until SIGINT, SIGTERM or SIGHUP."""
    load_testnet(directory)  # a directory that is not a testnet's is refused before anything listens
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    server = DashboardServer(directory, host=host, port=port, refresh_s=refresh_s)
    try:
        on_ready(await server.start())
        await stop.wait()
    finally:
        await server.stop()
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
