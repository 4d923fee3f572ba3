"""The simulator's lock workload (testnet/sim/lockclients.py) and its `locks` check: sessions compete for locks
through the real node cores, a paused holder's late write is refused, and a planted register rule that accepts a
stale token fails the run with the violation named."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chain import locks as chain_locks
from cli.main import main
from testnet.sim import SimConfig, Simulator
from testnet.sim.config import ConfigError
from testnet.sim.simulator import SimResult
from testnet.sim.swarm import LOCK_SPACE, swarm_configs
from tests.lockplant import accept_stale
from tests.sim.helpers import node_core_factory


def _config(**overrides: object) -> SimConfig:
    options: dict[str, object] = dict(seed=2, consensus="raft", nodes=3, duration_s=60, faults=frozenset(),
                                      model="synchronous", block_interval_s=1.0, max_delay_s=0.05,
                                      async_scale_s=0.01, tx_rate_per_s=3.0, workload="lock", locks=1)
    options.update(overrides)
    return SimConfig(**options)  # type: ignore[arg-type]


def _locks_check(result: SimResult) -> tuple[bool, str]:
    check = next(c for c in result.checks if c.name == "locks")
    return check.ok, check.detail


def test_a_lock_run_exercises_grants_writes_and_late_writes_and_passes() -> None:
    result = Simulator(_config(), node_core_factory).run()
    assert result.ok, result.failed_checks()
    ok, detail = _locks_check(result)
    stats = result.stats
    assert ok and detail.startswith("3 nodes, no violation; the longest final chain: ")
    assert stats["lock_grants"] >= 2 and stats["lock_writes_accepted"] >= 2  # type: ignore[operator]
    assert stats["lock_late_writes"] >= 1 and stats["lock_late_writes_in_lease"] == 0
    assert stats["lock_late_writes_refused"] == stats["lock_late_writes"]  # every late write was refused
    assert stats["txs_submitted"] == 0  # no transfers: the sessions' operations are the load


def test_a_lock_run_replays_exactly() -> None:
    config = _config(faults=frozenset({"crash", "partition", "drift", "loss"}), model="partial-sync", seed=7)
    first, second = (Simulator(config, node_core_factory).run() for _ in range(2))
    assert first.trace_hash == second.trace_hash and first.stats == second.stats
    assert "--workload lock --locks 1" in config.command()




@pytest.mark.parametrize("consensus, nodes", [("raft", 3), ("pbft", 4)])
def test_a_register_that_accepts_a_stale_token_fails_the_run(consensus: str, nodes: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(consensus=consensus, nodes=nodes)
    assert Simulator(config, node_core_factory).run().ok  # the honest rule passes this very run
    monkeypatch.setattr(chain_locks, "_apply_kv_put", accept_stale)
    result = Simulator(config, node_core_factory).run()
    assert not result.ok and result.failed_checks() == ["locks"]
    ok, detail = _locks_check(result)
    assert not ok and "stale-write-accepted at height" in detail and "the newest grant is" in detail
    assert result.stats["lock_late_writes_in_lease"] >= 1  # type: ignore[operator]


def test_the_lock_workload_is_refused_with_reads_and_bad_counts() -> None:
    with pytest.raises(ConfigError, match="read_rate_per_s goes with the transfer workload"):
        _config(read_rate_per_s=1.0)
    with pytest.raises(ConfigError, match="locks must be within"):
        _config(locks=0)
    with pytest.raises(ConfigError, match="workload must be one of"):
        _config(workload="queue")


def test_the_lock_space_draws_lock_runs_without_reads() -> None:
    configs = [config for config, _ in zip(swarm_configs(5, LOCK_SPACE), range(30), strict=False)]
    assert {c.workload for c in configs} == {"lock"} and {c.read_rate_per_s for c in configs} == {0.0}
    assert {c.consensus for c in configs} >= {"raft", "pbft"} and all(1 <= c.locks <= 3 for c in configs)


def test_the_cli_runs_the_lock_workload_and_refuses_it_with_reads() -> None:
    runner = CliRunner()
    args = ["sim", "--consensus", "raft", "--nodes", "3", "--seed", "2", "--duration", "30", "--faults", "none",
            "--block-interval", "1", "--max-delay", "0.05", "--tx-rate", "3", "--workload", "lock", "--locks", "2"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "  ok   locks: 3 nodes, no violation" in result.output
    assert "--workload lock --locks 2" in result.output  # the replay line
    assert "\nlock sessions: " in result.output and " pauses past a lease, " in result.output
    refused = runner.invoke(main, [*args, "--read-rate", "1"])
    assert refused.exit_code != 0 and "read_rate_per_s goes with the transfer workload" in refused.output
    assert refused.exception is None or isinstance(refused.exception, SystemExit)
