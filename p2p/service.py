"""The P2P service: the protocol core of p2p/protocol driven over aiohttp websockets.

One `P2PService` per node. It serves websockets on `/p2p`, dials bootstrap and learnt peers, and runs one reader
per connection, one writer per connection (p2p/transport.py), one importer that awaits the chain's block and
transaction admission in arrival order, and one maintenance timer (pings, timeouts, fetch retries, sync, dials).
All bookkeeping lives in the pure objects of p2p/protocol; this module moves bytes, reads the clock and awaits.
See docs/P2P.md for the protocol, the gossip and sync algorithms, the misbehaviour table and the fault hooks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from chain import crypto
from chain.block import Block
from chain.crypto import PrivateKey
from chain.errors import RejectError, RelayedRejectError
from p2p.config import BlockVerdict, ChainAccess, P2PConfig
from p2p.importer import Importer, ImportHooks
from p2p.listener import ListenerGuard
from p2p.protocol.codec import FrameError, encode_frame, split_frames
from p2p.protocol.faults import NO_FAULTS, FaultConfig
from p2p.protocol.limits import (
    LogLimiter,
    Penalty,
    RateLimiter,
    Scoreboard,
    connection_penalty,
    engine_penalty,
)
from p2p.protocol.messages import (
    MAX_PEER_URLS,
    EngineMsg,
    GetPeers,
    Hello,
    Message,
    Peers,
)
from p2p.protocol.metrics import P2PMetrics
from p2p.protocol.peers import AddressBook, PeerActivity, PeerBook
from p2p.protocol.relay import RELAY_MESSAGES, Action, BatchJob, BlockJob, Job, Punish, Relay, Send, Submit, TxJob
from p2p.protocol.session import (
    Event,
    HandshakeComplete,
    HelloReceived,
    MessageReceived,
    PeerClosed,
    PeerSession,
    Reply,
)
from p2p.tracing import WireTracer
from p2p.transport import CLOSE_TIMEOUT_S, Connection, WebSocket

__all__ = ["BlockVerdict", "ChainAccess", "FaultConfig", "P2PConfig", "P2PService"]

log = logging.getLogger("chainlab.p2p")

DIAL_WARNING_S = 60.0  # a failing address is logged at WARNING at most this often (debug otherwise)

P2P_PATH = "/p2p"
SEND_QUEUE_FRAMES = 4_096
MAX_KNOWN_URLS = 1_000
LOG_INTERVAL_S = 10.0  # a repeated fault of one peer (or a repeated engine bug) is logged once per interval


class P2PService:
    """A node's P2P endpoint: handshakes, gossip, sync, peer exchange, limits, bans and fault injection.

    Pass `rng=random.SystemRandom()` in production: handshake challenges come from it and must be unpredictable;
    tests and the simulator pass a seeded `random.Random`.
    """

    def __init__(
        self, config: P2PConfig, identity: PrivateKey, chain: ChainAccess, *, rng: random.Random,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.identity = identity
        self.chain = chain
        self.node_id = identity.public_key.hex()
        self.metrics = P2PMetrics()
        self.tracer: WireTracer | None = None  # set by a node that traces (p2p/tracing.py)
        self.faults: FaultConfig = NO_FAULTS
        self.port = 0
        self.url = ""
        self._rng = rng
        self._now = now
        self._book = PeerBook(our_id=self.node_id, max_peers=config.max_peers, outbound_slots=config.outbound_slots,
                              max_inbound_per_ip=config.max_inbound_per_ip)
        self._log_limiter = LogLimiter(interval_s=LOG_INTERVAL_S)
        self._addresses = AddressBook(backoff_min_s=config.reconnect_min_s, backoff_max_s=config.reconnect_max_s)
        self._scores = Scoreboard(ban_s=config.ban_s)
        # Every relay, sync and import decision is the pure core's (p2p/protocol/relay.py, shared with the
        # simulator); this service carries out its actions.
        self._relay = Relay(chain, peer_timeout_s=config.peer_timeout_s, max_message_bytes=config.max_message_bytes)
        self._sync = self._relay.sync
        self._flush_scheduled = False
        self._connections: dict[int, Connection] = {}
        self._ready: dict[str, Connection] = {}  # peer (hex node id) -> its READY connection
        self._peer_of_address: dict[bytes, str] = {}  # address of a ready peer's node key -> the peer
        self._dialing: set[str] = set()
        self._last_refusal: dict[str, str] = {}  # dialed URL -> why its connection ended before the handshake
        self._node_of_url: OrderedDict[str, str] = OrderedDict()  # the node id last met at a URL (bounded)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._importer: Importer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.listener = ListenerGuard("p2p", config.socket_limits)  # TCP-level caps and header deadline
        self._client: aiohttp.ClientSession | None = None
        self._running = False
        self._tick_s = min(0.1, config.ping_interval_s / 4, config.reconnect_min_s / 2)
        # aiohttp's own cap (it refuses sizes >= its limit) sits a little above ours, which the decoder checks
        # exactly; frames beyond both are cut off by aiohttp and count as oversize all the same.
        self._ws_limit = config.max_message_bytes + 1024

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listening socket (then `port` and `url` are set), start dialing and the timers."""
        if self._running:
            raise RuntimeError("P2PService already started")
        self._loop = asyncio.get_running_loop()
        self._importer = Importer(self.chain, self._relay, self.metrics, ImportHooks(
            act=self._act, is_banned=lambda peer: self._scores.is_banned(peer, self._now()),
        ), now=self._now)
        app = web.Application()
        app.router.add_get(P2P_PATH, self._accept)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=CLOSE_TIMEOUT_S,
                                     keepalive_timeout=self.config.socket_limits.idle_timeout_s)
        await self._runner.setup()
        self.listener.install(self._runner)
        site = web.TCPSite(self._runner, self.config.listen_host, self.config.listen_port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.url = self.config.advertise_url or f"ws://{self.config.listen_host}:{self.port}{P2P_PATH}"
        self._addresses.forget(self.url, forever=True)
        now = self._now()
        for url in self.config.bootstrap:
            self._addresses.add(url, now, persistent=True)
        self._client = aiohttp.ClientSession()
        self._running = True
        self._spawn(self._importer.run(), "p2p-importer")
        self._spawn(self._maintain_loop(), "p2p-maintenance")
        log.info("p2p listening on %s as %s", self.url, self.node_id[:16])

    async def stop(self) -> None:
        """Say goodbye to every peer, close every connection and task, release the port."""
        if not self._running:
            return
        self._running = False
        for conn in list(self._connections.values()):
            self._disconnect(conn, "shutdown", "node stopping")
        for task in list(self._tasks):
            if task.get_name() in ("p2p-importer", "p2p-maintenance") or task.get_name().startswith("p2p-dial"):
                task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        self._connections.clear()
        self._ready.clear()
        self._peer_of_address.clear()
        log.info("p2p stopped (%s)", self.url)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        assert self._loop is not None, "the service is not started"
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("p2p task %s failed", task.get_name(), exc_info=task.exception())

    # -- public API ----------------------------------------------------------------------------------------------

    def announce_tx(self, tx_hash: bytes, exclude: str | None = None, address: bytes | None = None) -> None:
        """Announce a transaction (by hash) to every ready peer not known to have it, except `exclude` (announcements
        made during one event-loop iteration leave together, one Inv per peer); with `address`, to the ready peer
        whose node key has that address alone, when there is one."""
        self._relay.announce_tx(tx_hash, exclude, only=self._peer_of_address.get(address) if address else None)
        self._schedule_flush()

    def announce_block(self, block: Block, exclude: str | None = None) -> None:
        """Push a block to every ready peer not known to have it, except `exclude`."""
        self._act(self._relay.announce_block(block, exclude))

    def send_engine(self, kind: str, payload: bytes, to: str | None = None, exclude: str | None = None,
                    address: bytes | None = None) -> None:
        """Send a consensus-engine payload to peer `to`; or to the ready peer whose node key has `address`, when
        there is one; or to every ready peer but `exclude`."""
        frame = encode_frame(EngineMsg(kind=kind, payload=payload))
        if to is None and address is not None:
            to = self._peer_of_address.get(address)
        if to is not None:
            conn = self._ready.get(to)
            if conn is None:
                self.metrics.frames_dropped["no-such-peer"] += 1
                return
            self._send(conn, frame, "EngineMsg")
            return
        for peer, conn in list(self._ready.items()):
            if peer != exclude:
                self._send(conn, frame, "EngineMsg")

    def connect(self, url: str) -> None:
        """Add a peer address to keep connected to (admin API); dialed at the next timer tick."""
        if not self._addresses.add(url, self._now(), persistent=True) and url not in self._addresses:
            raise ValueError(f"not a peer URL we can dial: {url!r}")
        self._addresses.reset_backoff(self._now())

    def remove(self, target: str) -> list[str]:
        """Stop keeping `target` (a peer URL or node id) connected (admin API, as bitcoin-cli's `addnode remove`):
        forget the address and end its connections with code `removed`; the node ids disconnected. ValueError
        when no known address or connection matches. The peer may still connect again on its own."""
        known = target in self._addresses
        self._addresses.forget(target)
        dropped: list[str] = []
        for conn in list(self._connections.values()):
            if conn.url == target or (conn.peer is not None and conn.peer == target):
                if conn.peer is not None:
                    dropped.append(conn.peer)
                self._disconnect(conn, "removed", "removed by the admin API")
        if not known and not dropped:
            raise ValueError(f"no peer address or connected peer {target!r}")
        return dropped

    def peers(self) -> list[dict[str, object]]:
        """Ready peers: node id, url, direction, rtt_ms, best_height, score, connected_s."""
        now = self._now()
        rows: list[dict[str, object]] = []
        for peer, conn in sorted(self._ready.items()):
            session = conn.session
            rows.append({
                "node_id": peer,
                "url": conn.url,
                "direction": conn.direction,
                "rtt_ms": round(session.rtt_s * 1000, 3) if session.rtt_s is not None else None,
                "best_height": self._sync.peer_height(peer),
                "score": self._scores.score(peer),
                "connected_s": round(now - (session.ready_at or now), 3),
                "user_agent": session.peer_hello.user_agent if session.peer_hello else "",
            })
        return rows

    def configured_peers(self) -> list[dict[str, object]]:
        """Each configured peer address (bootstrap, or added through the admin API) with its state: `connected`
        (node_id given), `connecting`, `waiting` (backing off after `failures` failed dials; `last_error` says why)
        or `banned`."""
        now = self._now()
        ready_at = {conn.url: peer for peer, conn in self._ready.items() if conn.url}
        rows = self._addresses.persistent_rows(now)
        for row in rows:
            url = str(row["url"])
            if url in ready_at:
                row["state"], row["node_id"] = "connected", ready_at[url]
            elif not self._may_dial(url, now):
                row["state"], row["node_id"] = "banned", self._node_of_url.get(url)
            elif url in self._dialing:
                row["state"], row["node_id"] = "connecting", None
            else:
                row["state"], row["node_id"] = "waiting", None
        return rows

    def peer_ids(self) -> frozenset[str]:
        """The node ids of the ready peers (what `peers()` lists, without building its rows: asked every tick)."""
        return frozenset(self._ready)

    def is_banned(self, key: str) -> bool:
        """True while a node id (hex) or URL is banned."""
        return self._scores.is_banned(key, self._now())

    @property
    def syncing(self) -> bool:
        """True while a batch is in flight or being imported, or a peer is ahead of us (and of what we fetched)."""
        importing = self._importer is not None and self._importer.batches > 0
        return importing or self._sync.active(self.chain.best_height())

    @property
    def sync_progress(self) -> tuple[int, int]:
        """(our height, the best height a peer claims)."""
        height = self.chain.best_height()
        return height, max(height, self._sync.target_height())

    @property
    def sync_pause_height(self) -> int:
        """The best height claimed by a peer that delivered a valid block on its connection: what the node may
        pause mining for (a claim alone pauses nothing; docs/P2P.md, "Height claims")."""
        return self._sync.pause_height(self._now())

    def set_faults(self, faults: FaultConfig) -> None:
        """Apply fault injection (see FaultConfig); blocked peers are disconnected now, unblocked ones redialed."""
        previous, self.faults = self.faults, faults
        for conn in list(self._connections.values()):
            if faults.blocks(conn.peer or conn.session.peer_id, conn.url):
                self._disconnect(conn, "blocked", "blocked by fault injection", send=False)
        if previous.blocked_peers - faults.blocked_peers:
            self._addresses.reset_backoff(self._now())

    # -- connections ---------------------------------------------------------------------------------------------

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        if not self._running:
            return web.Response(status=503, text="stopping")
        if len(self._connections) >= 2 * self.config.max_peers:
            # Connections still in their handshake count too, so a flood of idle sockets cannot pile up.
            return web.Response(status=503, text="too many connections")
        remote_ip = request.remote or ""
        address = self._address_key(outbound=False, url="", remote_ip=remote_ip)
        if address is not None and self._scores.is_banned(address, self._now()):
            return web.Response(status=403, text="banned")
        ws = web.WebSocketResponse(max_msg_size=self._ws_limit, compress=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        await self._serve(ws, outbound=False, url="", remote_ip=remote_ip)
        return ws

    def _address_key(self, *, outbound: bool, url: str, remote_ip: str) -> str | None:
        """What a connection's faults are charged to before its node id is proven: the URL we dialed, or the
        inbound socket's remote address (not the listen_url it claims); None when there is nothing to charge
        (loopback, unless `loopback_address_limits`: every local node shares that address)."""
        if outbound:
            return url or None
        if not remote_ip or not self._limits_apply(remote_ip):
            return None
        return f"ip:{remote_ip}"

    def _limits_apply(self, remote_ip: str) -> bool:
        """True when per-address limits and bans apply to `remote_ip`."""
        if self.config.loopback_address_limits:
            return True
        try:
            return not ipaddress.ip_address(remote_ip).is_loopback
        except ValueError:
            return True

    def _start_dial(self, url: str) -> None:
        self._dialing.add(url)
        self._addresses.dial_started(url)
        self._spawn(self._dial(url), f"p2p-dial {url}")

    async def _dial(self, url: str) -> None:
        assert self._client is not None
        self.metrics.dials += 1
        try:
            try:
                ws = await asyncio.wait_for(
                    self._client.ws_connect(url, max_msg_size=self._ws_limit, autoping=True,
                                            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S)),
                    self.config.peer_timeout_s,
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self._dial_failed(url, _dial_error(exc))
                return
            handshaken = await self._serve(ws, outbound=True, url=url)
            if handshaken:
                self._addresses.disconnected(url, self._now(), self._rng)
            else:
                why = self._last_refusal.pop(url, "no reason")
                self._dial_failed(url, f"closed before the handshake completed ({why})")
        finally:
            self._dialing.discard(url)

    def _dial_failed(self, url: str, reason: str) -> None:
        """Back off from `url`, remember why, and say so at WARNING (once per DIAL_WARNING_S per address)."""
        self.metrics.dial_failures += 1
        now = self._now()
        delay = self._addresses.failed(url, now, self._rng, reason)
        warn, held = self._addresses.should_warn(url, now, DIAL_WARNING_S)
        if warn:
            also = f"; {held} more failure(s) since the last warning" if held else ""
            log.warning("cannot reach peer %s: %s (next try in %.1fs%s)", url, reason, delay, also)
        else:
            log.debug("dial %s failed (%s); next try in %.2fs", url, reason, delay)

    async def _serve(self, ws: WebSocket, *, outbound: bool, url: str, remote_ip: str = "") -> bool:
        """Run one connection until it closes; True when its handshake completed."""
        now = self._now()
        session = PeerSession(
            identity=self.identity, chain_id=self.chain.chain_id, genesis_hash=self.chain.genesis_hash,
            outbound=outbound, rng=self._rng, now=now, best_height=self.chain.best_height(), listen_url=self.url,
            max_message_bytes=self.config.max_message_bytes,
        )
        limiter = RateLimiter(messages_per_s=self.config.rate_messages_per_s, bytes_per_s=self.config.rate_bytes_per_s,
                              max_message_bytes=self.config.max_message_bytes, now=now)
        conn = Connection(ws, session=session, limiter=limiter, outbound=outbound, url=url,
                          max_queue_frames=SEND_QUEUE_FRAMES, max_queue_bytes=4 * self.config.max_message_bytes,
                          remote_ip=remote_ip)
        self._connections[conn.id] = conn
        conn.start()
        if outbound:
            self._send(conn, session.start(), "Hello", handshake=True)
        try:
            await self._read_loop(conn)
        except (ConnectionError, aiohttp.ClientError) as exc:
            log.debug("%s: connection lost: %s", conn.label(), exc)
        finally:
            if not conn.closing:
                self._disconnect(conn, "closed", "connection closed", send=False)
            await conn.close()
        return session.ready_at is not None

    async def _read_loop(self, conn: Connection) -> None:
        while not conn.closing:
            msg = await conn.ws.receive()
            if msg.type is WSMsgType.BINARY:
                self._on_frame(conn, msg.data)
            elif msg.type is WSMsgType.TEXT:
                self._fault(conn, "malformed", "text frame")
            elif msg.type is WSMsgType.ERROR:
                error = msg.data
                if isinstance(error, aiohttp.WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
                    self._fault(conn, "oversize", str(error))
                else:
                    log.debug("%s: websocket error: %s", conn.label(), error)
                return
            else:  # CLOSE, CLOSING, CLOSED
                return

    def _disconnect(self, conn: Connection, code: str, message: str, *, send: bool = True) -> None:
        """End `conn` now: bookkeeping at once, the goodbye (unless `send` is False) and the close in a task."""
        if conn.closing:
            return
        conn.closing = True
        self.metrics.disconnects[code] += 1
        if conn.outbound and conn.url and conn.session.ready_at is None:
            self._last_refusal[conn.url] = f"{code}: {message}"  # read by _dial, which pops it
        log.info("disconnect %s: %s %s", conn.label(), code, message)
        frame = conn.session.close(code, message) if send else None
        self._forget(conn)
        closer = conn.close_soon(frame)
        self._tasks.add(closer)
        closer.add_done_callback(self._task_done)

    def _forget(self, conn: Connection) -> None:
        if conn.forgotten:
            return
        conn.forgotten = True
        self._connections.pop(conn.id, None)
        self._book.remove(conn.id)
        if conn.url and conn.url in self._addresses and conn.session.ready_at is not None and not conn.outbound:
            self._addresses.disconnected(conn.url, self._now(), self._rng)
        peer = conn.peer
        if peer is not None and self._ready.get(peer) is conn:
            del self._ready[peer]
            self._peer_of_address = {a: p for a, p in self._peer_of_address.items() if p != peer}
            self._act(self._relay.peer_down(peer, self._now()))

    # -- sending -------------------------------------------------------------------------------------------------

    def _send(self, conn: Connection, frame: bytes, kind: str, *, handshake: bool = False) -> None:
        if conn.closing:
            return
        if handshake:
            delays: tuple[float, ...] = (0.0,)
        elif self.faults.blocks(conn.peer, conn.url):
            self.metrics.frames_dropped["blocked"] += 1
            return
        else:
            delays = self.faults.plan(self._rng, conn.peer)
            if not delays:
                self.metrics.frames_dropped["loss"] += 1
                return
        if not conn.enqueue(frame, delays):
            self._disconnect(conn, "send-queue-full", "peer does not read fast enough")
            return
        self.metrics.messages_out[kind] += len(delays)
        self.metrics.bytes_out += len(frame) * len(delays)

    def _send_message(self, conn: Connection, message: Message) -> None:
        if not conn.closing:
            frame = conn.session.send(message)
            if self.tracer is not None and conn.peer is not None:
                frame = self.tracer.stamp(conn.peer, message, frame)
            self._send(conn, frame, message.name)

    def _send_to(self, peer: str, message: Message) -> None:
        conn = self._ready.get(peer)
        if conn is not None:
            self._send_message(conn, message)

    def want_blocks(self, peer: str, hashes: list[bytes]) -> None:
        """Fetch blocks by hash from `peer` (the node learnt of them from its engine, not an announcement)."""
        if peer in self._ready:
            self._act(self._relay.want_blocks(peer, hashes, self._now()))

    def _act(self, actions: list[Action]) -> None:
        """Carry out the relay core's actions, in order."""
        for action in actions:
            if isinstance(action, Send):
                self._send_to(action.peer, action.message)
            elif isinstance(action, Punish):
                self._punish(None, action.peer, action.penalty, action.code, action.reason)
            else:
                self._import(action.job)
        if self._relay.announcements_pending:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_announcements)

    def _flush_announcements(self) -> None:
        self._flush_scheduled = False
        for action in self._relay.take_announcements():
            if isinstance(action, Send):
                self._send_to(action.peer, action.message)

    # -- receiving -----------------------------------------------------------------------------------------------

    def _on_frame(self, conn: Connection, data: bytes) -> None:
        try:
            frames = split_frames(data, self.config.max_message_bytes)
        except FrameError as error:
            self.metrics.bytes_in += len(data)
            self._fault(conn, error.code, error.message)
            return
        if len(frames) == 1:
            self._on_one_frame(conn, data)
            return
        # Frames that left the peer together (a Bundle): each rate-limited and handled as if it had come alone.
        self.metrics.messages_in["Bundle"] += 1
        self.metrics.bytes_in += len(data) - sum(len(frame) for frame in frames)
        for frame in frames:
            if conn.closing:
                return
            self._on_one_frame(conn, frame)

    def _on_one_frame(self, conn: Connection, data: bytes) -> None:
        now = self._now()
        self.metrics.bytes_in += len(data)
        if self.faults.blocks(conn.peer, conn.url):
            self.metrics.frames_dropped["blocked"] += 1
            return
        if not conn.limiter.allow(len(data), now):
            self.metrics.frames_dropped["rate-limited"] += 1
            self._fault(conn, "rate-limited", f"over {self.config.rate_messages_per_s} msg/s or the byte rate")
            return
        try:
            events = conn.session.receive(data, now)
        except RejectError as error:  # FrameError, ProtocolViolation, HandshakeRefused: the peer's fault
            self._fault(conn, error.code, error.message)
            return
        for event in events:
            if conn.closing:
                return
            self._on_event(conn, event, now)

    def _on_event(self, conn: Connection, event: Event, now: float) -> None:
        if isinstance(event, MessageReceived):
            self.metrics.messages_in[event.message.name] += 1
            if event.stamp is not None and self.tracer is not None and conn.peer is not None:
                self.tracer.received(conn.peer, event.message, event.stamp)
            self._on_message(conn, event.message, now)
        elif isinstance(event, Reply):
            self._send(conn, event.frame, event.message.name, handshake=event.message.HANDSHAKE)
        elif isinstance(event, HelloReceived):
            self.metrics.messages_in["Hello"] += 1
            self._admit(conn, event.hello, now)
        elif isinstance(event, HandshakeComplete):
            self.metrics.messages_in["HelloAck"] += 1
            self._on_ready(conn, event.hello, now)
        elif isinstance(event, PeerClosed):
            self.metrics.messages_in["Disconnect"] += 1
            self.metrics.refusals_received[event.code] += 1
            log.info("%s said goodbye: %s %s", conn.label(), event.code, event.message)
            if event.code == "self-connection" and conn.outbound:
                self._addresses.forget(conn.url, forever=True)
            self._disconnect(conn, event.code, f"by peer: {event.message}", send=False)
        # PongReceived: the session already recorded the round trip.

    def _admit(self, conn: Connection, hello: Hello, now: float) -> None:
        """The peer's Hello passed the network checks; its node id is only a claim until its HelloAck verifies.
        Refuse now what no proof could change (blocked, banned); admission waits for the proof (`_on_ready`)."""
        claimed = hello.node_id.hex()
        # Fault injection is the operator's experiment, not a defence: a claimed id or listen URL is enough for it.
        url = conn.url if conn.outbound else hello.listen_url
        if self.faults.blocks(claimed, url):
            self._disconnect(conn, "blocked", "blocked by fault injection", send=False)
            return
        # Only a proven node id is ever banned (`_punish`), so refusing a banned claim cannot lock anybody out.
        address = self._address_key(outbound=conn.outbound, url=conn.url, remote_ip=conn.remote_ip)
        ban = self._scores.ban_of(claimed, now) or (self._scores.ban_of(address, now) if address else None)
        if ban is not None:
            self._disconnect(conn, "banned", f"banned for {ban.until - now:.0f}s more ({ban.reason})")

    def _on_ready(self, conn: Connection, hello: Hello, now: float) -> None:
        """The peer proved its node id: admit it (replacing or evicting other connections as PeerBook says)."""
        peer = hello.node_id.hex()
        old_id = self._book.connection_of(peer)
        old = self._connections.get(old_id) if old_id is not None else None
        if old is not None and now - old.session.last_received > 2 * self.config.ping_interval_s:
            # The node proved its key again over a new connection while the old one has missed its pings: the
            # node restarted or lost the old socket, so the new connection wins whatever its direction.
            self._disconnect(old, "duplicate-peer", "stale: replaced by a new proven connection")
        admission = self._book.admit(
            conn.id, peer, outbound=conn.outbound, ip=conn.remote_ip,
            limit_ip=not conn.outbound and bool(conn.remote_ip) and self._limits_apply(conn.remote_ip),
            activity=self._activity,
        )
        if not admission.accepted:
            self._disconnect(conn, admission.code, f"refused {peer[:16]}")
            return
        conn.peer = peer
        for displaced, code, why in ((admission.replaces, "duplicate-peer", "replaced by another connection"),
                                     (admission.evicts, "evicted", "evicted for a newcomer (node full)")):
            if displaced is not None and displaced in self._connections:
                self._disconnect(self._connections[displaced], code, why)
        if not conn.outbound and hello.listen_url:
            conn.url = hello.listen_url
            self._addresses.add(hello.listen_url, now)
        if conn.url:
            self._node_of_url[conn.url] = peer
            self._node_of_url.move_to_end(conn.url)
            while len(self._node_of_url) > MAX_KNOWN_URLS:
                self._node_of_url.popitem(last=False)
        stale = self._ready.get(peer)
        if stale is not None and stale is not conn:
            self._disconnect(stale, "duplicate-peer", "replaced by another connection")
        self._ready[peer] = conn
        conn.bundling = True
        self._peer_of_address[crypto.address_of(bytes.fromhex(peer))] = peer
        if conn.url:
            self._addresses.connected(conn.url)
        log.info("peer %s ready (%s, height %d, %s)", peer[:16], conn.direction, hello.best_height, conn.url)
        self._send_message(conn, GetPeers())
        actions = self._relay.peer_up(peer, hello.best_height, now)
        if self._running:
            self._act(actions)

    def _activity(self, conn_id: int) -> PeerActivity:
        conn = self._connections[conn_id]
        session = conn.session
        return PeerActivity(connected_at=session.ready_at if session.ready_at is not None else session.created_at,
                            rtt_s=session.rtt_s, last_block_at=conn.last_block_at, last_tx_at=conn.last_tx_at)

    def _on_message(self, conn: Connection, message: Message, now: float) -> None:
        peer = conn.peer
        assert peer is not None
        if isinstance(message, RELAY_MESSAGES):
            actions = self._relay.on_message(peer, message, now)
            for action in actions:  # something new to import: what the eviction rule protects a peer for
                if isinstance(action, Submit):
                    if isinstance(action.job, TxJob):
                        conn.last_tx_at = now
                    elif isinstance(action.job, BlockJob | BatchJob):
                        conn.last_block_at = now
            self._act(actions)
        elif isinstance(message, GetPeers):
            urls = self._addresses.sample(self._rng, MAX_PEER_URLS, exclude={conn.url})
            self._send_message(conn, Peers(urls=tuple(urls)))
        elif isinstance(message, Peers):
            for url in message.urls:
                self._addresses.add(url, now)
        elif isinstance(message, EngineMsg):
            self._on_engine_message(conn, peer, message, now)

    def _on_engine_message(self, conn: Connection, peer: str, message: EngineMsg, now: float) -> None:
        """Hand an engine message on; a refused one is the peer's fault (penalty by `engine_penalty`), anything
        else the engine raises is our bug (logged with its traceback, once per interval)."""
        try:
            self.chain.on_engine_message(peer, message.kind, message.payload)
        except RelayedRejectError as error:  # the peer relayed it; its author is another validator
            self.metrics.engine_rejects[error.code] += 1
            self._log_limited(f"engine-reject-relayed {error.code}", now, logging.WARNING,
                              "engine refused a %s statement of validator %s relayed by %s: %s", message.kind,
                              crypto.address_to_text(error.origin), peer[:16], error)
        except RejectError as error:
            self.metrics.engine_rejects[error.code] += 1
            penalty = engine_penalty(error.code)
            if penalty.points:
                self._punish(conn, peer, penalty, error.code, f"engine message {message.kind}: {error.message}")
            else:
                self._log_limited(f"engine-reject {peer}", now, logging.INFO, "engine refused a %s message from %s: %s",
                                  message.kind, peer[:16], error)
        except Exception:  # the engine's bug must not take the connection down with it
            held = self._log_limiter.allow(f"engine-bug {message.kind}", now)
            if held is not None:
                log.exception("engine failed on %s message from %s (%d more since the last report)",
                              message.kind, peer[:16], held)

    def _log_limited(self, key: str, now: float, level: int, fmt: str, *args: object) -> None:
        """Log at most once per LOG_INTERVAL_S for `key`, saying how many lines were held back."""
        held = self._log_limiter.allow(key, now)
        if held is not None:
            suffix = f" ({held} more since the last report)" if held else ""
            log.log(level, fmt + suffix, *args)

    # -- misbehaviour --------------------------------------------------------------------------------------------

    def _fault(self, conn: Connection, code: str, message: str) -> None:
        """A connection-level fault (frame, protocol, handshake, rate): charged to the node id once the handshake
        proved it, before that to the connection's address (never to an id it merely claims)."""
        self._punish(conn, conn.peer, connection_penalty(code), code, message)

    def _punish(self, conn: Connection | None, peer: str | None, penalty: Penalty, code: str, message: str) -> None:
        """Charge `penalty` to the proven node `peer` (and the URL we dialed it at), or, with no proven peer, to
        `conn`'s address (the dialed URL, or the inbound socket's remote address where limits apply)."""
        now = self._now()
        if conn is None and peer is not None:
            conn = self._ready.get(peer)
        banned = False
        charged: str | None = peer
        if penalty.points and peer is not None:
            # Only a URL we dialed is known to be the peer's; an inbound peer's advertised URL is just a claim.
            also = (conn.url,) if conn is not None and conn.outbound and conn.url else ()
            banned = self._scores.penalize(peer, penalty.points, code, now, also=also)
        elif penalty.points and conn is not None:
            charged = self._address_key(outbound=conn.outbound, url=conn.url, remote_ip=conn.remote_ip)
            if charged is not None:
                banned = self._scores.penalize(charged, penalty.points, code, now)
        if banned:
            self.metrics.bans += 1
            log.warning("banned %s for %.0fs: %s %s", charged, self.config.ban_s, code, message)
        elif penalty.points:
            who = charged or (conn.label() if conn is not None else "?")
            self._log_limited(f"fault {who} {code}", now, logging.INFO, "misbehaviour by %s (+%d): %s %s", who,
                              penalty.points, code, message)
        if conn is not None and (banned or penalty.disconnect):
            self._disconnect(conn, code, message)

    # -- sync --------------------------------------------------------------------------------------------------------

    def _import(self, job: Job) -> None:
        assert self._importer is not None, "the service is not started"
        self._importer.submit(job)

    # -- timers --------------------------------------------------------------------------------------------------

    async def _maintain_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                self._tick(self._now())
            except Exception:  # keep the timer alive whatever one tick hit; the log says what
                log.exception("p2p maintenance tick failed")

    def _tick(self, now: float) -> None:
        for conn in list(self._connections.values()):
            if conn.closing:
                continue
            if conn.session.expired(now, self.config.peer_timeout_s):
                self._disconnect(conn, "timeout", f"silent for more than {self.config.peer_timeout_s}s")
                continue
            ping = conn.session.ping_due(now, self.config.ping_interval_s)
            if ping is not None:
                self._send(conn, ping, "Ping")
        if self._running:
            self._act(self._relay.tick(now))
        self._scores.expire(now)
        self._dial_more(now)

    def _dial_more(self, now: float) -> None:
        if not self._running:
            return
        busy = {c.url for c in self._connections.values() if c.url} | self._dialing
        for url in self._addresses.due(now, persistent=True, exclude=busy):
            if self._may_dial(url, now):
                self._start_dial(url)
        wanted = self.config.target_peers - len(self._ready) - len(self._dialing)
        for url in self._addresses.due(now, persistent=False, exclude=busy):
            if wanted <= 0:
                break
            if self._may_dial(url, now):
                self._start_dial(url)
                wanted -= 1

    def _may_dial(self, url: str, now: float) -> bool:
        """Not blocked or banned, by URL or by the node id last met there (no frame goes to a blocked node)."""
        node = self._node_of_url.get(url)
        if self.faults.blocks(url, node):
            return False
        return not self._scores.is_banned(url, now) and not (node is not None and self._scores.is_banned(node, now))


def _dial_error(exc: BaseException) -> str:
    """One line on why a dial failed, for the log and /v1/status."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"not a chainlab P2P endpoint (HTTP {exc.status} {exc.message})"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
