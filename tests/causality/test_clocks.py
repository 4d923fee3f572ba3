"""The clock laws (causality/clocks.py), checked by hypothesis: tick moves forward, merge is a join
(commutative, associative, idempotent, an upper bound), compare is a strict partial order consistent with merge,
and on generated runs the Lamport clock is consistent with happens-before."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from causality.clocks import ClockError, LamportClock, Order, VectorClock
from causality.generate import random_run

NAMES = st.sampled_from(["a", "b", "c", "d"])
CLOCKS = st.dictionaries(NAMES, st.integers(min_value=0, max_value=6), max_size=4).map(VectorClock)


def _leq(first: VectorClock, second: VectorClock) -> bool:
    return first.compare(second) in (Order.BEFORE, Order.EQUAL)


@given(CLOCKS, NAMES)
def test_tick_moves_the_own_entry_forward_and_nothing_else(clock: VectorClock, name: str) -> None:
    after = clock.tick(name)
    assert clock.compare(after) is Order.BEFORE and after.compare(clock) is Order.AFTER
    assert after.get(name) == clock.get(name) + 1
    assert all(after.get(other) == clock.get(other) for other in set(clock) | set(after) if other != name)


@given(CLOCKS, CLOCKS, CLOCKS)
def test_merge_is_commutative_associative_and_idempotent(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a


@given(CLOCKS, CLOCKS)
def test_merge_is_the_least_upper_bound(a: VectorClock, b: VectorClock) -> None:
    joined = a.merge(b)
    assert _leq(a, joined) and _leq(b, joined)
    assert (joined == b) == _leq(a, b)  # the bound is b itself exactly when a is below b


@given(CLOCKS, CLOCKS)
def test_compare_is_antisymmetric_and_its_converse_is_consistent(a: VectorClock, b: VectorClock) -> None:
    order, converse = a.compare(b), b.compare(a)
    assert {order, converse} in ({Order.EQUAL}, {Order.CONCURRENT}, {Order.BEFORE, Order.AFTER})
    assert (order is Order.EQUAL) == (a == b)
    assert not (a.happened_before(b) and b.happened_before(a))
    assert not a.happened_before(a)  # irreflexive


@given(CLOCKS, CLOCKS, CLOCKS)
def test_happened_before_is_transitive(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    if a.happened_before(b) and b.happened_before(c):
        assert a.happened_before(c)
    # A chain built with merge and tick always is one.
    chained = a.merge(b).tick("a")
    assert a.happened_before(chained) and b.happened_before(chained)


@given(CLOCKS, CLOCKS, NAMES)
def test_a_receive_happens_after_both_the_send_and_the_receiver_before_it(sent: VectorClock, mine: VectorClock,
                                                                         name: str) -> None:
    after = mine.receive(name, sent)
    assert sent.happened_before(after) and mine.happened_before(after)


@given(st.integers(min_value=0, max_value=10**6))
def test_the_lamport_clock_is_consistent_with_happens_before_on_generated_runs(seed: int) -> None:
    events = random_run(Random(seed), processes=3, steps=40)
    for first in events:
        for second in events:
            if first.vc.happened_before(second.vc):
                assert first.lamport < second.lamport


@given(st.integers(min_value=0, max_value=50), st.integers(min_value=0, max_value=50))
def test_lamport_tick_and_receive(time: int, carried: int) -> None:
    clock = LamportClock(time)
    assert clock.tick().time == time + 1
    assert clock.receive(carried).time == max(time, carried) + 1


@pytest.mark.parametrize("value", [[], {"a": -1}, {"a": True}, {"": 1}, {"a": "1"}])
def test_a_bad_clock_from_a_file_is_a_clock_error(value: object) -> None:
    with pytest.raises(ClockError):
        VectorClock.from_json(value)
