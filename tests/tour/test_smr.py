"""The replicated-state-machine demonstration passes on the real state machine, and its agreement check fails when
replicas apply the transactions in their own delivery order (no agreement on order)."""

from __future__ import annotations

import re

import pytest

from tour.demos import smr
from tour.model import Outcome, TourContext


def context(seed: int) -> TourContext:
    return TourContext(seed=seed, core_factory=lambda spec: pytest.fail("no simulator here"))


@pytest.mark.parametrize("seed", [1, 2, 3, 99])
def test_same_order_same_state_and_another_order_another(seed: int) -> None:
    outcome = smr.run(context(seed))
    assert outcome.ok, outcome.checks
    assert len(set(outcome.figures["replica_commitments"])) == 1
    assert outcome.figures["reverse_refused"] > 0


def test_replicas_without_an_agreed_order_diverge_and_the_check_says_so() -> None:
    outcome: Outcome = smr.run(context(1), order_of=smr.own_delivery_order)
    assert "same-order-same-state" in outcome.failed_checks()
    assert not outcome.ok


def test_the_picture_tabulates_each_replicas_state_per_step() -> None:
    outcome = smr.run(context(1))
    (picture,) = outcome.pictures
    assert picture.name == "state-roots.svg"
    final = outcome.figures["replica_commitments"][0][:8]
    assert picture.text.count(f">{final}</text>") == smr.REPLICAS
    assert outcome.figures["reverse_commitment"][:8] != final and ">refused bad-nonce</text>" in picture.text


def test_without_an_agreed_order_the_picture_shows_different_columns() -> None:
    picture = smr.run(context(1), order_of=smr.own_delivery_order).pictures[0]
    cells = re.findall(r">([^<]*)</text>", picture.text)[6:-1]  # after the title and header, before the note
    last_row = cells[-(smr.REPLICAS + 2):]
    assert last_row[0] == str(smr.LOG_LENGTH - 1) and len(set(last_row[1:1 + smr.REPLICAS])) > 1
