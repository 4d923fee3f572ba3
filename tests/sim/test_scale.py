"""Scale: the random overlay, the latency matrix, the propagation and stale-block figures, the hash-power split,
and a 100-node run (docs/SCALE.md)."""

from __future__ import annotations

from random import Random

import pytest
from click.testing import CliRunner

from cli.main import main
from testnet.sim import simulator as simulator_module
from testnet.sim.config import ConfigError, SimConfig, parse_split
from testnet.sim.latency import WORLD, LatencyError, parse_latency
from testnet.sim.metrics import Propagation, percentile, stale_rate
from testnet.sim.node import SimNode
from testnet.sim.overlay import OverlayError, hop_distances, is_connected, neighbours_of, random_regular
from testnet.sim.simulator import SimResult, Simulator
from testnet.sim.split import SplitStudy, split_sides
from testnet.sim.wire import EngineCarrier
from tests.sim.helpers import node_core_factory

GOOD = """
regions = ["eu", "us"]
weights = [3, 1]
[delay_ms]
eu = [10, 40]
us = [40, 5]
"""


# -- overlay ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("nodes", "degree"), [(10, 3), (100, 8), (1000, 8), (9, 2)])
def test_random_regular_is_regular_connected_and_simple(nodes: int, degree: int) -> None:
    pairs = random_regular(nodes, degree, Random(nodes))
    assert len(pairs) == len(set(pairs)) == nodes * degree // 2
    assert all(a < b for a, b in pairs)  # no self-loop, each pair once
    assert all(len(row) == degree for row in neighbours_of(nodes, pairs))
    assert is_connected(nodes, pairs)


def test_random_regular_is_the_seeds() -> None:
    assert random_regular(200, 8, Random(5)) == random_regular(200, 8, Random(5))
    assert random_regular(200, 8, Random(5)) != random_regular(200, 8, Random(6))


def test_small_networks_are_a_full_mesh_and_impossible_degrees_are_refused() -> None:
    assert random_regular(4, 8, Random(1)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    with pytest.raises(OverlayError, match="even"):
        random_regular(11, 3, Random(1))
    with pytest.raises(OverlayError, match="never connected"):
        random_regular(10, 1, Random(1))
    with pytest.raises(ConfigError, match="--degree"):
        SimConfig(seed=1, nodes=100)
    with pytest.raises(ConfigError, match="even"):
        SimConfig(seed=1, nodes=101, degree=3)


def test_connectivity_and_hops_on_a_hand_made_graph() -> None:
    path = [(0, 1), (1, 2), (2, 3)]
    assert is_connected(4, path) and not is_connected(5, path)
    assert hop_distances(5, path, 0) == [0, 1, 2, 3, -1]


# -- latency matrix -----------------------------------------------------------------------------------------------

def test_latency_matrix_parses_and_places_nodes_by_weight() -> None:
    matrix = parse_latency("two.toml", GOOD)
    assert matrix.regions == ("eu", "us") and matrix.weights == (0.75, 0.25)
    assert matrix.delay_s == ((0.010, 0.040), (0.040, 0.005))
    placed = matrix.placement(1000)
    assert abs(placed.count(0) - 750) <= 2 and placed == matrix.placement(1000)
    assert set(WORLD.placement(50)) == set(range(len(WORLD.regions)))  # every region gets nodes


@pytest.mark.parametrize(("text", "message"), [
    ("regions = [", "not TOML"),
    ("regions = []\n[delay_ms]", "non-empty list"),
    ('regions = ["a", "a"]\n[delay_ms]\na = [1, 1]', "distinct"),
    ('regions = ["a", "b"]\n[delay_ms]\na = [1, 2]\nb = [3, 1]', "not symmetric: a->b 2 ms, b->a 3 ms"),
    ('regions = ["a", "b"]\n[delay_ms]\na = [1, 2]', "missing: b"),
    ('regions = ["a"]\n[delay_ms]\na = [-1]', "within 0..10000 ms"),
    ('regions = ["a"]\n[delay_ms]\na = ["x"]', "list of 1 numbers"),
    ('regions = ["a"]\nweights = [0]\n[delay_ms]\na = [1]', "not all zero"),
    ('regions = ["a"]\nspeed = 1\n[delay_ms]\na = [1]', "unknown key(s) speed"),
])
def test_bad_latency_tables_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(LatencyError) as info:
        parse_latency("m.toml", text)
    assert message in str(info.value) and "\n" not in str(info.value) and info.value.code == "bad-latency-matrix"
    assert str(info.value).startswith("m.toml: ")


def test_the_cli_says_what_is_wrong_with_a_latency_file_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text('regions = ["a", "b"]\n[delay_ms]\na = [1, 2]\nb = [3, 1]\n')
    for source in (str(bad), str(tmp_path / "missing.toml")):
        done = CliRunner().invoke(main, ["sim", "--nodes", "3", "--latency", source])
        assert done.exit_code == 1, done.output
        assert done.output.startswith("error: ") and done.output.count("\n") == 1, done.output
    done = CliRunner().invoke(main, ["sim", "--nodes", "3", "--split", "0.7"])
    assert done.exit_code == 1 and done.output.startswith("error: split '0.7' is not SHARE@START+DURATION")


# -- metrics ------------------------------------------------------------------------------------------------------

def test_percentiles_are_nearest_rank() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 99) == 4.0
    assert percentile([], 50) is None


