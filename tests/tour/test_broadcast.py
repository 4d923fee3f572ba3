"""Reliable messaging and atomic broadcast: under loss and duplication every block reaches every node once, and
Raft/PBFT deliver the same blocks in the same order. Planted: links that lose nothing, a relay that never retries
or syncs (seed 2: a PoW block never reaches a node), a block applied twice, a Raft whose candidates win and whose
leaders commit alone (two orders), a node that takes a delivered block back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cli.sim import node_core_factory
from consensus.raft.engine import RaftEngine
from p2p.protocol.relay import Relay
from testnet.sim.network import LinkFaults
from tests.sim.test_raft import commit_alone, tally_alone
from tour.demos import broadcast
from tour.model import TourContext


def context(seed: int) -> TourContext:
    return TourContext(seed=seed, core_factory=node_core_factory, fast=True)


@pytest.mark.parametrize("seed", [1, 3])
def test_every_block_reaches_every_node_once(seed: int) -> None:
    outcome = broadcast.reliable_messaging(context(seed))
    assert outcome.ok, [c for c in outcome.checks if not c.ok]
    assert outcome.figures["raft"]["sync_requests"] > 0  # type: ignore[index]
    assert outcome.pictures[0].text.startswith("<svg")


def test_links_that_lose_nothing_show_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broadcast, "MESSAGING_FAULTS", LinkFaults())
    failed = broadcast.reliable_messaging(context(1)).failed_checks()
    assert {"pow-loss-and-duplication", "pow-losses-made-up", "raft-loss-and-duplication"} <= set(failed), failed


def test_a_relay_that_never_retries_leaves_a_block_undelivered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Relay, "tick", lambda self, now: [])
    assert "pow-every-block-once" in broadcast.reliable_messaging(context(3)).failed_checks()


def test_a_block_applied_twice_fails_the_once_check() -> None:
    good = broadcast.Delivery(blocks=3, nodes=2, missing=0, repeated=0, copies_sent=9, copies_lost=2, repaired=2,
                              pushed_again=1, asked_again=0, sync_requests=1, duplicate_blocks_dropped=1,
                              duplicate_envelopes_dropped=0, link_duplicated=1, suppressed=0)
    assert all(c.ok for c in broadcast.messaging_checks("x", good))
    failed = {c.name for c in broadcast.messaging_checks("x", replace(good, repeated=1)) if not c.ok}
    assert {"x-every-block-once", "x-duplicates-dropped"} <= failed


def test_raft_and_pbft_deliver_the_same_blocks_in_the_same_order() -> None:
    outcome = broadcast.atomic_broadcast(context(1))
    assert outcome.ok, [c for c in outcome.checks if not c.ok]
    assert len(outcome.pictures) == 2


def test_a_raft_that_elects_and_commits_alone_delivers_two_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RaftEngine, "_tally", tally_alone)
    monkeypatch.setattr(RaftEngine, "_advance_commit", commit_alone)
    failed = broadcast.atomic_broadcast(context(1)).failed_checks()
    assert "raft-total-order" in failed and not any(name.startswith("pbft") for name in failed), failed


def test_a_delivered_block_taken_back_fails_integrity() -> None:
    chains = {"a": ["b1", "b2"], "b": ["b1", "b2"]}
    steps = {"a": [(1, "b1"), (2, "b2")], "b": [(2, "b2")]}
    assert all(c.ok for c in broadcast.broadcast_checks("e", chains, steps, 2))
    failed = {c.name for c in broadcast.broadcast_checks("e", chains, {**steps, "b": [(2, "x2")]}, 2) if not c.ok}
    assert failed == {"e-integrity"}
    behind = {c.name for c in broadcast.broadcast_checks("e", {**chains, "b": ["b1"]}, steps, 2) if not c.ok}
    assert behind == {"e-integrity", "e-agreement"}
