"""The failure detector demonstration: completeness, eventual accuracy and the timeout trade-off hold for the
project's detector; a detector that never suspects fails completeness, one that times out at a quarter of its
timeout fails eventual accuracy."""

from __future__ import annotations

import pytest

from cli.sim import node_core_factory
from consensus.failure_detector import FailureDetector, Suspicion
from tour.demos import failuredetector
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_detector_is_complete_eventually_accurate_and_trades_timeouts(seed: int) -> None:
    outcome = failuredetector.run(TourContext(seed=seed, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    figures = outcome.figures
    assert figures["false_after_stable"][0] > 0  # a timeout below interval + jitter errs even in synchrony
    assert figures["false_before_gst"] == sorted(figures["false_before_gst"], reverse=True)
    assert [p.name for p in outcome.pictures] == ["suspicion.svg"]


def test_a_detector_that_never_suspects_fails_completeness(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(self: FailureDetector, now: float) -> list[Suspicion]:
        return []

    monkeypatch.setattr(FailureDetector, "poll", never)
    outcome = failuredetector.run(CONTEXT)
    assert "strong-completeness" in outcome.failed_checks()


def test_a_detector_that_ignores_its_timeout_fails_eventual_accuracy(monkeypatch: pytest.MonkeyPatch) -> None:
    honest = FailureDetector.trusted

    def impatient(self: FailureDetector, process: bytes, now: float) -> bool:
        heard = self.last_heard_s(process, now)
        return heard is not None and heard < self.timeout_s / 4 and honest(self, process, now)

    monkeypatch.setattr(FailureDetector, "trusted", impatient)
    outcome = failuredetector.run(CONTEXT)
    assert "eventual-accuracy" in outcome.failed_checks()


def test_a_faster_heartbeat_allows_a_shorter_accurate_timeout() -> None:
    rows = failuredetector.run(CONTEXT).figures["intervals"]
    assert [row["accurate_timeout_s"] for row in rows] == [0.5, 0.75, 1.2]  # type: ignore[attr-defined]


def test_heartbeats_that_ignore_the_interval_fail_the_interval_trade_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every interval of the sweep sent at the default interval: the timeouts scaled to a 0.25 s heartbeat are too
    short for the 0.5 s one actually sent, so its shortest accurate timeout is no shorter than at 0.5 s."""
    honest = failuredetector.arrivals
    monkeypatch.setattr(failuredetector, "arrivals", lambda rng, schedule, interval_s=0.5: honest(rng, schedule))
    assert failuredetector.run(CONTEXT).failed_checks() == ["interval-trade-off"]


def test_the_picture_caption_names_the_peers_it_draws() -> None:
    # It said "each peer" over a chart of p1 and p3 only.
    (picture,) = failuredetector.run(CONTEXT).pictures
    drawn = {peer for peer in ("p1", "p2", "p3") if f"since heard from {peer}<" in picture.text}
    assert drawn == {"p1", "p3"}
    assert "each peer" not in picture.caption and all(peer in picture.caption for peer in drawn)
