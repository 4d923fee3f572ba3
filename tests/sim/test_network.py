"""Each network model keeps its delay promise (property tests on the models alone), and link faults draw as said."""

from __future__ import annotations

import itertools
from random import Random

from hypothesis import given
from hypothesis import strategies as st

from testnet.sim.network import AsynchronousModel, LinkFaults, PartialSyncModel, SynchronousModel, make_model

seeds = st.integers(min_value=0, max_value=2**64 - 1)
times = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
bounds = st.floats(min_value=0.001, max_value=60.0, allow_nan=False)


@given(seed=seeds, now=times, max_delay=bounds, fraction=st.floats(min_value=0.0, max_value=1.0))
def test_synchronous_delays_stay_within_bounds(seed: int, now: float, max_delay: float, fraction: float) -> None:
    model = SynchronousModel(max_delay_s=max_delay, min_delay_s=max_delay * fraction)
    rng = Random(seed)
    for _ in range(200):
        delay = model.delay(rng, now)
        assert model.min_delay_s <= delay <= max_delay
    assert model.bound(now) == max_delay
    assert model.healed() == model


@given(seed=seeds, now=times, gst=times, max_delay=bounds, scale=bounds)
def test_partial_sync_delivers_by_gst_plus_d(seed: int, now: float, gst: float, max_delay: float,
                                             scale: float) -> None:
    model = make_model("partial-sync", max_delay_s=max_delay, gst_s=gst, async_scale_s=scale)
    assert isinstance(model, PartialSyncModel)
    rng = Random(seed)
    for _ in range(200):
        delay = model.delay(rng, now)
        assert delay >= 0
        assert now + delay <= max(now, gst) + max_delay + 1e-6 * max(1.0, now, gst)
    if now >= gst:
        assert model.bound(now) == max_delay


@given(seed=seeds, now=times, scale=bounds)
def test_asynchronous_delays_are_positive_and_unbounded(seed: int, now: float, scale: float) -> None:
    model = AsynchronousModel(scale_s=scale)
    rng = Random(seed)
    delays = [model.delay(rng, now) for _ in range(2000)]
    assert min(delays) >= model.min_delay_s
    assert model.bound(now) is None
    assert isinstance(model.healed(), SynchronousModel)


def test_asynchronous_tail_is_heavy_and_reorders() -> None:
    """Far beyond any bound sometimes (a Pareto tail), and later messages often overtake earlier ones."""
    model = AsynchronousModel(scale_s=0.1, alpha=1.5)
    rng = Random(7)
    delays = [model.delay(rng, 0.0) for _ in range(100_000)]
    assert max(delays) > 100 * 0.1  # P(delay > 10 s) ~ (0.1 / 10)^1.5 = 1e-3
    arrivals = [index * 0.01 + delay for index, delay in enumerate(delays[:1000])]
    overtaken = sum(1 for a, b in itertools.pairwise(arrivals) if b < a)
    assert overtaken > 50


def test_partial_sync_is_asynchronous_before_gst() -> None:
    model = make_model("partial-sync", max_delay_s=0.5, gst_s=1000.0, async_scale_s=0.1)
    rng = Random(3)
    delays = [model.delay(rng, 0.0) for _ in range(100_000)]
    assert max(delays) > 0.5  # beyond D before GST
    late = [model.delay(rng, 1000.0) for _ in range(10_000)]
    assert max(late) <= 0.5


@given(seed=seeds, loss=st.floats(0, 1), duplicate=st.floats(0, 1))
def test_link_faults_draw_zero_one_or_two_copies(seed: int, loss: float, duplicate: float) -> None:
    faults = LinkFaults(loss=loss, duplicate=duplicate)
    rng = Random(seed)
    counts = [faults.copies(rng) for _ in range(200)]
    assert set(counts) <= {0, 1, 2}
    if loss == 0:
        assert 0 not in counts
    if duplicate == 0:
        assert 2 not in counts


def test_link_fault_rates_match_their_probabilities() -> None:
    faults = LinkFaults(loss=0.2, duplicate=0.1)
    rng = Random(11)
    counts = [faults.copies(rng) for _ in range(50_000)]
    assert abs(counts.count(0) / len(counts) - 0.2) < 0.01
    assert abs(counts.count(2) / len(counts) - 0.8 * 0.1) < 0.01
