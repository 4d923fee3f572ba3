"""Byzantine failure: each PBFT behaviour is in effect and the honest nodes stay safe and live; with the lies
switched off (the Byzantine validator's rewrite of its messages a no-op) the in-effect checks fail, except the
stale view change's, which only sees that a view change happened (docs/THEORY.md, limits)."""

from __future__ import annotations

import re

import pytest

from cli.sim import node_core_factory
from consensus.pbft.byzantine import Misbehaviour
from tour.demos import byzantine
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def test_each_behaviour_shows_and_safety_holds() -> None:
    outcome = byzantine.run(CONTEXT)
    assert outcome.ok, [c for c in outcome.checks if not c.ok]
    assert len(outcome.checks) == 2 * len(byzantine.CASES)
    charts = {picture.name: _bars(picture.text) for picture in outcome.pictures}
    assert list(charts) == [f"{case.behaviour}.svg" for case in byzantine.CASES]
    assert charts["withhold-commits.svg"]["node1 commits"] == 0 < charts["withhold-commits.svg"]["node2 commits"]
    assert charts["bad-signatures.svg"]["rejected"] > 0 and charts["bad-signatures.svg"]["punished"] > 0
    assert charts["silent.svg"]["node0 sent"] < charts["silent.svg"]["node1 sent"]
    assert charts["equivocate.svg"]["view"] > 0


def _bars(svg: str) -> dict[str, float]:
    """A tour/svg.py chart's bars: label -> value (each bar's rect carries both)."""
    return {label: float(value) for label, value in re.findall(r'data-label="([^"]*)" data-value="([^"]*)"', svg)}


def test_with_the_lies_switched_off_the_in_effect_checks_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Misbehaviour, "apply", lambda self, ready: None)
    monkeypatch.setattr(Misbehaviour, "on_tick", lambda self, ready, **_: None)
    failed = byzantine.run(CONTEXT).failed_checks()
    assert failed == [f"{case.behaviour}-in-effect" for case in byzantine.CASES
                      if case.behaviour != "stale-view-change"], failed
