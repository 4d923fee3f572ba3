"""Half-open sockets against a real node process (issue 14, item 3): raw TCP connections that send an unfinished
HTTP request, or trickle its headers, to the P2P and the RPC port are capped per address and in total before any
HTTP is read and closed at the header deadline; meanwhile /v1/status keeps answering, the node's descriptor count
stays bounded, the log stays short, and an honest client from another address still gets in.

The limits are scaled down through config.toml (24 per address, 64 in total, a 1 s header deadline) so the flood
of 2,000 sockets from two attacker addresses (127.0.0.2 and 127.0.0.3; all of 127/8 is loopback on Linux) shows
the bound in seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.devtools import dev_genesis, dev_keys
from node.config import load_config, write_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PER_ADDRESS = 24
TOTAL = 64
HEADER_TIMEOUT_S = 1.0
ATTACKERS = ("127.0.0.2", "127.0.0.3")
SOCKETS_PER_ATTACKER_AND_PORT = 500  # 2 attackers x 2 ports x 500 = 2,000 sockets
TRICKLERS_PER_PORT = 8
STATUS_BOUND_S = 2.0
UNFINISHED = b"GET /v1/status HTTP/1.1\r\nHost: node\r\nX-Pad: "  # never ends its headers

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not Path("/proc/self/fd").exists() or sys.platform != "linux",
    reason="counts the node's descriptors in /proc; binds 127.0.0.2 (Linux loopback)")]


@dataclasses.dataclass
class RunningNode:
    pid: int
    p2p: tuple[str, int]
    rpc_url: str
    log_path: Path

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def status_within(self, bound_s: float) -> float:
        start = time.monotonic()
        with urllib.request.urlopen(f"{self.rpc_url}/v1/status", timeout=bound_s) as response:
            assert response.status == 200
            json.loads(response.read())
        return time.monotonic() - start

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.rpc_url}/metrics", timeout=STATUS_BOUND_S) as response:
            text: str = response.read().decode()
            return text


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    genesis = tmp_path / "genesis.toml"
    genesis.write_text(dev_genesis(dev_keys(1)).to_toml(), encoding="utf-8")
    datadir = tmp_path / "node"
    cli = [sys.executable, "-m", "cli.main", "node"]
    subprocess.run([*cli, "init", "--datadir", str(datadir), "--genesis", str(genesis), "--no-mining"],
                   cwd=PROJECT_ROOT, check=True, capture_output=True, timeout=60)
    config = load_config(datadir)
    limits = {"max_connections": TOTAL, "max_connections_per_address": PER_ADDRESS,
              "header_timeout_s": HEADER_TIMEOUT_S, "idle_timeout_s": 2 * HEADER_TIMEOUT_S}
    write_config(datadir, dataclasses.replace(config, p2p=dataclasses.replace(config.p2p, **limits),
                                              rpc=dataclasses.replace(config.rpc, **limits)))
    log_path = tmp_path / "node.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([*cli, "run", "--datadir", str(datadir)], cwd=PROJECT_ROOT, stdout=log_file,
                                   stderr=subprocess.STDOUT)
    try:
        info_path = datadir / "node.json"
        deadline = time.monotonic() + 60
        while not info_path.exists():
            assert process.poll() is None, f"the node exited: {log_path.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the node did not come up in 60 s"
            time.sleep(0.1)
        info = json.loads(info_path.read_text())
        p2p_host, p2p_port = info["p2p_url"].removeprefix("ws://").split("/")[0].rsplit(":", 1)
        yield RunningNode(pid=process.pid, p2p=(p2p_host, int(p2p_port)), rpc_url=info["rpc_url"],
                          log_path=log_path)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _open_half(source: str, target: tuple[str, int]) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(2.0)
    try:
        sock.connect(target)
        sock.sendall(UNFINISHED)
    except OSError:  # refused or reset at once: the cap did its job for this one
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""  # EOF (a 4xx answer would come with data; none is expected mid-headers)
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def test_half_open_sockets_are_capped_and_timed_out(node: RunningNode) -> None:
    rpc_host, rpc_port = node.rpc_url.removeprefix("http://").rsplit(":", 1)
    ports = [node.p2p, (rpc_host, int(rpc_port))]
    node.status_within(STATUS_BOUND_S)
    baseline_fds = node.fd_count()
    log_size_before = node.log_path.stat().st_size

    held: list[socket.socket] = []
    tricklers: list[socket.socket] = []
    try:
        for target in ports:
            for source in ATTACKERS:
                for _ in range(SOCKETS_PER_ATTACKER_AND_PORT):
                    sock = _open_half(source, target)
                    if sock is not None:
                        held.append(sock)
            for _ in range(TRICKLERS_PER_PORT):
                sock = _open_half(ATTACKERS[0], target)
                if sock is not None:
                    tricklers.append(sock)
        flood_done = time.monotonic()

        # Under the flood: the node answers, and holds at most the caps' worth of attacker sockets.
        for _ in range(3):
            assert node.status_within(STATUS_BOUND_S) < STATUS_BOUND_S
        fds = node.fd_count()
        assert fds <= baseline_fds + len(ports) * TOTAL + 16, (fds, baseline_fds)

        # Slowloris: header lines trickle in until the deadline closes the connection all the same.
        deadline = flood_done + HEADER_TIMEOUT_S + 3.0
        while time.monotonic() < deadline and not all(_closed_by_server(s) for s in held + tricklers):
            for sock in tricklers:
                with contextlib.suppress(OSError):  # closed by the node already: the point of the test
                    sock.send(b"a")
            time.sleep(0.2)
        still_open = sum(not _closed_by_server(s) for s in held + tricklers)
        assert still_open == 0, f"{still_open} half-open sockets still open {deadline - flood_done:.1f}s after"

        assert node.status_within(STATUS_BOUND_S) < STATUS_BOUND_S
        assert node.fd_count() <= baseline_fds + 16
        metrics = node.metrics()
        assert 'chainlab_connections_refused_total{port="rpc",reason="per-address"}' in metrics
        refused = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("chainlab_connections_refused_total{")]
        timed_out = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("chainlab_connections_timed_out_total{")]
        # Every attacker socket was either refused at accept or closed at the deadline, and counted once.
        attempted = len(ports) * (len(ATTACKERS) * SOCKETS_PER_ATTACKER_AND_PORT + TRICKLERS_PER_PORT)
        assert sum(refused) > 0 and sum(timed_out) >= len(ports) * len(ATTACKERS) * PER_ADDRESS
        assert sum(refused) + sum(timed_out) == attempted, (refused, timed_out)
        # Refusals and timeouts are logged once per interval with a count, not once per socket.
        assert node.log_path.stat().st_size - log_size_before < 16 * 1024
    finally:
        for sock in held + tricklers:
            sock.close()


def test_an_honest_websocket_and_keep_alive_client_still_get_in(node: RunningNode) -> None:
    """While one address holds its whole per-address share of the P2P port, a websocket upgrade from another
    address completes (the caps are below HTTP, not in it)."""
    held = [s for s in (_open_half(ATTACKERS[0], node.p2p) for _ in range(PER_ADDRESS + 10)) if s is not None]
    try:
        with socket.create_connection(node.p2p, timeout=STATUS_BOUND_S) as honest:
            honest.sendall(b"GET /p2p HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            answer = honest.recv(4096)
        assert answer.startswith(b"HTTP/1.1 101"), answer[:200]
        assert node.status_within(STATUS_BOUND_S) < STATUS_BOUND_S
    finally:
        for sock in held:
            sock.close()
