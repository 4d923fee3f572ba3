"""Raft: a leader at once, fail-over when the leader is cut off alone, one final chain after the heal, one leader
per term. The planted bugs of tests/sim/test_raft.py are caught here too: a candidate that counts itself as a
majority makes two leaders of a term, and a leader that commits without a majority finalises alone."""

from __future__ import annotations

import pytest

from cli.sim import node_core_factory
from consensus.raft.engine import RaftEngine
from tests.sim.test_raft import commit_alone, tally_alone
from tour.demos import figure8, raft
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def test_election_fail_over_replication_and_one_leader_per_term() -> None:
    outcome = raft.run(CONTEXT)
    assert outcome.ok, outcome.checks
    assert outcome.figures["isolated"] is not None
    assert outcome.pictures[0].text.startswith("<svg")


def test_a_candidate_that_wins_alone_makes_two_leaders_of_a_term(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RaftEngine, "_tally", tally_alone)
    assert "one-leader-per-term" in raft.run(CONTEXT).failed_checks()


def test_a_leader_that_commits_without_a_majority_breaks_replication(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 3: there the isolated leader has an entry of its term to commit alone before it steps down (on seed 1
    it steps down first, and the bug does no harm in this scenario)."""
    monkeypatch.setattr(RaftEngine, "_advance_commit", commit_alone)
    outcome = raft.run(TourContext(seed=3, core_factory=node_core_factory, fast=True))
    assert "log-replication" in outcome.failed_checks()


def count_earlier_terms(self: RaftEngine, now: float) -> None:
    """The Figure 8 bug (LogCabin#44, PySyncObj#169): commit the highest index a majority holds, whatever its
    term."""
    matches = sorted((self._self_match if m == self.address else
                      (self._progress[m].match if m in self._progress else 0)) for m in self.members)
    candidate = matches[len(matches) - self.quorum] if len(matches) >= self.quorum else 0
    if candidate > self.commit:
        self._commit_to(candidate, now)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figure_8_an_earlier_term_entry_on_a_majority_is_not_committed(seed: int) -> None:
    played = figure8.play(node_core_factory, seed)
    assert [c.name for c in figure8.checks(played) if not c.ok] == []
    final = played.snapshots[-1].held[played.b]
    assert played.x_on_majority and final[0] == "Y" and final[2]  # X replaced on B, safely: it was never committed
    assert figure8.picture(played).name == "figure-8.svg"


def test_a_raft_that_counts_earlier_term_entries_fails_both_figure_8_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RaftEngine, "_advance_commit", count_earlier_terms)
    played = figure8.play(node_core_factory, 1)
    assert played.committed_x and played.safety_alarms > 0
    assert [c.name for c in figure8.checks(played) if not c.ok] == ["figure-8-no-commit-by-counting",
                                                                     "leader-completeness"]
    assert {"figure-8-no-commit-by-counting", "leader-completeness"} <= set(raft.run(CONTEXT).failed_checks())
