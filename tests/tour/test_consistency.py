"""Consistency levels and linearizability from one simulated Raft run's reads: each level keeps its promises and
the weak ones read stale values; the linearizable reads pass the checker, which refuses a planted stale read.
Planted: a Raft that answers linearizable reads at once from its own commit index (tests/sim/test_reads.py's
stale read) breaks the linearizable level's promise and `linearizable-reads`; a checker that accepts everything
misses the planted stale read."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from cli.sim import node_core_factory
from consensus.engine import ReadResult
from consensus.raft.engine import RaftEngine
from testnet.linearizability import AccountModel, Result
from testnet.linearizability import check as honest_check
from tour.demos import consistency
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


@pytest.mark.parametrize("seed", [1, 2])
def test_levels_keep_their_promises_and_differ(seed: int) -> None:
    outcome = consistency.levels(TourContext(seed=seed, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    assert set(outcome.figures["levels"]) == {"latest", "final", "linearizable"}


def test_a_run_whose_faults_missed_the_reads_is_replaced_by_the_next_seed() -> None:
    # Seed 3 --fast: no latest or final read was stale, and `levels-differ` failed on a run that showed nothing.
    outcome = consistency.levels(TourContext(seed=3, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    assert any(line.startswith("seed 3: no latest or final read was stale") and "seed 4 used" in line
               for line in outcome.lines), outcome.lines


def test_a_run_without_a_read_to_plant_on_is_replaced_by_the_next_seed() -> None:
    # Seed 5 --fast: no linearizable read was answered, and both checks failed on a run that showed nothing.
    outcome = consistency.linearizability(TourContext(seed=5, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    assert any(line.startswith("seed 5: no linearizable read") and "seed 6 used" in line for line in outcome.lines)


def test_linearizable_reads_pass_and_a_planted_stale_read_is_caught() -> None:
    outcome = consistency.linearizability(CONTEXT)
    assert outcome.ok, outcome.checks
    assert any("not-linearizable" in line for line in outcome.lines)


def test_a_raft_answering_reads_from_its_own_commit_index_fails_both(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer_at_once(self: RaftEngine, request_id: int, *, now: float) -> None:
        self._ready.reads.append(ReadResult(request_id=request_id, index=self.commit, term=self.term))

    monkeypatch.setattr(RaftEngine, "read_index", answer_at_once)
    levels = consistency.levels(CONTEXT)
    assert "promises-kept" in levels.failed_checks()
    assert "linearizable (linearizable reads)" in next(c.detail for c in levels.checks if c.name == "promises-kept")
    assert "linearizable-reads" in consistency.linearizability(CONTEXT).failed_checks()


def test_a_checker_that_accepts_everything_misses_the_stale_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def accept(ops: Any, model: AccountModel, **options: Any) -> Result:
        return replace(honest_check(ops, model, **options), verdict="linearizable")

    monkeypatch.setattr(consistency, "check", accept)
    assert consistency.linearizability(CONTEXT).failed_checks() == ["stale-read-caught"]


def test_the_pictures_are_the_consistency_reports() -> None:
    levels = consistency.levels(CONTEXT)
    (report,) = levels.pictures
    assert report.name == "consistency.html" and report.text.startswith("<!DOCTYPE html>")
    assert "linearizable reads (promised)" in report.text and "read-your-writes, latest reads" in report.text
    outcome = consistency.linearizability(CONTEXT)
    (planted,) = outcome.pictures
    assert planted.name == "linearizability.html"
    assert "not-linearizable" in planted.text and "planted stale read" in planted.text
    assert len(re.findall(r'class="op [^"]*violation', planted.text)) == 1
    # the run's nemesis is drawn on both pages: each partition a shaded band, each action a line on the time axis
    partitions = len(re.findall(r'class="nemesis event action-partition"', report.text))
    assert partitions > 0 and len(re.findall(r'class="nemesis band partition"', report.text)) == partitions
    assert 'class="nemesis event action-kill"' in report.text and 'class="nemesis event action-kill"' in planted.text
