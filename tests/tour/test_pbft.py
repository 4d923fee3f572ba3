"""PBFT tolerates f twins and not f+1; with a weak quorum (f+1 votes instead of 2f+1) even one twin forks the
chain, and `f-byzantine-tolerated` fails."""

from __future__ import annotations

import re

import pytest

from cli.sim import node_core_factory
from consensus.pbft import quorum
from tour.demos import pbft
from tour.model import TourContext

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def test_f_twins_are_tolerated_and_f_plus_1_break_safety() -> None:
    outcome = pbft.run(CONTEXT)
    assert outcome.ok, outcome.checks
    (chart,) = outcome.pictures  # the picture: one twin refuses no fork and fails no check, two twins do both
    assert chart.name == "twins.svg"
    bars = {label: float(value) for label, value in re.findall(r'data-label="([^"]*)" data-value="([^"]*)"',
                                                               chart.text)}
    assert bars["f forks"] == bars["f failed"] == 0
    assert bars["f+1 forks"] > 0 and bars["f+1 failed"] > 0


def test_a_weak_quorum_fails_the_f_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quorum.Validators, "quorum", property(lambda self: self.f + 1))
    outcome = pbft.run(CONTEXT)
    assert "f-byzantine-tolerated" in outcome.failed_checks()
