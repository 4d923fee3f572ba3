"""Partition handling: Raft and PoW both finalise only on their majority side; a PoW engine that ignores its
partition handler (tests/sim/helpers.py) finalises on the minority side too, and the check says so."""

from __future__ import annotations

from cli.sim import node_core_factory
from tests.sim.helpers import reckless_core_factory
from tour.demos import partition
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def test_only_the_majority_side_finalizes_under_raft_and_pow() -> None:
    outcome = partition.run(CONTEXT)
    assert outcome.ok, outcome.checks
    assert {p.name for p in outcome.pictures} == {"raft-final-heights.svg", "pow-final-heights.svg"}
    assert outcome.pictures[0].text.startswith("<svg")


def test_a_pow_engine_without_its_partition_handler_fails_the_check() -> None:
    outcome = partition.run(CONTEXT, pow_core_factory=reckless_core_factory)
    assert outcome.failed_checks() == ["pow-only-majority-side-finalizes"]


def test_a_seed_whose_hash_shares_are_too_even_is_passed_over_and_named() -> None:
    # Seed 0 draws 49.2% | 50.8%: the handler's estimate stopped both sides, and the check failed on it.
    outcome = partition.run(TourContext(seed=0, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    assert outcome.figures["seed"] == 1
    assert any(line.startswith("seed 0 drew 49.2% | 50.8%") for line in outcome.lines), outcome.lines
