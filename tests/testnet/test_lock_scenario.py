"""The raft-lock-pause scenario (testnet/scenarios/raft-lock-pause.toml), run as a user runs it: the paused
client's late write is refused with `stale-fencing-token` and the `locks` check passes; with a planted register
rule that accepts a stale token, the same run fails, at the step and in the `locks` check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testnet import launcher, procs
from testnet.state import load_testnet

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PLANTED = Path(__file__).resolve().parent / "planted_stale_token"


def _run(directory: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    try:
        done = subprocess.run([sys.executable, "-m", "cli.main", "testnet", "run", "raft-lock-pause", "--seed", "1",
                               "--dir", str(directory), "--json"], capture_output=True, text=True, timeout=60,
                              cwd=ROOT, env=env)
        assert done.stdout, done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert report["down"]["ok"]
        for node in load_testnet(directory).nodes:
            assert node.pid is not None and not procs.alive(node.pid) and procs.group_members(node.pid) == []
        return done.returncode, report
    finally:
        if (directory / "testnet.json").exists():
            launcher.down(directory, timeout_s=5)


def _late_write(report: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in report["steps"] if s["step"].get("value") == "late write by a"]
    return step


def _locks_check(report: dict[str, Any], source: str) -> dict[str, Any]:
    (check,) = [c for c in report["checks"][source]["checks"] if c["name"] == "locks"]
    return check


def test_the_paused_clients_late_write_is_refused_with_a_stale_token(tmp_path: Path) -> None:
    code, report = _run(tmp_path / "run")
    assert code == 0 and report["ok"]
    late = _late_write(report)
    assert late["ok"] and "client a" in late["detail"] and "refused stale-fencing-token" in late["detail"]
    for source in ("rpc", "stores"):
        check = _locks_check(report, source)
        assert check["ok"] and "(2 grants, 2 fenced writes accepted, 0 refused), no violation" in check["detail"]


@pytest.mark.long
def test_a_planted_rule_that_accepts_a_stale_token_fails_the_step_and_the_locks_check(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLANTED), str(ROOT)])}
    code, report = _run(tmp_path / "run", env)
    assert code == 1 and not report["ok"]
    late = _late_write(report)
    assert not late["ok"] and "wrote cfg with token" in late["detail"]
    assert late["detail"].endswith("(expected stale-fencing-token)")
    for source in ("rpc", "stores"):
        check = _locks_check(report, source)
        assert not check["ok"] and "stale-write-accepted at height" in check["detail"]
