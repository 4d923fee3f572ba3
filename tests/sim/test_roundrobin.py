"""The contract's reference engine in the simulator: round-robin runs through the real node core under every
fault (partitions, crashes, loss, duplication, drift), stays safe, makes progress after the heal, and replays."""

from __future__ import annotations

import pytest

from testnet.sim.config import SimConfig, parse_faults
from testnet.sim.simulator import Simulator
from tests.sim.helpers import node_core_factory


def config(seed: int) -> SimConfig:
    return SimConfig(seed=seed, consensus="round-robin", nodes=3 + seed % 4, duration_s=60.0, block_interval_s=2.0,
                     faults=parse_faults("loss,dup,drift,partition,crash"), tx_rate_per_s=1.0)


@pytest.mark.parametrize("seed", [101, 202, 303, 404, 505, 606])
def test_round_robin_is_safe_and_live_under_faults(seed: int) -> None:
    result = Simulator(config(seed), node_core_factory).run()
    assert result.ok, [c for c in result.checks if not c.ok]
    heights = result.stats["final_heights"]
    assert isinstance(heights, dict) and min(heights.values()) >= 3


def test_round_robin_replays_exactly() -> None:
    first = Simulator(config(7), node_core_factory).run()
    again = Simulator(config(7), node_core_factory).run()
    assert first.trace_hash == again.trace_hash and first.trace_events == again.trace_events