def test_propagation_to_ninety_percent_of_ten_nodes() -> None:
    meter = Propagation(10)  # 90% of 10 = 9 nodes
    meter.mined(b"a", 100.0)
    meter.mined(b"b", 200.0)
    for node in range(8):
        meter.connected(b"a", node, 100.0 + node * 0.1)  # 8 nodes by 100.7: not yet 90%
    meter.connected(b"a", 3, 100.8)  # the same node again (a reorg back): still 8
    assert meter.delays == []
    meter.connected(b"a", 8, 101.5)  # the ninth: reached after 1.5 s
    meter.connected(b"a", 9, 102.0)  # later ones do not count
    for node in range(9):
        meter.connected(b"b", node, 200.5)
    meter.mined(b"c", 300.0)  # never gets there (stale)
    meter.connected(b"unknown", 1, 1.0)  # not mined in this run: ignored
    assert meter.summary() == {"fraction": 0.9, "blocks": 3, "reached": 2, "not_reached": 1, "p50_s": 0.5,
                               "p99_s": 1.5, "max_s": 1.5}


def test_stale_rate_counts_mined_blocks_off_the_best_chain() -> None:
    assert stale_rate([b"a", b"b", b"c", b"d"], [b"a", b"c", b"d", b"x"]) == {
        "mined": 4, "on_best_chain": 3, "stale": 1, "rate": 0.25}
    assert stale_rate([], [b"a"])["rate"] is None


# -- the split ----------------------------------------------------------------------------------------------------

def test_split_sides_give_side_a_at_least_its_share() -> None:
    shares = [0.3, 0.2, 0.2, 0.2, 0.1] + [0.0] * 10
    for seed in range(20):
        a, b = split_sides(Random(seed), shares, 0.7)
        assert sorted(a + b) == list(range(15)) and not set(a) & set(b)
        assert sum(shares[i] for i in a) >= 0.7 - 1e-9 and any(shares[i] > 0 for i in b)
        assert sum(1 for i in a if shares[i] == 0) == 7  # 70% of the ten relays


