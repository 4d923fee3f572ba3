"""One websocket connection to a peer: the socket, its protocol session and a scheduled, bounded send queue.

Writes go through a per-connection queue drained by its own writer task, so a slow peer only ever blocks its own
writer; when the queue passes its frame or byte bound the service drops the peer (`send-queue-full`).

Each queued frame carries a due time (now + the fault delay for that frame, zero without faults) and the writer
sends frames in due-time order, ties in queue order. With a fixed delay every frame is late by the same amount, so
the per-peer order is kept and throughput does not suffer: frames are delayed, not serialized behind each other's
delays. With jitter, due times can cross and frames are reordered, as netem reorders them.

Once the session is ready (`bundling`), the frames that are due together leave as one `Bundle` message, in queue
order: a GetData for fifty transactions is answered with one websocket message instead of fifty. On loopback a
send is a system call that runs the receiver's TCP path too, so a node under load spends far less per frame;
nothing waits for a bundle to fill (only what is already due goes), so no latency is added.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp

from p2p.protocol.codec import encode_frame
from p2p.protocol.limits import RateLimiter
from p2p.protocol.messages import MAX_BUNDLE_FRAMES, Bundle
from p2p.protocol.session import PeerSession

log = logging.getLogger("chainlab.p2p")

CLOSE_TIMEOUT_S = 2.0
BUNDLE_MAX_BYTES = 256 * 1024  # frames due together are bundled up to this size (far below any frame limit)


class WebSocket(Protocol):
    """What we use of aiohttp's server and client websockets."""

    @property
    def closed(self) -> bool:
        """True once closing started."""

    async def send_bytes(self, data: bytes) -> None:
        """Send one binary frame."""

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:
        """Next message."""

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool:
        """Close the websocket."""


class Connection:
    """A peer connection: websocket, session, rate limiter and send queue (the service drives it)."""

    _ids = itertools.count(1)

    def __init__(
        self, ws: WebSocket, *, session: PeerSession, limiter: RateLimiter, outbound: bool, url: str,
        max_queue_frames: int, max_queue_bytes: int, remote_ip: str = "",
    ) -> None:
        self.id = next(self._ids)
        self.remote_ip = remote_ip  # the socket's remote address (inbound): what the peer cannot choose
        self.last_block_at: float | None = None  # when it last delivered a block we did not have (eviction)
        self.last_tx_at: float | None = None  # when it last delivered a transaction we did not have
        self.ws = ws
        self.session = session
        self.limiter = limiter
        self.outbound = outbound
        self.url = url  # dialed URL (outbound) or the peer's advertised listen URL (inbound, once known)
        self.peer: str | None = None  # hex node id once proven by the handshake and admitted
        self.closing = False
        self.forgotten = False
        self.max_queue_frames = max_queue_frames
        self.max_queue_bytes = max_queue_bytes
        self._queue: list[tuple[float, int, bytes]] = []
        self._queued_bytes = 0
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.bundling = False  # set once both sides speak the session's protocol (after the handshake)
        self.bundles_sent = 0

    @property
    def direction(self) -> str:
        """`outbound` when we dialed, else `inbound`."""
        return "outbound" if self.outbound else "inbound"

    def label(self) -> str:
        """Short name for logs."""
        who = self.peer[:16] if self.peer else (self.url or "?")
        return f"{self.direction} #{self.id} {who}"

    def start(self) -> None:
        """Start the writer task."""
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=f"p2p-writer-{self.id}")

    def enqueue(self, frame: bytes, delays: Sequence[float] = (0.0,)) -> bool:
        """Queue `frame` once per delay (seconds from now). False, queuing nothing, when over the bounds."""
        if len(self._queue) + len(delays) > self.max_queue_frames or (
            self._queued_bytes + len(frame) * len(delays) > self.max_queue_bytes
        ):
            return False
        now = asyncio.get_running_loop().time()
        for delay in delays:
            heapq.heappush(self._queue, (now + delay, next(self._seq), frame))
            self._queued_bytes += len(frame)
        self._wakeup.set()
        return True

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                due, _, frame = self._queue[0]
                wait_s = due - loop.time()
                if wait_s > 0:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), wait_s)  # an earlier frame may arrive
                    continue
                heapq.heappop(self._queue)
                self._queued_bytes -= len(frame)
                if self.bundling and self._queue and self._queue[0][0] <= loop.time():
                    frame = self._bundle(frame, loop.time())
                await self.ws.send_bytes(frame)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            # The socket went away under us; the reader sees the close and the service cleans up.
            log.debug("%s: send failed: %s", self.label(), exc)
            self.closing = True
            self._writer = None  # this task ends here; closing must not wait for it
            self.close_soon()

    def _bundle(self, first: bytes, now: float) -> bytes:
        """`first` and the frames due behind it, as one Bundle frame (or `first` alone if none fits)."""
        frames = [first]
        size = len(first)
        queue = self._queue
        while queue and queue[0][0] <= now and len(frames) < MAX_BUNDLE_FRAMES:
            frame = queue[0][2]
            if size + len(frame) > BUNDLE_MAX_BYTES:
                break
            heapq.heappop(queue)
            self._queued_bytes -= len(frame)
            frames.append(frame)
            size += len(frame)
        if len(frames) == 1:
            return first
        self.bundles_sent += 1
        return encode_frame(Bundle(frames=tuple(frames)))

    def close_soon(self, final_frame: bytes | None = None) -> asyncio.Task[None]:
        """Start closing (once: later calls return the same task): stop writing, dropping queued frames, send
        `final_frame` if any, and close the socket."""
        self.closing = True
        if self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(self._close(final_frame), name=f"p2p-close-{self.id}")
        return self._closer

    async def close(self, final_frame: bytes | None = None) -> None:
        """Close (see `close_soon`) and wait until the socket is closed."""
        await asyncio.shield(self.close_soon(final_frame))

    async def _close(self, final_frame: bytes | None) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if final_frame is not None and not self.ws.closed:
            try:
                await asyncio.wait_for(self.ws.send_bytes(final_frame), CLOSE_TIMEOUT_S)
            except (ConnectionError, aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
                log.debug("%s: could not send the final frame: %s", self.label(), exc)
        await self._close_socket()

    async def _close_socket(self) -> None:
        if self.ws.closed:
            return
        try:
            await asyncio.wait_for(self.ws.close(), CLOSE_TIMEOUT_S)
        except (ConnectionError, aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
            log.debug("%s: close: %s", self.label(), exc)

    def queued(self) -> dict[str, Any]:
        """Queue depth (frames, bytes) for the admin view."""
        return {"frames": len(self._queue), "bytes": self._queued_bytes, "bundles_sent": self.bundles_sent}
