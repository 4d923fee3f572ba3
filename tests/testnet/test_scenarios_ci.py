"""The CI scenarios, run as a user runs them (`chainlab testnet run`, a subprocess) each within 2 minutes; whatever
happens, no node process is left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testnet import launcher, procs
from testnet.state import load_testnet

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["ci-pow-partition-heal", "ci-pow-crash-restart", "ci-raft-leader-kill",
                                  "ci-raft-minority-partition"])
def test_ci_scenario_passes(name: str, tmp_path: Path) -> None:
    directory = tmp_path / name
    manifest = ROOT / "testnet" / "scenarios" / f"{name}.toml"
    try:
        done = subprocess.run([sys.executable, "-m", "cli.main", "testnet", "run", str(manifest), "--seed", "1",
                               "--dir", str(directory), "--json"], capture_output=True, text=True, timeout=120,
                              cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert report["ok"] and report["seed"] == 1 and report["down"]["ok"]
        assert {"rpc", "stores"} == set(report["checks"])
        assert all(check["ok"] for result in report["checks"].values() for check in result["checks"])
        assert report["load"]["accepted"] > 0 and report["load"]["accepted_not_final"] == 0
        assert json.loads((directory / "report.json").read_text())["ok"]
        for node in load_testnet(directory).nodes:
            assert node.pid is not None and not procs.alive(node.pid) and procs.group_members(node.pid) == []
    finally:
        if (directory / "testnet.json").exists():
            launcher.down(directory, timeout_s=5)
