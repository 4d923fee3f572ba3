"""Nothing left running: a foreground testnet's nodes (and their mining workers) end with the launcher, however the
launcher ends; Ctrl-C stops `devnet` and `node run` without a traceback. Real processes, bounded waits, and every
process the test may have caused is killed by pid in clean-up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testnet import procs
from testnet.local import chainlab_command

START_S = 90.0
GONE_S = 30.0


def _processes_naming(text: str) -> list[int]:
    """Pids of live processes whose command line holds `text` (the test's own directory)."""
    found = []
    needle = os.fsencode(text)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() and procs.alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def cleanup(tmp_path: Path) -> Iterator[list[int]]:
    """A list the test adds process group ids to; afterwards every one of them, and every process naming the
    test's directory, is killed."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        procs.kill_group(pgid, timeout_s=2.0)
    for pid in _processes_naming(str(tmp_path)):
        procs.kill_group(pid, timeout_s=2.0)


def _start_foreground(tmp_path: Path, groups: list[int], nodes: int, *, stderr_to_pipe: bool = False,
                      ) -> tuple[subprocess.Popen[bytes], list[int]]:
    """`testnet up --foreground` with its stdout a pipe (and its stderr too with `stderr_to_pipe`, as in
    `make run 2>&1 | tee log`); returns the launcher and its nodes' pids once every node is recorded as running."""
    directory = tmp_path / "net"
    launcher = subprocess.Popen(
        [*chainlab_command(), "testnet", "up", "--nodes", str(nodes), "--dir", str(directory), "--seed", "fg",
         "--foreground", "--load-accounts", "2", "--hashrate-hps", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stderr_to_pipe else open(tmp_path / "launcher.err", "wb"),  # noqa: SIM115
        stdin=subprocess.DEVNULL, start_new_session=True)
    groups.append(launcher.pid)
    deadline = time.monotonic() + START_S
    assert launcher.stdout is not None
    while time.monotonic() < deadline:
        assert launcher.poll() is None, "the launcher exited during start"
        try:  # up() has returned once its "up" event is written
            state = json.loads((directory / "testnet.json").read_text())
            started = '"up"' in (directory / "events.jsonl").read_text()
        except (OSError, ValueError):
            time.sleep(0.2)
            continue
        pids = [n["pid"] for n in state["nodes"] if n.get("state") == "running" and n.get("pid")]
        if len(pids) == nodes and started:
            groups.extend(pids)
            assert all(procs.group_members(pid) for pid in pids)
            return launcher, pids
        time.sleep(0.2)
    raise AssertionError("the foreground testnet did not start: " + (tmp_path / "launcher.err").read_text())


def _dashboard_url(err: Path) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in err.read_text().splitlines():
            if line.startswith("dashboard: http://127.0.0.1:"):
                return line.split(" ", 1)[1]
        time.sleep(0.1)
    raise AssertionError("no dashboard URL printed: " + err.read_text())


def _assert_all_gone(pids: list[int], directory: Path) -> None:
    """No node, and no member of a node's process group (its mining and signature workers), is left."""
    deadline = time.monotonic() + GONE_S
    left: list[int] = []
    while time.monotonic() < deadline:
        left = [m for pid in pids for m in procs.group_members(pid)] + _processes_naming(str(directory))
        if not left:
            return
        time.sleep(0.2)
    commands = []
    for pid in left:
        with contextlib.suppress(OSError):
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes()[:120])
    raise AssertionError(f"processes left after the launcher ended: {left} {commands}")


def test_a_closed_output_pipe_takes_the_nodes_down(tmp_path: Path, cleanup: list[int]) -> None:
    launcher, pids = _start_foreground(tmp_path, cleanup, nodes=2, stderr_to_pipe=True)
    assert launcher.stdout is not None
    launcher.stdout.close()  # `make run 2>&1 | tee log` and tee killed by Ctrl-C: the reader is gone
    launcher.wait(timeout=GONE_S)
    _assert_all_gone(pids, tmp_path)


def test_a_hang_up_takes_the_nodes_down(tmp_path: Path, cleanup: list[int]) -> None:
    launcher, pids = _start_foreground(tmp_path, cleanup, nodes=1)
    url = _dashboard_url(tmp_path / "launcher.err")  # `make run` prints the dashboard's URL, and it answers
    with urllib.request.urlopen(url + "api/state", timeout=10) as reply:
        assert [node["name"] for node in json.load(reply)["nodes"]] == ["node0"]
    launcher.send_signal(signal.SIGHUP)  # the terminal was closed
    launcher.wait(timeout=GONE_S)
    _assert_all_gone(pids, tmp_path)
    assert "testnet down" in (tmp_path / "launcher.err").read_text()


def test_a_killed_launcher_takes_the_nodes_down(tmp_path: Path, cleanup: list[int]) -> None:
    launcher, pids = _start_foreground(tmp_path, cleanup, nodes=1)
    launcher.kill()  # no handler runs: only the nodes' parent-death signal can end them
    launcher.wait(timeout=10)
    _assert_all_gone(pids, tmp_path)


def _interrupt_quietly(args: list[str], ready: Path, tmp_path: Path, cleanup: list[int]) -> str:
    """Run `args` in a process group of its own until `ready` exists, press Ctrl-C (SIGINT to the group), and
    return its stderr once it exited 0 or 130."""
    err_path = tmp_path / "run.err"
    with open(err_path, "wb") as err:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    cleanup.append(process.pid)
    deadline = time.monotonic() + START_S
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None and ready.exists(), err_path.read_text()
    time.sleep(1.0)  # the mining workers are up and grinding
    assert len(procs.group_members(process.pid)) > 1, "no worker process to interrupt"
    os.killpg(process.pid, signal.SIGINT)
    code = process.wait(timeout=GONE_S)
    stderr = err_path.read_text()
    assert code in (0, 130), stderr
    _assert_all_gone([process.pid], tmp_path)
    return stderr


def test_ctrl_c_stops_devnet_and_node_run_without_a_traceback(tmp_path: Path, cleanup: list[int]) -> None:
    datadir = tmp_path / "dev"
    stderr = _interrupt_quietly([*chainlab_command(), "devnet", "--dir", str(datadir), "--rpc-port", "0",
                                 "--hashrate-hps", "500", "--block-interval-s", "1"],
                                datadir / "node.json", tmp_path, cleanup)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    stderr = _interrupt_quietly([*chainlab_command(), "node", "run", "--datadir", str(datadir), "--rpc-port", "0"],
                                datadir / "node.json", tmp_path, cleanup)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
