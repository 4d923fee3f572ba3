"""System models on Raft: a leader at once when synchronous, none when asynchronous, none before GST and a stable
one after it under partial synchrony. A partially synchronous network that never stabilises, or one that is
synchronous from the start, fails the GST checks (only that run is repeated, to keep the test short)."""

from __future__ import annotations

from dataclasses import replace

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


def test_pow_mines_under_every_model_and_forks_more_under_the_asynchronous_tail() -> None:
    outcome = models.run(CONTEXT)
    pow_figures = outcome.figures["pow"]
    assert pow_figures["partial-sync"]["height_at_gst"] > 0  # no leader to wait for
    assert pow_figures["asynchronous"]["stale"] > pow_figures["synchronous"]["stale"]
    assert [p.name for p in outcome.pictures] == ["final-heights.svg", "pow-heights.svg"]


def test_pow_checks_fail_without_blocks_before_gst_or_without_the_cost_of_delay() -> None:
    views = {model: models.PowView.of(models.run_model(CONTEXT, model, consensus="pow")) for model in models.MODELS}
    assert all(check.ok for check in models.pow_checks(views))
    # the asynchronous run replaced by a synchronous one: delay cost nothing
    calm = models.run_model(CONTEXT, "asynchronous", SynchronousModel(max_delay_s=models.MAX_DELAY_S),
                            consensus="pow")
    no_cost = {**views, "asynchronous": models.PowView.of(calm)}
    assert [c.name for c in models.pow_checks(no_cost) if not c.ok] == ["pow-forks-grow-with-delay"]
    # a PoW that waited for GST, as a leader-based engine does, mined nothing before it
    waited = {**views, "partial-sync": replace(views["partial-sync"], height_at_gst=0)}
    assert [c.name for c in models.pow_checks(waited) if not c.ok] == ["pow-mines-in-every-model"]
