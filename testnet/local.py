"""Local node processes: start, find, signal and stop real `chainlab node run` processes on this machine.

Used by the multi-process tests and the testnet launcher. Nodes bind port 0 (the OS picks free ports) and publish
the bound URLs in `<datadir>/node.json`, so there is no race between choosing a port and binding it. Every process
is started in its own session and tracked by pid; `stop()` sends SIGTERM, then SIGKILL after a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.client import RpcClient, RpcError, RpcUnavailable
from node.lifetime import parent_death_preexec

NODE_INFO_FILE = "node.json"


class LocalNodeError(RuntimeError):
    """A node process that did not start, exited, or did not reach a wanted state in time."""


def chainlab_command() -> list[str]:
    """How to run the chainlab CLI from this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "cli.main"]


@dataclass
class LocalNode:
    """One node process and its data directory."""

    name: str
    datadir: Path
    log_path: Path
    admin_token: str = ""
    extra_args: list[str] = field(default_factory=list)
    exec_prefix: list[str] = field(default_factory=list)  # e.g. `ip netns exec NS`: what runs the node command
    process: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        """Pid of the running process."""
        return self.process.pid if self.process is not None else None

    @property
    def rpc_url(self) -> str:
        """Base URL of the node's RPC."""
        return str(self.info["rpc_url"])

    @property
    def p2p_url(self) -> str:
        """The node's P2P websocket URL."""
        return str(self.info["p2p_url"])

    @property
    def node_id(self) -> str:
        """Hex node id."""
        return str(self.info["node_id"])

    def client(self, timeout_s: float = 10.0) -> RpcClient:
        """An RPC client for this node (with the admin token)."""
        return RpcClient(self.rpc_url, admin_token=self.admin_token or None, timeout_s=timeout_s)

    def start(self, peers: Sequence[str] = (), wait_s: float = 30.0, env: dict[str, str] | None = None) -> None:
        """Start `chainlab node run` and wait until it publishes its URLs and answers RPC."""
        self.launch(peers, env=env)
        self.wait_started(wait_s)

    def launch(self, peers: Sequence[str] = (), env: dict[str, str] | None = None, *,
               tie_to_parent: bool = False) -> None:
        """Start the process (in its own session, output appended to the log) without waiting for it.
        `tie_to_parent`: the node gets SIGKILL when this process ends, however it ends (node/lifetime.py); launch
        from the main thread then, since the signal follows the thread that started the node. SIGKILL, not
        SIGTERM: it only comes when the launcher could not stop the node itself (killed, crashed), and a node the
        nemesis paused (SIGSTOP) would never act on a SIGTERM; the store is crash-safe, and the node's mining
        workers die with it (their own parent-death signal), its signature workers at their pipe's end."""
        if self.process is not None and self.process.poll() is None:
            raise LocalNodeError(f"{self.name} is already running (pid {self.process.pid})")
        (self.datadir / NODE_INFO_FILE).unlink(missing_ok=True)
        self.info = {}
        args = [*self.exec_prefix, *chainlab_command(), "node", "run", "--datadir", str(self.datadir),
                "--name", self.name, *[a for p in peers for a in ("--peer", p)], *self.extra_args]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns the descriptor from here on
        try:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env={**os.environ, **(env or {})},
                                            preexec_fn=parent_death_preexec(signal.SIGKILL) if tie_to_parent
                                            else None)
        finally:
            log.close()

    def wait_started(self, wait_s: float = 30.0) -> None:
        """Wait until the launched process publishes `node.json` and answers RPC; kill it and raise
        LocalNodeError (with the log's tail) when it exits or does not come up in time."""
        if self.process is None:
            raise LocalNodeError(f"{self.name} was not launched")
        info_path = self.datadir / NODE_INFO_FILE
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalNodeError(f"{self.name} exited with {self.process.returncode} during start; "
                                     f"log {self.log_path}:\n{self.tail_log()}")
            if info_path.exists():
                try:
                    self.info = json.loads(info_path.read_text())
                except (OSError, ValueError):
                    time.sleep(0.05)
                    continue
                try:
                    self.client(timeout_s=2).status()
                    return
                except (RpcUnavailable, RpcError):
                    pass
            time.sleep(0.05)
        self.kill()
        raise LocalNodeError(f"{self.name} did not come up within {wait_s} s; log {self.log_path}:\n"
                             f"{self.tail_log()}")

    def running(self) -> bool:
        """True while the process lives."""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send a signal to the node process (SIGSTOP/SIGCONT for pause and resume)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass
        # mining worker processes are in the node's session: make sure none outlive it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def tail_log(self, lines: int = 40) -> str:
        """The last lines of the node's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Poll `predicate` until it holds; LocalNodeError naming `what` on timeout. Errors count as "not yet"."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (RpcError, RpcUnavailable, KeyError, ValueError) as exc:
            last_error = exc
        time.sleep(interval_s)
    raise LocalNodeError(f"timed out after {timeout_s} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))
