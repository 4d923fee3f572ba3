"""Raft in the simulator: the real node core under every fault (partitions, crashes, loss, duplication, drift) and
every timing model stays safe (final-prefix agreement, no safety alarm, ledger invariants), makes progress after
the heal, and replays exactly; a planted commit rule that ignores the majority is caught."""

from __future__ import annotations

import pytest

from consensus.raft.engine import RaftEngine, Role
from consensus.raft.messages import VOTE_RESP_KIND, VoteRequest, VoteResponse
from testnet.checks import check_one_leader_per_term
from testnet.sim.config import SimConfig, parse_faults
from testnet.sim.simulator import Simulator
from tests.sim.helpers import node_core_factory

MODELS = ("partial-sync", "synchronous", "asynchronous")


def commit_alone(self: RaftEngine, now: float) -> None:
    """Planted bug (RaftEngine._advance_commit): the leader commits its own entries at once, without a majority."""
    if self._self_match > self.commit and self._term_at(self._self_match) == self.term:
        self._commit_to(self._self_match, now)


def tally_alone(self: RaftEngine, now: float) -> bool:
    """Planted bug (RaftEngine._tally): a (pre-)candidate counts its own vote as a majority."""
    if not any(self._votes.values()):
        return False
    if self.role is Role.PRE_CANDIDATE:
        self._campaign(now, prevote=False)
    else:
        self._become_leader(now)
    return True


def config(seed: int, faults: str = "loss,dup,drift,partition,crash") -> SimConfig:
    return SimConfig(seed=seed, consensus="raft", nodes=3 + seed % 4, duration_s=120.0, block_interval_s=1.0,
                     faults=parse_faults(faults), model=MODELS[seed % 3], tx_rate_per_s=2.0)


@pytest.mark.parametrize("seed", [11, 22, 33, 44, 55, 66])
def test_raft_is_safe_and_live_under_faults(seed: int) -> None:
    result = Simulator(config(seed), node_core_factory).run()
    assert result.ok, [c for c in result.checks if not c.ok]
    heights = result.stats["final_heights"]
    assert isinstance(heights, dict) and min(heights.values()) >= 3


def test_raft_replays_exactly() -> None:
    first = Simulator(config(7), node_core_factory).run()
    again = Simulator(config(7), node_core_factory).run()
    assert first.trace_hash == again.trace_hash and first.trace_events == again.trace_events


def test_a_leader_committing_without_a_majority_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: the leader commits its own entries at once. Partitions then finalize divergent chains, and the
    simulator's safety checks must say so on at least one of a few seeds."""

    monkeypatch.setattr(RaftEngine, "_advance_commit", commit_alone)
    failed = []
    for seed in (1, 2, 3, 4, 5, 6):
        result = Simulator(config(seed, "partition"), node_core_factory).run()
        failed.extend(c.name for c in result.checks if not c.ok)
    assert "final-prefix-agreement" in failed or "no-safety-alarm" in failed, failed


def test_one_leader_per_term_check_fails_on_two_proposers_of_a_term() -> None:
    assert check_one_leader_per_term([(1, "a"), (1, "a"), (2, "b")]).ok
    bad = check_one_leader_per_term([(1, "a"), (2, "b"), (2, "c")])
    assert not bad.ok and "term 2" in bad.detail


def test_a_voter_that_votes_twice_in_a_term_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: votes granted without remembering the vote of the term (nor checking the log). A candidate
    with a stale log then wins and overwrites committed blocks (or two candidates of one term both win): a safety
    check must say so."""

    def vote_for_anyone(self: RaftEngine, sender: bytes, request: VoteRequest, now: float) -> None:
        if request.term > self.term and not request.prevote:
            self._become_follower(request.term, None, now)
        term = request.term if request.prevote else self.term
        self._send(VOTE_RESP_KIND, VoteResponse(term=term, granted=request.term >= self.term,
                                                prevote=request.prevote).encode(), to=sender)

    monkeypatch.setattr(RaftEngine, "_on_vote", vote_for_anyone)
    failed = []
    for seed in (1, 2):
        result = Simulator(config(seed, "partition,crash,loss"), node_core_factory).run()
        failed.extend(c.name for c in result.checks if not c.ok)
    assert {"final-prefix-agreement", "no-safety-alarm", "one-leader-per-term"} & set(failed), failed


def test_a_candidate_that_wins_alone_is_caught_as_two_leaders_of_a_term(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted bug: a (pre-)candidate counts its own vote as a majority. Two nodes that time out together both
    lead the same term, and the blocks they seal show it to the one-leader-per-term check (which counts every
    block any node proposed: the losing leader's blocks are truncated from every log by the end of the run)."""

    monkeypatch.setattr(RaftEngine, "_tally", tally_alone)
    failed = []
    for seed in (1, 2):
        result = Simulator(config(seed, "partition"), node_core_factory).run()
        failed.extend(c.name for c in result.checks if not c.ok)
    assert "one-leader-per-term" in failed, failed
