"""Partition handling: Raft and PoW finalise only on their majority side, PBFT (a quorum of 4 of 5) on neither; a
PoW engine that ignores its partition handler (tests/sim/helpers.py) finalises on the minority side too, a PBFT
that takes a bare majority for its quorum finalises on the side of 3, and the checks say so."""

from __future__ import annotations

import pytest

from cli.sim import node_core_factory
from consensus.pbft import quorum
from tests.sim.helpers import reckless_core_factory
from tour.demos import partition
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def test_only_the_side_that_can_decide_finalizes_under_raft_pbft_and_pow() -> None:
    outcome = partition.run(CONTEXT)
    assert outcome.ok, outcome.checks
    assert {p.name for p in outcome.pictures} == {"raft-final-heights.svg", "pbft-final-heights.svg",
                                                  "pow-final-heights.svg"}
    pbft_sides = outcome.figures["pbft"]["sides"]  # type: ignore[index]
    assert [side["decides"] for side in pbft_sides.values()] == [False, False]
    assert outcome.pictures[0].text.startswith("<svg")


def test_a_pow_engine_without_its_partition_handler_fails_the_check() -> None:
    outcome = partition.run(CONTEXT, pow_core_factory=reckless_core_factory)
    assert outcome.failed_checks() == ["pow-only-deciding-side-finalizes"]


def test_a_pbft_that_takes_a_majority_for_its_quorum_finalizes_on_the_side_of_three(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """2f + 1 = 3 of 5: two such quorums may share only one validator, a possibly Byzantine one."""
    monkeypatch.setattr(quorum.Validators, "quorum", property(lambda self: 2 * self.f + 1))
    assert partition.run(CONTEXT).failed_checks() == ["pbft-only-deciding-side-finalizes"]


def test_a_seed_whose_hash_shares_are_too_even_is_passed_over_and_named() -> None:
    # Seed 0 draws 49.2% | 50.8%: the handler's estimate stopped both sides, and the check failed on it.
    outcome = partition.run(TourContext(seed=0, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    assert outcome.figures["seed"] == 1
    assert any(line.startswith("seed 0 drew 49.2% | 50.8%") for line in outcome.lines), outcome.lines
