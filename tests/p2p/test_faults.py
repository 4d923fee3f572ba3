"""Fault plans: seeded loss, duplication, delay and jitter; validation."""

from __future__ import annotations

from random import Random

import pytest

from p2p.protocol.faults import NO_FAULTS, FaultConfig


def test_no_faults_sends_every_frame_at_once() -> None:
    assert NO_FAULTS.plan(Random(1)) == (0.0,)
    assert not NO_FAULTS.shapes_traffic


def test_loss_and_duplicate_probabilities() -> None:
    rng = Random(42)
    lossy = FaultConfig(loss=0.3)
    outcomes = [lossy.plan(rng) for _ in range(10_000)]
    assert 0.27 < sum(1 for o in outcomes if not o) / len(outcomes) < 0.33
    assert FaultConfig(loss=1.0).plan(rng) == ()
    assert FaultConfig(duplicate=1.0).plan(rng) == (0.0, 0.0)


def test_delay_and_jitter() -> None:
    rng = Random(7)
    assert FaultConfig(delay_ms=100).plan(rng) == (0.1,)
    delays = [FaultConfig(delay_ms=100, jitter_ms=20).plan(rng)[0] for _ in range(1000)]
    assert min(delays) >= 0.08 and max(delays) <= 0.12
    assert min(FaultConfig(delay_ms=5, jitter_ms=50).plan(rng)[0] for _ in range(200)) == 0.0


def test_same_seed_same_faults() -> None:
    config = FaultConfig(loss=0.2, duplicate=0.2, delay_ms=10, jitter_ms=10)
    first, second = Random(5), Random(5)
    assert [config.plan(first) for _ in range(100)] == [config.plan(second) for _ in range(100)]


def test_blocked_peers_match_ids_or_urls() -> None:
    faults = FaultConfig(blocked_peers=frozenset({"02ab", "ws://x/p2p"}))
    assert faults.blocks("02ab") and faults.blocks(None, "ws://x/p2p") and not faults.blocks("03cd", "")


def test_a_peer_delay_adds_to_frames_to_that_peer_only_and_draws_nothing() -> None:
    matrix = FaultConfig(peer_delay_ms={"02ab": 80.0})
    rng = Random(3)
    assert matrix.plan(rng, "02ab") == (0.08,) and matrix.plan(rng, "03cd") == (0.0,) and matrix.plan(rng) == (0.0,)
    assert rng.random() == Random(3).random()  # no draw: a matrix leaves a seeded run's faults as they were
    both = FaultConfig(delay_ms=20, duplicate=1.0, peer_delay_ms={"02ab": 80.0})
    assert both.plan(Random(1), "02ab") == pytest.approx((0.1, 0.1))


@pytest.mark.parametrize("kwargs", [{"loss": 1.5}, {"duplicate": -0.1}, {"delay_ms": -1},
                                    {"jitter_ms": float("inf")}, {"blocked_peers": {"x"}},
                                    {"peer_delay_ms": {"02ab": -1.0}}, {"peer_delay_ms": {"02ab": float("nan")}},
                                    {"peer_delay_ms": {"02ab": True}}, {"peer_delay_ms": [("02ab", 1.0)]}])
def test_invalid_configs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultConfig(**kwargs)  # type: ignore[arg-type]