def test_split_study_on_a_hand_made_story() -> None:
    shares = [0.4, 0.3, 0.2, 0.1, 0.0]
    study = SplitStudy(([0, 1, 4], [2, 3]), shares, [True, True, True, True, False], start_s=100.0)
    study.block_mined(0)
    study.mining_changed(2, False, 102.0)
    study.block_mined(3)  # B's last miner, before it notices
    study.mining_changed(3, False, 103.5)  # B all paused 3.5 s after the cut
    study.healed(160.0)
    study.block_mined(2)  # after the heal: not counted as while cut
    study.reorg(3, 1)
    study.reorg(4, 2)  # (a relay of side A reorging would be odd, but counts)
    study.mining_changed(2, True, 161.0)
    study.mining_changed(3, True, 161.0)
    study.converged(163.0)
    summary = study.summary()
    a, b = summary["sides"]  # type: ignore[misc]
    assert a == {"nodes": 3, "miners": 2, "hash_share": 0.7, "mining_before": 2, "mining_at_end": 2,
                 "mining_after_heal": 2, "all_paused_after_s": None, "blocks_while_cut": 1}
    assert b == {"nodes": 2, "miners": 2, "hash_share": 0.3, "mining_before": 2, "mining_at_end": 0,
                 "mining_after_heal": 2, "all_paused_after_s": 3.5, "blocks_while_cut": 1}
    assert summary["reorged_nodes"] == 2 and summary["deepest_reorg"] == 2 and summary["blocks_disconnected"] == 3
    assert summary["converged_after_heal_s"] == 3.0


def test_split_options_are_checked() -> None:
    assert parse_split("0.7@100+50") == (0.7, 100.0, 50.0)
    with pytest.raises(ConfigError, match="SHARE@START"):
        parse_split("0.7@100")
    with pytest.raises(ConfigError, match="within the safety phase"):
        SimConfig(seed=1, nodes=5, faults=frozenset(), duration_s=100, split_share=0.7, split_at_s=80,
                  split_for_s=30)
    with pytest.raises(ConfigError, match="partition fault"):
        SimConfig(seed=1, nodes=5, duration_s=100, split_share=0.7, split_at_s=10, split_for_s=30)


# -- runs ---------------------------------------------------------------------------------------------------------

# The CI runs end one virtual second after the safety phase (liveness_budget_s 1): too soon for k + 1 new blocks,
# so the liveness checks fail by design; the safety checks and the scale figures are what these runs test.
CUT_SHORT = {"liveness", "finality-progress"}


def _hundred(seed: int, **options: object) -> SimConfig:
    base: dict[str, object] = {
        "seed": seed, "nodes": 100, "degree": 8, "latency": WORLD, "miners": 4, "duration_s": 40.0,
        "faults": frozenset(), "model": "synchronous", "max_delay_s": 0.02, "block_interval_s": 5.0,
        "finality_threshold": 3, "heartbeat_interval_s": 2.5, "tx_rate_per_s": 0.0, "liveness_budget_s": 1.0}
    base.update(options)
    return SimConfig(**base)  # type: ignore[arg-type]


def test_a_hundred_nodes_over_a_degree_8_overlay_and_world_latency() -> None:
    result = Simulator(_hundred(3), node_core_factory).run()
    assert set(result.failed_checks()) <= CUT_SHORT, result.failed_checks()
    scale = result.scale or {}
    overlay, propagation, stale = scale["overlay"], scale["propagation"], scale["stale"]
    assert isinstance(overlay, dict) and overlay["links"] == 400 and overlay["degree"] == 8
    assert isinstance(propagation, dict) and isinstance(stale, dict)
    assert propagation["reached"] >= 3 and stale["mined"] >= propagation["reached"]
    # Three hops or so across regions 8..160 ms apart: well above one hop's latency, well below a second.
    assert 0.05 < propagation["p50_s"] < 1.0  # type: ignore[operator]
    assert result.stats["suppressed"] > 0  # copies of envelopes their receiver held were not scheduled
    assert scale["miners"] == 4


def test_a_split_of_a_hundred_nodes_pauses_the_minority_and_heals() -> None:
    config = _hundred(4, duration_s=60.0, split_share=0.7, split_at_s=15.0, split_for_s=30.0)
    first = Simulator(config, node_core_factory).run()
    assert set(first.failed_checks()) <= CUT_SHORT, first.failed_checks()
    split = (first.scale or {})["split"]
    assert isinstance(split, dict)
    side_a, side_b = split["sides"]
    assert side_a["hash_share"] >= 0.7 and side_a["mining_at_end"] == side_a["miners"]  # the majority mines on
    assert side_b["mining_at_end"] == 0 and side_b["all_paused_after_s"] is not None  # the minority paused
    assert split["converged_after_heal_s"] is not None
    again = Simulator(config, node_core_factory).run()  # same seed, same run
    assert again.trace_hash == first.trace_hash and again.scale == first.scale


