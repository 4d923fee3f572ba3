"""A seed replays exactly: the same trace hash in-process, from the CLI, and under another hash seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testnet.sim.config import SimConfig, parse_faults
from testnet.sim.simulator import Simulator
from tests.sim.helpers import node_core_factory

ROOT = Path(__file__).resolve().parents[2]

SMALL = dict(nodes=4, duration_s=120.0, block_interval_s=5.0, faults=parse_faults("all"))


@pytest.mark.parametrize("model", ["synchronous", "asynchronous", "partial-sync"])
def test_replaying_a_seed_gives_the_same_trace(model: str) -> None:
    config = SimConfig(seed=2024, model=model, **SMALL)  # type: ignore[arg-type]
    first = Simulator(config, node_core_factory).run()
    second = Simulator(config, node_core_factory).run()
    assert first.ok, first.checks
    assert first.trace_hash == second.trace_hash
    assert first.trace_events == second.trace_events > 1000
    assert first.virtual_s == second.virtual_s
    other = Simulator(SimConfig(seed=2025, model=model, **SMALL), node_core_factory).run()  # type: ignore[arg-type]
    assert other.trace_hash != first.trace_hash


def test_primary_backup_replays_too() -> None:
    config = SimConfig(seed=77, consensus="primary-backup", **SMALL)  # type: ignore[arg-type]
    first = Simulator(config, node_core_factory).run()
    assert first.ok, first.checks
    assert first.stats["final_heights"]
    assert first.trace_hash == Simulator(config, node_core_factory).run().trace_hash


def test_the_replay_command_reproduces_the_run_in_another_process() -> None:
    """The printed command, run as a new process with a different PYTHONHASHSEED, gives the same trace hash."""
    config = SimConfig(seed=99, **SMALL)  # type: ignore[arg-type]
    expected = Simulator(config, node_core_factory).run()
    argv = config.command().split()[2:]  # drop "chainlab sim"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    completed = subprocess.run([sys.executable, "-m", "cli.main", "sim", *argv, "--json"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.splitlines()[0] == "SEED=99"
    document = json.loads(completed.stdout)
    assert document["trace_hash"] == expected.trace_hash
    assert document["ok"] is True
    assert document["speedup"] > 0 and document["wall_s"] > 0
