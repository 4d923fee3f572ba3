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


@pytest.mark.parametrize("name", [
    # tests/test_readme.py runs ci-pow-partition-heal as the README shows it (seed 7): here only in --long
    pytest.param("ci-pow-partition-heal", marks=pytest.mark.long),
    "ci-pow-crash-restart", "ci-raft-leader-kill", "ci-raft-minority-partition", "ci-pbft-equivocating-primary"])
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


def test_f_plus_one_twins_fails_as_expected_naming_the_conflicting_certificates(tmp_path: Path) -> None:
    """The demonstration scenario: 2 twin pairs of 4 PBFT validators split across a partition commit conflicting
    blocks; `testnet run` reports it failed as expected (exit 0), the twins go down with the testnet."""
    directory = tmp_path / "twins"
    try:
        done = subprocess.run([sys.executable, "-m", "cli.main", "testnet", "run", "pbft-f-plus-one-twins", "--seed",
                               "1", "--dir", str(directory), "--json"], capture_output=True, text=True, timeout=90,
                              cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout)
        assert report["expect"] == "fail" and report["as_expected"] and not report["ok"] and report["down"]["ok"]
        detail = report["expected_failures"]["certificates"]
        assert "2 validators signed both (node" in detail and "more than f = 1" in detail
        assert "node0+node0-twin" in detail and "node1+node1-twin" in detail
        nodes = load_testnet(directory).nodes
        assert [n.name for n in nodes if n.twin_of] == ["node0-twin", "node1-twin"]
        for node in nodes:
            assert node.pid is not None and not procs.alive(node.pid) and procs.group_members(node.pid) == []
    finally:
        if (directory / "testnet.json").exists():
            launcher.down(directory, timeout_s=5)