@pytest.mark.long
def test_a_thousand_nodes_for_a_virtual_hour() -> None:
    """The performance target of issue #19 (docs/PERFORMANCE.md, "Simulator at scale"): 1,000 nodes, one virtual
    hour of 10 s blocks, one presence heartbeat per block interval (at 2.5 s heartbeats the hour costs ~1,000 CPU s:
    docs/SCALE.md). Long (514 CPU s measured): run by `make test-long`."""
    import time

    config = SimConfig(seed=1, nodes=1000, degree=8, latency=WORLD, miners=5, heartbeat_interval_s=10.0,
                       duration_s=3600.0, faults=frozenset(), model="synchronous", max_delay_s=0.02,
                       tx_rate_per_s=0.0, liveness_budget_s=1.0)
    started = time.process_time()
    result = Simulator(config, node_core_factory).run()
    cpu_s = time.process_time() - started
    assert set(result.failed_checks()) <= CUT_SHORT, result.failed_checks()
    propagation = (result.scale or {})["propagation"]
    assert isinstance(propagation, dict) and propagation["reached"] >= 300
    assert cpu_s < 600, f"{cpu_s:.0f} CPU s"


# -- copies not scheduled -----------------------------------------------------------------------------------------

def _faulty(seed: int) -> SimConfig:
    # Long delays (up to 2 s) so that partitions and crashes catch leads in flight: the copies that wait for them
    # are then scheduled after all (seed 1 has two such).
    return SimConfig(seed=seed, nodes=6, duration_s=60.0, faults=frozenset({"partition", "crash", "loss", "dup"}),
                     model="synchronous", max_delay_s=2.0, heartbeat_interval_s=1.0, liveness_budget_s=30.0)


_ON_ENGINE = SimNode._on_engine


def _engine_inputs(monkeypatch: pytest.MonkeyPatch, config: SimConfig) -> tuple[SimResult, list[tuple[object, ...]]]:
    """The run, and every engine envelope a node's core was handed (a copy not seen before): when, who, which."""
    seen: list[tuple[object, ...]] = []

    def recording(node: SimNode, peer: str, message: EngineCarrier) -> None:
        seen.append((node.t, node.name, peer, message.digest))
        _ON_ENGINE(node, peer, message)

    monkeypatch.setattr(SimNode, "_on_engine", recording)
    return Simulator(config, node_core_factory).run(), seen


def test_copies_not_scheduled_change_nothing_the_nodes_see(monkeypatch: pytest.MonkeyPatch) -> None:
    suppressed, inputs = _engine_inputs(monkeypatch, _faulty(1))
    assert suppressed.stats["suppressed"] > 0 and suppressed.stats["rescheduled"] > 0
    monkeypatch.setattr(simulator_module, "SUPPRESS_MAX_INFLIGHT_S", 0.0)  # every copy scheduled and delivered
    every_copy, every_input = _engine_inputs(monkeypatch, _faulty(1))
    assert every_copy.stats["suppressed"] == 0 and every_copy.stats["delivered"] > suppressed.stats["delivered"]
    assert every_input == inputs and len(inputs) > 100
    assert every_copy.stats["heights"] == suppressed.stats["heights"] and every_copy.scale == suppressed.scale


class _AlwaysFirst:
    """Planted: a pending lead that claims to arrive before any copy, so every later-sent copy waits for it."""

    def __init__(self, arrival: float, lead: object, deferred: list[object]) -> None:
        self.lead, self.deferred = lead, deferred

    @property
    def arrival(self) -> float:
        return float("-inf")


def test_suppressing_a_copy_that_arrives_before_its_lead_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted: copies wait for the first-sent copy even when they would arrive before it."""
    _, right = _engine_inputs(monkeypatch, _faulty(1))
    monkeypatch.setattr(simulator_module, "_Pending", _AlwaysFirst)
    _, wrong = _engine_inputs(monkeypatch, _faulty(1))
    assert wrong != right
