"""A lean HTTP/1.1 keep-alive client for the closed-loop benches: one connection per client, one request at a time.

The load generator shares the machine with the servers it measures, so what it spends per request is taken from
them. aiohttp's client costs about 100 us of CPU per request (request and response objects, header multidicts,
timers, connection pool bookkeeping); this one writes a preformatted request and parses the status line, the
Content-Length and the body from an asyncio Protocol, for a fraction of that. It knows only what the benches send
(POST or GET with a small body, answers with a Content-Length or chunked) and says so with `HttpError` otherwise.
Both sides of a comparison (chainlab, etcd) go through it, so neither is favoured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


class HttpError(ConnectionError):
    """The connection failed, closed, or answered something this client does not parse."""


@dataclass(frozen=True, slots=True)
class Answer:
    """Status code and body of one response."""

    status: int
    body: bytes


class _Protocol(asyncio.Protocol):
    """Collects one response at a time into `waiter`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection closed: {exc or 'by the server'}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        try:
            answer = self._parse()
        except HttpError as exc:
            self.waiter.set_exception(exc)
            return
        if answer is not None:
            self.waiter.set_result(answer)

    def _parse(self) -> Answer | None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                raise HttpError("response headers too long")
            return None
        head = bytes(buffer[:end]).split(b"\r\n")
        parts = head[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP/1.x status line: {head[0][:80]!r}")
        length = None
        chunked = False
        self.keep_alive = parts[0] == b"HTTP/1.1"
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length":
                if not value.isdigit() or int(value) > MAX_BODY_BYTES:
                    raise HttpError(f"bad Content-Length {value[:40]!r}")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.lower() == b"chunked"
            elif name == b"connection":
                self.keep_alive = value.lower() == b"keep-alive"
        start = end + 4
        if chunked:
            parsed = _dechunk(buffer, start)
            if parsed is None:
                return None
            body, consumed = parsed
        elif length is not None:
            if len(buffer) - start < length:
                return None
            body, consumed = bytes(buffer[start:start + length]), start + length
        else:
            raise HttpError("a response without Content-Length or chunked encoding")
        del buffer[:consumed]
        return Answer(status=int(parts[1]), body=body)


def json_object(raw: bytes) -> dict[str, Any]:
    """An answer body read as a JSON object; {} for anything else (not JSON, or not an object)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """(body, bytes consumed) of a complete chunked body at `start`, or None until it is complete."""
    body = bytearray()
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size_text = bytes(buffer[at:line_end]).split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(f"bad chunk size {size_text[:20]!r}") from None
        if size > MAX_BODY_BYTES or len(body) + size > MAX_BODY_BYTES:
            raise HttpError("chunked body too large")
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if trailer_end == line_end:  # no trailers: the last chunk line ends the body
                return bytes(body), line_end + 4
            if trailer_end < 0:
                return None
            return bytes(body), trailer_end + 4
        chunk_start = line_end + 2
        if len(buffer) < chunk_start + size + 2:
            return None
        body += buffer[chunk_start:chunk_start + size]
        at = chunk_start + size + 2


def _time_out(waiter: asyncio.Future[Answer]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no answer in time"))


class LeanClient:
    """One keep-alive connection to `base_url` (http://host:port), reopened when the server closes it."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"need http://host:port, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port
        self._host_header = f"{self.host}:{self.port}".encode()
        self._protocol: _Protocol | None = None

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is None or protocol.closed or not protocol.keep_alive:
            self.close()
            loop = asyncio.get_running_loop()
            try:
                _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
            except OSError as exc:
                raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
            self._protocol = protocol
        return protocol

    async def request(self, method: str, path: str, body: bytes = b"", *, timeout_s: float,
                      content_type: bytes = b"application/json") -> Answer:
        """Send one request and read its answer; HttpError on a failed or unparsable exchange, TimeoutError
        after `timeout_s` (the connection is dropped then: a late answer must not be read as the next one's)."""
        protocol = await self._connection()
        assert protocol.transport is not None
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
            method.encode(), path.encode(), self._host_header, content_type, len(body))
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Answer] = loop.create_future()
        protocol.waiter = waiter
        protocol.transport.write(head + body)
        # A timer instead of asyncio.wait_for: cheaper, and 3.11's wait_for can swallow a cancellation that
        # arrives as the answer does (the closed loop's clients would then never stop).
        timer = loop.call_later(timeout_s, _time_out, waiter)
        try:
            return await waiter
        except BaseException:
            self.close()
            raise
        finally:
            timer.cancel()
            protocol.waiter = None

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            with contextlib.suppress(RuntimeError):
                protocol.transport.close()
