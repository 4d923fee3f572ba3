"""The reference point for `chainlab bench consensus --compare etcd`: a 3-member etcd cluster on loopback.

Each member runs from a temporary data directory with etcd's defaults (every write fsynced before it is
acknowledged, as chainlab's nodes do), on ports chosen free just before start. The same closed loop as chainlab's
(testnet/bench_loop.py) puts keys through etcd's v3 HTTP/JSON gateway (`POST /v3/kv/put`, base64 key and value),
each client to one member, one put in flight per client. Every member is started in its own session and killed
by process group on the way out, whatever happens.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node import eventloop
from testnet.bench_http import HttpError, LeanClient
from testnet.bench_loop import LoopResult, processes_cpu_s, run_closed_loop

INSTALL_HINT = "etcd is not installed: `apt-get install etcd-server` (Debian/Ubuntu) or put an etcd binary on PATH"
START_TIMEOUT_S = 30.0


class EtcdUnavailable(RuntimeError):
    """No etcd binary, or the cluster did not come up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdMember:
    """One running member: its client URL and process."""

    name: str
    client_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def etcd_binary() -> str:
    """Path of the etcd binary; EtcdUnavailable (with how to install it) when there is none."""
    found = shutil.which("etcd")
    if found is None:
        raise EtcdUnavailable(INSTALL_HINT)
    return found


def etcd_version(binary: str) -> str:
    """The binary's version line (e.g. `etcd Version: 3.4.23`)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def _free_ports(count: int) -> list[int]:
    """Ports the OS reports free now (etcd cannot bind port 0 and publish what it got; the window is short)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def etcd_cluster(members: int = 3) -> Iterator[list[EtcdMember]]:
    """Start `members` etcd members on 127.0.0.1 in a temporary directory; yield them once every member answers
    /health; kill them all on exit."""
    binary = etcd_binary()
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-etcd-") as workdir:
        root = Path(workdir)
        ports = _free_ports(2 * members)
        peers = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(members)]
        initial = ",".join(f"m{i}={peers[i]}" for i in range(members))
        running: list[EtcdMember] = []
        try:
            for index in range(members):
                client_url = f"http://127.0.0.1:{ports[2 * index]}"
                log_path = root / f"m{index}.log"
                args = [binary, "--name", f"m{index}", "--data-dir", str(root / f"m{index}"),
                        "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                        "--listen-peer-urls", peers[index], "--initial-advertise-peer-urls", peers[index],
                        "--initial-cluster", initial, "--initial-cluster-token", "chainlab-bench",
                        "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"]
                with open(log_path, "ab") as log:
                    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               start_new_session=True)
                running.append(EtcdMember(name=f"m{index}", client_url=client_url, process=process,
                                          log_path=log_path))
            _wait_healthy(running)
            yield running
        finally:
            for member in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(member.process.pid, signal.SIGKILL)
                member.process.wait(timeout=10)


def _wait_healthy(members: Sequence[EtcdMember]) -> None:
    import urllib.request

    deadline = time.monotonic() + START_TIMEOUT_S
    pending = list(members)
    while pending:
        member = pending[0]
        if member.process.poll() is not None:
            raise EtcdUnavailable(f"etcd {member.name} exited with {member.process.returncode}; "
                                  f"log: {member.log_path.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(member.client_url + "/health", timeout=2) as reply:
                if json.loads(reply.read()).get("health") == "true":
                    pending.pop(0)
                    continue
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise EtcdUnavailable(f"etcd {member.name} not healthy within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


class EtcdPuts:
    """The etcd operation: client i puts key `bench/i` (a fresh value each time) through member i mod n, on its
    own keep-alive connection (the lean client chainlab's transfers use too)."""

    def __init__(self, members: Sequence[EtcdMember], clients: int) -> None:
        self.connections = [LeanClient(members[index % len(members)].client_url) for index in range(clients)]
        self.counter = 0

    async def __call__(self, index: int) -> str | None:
        self.counter += 1
        body = json.dumps({"key": base64.b64encode(b"bench/%d" % index).decode(),
                           "value": base64.b64encode(b"%d" % self.counter).decode()}).encode()
        try:
            reply = await self.connections[index].request("POST", "/v3/kv/put", body, timeout_s=30)
        except TimeoutError:
            return "timeout"
        except HttpError:
            return "unavailable"
        if reply.status != 200:
            return f"http-{reply.status}"
        if b'"error"' in reply.body:
            return "etcd-error"
        return None

    def close(self) -> None:
        """Close every connection."""
        for connection in self.connections:
            connection.close()


async def _run_puts(members: Sequence[EtcdMember], clients: int, duration_s: float, warmup_s: float) -> LoopResult:
    puts = EtcdPuts(members, clients)
    try:
        return await run_closed_loop(clients, puts, duration_s=duration_s, warmup_s=warmup_s,
                                     server_cpu=lambda: processes_cpu_s([m.process.pid for m in members]))
    finally:
        puts.close()


def measure_etcd(clients: int, duration_s: float, warmup_s: float = 1.0, members: int = 3) -> dict[str, Any]:
    """Closed-loop puts against a fresh `members`-member etcd cluster; EtcdUnavailable without etcd."""
    version = etcd_version(etcd_binary())
    with etcd_cluster(members) as running:
        result = eventloop.run(_run_puts(running, clients, duration_s, warmup_s))
    summary = result.summary()
    return {"system": "etcd", "version": version, "members": members, "clients": clients,
            "duration_s": round(result.window_s, 3), "writes": summary["ops"], "writes_per_s": summary["ops_per_s"],
            "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"], "max_ms": summary["max_ms"],
            "errors": summary["errors"], "client_cpu_share": summary["client_cpu_share"],
            "server_cpu_share": summary["server_cpu_share"], "server_cpu_per_op_us": summary["server_cpu_per_op_us"]}
