"""Multi-master: both sides of a PoW partition take a conflicting transfer (same sender, same nonce) into their
chains, and after the heal fork choice keeps the one written on the side with more work on every node. Without
fork choice (blocks that weigh nothing, tests/tour/test_chains.py) each side keeps its own and the check fails."""

from __future__ import annotations

from cli.sim import node_core_factory
from tests.tour.test_chains import no_fork_choice_factory
from tour.demos import multimaster
from tour.model import TourContext


def test_both_sides_write_and_fork_choice_keeps_one() -> None:
    outcome = multimaster.run(TourContext(seed=1, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    assert outcome.figures["winner"] != outcome.figures["loser"]


def test_without_fork_choice_the_conflict_stays() -> None:
    outcome = multimaster.run(TourContext(seed=1, core_factory=no_fork_choice_factory, fast=True))
    assert "fork-choice-kept-one" in outcome.failed_checks()
