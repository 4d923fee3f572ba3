"""Causality on a PoW fork: the fork's blocks are concurrent by their vector clocks, a block's arrivals come after
its mining, and the reorg that resolved the fork knew both. Clocks that never merge what a message carries (each
node counting only its own events) see nothing across nodes, and the checks say so."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from causality.clocks import VectorClock
from causality.events import TraceEvent
from cli.sim import node_core_factory
from testnet.sim.config import SEED_MAX
from tour.demos import causality
from tour.model import TourContext, seeds_from

CONTEXT = TourContext(seed=1, core_factory=node_core_factory, fast=True)


def local_only(event: TraceEvent) -> TraceEvent:
    """The clock of a node that ticks on its own events and ignores the clock a message carries."""
    return replace(event, vc=VectorClock({event.node: event.seq}), lamport=event.seq)


def test_the_fork_is_concurrent_and_its_resolution_knows_both() -> None:
    outcome = causality.run(CONTEXT)
    assert outcome.ok, outcome.checks
    assert {p.name for p in outcome.pictures} == {"spacetime.svg", "spacetime.html"}
    assert "<svg" in outcome.pictures[0].text
    # the diagram draws the fork itself (its window counts from the trace's first event): both blocks ringed red,
    # and the reorg that settled it
    for picture in outcome.pictures:
        for name in (*outcome.figures["fork"], outcome.figures["reorg"]):  # type: ignore[misc]
            assert f'data-name="{name}"' in picture.text, (picture.name, name)
        assert len(re.findall(r'class="ev [^"]*\bfork\b', picture.text)) >= 2


def test_clocks_that_do_not_merge_on_receive_fail_the_checks() -> None:
    outcome = causality.run(CONTEXT, rewrite=local_only)
    assert "delivery-happens-after-mining" in outcome.failed_checks()
    assert "resolution-knows-both" in outcome.failed_checks()


def test_the_diagram_draws_the_fork_blocks_and_the_reorg() -> None:
    # The window is counted from the trace's first event: counted from 0 it started after both fork blocks.
    outcome = causality.run(CONTEXT)
    for picture in outcome.pictures:
        for name in (*outcome.figures["fork"], outcome.figures["reorg"]):
            assert f'data-name="{name}"' in picture.text, (picture.name, name)


def test_the_arrivals_judged_are_those_of_the_fork_block_that_travelled() -> None:
    # Seed 5: node1's fork block lost before any other node connected it; the check judged its (no) arrivals and
    # failed with an empty detail. node2's block reached both others.
    outcome = causality.run(TourContext(seed=5, core_factory=node_core_factory))
    assert outcome.ok, outcome.checks
    assert outcome.figures["arrivals"], outcome.lines


def test_the_seeds_tried_after_the_largest_wrap_to_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    # --seed 18446744073709551615 on a run without a fork tried 2**64 next, which the simulator refuses (a traceback).
    monkeypatch.setattr(causality, "_fork", lambda graph: None)
    outcome = causality.run(TourContext(seed=SEED_MAX, core_factory=node_core_factory, fast=True))
    assert outcome.failed_checks() == ["fork-found"]
    assert seeds_from(SEED_MAX, 3) == [SEED_MAX, 0, 1]
