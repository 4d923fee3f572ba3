"""Follow one node's best chain through its event stream and report when transactions are included and final.

The observer subscribes to `GET /v1/events` of a node, keeps the best chain's hash per height and each block's
transaction list, and calls back when a watched transaction first appears in a best-chain block and when the
block holding it becomes final. A reorg forgets the disconnected blocks (their transactions must be included
again to count as final). When the stream breaks, the node stops answering, or the node says this subscriber
lost events, the observer moves to the next node and re-reads the chain from the last final height it knew, so
nothing between the two streams is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger("chainlab.testnet.observer")

MONITOR_INTERVAL_S = 2.0
SWITCH_LEAD = 2  # blocks another node must be ahead before the observer moves to it


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """A node the observer may follow."""

    name: str
    rpc_url: str


# (tx hash, node name, height, block hash, time_ns)
Sighting = Callable[[str, str, int, str, int], None]


class ChainObserver:
    """Watches the best chain of the nodes in `endpoints` (one at a time, in order of preference)."""

    def __init__(self, session: aiohttp.ClientSession, endpoints: Sequence[Endpoint], *,
                 is_watched: Callable[[str], bool], on_included: Sighting, on_final: Sighting,
                 on_unincluded: Callable[[str], None]) -> None:
        self.session = session
        self.endpoints = list(endpoints)
        self.is_watched = is_watched
        self.on_included = on_included
        self.on_final = on_final
        self.on_unincluded = on_unincluded
        self.hash_at: dict[int, str] = {}
        self.block_txs: dict[str, list[str]] = {}
        self.final_height: int | None = None  # the final height processed so far (None: not started)
        self.tip_height = 0
        self.current: Endpoint | None = None
        self.switches = 0
        self.heights: dict[str, int] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the node with the best chain until `stop` is set; switch when another node gets ahead by
        SWITCH_LEAD blocks (ours may be on the minority side of a partition) or ours stops answering."""
        while not stop.is_set():
            endpoint = self._choose()
            self.current = endpoint
            follow = asyncio.ensure_future(self._follow(endpoint, stop))
            monitor = asyncio.ensure_future(self._monitor(endpoint, stop))
            done, pending = await asyncio.wait({follow, monitor}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if follow in done and follow.exception() is not None:
                log.debug("observer lost %s: %s", endpoint.name, follow.exception())
                self.heights[endpoint.name] = -1
            if not stop.is_set():
                self.switches += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.3)

    def _choose(self) -> Endpoint:
        """The endpoint with the highest known tip (the first one at the start)."""
        return max(self.endpoints, key=lambda e: (self.heights.get(e.name, 0), -self.endpoints.index(e)))

    async def _monitor(self, current: Endpoint, stop: asyncio.Event) -> None:
        """Return when another node is SWITCH_LEAD blocks ahead of `current`, or `current` stops answering."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MONITOR_INTERVAL_S)
                return
            heights = await asyncio.gather(*(self._height(e) for e in self.endpoints))
            self.heights.update({e.name: h for e, h in zip(self.endpoints, heights, strict=True)})
            mine = self.heights.get(current.name, -1)
            if mine < 0 or max(heights) >= mine + SWITCH_LEAD:
                return

    async def _height(self, endpoint: Endpoint) -> int:
        try:
            status = await self._get_json(endpoint, "/v1/status", timeout_s=1.0)
            return int(status["height"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            return -1

    async def _follow(self, endpoint: Endpoint, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=3, sock_read=20)
        async with self.session.get(endpoint.rpc_url + "/v1/events", timeout=timeout) as stream:
            if stream.status != 200:
                raise ValueError(f"events: HTTP {stream.status}")
            await self.resync(endpoint)
            while not stop.is_set():
                try:  # a bounded wait per line, so `stop` is noticed within a second
                    line = await asyncio.wait_for(stream.content.readline(), 1.0)
                except TimeoutError:
                    continue
                if not line:
                    raise ValueError("the node ended the event stream")
                if line.startswith(b"data:"):
                    await self._on_event(endpoint, json.loads(line[5:]))

    async def _on_event(self, endpoint: Endpoint, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "block":
            time_ms = event.get("time_ms")
            seen_ns = int(time_ms) * 1_000_000 if isinstance(time_ms, int) else time.time_ns()
            block = await self._get_json(endpoint, f"/v1/blocks/{event['hash']}")
            self.apply_block(endpoint.name, int(block["height"]), str(block["hash"]), list(block["txs"]), seen_ns)
        elif kind == "reorg":
            for block_hash in event.get("disconnected", []):
                self._forget(str(block_hash))
        elif kind == "final":
            await self.advance_final(endpoint, int(event["height"]))
        elif kind == "dropped":
            await self.resync(endpoint)

    def apply_block(self, node: str, height: int, block_hash: str, txs: list[str], seen_ns: int) -> None:
        """A block is now on the best chain at `height` (higher heights from an older branch are dropped)."""
        for stale in [h for h in self.hash_at if h >= height]:
            if self.hash_at[stale] != block_hash or stale > height:
                self._forget(self.hash_at[stale])
        self.hash_at[height] = block_hash
        self.block_txs[block_hash] = txs
        self.tip_height = height
        for tx_hash in txs:
            if self.is_watched(tx_hash):
                self.on_included(tx_hash, node, height, block_hash, seen_ns)

    def _forget(self, block_hash: str) -> None:
        for height in [h for h, known in self.hash_at.items() if known == block_hash]:
            del self.hash_at[height]
        for tx_hash in self.block_txs.pop(block_hash, []):
            if self.is_watched(tx_hash):
                self.on_unincluded(tx_hash)

    async def advance_final(self, endpoint: Endpoint, final_height: int) -> None:
        """Everything up to `final_height` is final: report the watched transactions of those blocks."""
        start = 0 if self.final_height is None else self.final_height + 1
        for height in range(start, final_height + 1):
            block_hash = self.hash_at.get(height)
            if block_hash is None or block_hash not in self.block_txs:
                block = await self._get_json(endpoint, f"/v1/blocks/{height}")
                block_hash = str(block["hash"])
                self.apply_block(endpoint.name, height, block_hash, list(block["txs"]), time.time_ns())
            now_ns = time.time_ns()
            for tx_hash in self.block_txs.get(block_hash, []):
                if self.is_watched(tx_hash):
                    self.on_final(tx_hash, endpoint.name, height, block_hash, now_ns)
            self.final_height = height
        # final blocks are settled: keep memory bounded
        for height in [h for h in self.hash_at if h < final_height - 2]:
            self.block_txs.pop(self.hash_at.pop(height), None)

    async def resync(self, endpoint: Endpoint) -> None:
        """Re-read the node's best chain from our last final height to its tip, then its final height."""
        status = await self._get_json(endpoint, "/v1/status")
        tip, final = int(status["height"]), int(status["final_height"])
        if self.final_height is None:
            self.final_height = final  # start: blocks already final before we came are not ours to report
        start = min(self.final_height + 1, tip + 1)
        for stale in [h for h in self.hash_at if h > tip]:
            self._forget(self.hash_at[stale])
        height = start
        while height <= tip:
            page = await self._get_json(endpoint, f"/v1/blocks?from={height}&limit=100")
            blocks = page["blocks"]
            if not blocks:
                break
            for block in blocks:
                block_height, block_hash = int(block["height"]), str(block["hash"])
                if self.hash_at.get(block_height) != block_hash:
                    self.apply_block(endpoint.name, block_height, block_hash, list(block["txs"]), time.time_ns())
                height = block_height + 1
        await self.advance_final(endpoint, final)

    async def _get_json(self, endpoint: Endpoint, path: str, timeout_s: float = 10.0) -> Any:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self.session.get(endpoint.rpc_url + path, timeout=timeout) as reply:
            body = await reply.read()
            if reply.status != 200:
                raise ValueError(f"GET {path}: HTTP {reply.status}")
            return json.loads(body)
