"""`chainlab sim` as a user runs it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import main
from testnet.sim.config import SimConfig, parse_faults
from testnet.sim.simulator import Simulator
from tests.sim.helpers import node_core_factory


def test_sim_prints_the_seed_first_and_the_checks() -> None:
    result = CliRunner().invoke(main, ["sim", "--nodes", "3", "--seed", "42", "--duration", "60",
                                       "--block-interval", "5"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "SEED=42"
    assert "result: OK" in result.output
    assert any(line.startswith("replay: chainlab sim ") and "--seed 42" in line for line in lines)


def test_sim_json_matches_the_library_run() -> None:
    result = CliRunner().invoke(main, ["sim", "--consensus", "pow", "--nodes", "3", "--seed", "7", "--duration",
                                       "60", "--faults", "partition,crash,loss,dup,drift", "--model", "partial-sync",
                                       "--block-interval", "5", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {"seed", "virtual_s", "wall_s", "speedup", "trace_hash", "ok", "checks"} <= set(document)
    assert document["seed"] == 7
    names = {check["name"] for check in document["checks"]}
    assert {"final-prefix-agreement", "no-safety-alarm", "convergence", "ledger-invariants", "liveness"} <= names
    config = SimConfig(seed=7, nodes=3, duration_s=60, faults=parse_faults("all"), block_interval_s=5)
    assert document["trace_hash"] == Simulator(config, node_core_factory).run().trace_hash


def test_sim_refuses_bad_options() -> None:
    result = CliRunner().invoke(main, ["sim", "--faults", "partition,meteor"])
    assert result.exit_code == 1
    assert "meteor" in result.output


def test_swarm_lists_each_run_with_its_replay_command() -> None:
    result = CliRunner().invoke(main, ["sim", "--swarm", "--runs", "2", "--swarm-seed", "9", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["swarm_seed"] == 9 and document["ok"] is True and document["failures"] == []
    assert len(document["results"]) == 2
    assert all(row["command"].startswith("chainlab sim ") for row in document["results"])


@pytest.mark.parametrize(("args", "needle"), [
    (["--swarm", "--duration", "30", "--block-interval", "2"], "--duration, --block-interval cannot go with --swarm"),
    (["--swarm", "--seed", "5"], "--seed cannot go with --swarm"),
    (["--runs", "3"], "--runs goes with --swarm"),
    (["--swarm-seed", "3"], "--swarm-seed goes with --swarm"),
])
def test_options_the_swarm_would_ignore_are_refused(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(main, ["sim", *args])
    assert result.exit_code == 1 and needle in result.output and "Traceback" not in result.output
