"""The benches' lean keep-alive HTTP client (testnet/bench_http.py) against a scripted server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from node import eventloop
from testnet.bench_http import HttpError, LeanClient

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(script: Script) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(script, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


def test_keep_alive_content_length_chunked_and_reconnect() -> None:
    connections = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        request = await _read_request(reader)
        assert request.startswith(b"POST /a HTTP/1.1\r\n") and request.endswith(b'{"x":1}')
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await _read_request(reader)  # the same connection carries the second request
        writer.write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await _read_request(reader)
        writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno")
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        server, url = await _serve(script)
        client = LeanClient(url)
        try:
            first = await client.request("POST", "/a", b'{"x":1}', timeout_s=5)
            assert (first.status, first.body) == (200, b"hello")
            second = await client.request("GET", "/b", timeout_s=5)
            assert (second.status, second.body) == (201, b"abcde")
            third = await client.request("GET", "/c", timeout_s=5)
            assert (third.status, third.body) == (503, b"no")
            assert len(connections) == 1
            # the server said Connection: close: the next request opens a new connection
            fourth = await client.request("POST", "/a", b'{"x":1}', timeout_s=5)
            assert (fourth.status, fourth.body) == (200, b"hello") and len(connections) == 2
        finally:
            client.close()
            server.close()

    eventloop.run(scenario())


def test_garbage_a_closed_connection_and_a_silent_server_are_typed_errors() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async def scenario() -> None:
        for script, error in ((garbage, HttpError), (hang_up, HttpError), (silent, TimeoutError)):
            server, url = await _serve(script)
            client = LeanClient(url)
            try:
                with pytest.raises(error):
                    await client.request("POST", "/", b"{}", timeout_s=0.3)
            finally:
                client.close()
                server.close()
        with pytest.raises(HttpError):  # nobody listens there
            await LeanClient("http://127.0.0.1:9").request("GET", "/", timeout_s=1)
        with pytest.raises(ValueError):
            LeanClient("https://example.org")

    eventloop.run(scenario())
