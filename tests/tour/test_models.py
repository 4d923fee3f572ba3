"""System models on Raft: a leader at once when synchronous, none when asynchronous, none before GST and a stable
one after it under partial synchrony. A partially synchronous network that never stabilises, or one that is
synchronous from the start, fails the GST checks (only that run is repeated, to keep the test short)."""

from __future__ import annotations

from cli.sim import node_core_factory
from testnet.sim.network import AsynchronousModel, SynchronousModel
from tour.demos import models
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def failed(run: models.ModelRun) -> list[str]:
    return [check.name for check in models.gst_checks(run) if not check.ok]


def test_raft_elects_at_once_never_and_after_gst() -> None:
    outcome = models.run(CONTEXT)
    assert outcome.ok, outcome.checks
    assert outcome.figures["partial-sync"]["final_at_gst"] == 0
    assert outcome.pictures[0].name == "final-heights.svg"


def test_a_network_that_never_stabilises_fails_the_after_gst_check() -> None:
    never = AsynchronousModel(scale_s=models.ASYNC_SCALE_S, healed_max_delay_s=models.MAX_DELAY_S)
    assert failed(models.run_model(CONTEXT, "partial-sync", never)) == ["partial-sync-stable-leader-after-gst"]


def test_a_network_synchronous_from_the_start_fails_the_before_gst_check() -> None:
    early = SynchronousModel(max_delay_s=models.MAX_DELAY_S)
    assert "partial-sync-no-leader-before-gst" in failed(models.run_model(CONTEXT, "partial-sync", early))
