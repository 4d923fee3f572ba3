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


def test_the_picture_marks_both_conflicting_blocks_at_the_heal() -> None:
    outcome = multimaster.run(TourContext(seed=1, core_factory=node_core_factory, fast=True))
    (tree,) = outcome.pictures
    assert tree.name == "heal-tree.svg"
    assert f"tx {outcome.figures['winner'][:12]} " in tree.text and f"tx {outcome.figures['loser'][:12]} " in tree.text
    assert tree.text.count('stroke="#b53f3f" stroke-width="2"') == 2
    assert " kept</text>" in tree.text and " lost</text>" in tree.text


def test_the_work_compared_is_the_branches_when_they_met_not_at_the_heal() -> None:
    # Seed 7: side [0, 1] led 12 to 11 at the heal, but its tip was not yet announced when side [2, 3, 4] mined two
    # more; the nodes met at 12 against 13 and kept the heavier branch. Judged at the heal, the check failed.
    outcome = multimaster.run(TourContext(seed=7, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    assert outcome.figures["work_at_heal"] == [12, 11]
    assert outcome.figures["work_when_met"] == [12, 13]
