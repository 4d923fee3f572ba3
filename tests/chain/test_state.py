"""State machine: apply/undo exactness, supply conservation, commitment properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.block import make_block
from chain.errors import RejectError
from chain.fifo import trimmed
from chain.state import (
    Account,
    ElementCache,
    State,
    accumulate,
    apply_block,
    decode_account,
    decode_undo,
    undo_block,
)
from tests.chain.helpers import PROPOSER, build_block, genesis, transfer

ACCOUNTS = 6


def snapshot(state: State) -> dict[bytes, Account]:
    return dict(state.items())


@st.composite
def block_plans(draw: st.DrawFn) -> list[list[tuple[int, int, int, int]]]:
    """Blocks of (sender, recipient, amount, fee) transfers among a few accounts."""
    blocks = draw(st.integers(1, 5))
    return [
        draw(st.lists(st.tuples(st.integers(0, ACCOUNTS - 1), st.integers(0, ACCOUNTS + 2), st.integers(0, 5000),
                                st.integers(0, 50)), max_size=6))
        for _ in range(blocks)
    ]


@given(plan=block_plans(), reward=st.integers(0, 100))
def test_apply_then_undo_restores_exact_state_and_supply_is_conserved(
    plan: list[list[tuple[int, int, int, int]]], reward: int
) -> None:
    g = genesis(accounts=ACCOUNTS, balance=20_000)
    state = g.initial_state()
    parent = g.block()
    nonces = [0] * (ACCOUNTS + 3)
    history: list[tuple[State, object]] = []
    minted = 0
    for block_plan in plan:
        txs = []
        for sender, recipient, amount, fee in block_plan:
            txs.append(transfer(sender, recipient, amount, fee, nonces[sender]))
            nonces[sender] += 1
        block = make_block(parent=parent.header, height=parent.height + 1, timestamp_ms=1, txs=txs,
                           state_root=bytes(32), proposer=PROPOSER)
        try:
            application = apply_block(state, block, reward=reward)
        except RejectError as exc:
            assert exc.code == "insufficient-funds"
            for sender, *_ in block_plan:  # roll the nonces of the refused block back
                nonces[sender] -= 1
            continue
        history.append((state, application.undo))
        state = application.state
        minted += reward
        parent = block
        # Supply: genesis + rewards, and no balance ever negative.
        assert state.total_supply() == sum(g.balances.values()) + minted
        assert all(account.balance >= 0 for _, account in state.items())
        # The incremental commitment equals a from-scratch recomputation.
        assert state.accumulator == accumulate(state.items())
        assert decode_undo(application.undo.encode()) == application.undo
    for before, undo in reversed(history):
        state = undo_block(state, undo)  # type: ignore[arg-type]
        assert snapshot(state) == snapshot(before)
        assert state.commitment == before.commitment


def test_apply_does_not_mutate_input_state() -> None:
    g = genesis()
    state = g.initial_state()
    before = snapshot(state)
    block = build_block(state, g.block(), [transfer(0, 1, 100, 5, 0)])
    after = apply_block(state, block, reward=50).state
    assert snapshot(state) == before
    assert after.get(transfer(0, 1, 1, 1, 0).sender_address) == Account(1_000_000 - 105, 1)
    assert after.get(PROPOSER) == Account(55, 0)


@pytest.mark.parametrize(
    ("txs", "code"),
    [
        ([transfer(0, 1, 1, 1, 1)], "bad-nonce"),
        ([transfer(0, 1, 1, 1, 0), transfer(0, 1, 1, 1, 0)], "bad-nonce"),
        ([transfer(0, 1, 2_000_000, 1, 0)], "insufficient-funds"),
        ([transfer(9, 1, 1, 1, 0)], "insufficient-funds"),  # unfunded sender
    ],
)
def test_stateful_rejections(txs: list, code: str) -> None:  # type: ignore[type-arg]
    g = genesis()
    block = make_block(parent=g.block().header, height=1, timestamp_ms=1, txs=txs, state_root=bytes(32),
                       proposer=PROPOSER)
    with pytest.raises(RejectError) as info:
        apply_block(g.initial_state(), block)
    assert info.value.code == code


def test_overflow_rejected() -> None:
    # Genesis supply fits u64, so only minted rewards can push a balance past it.
    g = genesis(accounts=1, balance=2**64 - 1)
    block = make_block(parent=g.block().header, height=1, timestamp_ms=1, txs=[transfer(0, 0, 1, 0, 0)],
                       state_root=bytes(32), proposer=transfer(0, 0, 1, 0, 0).sender_address)
    with pytest.raises(RejectError) as info:
        apply_block(g.initial_state(), block, reward=1)
    assert info.value.code == "overflow"


def test_commitment_is_order_independent_and_sensitive() -> None:
    a = {bytes([i]) * 20: Account(i * 7, i) for i in range(1, 30)}
    forward = accumulate(a.items())
    backward = accumulate(reversed(list(a.items())))
    assert forward == backward
    changed = dict(a)
    changed[bytes([1]) * 20] = Account(8, 1)
    assert accumulate(changed.items()) != forward


def test_account_decoding() -> None:
    assert decode_account(Account(5, 6).encode()) == Account(5, 6)


def test_a_small_element_cache_stays_bounded_and_never_changes_the_commitment() -> None:
    g = genesis(accounts=ACCOUNTS)
    small = State.from_balances(g.balances)
    small.elements = ElementCache(capacity=3)
    roomy = g.initial_state()
    state_small, state_roomy, parent = small, roomy, g.block()
    for height in range(4):
        txs = [transfer(i, ACCOUNTS + 10 * height + i, 5, 1, height) for i in range(ACCOUNTS)]
        block = build_block(state_roomy, parent, txs)
        state_small = apply_block(state_small, block, reward=50).state
        state_roomy = apply_block(state_roomy, block, reward=50).state
        assert len(state_small.elements._entries) <= 3
        assert state_small.commitment == state_roomy.commitment == block.header.state_root
        parent = block
    assert state_small.accumulator == accumulate(state_small.items())


def test_trimmed_drops_the_oldest_with_headroom() -> None:
    entries = {i: str(i) for i in range(20)}
    assert trimmed(entries, 20) is entries
    entries[20] = "20"
    kept = trimmed(entries, 16)  # 21 keys, capacity 16: down to 16 - 16 // 8 = 14, the newest ones
    assert list(kept) == list(range(7, 21))
