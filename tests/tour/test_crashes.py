"""Crash failures: each mode in effect on each engine and every simulator check held; with the crash, the loss or
the state check switched off, the checks of that mode fail."""

from __future__ import annotations

from random import Random

import pytest

import chain.validation
from chain.block import Block
from chain.state import State
from cli.sim import node_core_factory
from testnet.sim.network import LinkFaults
from testnet.sim.simulator import Simulator
from tour.demos import crashes
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def test_every_mode_on_every_engine_is_in_effect_and_survived() -> None:
    outcome = crashes.run(CONTEXT)
    assert outcome.ok, [c for c in outcome.checks if not c.ok]
    assert len(outcome.checks) == len(crashes.ENGINES) * len(crashes.MODES)
    assert outcome.pictures[0].text.startswith("<svg")


def _judged(engine: str, mode: str) -> bool:
    return crashes.JUDGES[mode](crashes.run_mode(CONTEXT, engine, mode))[1].ok


def test_a_crash_that_does_not_happen_fails_the_stop_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Simulator, "_crash", lambda self, node: None)
    assert not _judged("raft", "stop")


def test_links_that_lose_nothing_fail_the_omission_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LinkFaults, "copies", lambda self, rng: 1)
    assert not _judged("pbft", "omission")


def test_without_the_state_check_the_lie_is_adopted(monkeypatch: pytest.MonkeyPatch) -> None:
    def believe(block: Block, state_after: State) -> None:
        del block, state_after

    monkeypatch.setattr(chain.validation, "check_state_commitment", believe)
    run = crashes.run_mode(CONTEXT, "pow", "commission")
    assert run.adopted and not crashes.JUDGES["commission"](run)[1].ok


def test_the_scripted_crash_comes_once() -> None:
    nemesis = crashes.CrashNemesis(nodes=4, node=1, at_s=5.0, down_s=8.0)
    rng = Random(0)
    assert nemesis.next_delay(rng) == 5.0
    assert nemesis.next_action(rng, partitioned=False, down=[]) is not None
    assert nemesis.next_action(rng, partitioned=False, down=[]) is None
