"""Primary-backup against Raft when the primary crashes: no fail-over, fail-over. A crash that does not happen fails
the crash and no-fail-over checks; a Raft whose followers never campaign after the first election fails the
fail-over check."""

from __future__ import annotations

import pytest

from cli.sim import node_core_factory
from consensus.raft.engine import RaftEngine
from testnet.sim.simulator import Simulator
from tour.demos import primarybackup
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def test_primary_backup_stops_and_raft_fails_over() -> None:
    outcome = primarybackup.run(CONTEXT)
    assert outcome.ok, [c for c in outcome.checks if not c.ok]
    assert outcome.pictures[0].text.startswith("<svg")


def test_without_the_crash_the_backups_are_not_shown_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Simulator, "_crash", lambda self, node: None)
    failed = primarybackup.run(CONTEXT).failed_checks()
    assert {"primary-crashed", "primary-backup-no-fail-over", "raft-fail-over"} <= set(failed), failed


def test_a_raft_that_never_elects_again_does_not_fail_over(monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = RaftEngine._campaign

    def first_term_only(self: RaftEngine, now: float, *, prevote: bool, transfer: bool = False) -> None:
        if self.term == 0:
            campaign(self, now, prevote=prevote, transfer=transfer)

    monkeypatch.setattr(RaftEngine, "_campaign", first_term_only)
    assert "raft-fail-over" in primarybackup.run(CONTEXT).failed_checks()
