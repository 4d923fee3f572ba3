"""PBFT in the simulator: the real node core and engine under every fault (partitions, crashes, loss, duplication,
drift) stay safe and make progress; a view change replaces a crashed primary; a planted weak quorum (f+1 commits
make a block final) is caught by the safety checks; runs replay exactly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.pbft import quorum
from testnet.sim.config import SimConfig, parse_faults
from testnet.sim.simulator import Simulator
from tests.sim.helpers import node_core_factory


def config(seed: int, *, nodes: int = 4, faults: str = "loss,dup,drift,partition,crash") -> SimConfig:
    return SimConfig(seed=seed, consensus="pbft", nodes=nodes, duration_s=60.0, block_interval_s=2.0,
                     faults=parse_faults(faults), tx_rate_per_s=1.0)


@pytest.mark.parametrize(("seed", "nodes"), [(101, 4), (202, 4), (303, 5), (404, 7), (505, 4), (606, 7)])
def test_pbft_is_safe_and_live_under_faults(seed: int, nodes: int) -> None:
    result = Simulator(config(seed, nodes=nodes), node_core_factory).run()
    assert result.ok, [c for c in result.checks if not c.ok]
    heights = result.stats["final_heights"]
    assert isinstance(heights, dict) and min(heights.values()) >= 3


def test_pbft_without_faults_commits_a_block_per_interval() -> None:
    result = Simulator(replace(config(1, faults="none"), duration_s=40.0), node_core_factory).run()
    assert result.ok
    heights = result.stats["final_heights"]
    assert isinstance(heights, dict) and min(heights.values()) >= 15  # 2 s blocks over ~45 s


def test_crashes_alone_still_let_the_network_commit() -> None:
    """Crashed primaries are replaced by view changes; restarted validators rejoin (their view, votes and
    prepared certificates come back from their store)."""
    result = Simulator(replace(config(3, faults="crash"), duration_s=120.0), node_core_factory).run()
    assert result.ok, [c for c in result.checks if not c.ok]
    heights = result.stats["final_heights"]
    assert isinstance(heights, dict) and min(heights.values()) >= 8


# Two schedules the swarm drew where a weak quorum forks the chain (found by running the swarm's space with it).
WEAK_QUORUM_FORKS = [
    SimConfig(seed=3114195261103809730, consensus="pbft", nodes=6, duration_s=80.0, block_interval_s=2.0,
              faults=parse_faults("crash,loss,partition"), model="synchronous", max_delay_s=0.06,
              async_scale_s=0.03, tx_rate_per_s=0.2),
    SimConfig(seed=4069178741907118456, consensus="pbft", nodes=4, duration_s=100.0, block_interval_s=5.0,
              faults=parse_faults("loss,partition"), model="partial-sync", max_delay_s=0.5, async_scale_s=0.25,
              tx_rate_per_s=0.0),
]


@pytest.mark.parametrize("planted", WEAK_QUORUM_FORKS, ids=lambda c: str(c.seed))
def test_a_weak_quorum_is_caught(planted: SimConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """With f+1 commits making a block final, a partition lets both sides finalize: the checks must say so."""
    assert Simulator(planted, node_core_factory).run().ok  # the real quorum is safe on this schedule
    monkeypatch.setattr(quorum.Validators, "quorum", property(lambda self: self.f + 1))
    result = Simulator(planted, node_core_factory).run()
    assert not result.ok and "final-prefix-agreement" in result.failed_checks()


def test_pbft_replays_exactly() -> None:
    first = Simulator(config(7), node_core_factory).run()
    again = Simulator(config(7), node_core_factory).run()
    assert first.trace_hash == again.trace_hash and first.trace_events == again.trace_events


def test_replicas_are_never_stuck_in_view_changing_sawtooth_pbft_90() -> None:
    """sawtooth-pbft#90: replicas stuck in view-changing. Found by the Byzantine swarm (a silent validator, crashes
    and partitions): one replica timed out view after view ahead of the others, and no view gathered a quorum
    again. Then a replica that kept one view-change per validator lost the quorum of the view another had just
    left. Now the timer of a view change runs only once a quorum asks for that view or a later one, and a
    validator's latest few view-changes are kept."""
    stuck = SimConfig(seed=332654162003075250, consensus="pbft", nodes=4, duration_s=600.0, block_interval_s=10.0,
                      faults=parse_faults("crash,drift,loss,partition"), model="asynchronous", finality_threshold=5,
                      max_delay_s=0.1, async_scale_s=0.02, tx_rate_per_s=0.2, byzantine="random")
    result = Simulator(stuck, node_core_factory).run()
    assert result.ok, [c for c in result.checks if not c.ok]
