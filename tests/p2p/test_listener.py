"""The TCP-level guard of the listening ports (p2p/listener.py): counting against the caps, the rate-limited log,
the accept-error filter, and the guard on a real aiohttp server in this process."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest
from aiohttp import web

from p2p.listener import (
    ConnectionCounter,
    ListenerGuard,
    RateLimitedLog,
    SocketLimits,
    _AcceptErrorFilter,
    install_accept_error_filter,
)


def test_the_counter_caps_per_address_then_in_total_and_releases() -> None:
    count = ConnectionCounter(SocketLimits(max_connections=5, max_connections_per_address=3))
    assert [count.admit("a") for _ in range(4)] == [None, None, None, "per-address"]
    assert count.admit("b") is None and count.admit("b") is None
    assert count.admit("c") == "total"  # 5 live: another address is refused too
    assert count.total == 5 and count.of("a") == 3 and count.of("c") == 0
    assert count.counters.refused == {"per-address": 1, "total": 1}
    count.release("a")
    assert count.admit("c") is None  # a freed slot is usable by anyone under their own cap
    for address in ("a", "a", "b", "b", "c"):
        count.release(address)
    assert count.total == 0 and count._per_address == {}  # nothing kept for addresses that left


@pytest.mark.parametrize("kwargs", [
    {"max_connections": 0}, {"max_connections_per_address": 0},
    {"max_connections": 2, "max_connections_per_address": 3},
    {"header_timeout_s": 0}, {"idle_timeout_s": -1.0}, {"header_timeout_s": float("nan")},
    {"max_connections": True},
])
def test_limits_refuse_values_that_do_not_bound_anything(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SocketLimits(**kwargs)  # type: ignore[arg-type]


def test_the_rate_limited_log_writes_one_line_per_interval_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.listener")
    limited = RateLimitedLog(logger, interval_s=10.0)
    with caplog.at_level(logging.WARNING, logger="test.listener"):
        assert limited.event("refused", 0.0)
        assert not any(limited.event("refused", 0.001 * i) for i in range(1, 1000))
        assert limited.event("refused", 10.5)
    assert [r.getMessage() for r in caplog.records] == ["1 refused", "1000 refused"]


def test_the_accept_error_filter_keeps_one_emfile_record_per_interval() -> None:
    keep = _AcceptErrorFilter(interval_s=60.0)

    def record(msg: str, exc: BaseException | None) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None,
                                 (type(exc), exc, None) if exc is not None else None)

    emfile = OSError(errno.EMFILE, "Too many open files")
    assert keep.filter(record("socket.accept() out of system resource", emfile))
    assert not any(keep.filter(record("socket.accept() out of system resource", emfile)) for _ in range(500))
    assert keep.held_back == 500
    assert keep.filter(record("something else went wrong", ValueError("x")))  # other records pass untouched
    install_accept_error_filter()
    install_accept_error_filter()
    assert sum(isinstance(f, _AcceptErrorFilter) for f in logging.getLogger("asyncio").filters) == 1


async def _closed_within(reader: asyncio.StreamReader, timeout_s: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout_s) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_the_guard_refuses_over_the_cap_and_times_out_unfinished_headers_only() -> None:
    limits = SocketLimits(max_connections=4, max_connections_per_address=2, header_timeout_s=0.3, idle_timeout_s=5.0)

    async def scenario() -> None:
        async def ok(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", ok)
        runner = web.AppRunner(app, keepalive_timeout=limits.idle_timeout_s, access_log=None)
        await runner.setup()
        guard = ListenerGuard("test", limits)
        guard.install(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(runner.addresses[0][1])
        try:
            # A client whose request completed stays past the header deadline (it is keep-alive, not half-open).
            honest_reader, honest_writer = await asyncio.open_connection("127.0.0.1", port)
            honest_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await honest_reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
            half = await asyncio.open_connection("127.0.0.1", port)
            half[1].write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            refused = await asyncio.open_connection("127.0.0.1", port)  # third from one address
            assert await _closed_within(refused[0], 0.2)
            assert guard.counters.refused == {"per-address": 1}
            assert await _closed_within(half[0], limits.header_timeout_s + 0.5)
            assert guard.counters.timed_out == 1
            honest_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await honest_reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
            assert guard.counters.open == 1
            honest_writer.close()
            for writer in (half[1], refused[1]):
                writer.close()
            await asyncio.sleep(0.05)
            assert guard.counters.open == 0
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(scenario(), 10))
