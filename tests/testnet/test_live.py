"""A real 3-node testnet in a line, driven through the CLI: up, status, partition shapes composing with netem,
kill/start, pause/resume, logs, load, check, down, and no process left behind. Always taken down in `finally`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.genesis import load_genesis_file
from cli.main import main
from testnet import launcher, procs
from testnet.history import check_well_formed, read_history
from testnet.state import load_testnet

pytestmark = pytest.mark.slow


def cli(*args: str) -> Any:
    result = CliRunner().invoke(main, ["testnet", *args])
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout) if "--json" in args else result.stdout


def peers(directory: Path) -> dict[str, int | None]:
    view = cli("status", "--dir", str(directory), "--json")
    return {n["name"]: (n["status"] or {}).get("peers") for n in view["nodes"]}


def wait_for(predicate: Any, timeout_s: float, what: str, directory: Path | None = None) -> None:
    """Poll `predicate`; on a timeout, say what the nodes logged lately (a CI failure must be diagnosable)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    logs = ""
    if directory is not None:
        for node in load_testnet(directory).nodes:
            result = CliRunner().invoke(main, ["testnet", "logs", node.name, "--dir", str(directory), "-n", "25"])
            logs += f"\n--- {node.name} (last 25 lines) ---\n{result.output}"
    raise AssertionError(f"timed out waiting for {what}{logs}")


def test_a_line_testnet_under_the_nemesis(tmp_path: Path) -> None:
    directory = tmp_path / "net"
    d = str(directory)
    try:
        started = time.monotonic()
        record = cli("up", "--nodes", "3", "--topology", "line", "--dir", d, "--genesis-param", "block_interval_s=0.5",
                     "--genesis-param", "finality_threshold=3", "--load-accounts", "16", "--json")
        assert time.monotonic() - started < 30
        assert record["edges"] == [[0, 1], [1, 2]] and record["topology"] == "line"
        assert all(n["state"] == "running" and n["pid"] for n in record["nodes"])
        assert peers(directory) == {"node0": 1, "node1": 2, "node2": 1}  # a line stays a line
        genesis = load_genesis_file(Path(load_testnet(directory).node("node0").datadir) / "genesis.toml")
        assert genesis.param("heartbeat_interval_s") == 0.1  # scaled to the 0.5 s blocks, at the 0.1 s floor
        # isolate the middle node: the ends lose their only peer
        cli("partition", "--shape", "isolate:node1", "--dir", d)
        cli("netem", "--nodes", "0", "--delay-ms", "20", "--dir", d)
        wait_for(lambda: peers(directory) == {"node0": 0, "node1": 0, "node2": 0}, 20, "the isolation", directory)
        faults = load_testnet(directory).node("node0").faults
        assert faults.blocked == ["node1"] and faults.delay_ms == 20.0  # netem kept the partition
        cli("heal", "--partition-only", "--dir", d)
        wait_for(lambda: peers(directory) == {"node0": 1, "node1": 2, "node2": 1}, 20, "the heal", directory)
        assert load_testnet(directory).node("node0").faults.delay_ms == 20.0  # and heal kept netem
        cli("heal", "--dir", d)
        # a crash: the node and its workers are gone; start brings it back on the same URLs
        before = load_testnet(directory).node("node2")
        assert before.pid is not None
        event = cli("kill", "2", "--dir", d, "--json")
        assert event["network"]["down"] == ["node2"]
        assert not procs.alive(before.pid) and procs.group_members(before.pid) == []
        cli("start", "node2", "--dir", d)
        after = load_testnet(directory).node("node2")
        assert after.pid != before.pid and after.rpc_url == before.rpc_url and after.p2p_url == before.p2p_url
        wait_for(lambda: peers(directory)["node2"] == 1, 20, "node2 to rejoin its neighbour", directory)
        cli("pause", "node0", "--dir", d)
        assert cli("status", "--dir", d, "--json")["nodes"][0]["state"] == "paused"
        cli("resume", "node0", "--dir", d)
        cli("stop", "node0", "--dir", d)
        cli("restart", "node0", "--dir", d)  # a node that is down is just started
        assert cli("status", "--dir", d, "--json")["nodes"][0]["state"] == "running"
        wait_for(lambda: peers(directory)["node0"] == 1, 20, "node0 to rejoin its neighbour", directory)
        assert "node node0 up" in cli("logs", "node0", "--dir", d, "-n", "500")
        summary = cli("load", "--dir", d, "--tps", "20", "--duration", "3", "--json")
        assert summary["accepted"] > 30 and summary["accepted_not_final"] == 0
        assert check_well_formed(read_history(directory / "history.jsonl")) == []
        result = cli("check", "--dir", d, "--json")
        assert result["ok"], result
        assert set(result["sources"].values()) == {"rpc"}
        pids = [n.pid for n in load_testnet(directory).nodes]
        down = cli("down", "--dir", d, "--json")
        assert down["ok"] and all(entry["outcome"] == "terminated" for entry in down["nodes"])
        assert all(pid is not None and not procs.alive(pid) and procs.group_members(pid) == [] for pid in pids)
        after_down = cli("check", "--dir", d, "--json")
        assert after_down["ok"] and set(after_down["sources"].values()) == {"store"}
        events = [json.loads(line)["action"] for line in (directory / "events.jsonl").read_text().splitlines()]
        assert events == ["up", "partition", "netem", "heal", "heal", "kill", "start", "pause", "resume", "stop",
                          "restart", "down"]
    finally:
        if (directory / "testnet.json").exists():
            launcher.down(directory, timeout_s=5)


def _run_in_pty(args: list[str], seconds: float) -> tuple[str, int]:
    """Run `args` on a pseudo-terminal for `seconds`, then Ctrl-C; (everything it wrote, its exit status)."""
    import os
    import pty
    import select
    import signal

    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the command
        os.execvp(args[0], args)
    out = b""
    deadline, stop_sent = time.monotonic() + seconds, False
    try:
        while True:
            if not stop_sent and time.monotonic() >= deadline:
                os.kill(pid, signal.SIGINT)
                stop_sent, deadline = True, time.monotonic() + 30
            elif stop_sent and time.monotonic() >= deadline:
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return out.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def test_the_live_table_draws_in_place_on_a_terminal_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    import sys

    directory = tmp_path / "live"
    output, code = _run_in_pty([sys.executable, "-m", "cli.main", "testnet", "up", "--nodes", "2", "--foreground",
                                "--dir", str(directory)], seconds=8)
    try:
        assert code == 0, output[-3000:]
        assert "NODE" in output and "MINING" in output and "Ctrl-C stops the testnet" in output
        assert "\x1b[1A" in output  # redrawn in place (cursor up), not scrolled or cleared
        assert "Traceback" not in output and "testnet down" in output
        for node in load_testnet(directory).nodes:
            assert node.pid is not None and not procs.alive(node.pid) and procs.group_members(node.pid) == []
    finally:
        if (directory / "testnet.json").exists():
            launcher.down(directory, timeout_s=5)
