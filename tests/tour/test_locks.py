"""The distributed-lock demonstration: on Raft and PBFT a paused holder's late write is refused and the `locks`
check passes; a register that accepts a stale token (tests/sim/test_locks.py's planted rule) lets the late write
in, and both the stale-write and the safety checks fail."""

from __future__ import annotations

import pytest

from chain import locks as chain_locks
from cli.sim import node_core_factory
from tests.lockplant import accept_stale
from tour.demos import locks
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def test_a_paused_holders_late_write_is_refused() -> None:
    outcome = locks.run(CONTEXT)
    assert outcome.ok, outcome.checks
    assert all(outcome.figures[engine]["lock_late_writes_refused"] >= 1 for engine in ("raft", "pbft"))
    pictures = {picture.name: picture.text for picture in outcome.pictures}
    assert set(pictures) == {"raft-lock0.svg", "pbft-lock0.svg"}
    for engine in ("raft", "pbft"):  # every refused late write is a red cross on its writer's lane
        refused = outcome.figures[engine]["lock_late_writes_refused"]
        assert pictures[f"{engine}-lock0.svg"].count(">late write stale-fencing-token (token ") == refused
        assert "<rect" in pictures[f"{engine}-lock0.svg"].split("</text>", 2)[2]  # the leases' bars


def test_a_seed_without_a_pause_moves_to_the_next() -> None:
    outcome = locks.run(TourContext(seed=5, core_factory=node_core_factory, fast=True))
    assert outcome.ok, outcome.checks
    assert "raft: seed 5: no session paused past its lease and wrote; the next seed" in outcome.lines


def test_a_register_that_accepts_a_stale_token_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain_locks, "_apply_kv_put", accept_stale)
    outcome = locks.run(CONTEXT)
    failed = outcome.failed_checks()
    assert {"raft-stale-write-refused", "raft-fenced-register-safe"} <= set(failed), failed
    detail = next(check.detail for check in outcome.checks if check.name == "raft-fenced-register-safe")
    assert "stale-write-accepted at height" in detail
