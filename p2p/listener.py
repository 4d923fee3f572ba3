"""Guards an aiohttp listening socket below HTTP: caps on live TCP connections (per remote address and in total)
and a deadline for a connection's first request headers, so half-open sockets (a TCP connection that sends an
unfinished request, or nothing) cannot pile up until the process runs out of file descriptors.

aiohttp serves each accepted connection with one `RequestHandler` protocol object, created by its `web.Server`,
which that handler tells of its connection's start and end (`Server.connection_made` / `connection_lost`). The
guard hooks exactly those two calls: the cost is O(1) per connection and nothing per request. Over a cap, the new
connection is aborted at once (before any byte of HTTP is read). Idle keep-alive connections and requests
trickled after the first are bounded by aiohttp's own `keepalive_timeout`, which the servers set from
`SocketLimits.idle_timeout_s`.

Refusals and timeouts are counted in `ListenerCounters` (exported in /metrics) and logged at most once per
`LOG_INTERVAL_S` with the number dropped since the last line, so a flood cannot flood the log as well.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

log = logging.getLogger("chainlab.listener")

LOG_INTERVAL_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketLimits:
    """Caps on one listening port's TCP connections, counted from accept (before any HTTP is read).

    `header_timeout_s`: a connection whose first request headers are not complete by then is closed;
    `idle_timeout_s`: a keep-alive connection with no request in progress for that long is closed (aiohttp's
    keepalive timeout; it also bounds a later request whose headers trickle in).
    """

    max_connections: int = 1024
    max_connections_per_address: int = 512
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_connections_per_address"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.max_connections_per_address > self.max_connections:
            raise ValueError("max_connections_per_address must not exceed max_connections")
        for name in ("header_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 86_400:
                raise ValueError(f"{name} must be a positive number of seconds (under a day)")


@dataclass(slots=True)
class ListenerCounters:
    """Counters since start of one listening port: connections open now, refused (by cap) and timed out."""

    open: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by reason: "total" | "per-address"
    timed_out: int = 0  # first request headers not complete within header_timeout_s


class ConnectionCounter:
    """Live connections per remote address and in total against `SocketLimits` (pure: no I/O, no clock)."""

    def __init__(self, limits: SocketLimits, counters: ListenerCounters | None = None) -> None:
        self.limits = limits
        self.counters = counters if counters is not None else ListenerCounters()
        self._per_address: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Connections admitted and not yet released."""
        return self.counters.open

    def of(self, address: str) -> int:
        """Connections admitted from `address` and not yet released."""
        return self._per_address.get(address, 0)

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`; None if admitted, else the cap it would break (not counted)."""
        if self.counters.open >= self.limits.max_connections:
            reason = "total"
        elif self._per_address.get(address, 0) >= self.limits.max_connections_per_address:
            reason = "per-address"
        else:
            self._per_address[address] = self._per_address.get(address, 0) + 1
            self.counters.open += 1
            return None
        self.counters.refused[reason] += 1
        return reason

    def release(self, address: str) -> None:
        """Uncount an admitted connection from `address` (once per successful `admit`)."""
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]  # the table holds only addresses with live connections
        self.counters.open -= 1


class RateLimitedLog:
    """Logs one line per `interval_s` for a repeated event, with the number of events since the last line."""

    def __init__(self, logger: logging.Logger, interval_s: float = LOG_INTERVAL_S) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._pending: Counter[str] = Counter()
        self._last_line_at: float | None = None

    def event(self, what: str, now: float) -> bool:
        """Count one `what`; log (and return True) if the interval since the last line has passed."""
        self._pending[what] += 1
        if self._last_line_at is not None and now - self._last_line_at < self.interval_s:
            return False
        self._last_line_at = now
        summary = ", ".join(f"{count} {name}" for name, count in sorted(self._pending.items()))
        self._pending.clear()
        self.logger.warning("%s", summary)
        return True


class ListenerGuard:
    """Applies `limits` to the connections of an aiohttp runner's server (call `install` after `runner.setup()`,
    before its site starts); `name` labels its log lines and metrics ("p2p", "rpc")."""

    def __init__(self, name: str, limits: SocketLimits) -> None:
        self.name = name
        self.limits = limits
        self.counters = ListenerCounters()
        self._count = ConnectionCounter(limits, self.counters)
        self._admitted: dict[object, tuple[str, asyncio.TimerHandle]] = {}  # handler -> (address, header timer)
        self._log = RateLimitedLog(log)

    def install(self, runner: web.BaseRunner) -> None:
        """Hook the runner's server: its per-connection calls go through this guard first. Also keeps asyncio's
        accept errors (EMFILE when the process is out of descriptors) to one log line per interval."""
        install_accept_error_filter()
        server = runner.server
        if server is None:
            raise RuntimeError("install the guard after runner.setup()")
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: web.RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._connection_made(handler, transport)

        def connection_lost(handler: web.RequestHandler, exc: BaseException | None = None) -> None:
            self._connection_lost(handler)
            lost(handler, exc)

        # aiohttp's Server has no hook for accepted connections other than these two methods, which each
        # handler calls once per connection; wrapping them on this one instance keeps the guard off the per-request
        # path and leaves aiohttp's own bookkeeping as it is.
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        peer: Any = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        refused = self._count.admit(address)
        if refused is not None:
            self._log.event(f"{self.name} connections refused ({refused} cap)", time.monotonic())
            # Read nothing from it, and abort it (RST: no lingering close) once aiohttp's handler task has taken
            # its first step, which asserts the connection is still there: the task's step is already queued when
            # the first callback runs, so the second one comes after it.
            transport.pause_reading()
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, transport.abort)
            return
        timer = asyncio.get_running_loop().call_later(self.limits.header_timeout_s, self._check_headers, handler,
                                                      transport)
        self._admitted[handler] = (address, timer)

    def _connection_lost(self, handler: web.RequestHandler) -> None:
        admitted = self._admitted.pop(handler, None)
        if admitted is not None:
            address, timer = admitted
            timer.cancel()
            self._count.release(address)

    def _check_headers(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        if transport.is_closing():
            return
        # aiohttp counts a request on a connection once its headers are parsed; a rename in aiohttp reads as
        # "complete", which leaves the connection to aiohttp's own idle timeout rather than closing a good one.
        if getattr(handler, "_request_count", 1) == 0:
            self.counters.timed_out += 1
            self._log.event(f"{self.name} connections closed: request headers not complete in "
                            f"{self.limits.header_timeout_s:g}s", time.monotonic())
            transport.abort()


class _AcceptErrorFilter(logging.Filter):
    """Lets through one "out of file descriptors" record per interval (asyncio and uvloop log one per failed
    accept, thousands a second under a socket flood), with the number held back since the last one."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.held_back = 0
        self._last_at: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (isinstance(exc, OSError) and exc.errno in _OUT_OF_FDS) and "Too many open files" not in str(record.msg):
            return True
        now = time.monotonic()
        if self._last_at is not None and now - self._last_at < self.interval_s:
            self.held_back += 1
            return False
        self._last_at = now
        if self.held_back:
            record.msg = f"{record.msg} ({self.held_back} more like it held back)"
            self.held_back = 0
        return True


_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)


def install_accept_error_filter() -> None:
    """Rate-limit asyncio's accept-error records (idempotent)."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(existing, _AcceptErrorFilter) for existing in logger.filters):
        logger.addFilter(_AcceptErrorFilter())
