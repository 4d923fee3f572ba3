"""The `chainlab testnet` CLI as the tests call it: in process, never a traceback, one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner

from cli.main import main
from testnet.state import NodeRecord, Testnet, save_testnet


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`chainlab testnet ARGS...`: (exit code, stdout, stderr); fails the test on a traceback."""
    result = CliRunner().invoke(main, ["testnet", *args], env=env)
    assert "Traceback" not in result.output + result.stderr, result.output + result.stderr
    return result.exit_code, result.stdout, result.stderr


def one_error(stderr: str) -> str:
    """The one `error: ...` line a refused command prints (fails the test on anything else)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def stopped_testnet(directory: Path, *, consensus: str = "pow", count: int = 3) -> Testnet:
    """A saved testnet record of `count` fully connected nodes that never ran (no process, no store)."""
    nodes = [NodeRecord(index=i, name=f"node{i}", datadir=str(directory / f"node{i}"),
                        log=str(directory / f"n{i}.log"), admin_token="t", node_id=f"{i:02x}" * 33, state="stopped")
             for i in range(count)]
    testnet = Testnet(dir=str(directory), seed="s", chain_id="c", genesis="g", consensus=consensus, topology="full",
                      edges=[[a, b] for a in range(count) for b in range(a + 1, count)], nodes=nodes, load_accounts=8,
                      block_interval_s=1.0, finality_threshold=3)
    save_testnet(testnet)
    return testnet


def netns_unavailable() -> str | None:
    """Why a --netns testnet cannot run here (not root, no iproute2, no `ip netns`), or None when it can."""
    if os.geteuid() != 0:
        return "not root: --netns needs CAP_NET_ADMIN"
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return "no `ip`/`tc` (iproute2)"
    probe = "cl-test-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None if made.returncode == 0 else f"`ip netns add` fails here: {made.stderr.strip()}"


def kernel_has_netem() -> bool:
    """The kernel takes a netem qdisc (sch_netem), tried on the loopback of a throw-away namespace."""
    probe = "cl-test-netem"
    subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    try:
        added = subprocess.run(["tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                               capture_output=True, check=False)
        return added.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
