"""Mempool: every reject code, replace-by-fee, limits and eviction, templates, block connect, reorg, expiry, the
shared signature cache, and a property test that a template always applies."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.block import Block, make_block
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.mempool import DropReason, Mempool, fee_rate_key
from chain.state import Account, AccountDict, State, accumulate, apply_block
from chain.tx import Transaction, make_transfer
from chain.validation import Rules, SignatureCache, SignatureChecker, check_block_stateless, verify_in_process
from tests.chain.helpers import CHAIN_ID, PROPOSER
from tests.conftest import key

RULES = Rules(chain_id=CHAIN_ID, max_block_txs=5_000, max_block_bytes=2_000_000, max_future_block_ms=15_000)
RECIPIENT = 9


@functools.cache
def tx(sender: int, nonce: int, fee: int = 1, amount: int = 1, *, recipient: int = RECIPIENT, memo: bytes = b"",
       chain_id: str = CHAIN_ID) -> Transaction:
    """A signed transfer from test key `sender` (cached: signing is the slow part)."""
    return make_transfer(key(sender), chain_id=chain_id, recipient=key(recipient).address, amount=amount, fee=fee,
                         nonce=nonce, memo=memo)


def addr(index: int) -> bytes:
    return key(index).address


def make_state(accounts: Mapping[int, tuple[int, int] | int]) -> State:
    """A state of test keys: index -> balance, or (balance, nonce)."""
    table = AccountDict()
    for index, value in accounts.items():
        balance, nonce = value if isinstance(value, tuple) else (value, 0)
        table[addr(index)] = Account(balance, nonce)
    return State(table, accumulate(table.items()))


RICH = make_state({i: 1_000_000 for i in range(8)})


class CountingVerifier:
    """A BatchVerifier that counts the signatures it is asked to verify."""

    def __init__(self) -> None:
        self.verified = 0

    def __call__(self, items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
        self.verified += len(items)
        return verify_in_process(items)


def new_pool(**limits: int) -> Mempool:
    return Mempool(RULES, SignatureChecker(), **limits)


def block_of(txs: Sequence[Transaction], height: int = 1) -> Block:
    return make_block(parent=None, height=height, timestamp_ms=height * 1000, txs=txs, state_root=bytes(32),
                      proposer=PROPOSER)


def reject_code(pool: Mempool, transaction: Transaction, state: State = RICH) -> str:
    with pytest.raises(RejectError) as info:
        pool.add(transaction, state, now=0.0)
    return info.value.code


# --------------------------------------------------------------------------------------------- admission


def test_admits_and_answers_queries() -> None:
    pool = new_pool()
    first = pool.add(tx(0, 0, fee=3), RICH, now=5.0)
    future = pool.add(tx(0, 2, fee=4), RICH, now=6.0)
    assert first.ready and not future.ready and first.dropped == ()
    assert len(pool) == 2 and tx(0, 0, fee=3).hash in pool and tx(0, 1).hash not in pool
    assert pool.get(tx(0, 2, fee=4).hash) == tx(0, 2, fee=4) and pool.get(bytes(32)) is None
    assert pool.size_bytes == tx(0, 0, fee=3).size + tx(0, 2, fee=4).size
    assert pool.txs_from(addr(0)) == [tx(0, 0, fee=3), tx(0, 2, fee=4)]
    assert pool.pending_nonce(addr(0), RICH) == 1
    assert pool.add(tx(0, 1, fee=2), RICH, now=7.0).ready
    assert pool.pending_nonce(addr(0), RICH) == 3 and pool.pending_nonce(addr(1), RICH) == 0
    view = pool.snapshot()
    assert [v.nonce for v in view] == [2, 0, 1]  # best fee rate first
    assert view[0].tx_hash == tx(0, 2, fee=4).hash and view[0].sender == addr(0) and view[0].time_added == 6.0
    assert view[0].size_bytes == tx(0, 2, fee=4).size and view[0].fee == 4
    assert view[0].to_json()["hash"] == tx(0, 2, fee=4).hash.hex()


def test_reject_codes() -> None:
    pool = new_pool(min_fee=2, max_nonce_gap=4, max_per_sender=3)
    pool.add(tx(0, 0, fee=2), RICH, now=0.0)
    assert reject_code(pool, tx(0, 0, fee=2)) == "already-known"
    assert reject_code(pool, tx(1, 0, fee=2, chain_id="other-chain")) == "bad-chain-id"
    assert reject_code(pool, tx(1, 0, fee=1)) == "fee-too-low"
    assert reject_code(pool, tx(1, 0, fee=2), make_state({1: (1_000, 3)})) == "nonce-too-low"
    assert reject_code(pool, tx(1, 5, fee=2)) == "nonce-gap-too-large"
    pool.add(tx(1, 4, fee=2), RICH, now=0.0)  # exactly max_nonce_gap ahead is fine
    assert reject_code(pool, tx(2, 0, fee=2, amount=99), make_state({2: 100})) == "insufficient-funds"
    assert reject_code(pool, tx(0, 0, fee=2, amount=5)) == "replacement-fee-too-low"
    pool.add(tx(0, 1, fee=2), RICH, now=0.0)
    pool.add(tx(0, 2, fee=2), RICH, now=0.0)
    assert reject_code(pool, tx(0, 3, fee=2)) == "sender-queue-full"
    forged = Transaction(chain_id=CHAIN_ID, sender=key(3).public_key, recipient=addr(1), amount=1, fee=2, nonce=0,
                         signature=tx(3, 0, fee=2, amount=2).signature)
    assert reject_code(pool, forged) == "bad-signature"
    assert len(pool) == 4


def test_oversize_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # A well-formed transaction is never above MAX_TX_BYTES (memo and chain id are bounded), so shrink the limit.
    monkeypatch.setattr("chain.mempool.MAX_TX_BYTES", 100)
    assert reject_code(new_pool(), tx(0, 0)) == "oversize"


def test_insufficient_funds_counts_lower_nonces() -> None:
    pool = new_pool()
    state = make_state({0: 100})
    pool.add(tx(0, 0, fee=5, amount=90), state, now=0.0)
    assert reject_code(pool, tx(0, 1, fee=1, amount=10), state) == "insufficient-funds"  # 95 + 11 > 100
    pool.add(tx(0, 1, fee=1, amount=4), state, now=0.0)  # 95 + 5 = 100


def test_mempool_full_code_and_rejection_changes_nothing() -> None:
    verifier = CountingVerifier()
    pool = Mempool(RULES, SignatureChecker(SignatureCache(), verifier), max_count=2)
    pool.add(tx(0, 0, fee=5), RICH, now=0.0)
    pool.add(tx(1, 0, fee=5), RICH, now=0.0)
    assert verifier.verified == 2
    assert reject_code(pool, tx(2, 0, fee=5)) == "mempool-full"  # equal fee rate: never evict for it
    assert reject_code(pool, tx(2, 0, fee=4)) == "mempool-full"
    assert len(pool) == 2 and verifier.verified == 2  # rejected before its signature was checked


# ----------------------------------------------------------------------------------------- replace-by-fee


def test_replace_by_fee() -> None:
    pool = new_pool(rbf_bump_percent=10)
    pool.add(tx(0, 0, fee=100), RICH, now=0.0)
    assert reject_code(pool, tx(0, 0, fee=109)) == "replacement-fee-too-low"
    result = pool.add(tx(0, 0, fee=110), RICH, now=1.0)
    assert result.replaced == tx(0, 0, fee=100).hash
    assert [d.reason for d in result.dropped] == [DropReason.REPLACED]
    assert pool.txs_from(addr(0)) == [tx(0, 0, fee=110)] and len(pool) == 1
    assert pool.drop_counts == {"replaced": 1}


def test_replacement_must_raise_the_fee_even_without_bump() -> None:
    pool = new_pool(rbf_bump_percent=0)
    pool.add(tx(0, 0, fee=5), RICH, now=0.0)
    assert reject_code(pool, tx(0, 0, fee=5, amount=2)) == "replacement-fee-too-low"
    assert pool.add(tx(0, 0, fee=6), RICH, now=0.0).replaced == tx(0, 0, fee=5).hash


def test_costlier_replacement_drops_descendants_it_makes_unaffordable() -> None:
    pool = new_pool()
    state = make_state({0: 1_000})
    for nonce in range(3):
        pool.add(tx(0, nonce, fee=10, amount=300), state, now=0.0)  # 930 of 1000 spent
    result = pool.add(tx(0, 1, fee=20, amount=500), state, now=0.0)  # 310 + 520 + 310 > 1000
    assert [(d.tx_hash, d.reason) for d in result.dropped] == [
        (tx(0, 1, fee=10, amount=300).hash, DropReason.REPLACED),
        (tx(0, 2, fee=10, amount=300).hash, DropReason.UNAFFORDABLE),
    ]
    assert [t.nonce for t in pool.txs_from(addr(0))] == [0, 1]


# ------------------------------------------------------------------------------------- limits and eviction


def test_count_limit_evicts_lowest_fee_rate_with_its_descendants() -> None:
    pool = new_pool(max_count=3)
    pool.add(tx(0, 0, fee=1), RICH, now=0.0)
    pool.add(tx(0, 1, fee=100), RICH, now=0.0)  # pays well, but cannot be mined without nonce 0
    pool.add(tx(1, 0, fee=2), RICH, now=0.0)
    result = pool.add(tx(2, 0, fee=3), RICH, now=0.0)
    assert [(d.tx_hash, d.reason) for d in result.dropped] == [
        (tx(0, 0, fee=1).hash, DropReason.EVICTED), (tx(0, 1, fee=100).hash, DropReason.EVICTED),
    ]
    assert len(pool) == 2 and tx(1, 0, fee=2).hash in pool and tx(2, 0, fee=3).hash in pool
    assert pool.drop_counts == {"evicted": 2}


def test_never_evicts_the_senders_own_lower_nonce() -> None:
    pool = new_pool(max_count=2)
    pool.add(tx(0, 0, fee=1), RICH, now=0.0)
    pool.add(tx(1, 0, fee=50), RICH, now=0.0)
    assert reject_code(pool, tx(0, 1, fee=100)) == "mempool-full"


def test_eviction_of_a_higher_nonce_of_the_same_sender() -> None:
    pool = new_pool(max_count=2)
    pool.add(tx(0, 0, fee=10), RICH, now=0.0)
    pool.add(tx(0, 2, fee=1), RICH, now=0.0)
    result = pool.add(tx(0, 1, fee=5), RICH, now=0.0)
    assert [d.tx_hash for d in result.dropped] == [tx(0, 2, fee=1).hash]
    assert [t.nonce for t in pool.txs_from(addr(0))] == [0, 1]


def test_equal_fee_rates_evict_the_larger_hash_first() -> None:
    pool = new_pool(max_count=2)
    a, b = tx(0, 0, fee=7), tx(1, 0, fee=7)
    assert a.size == b.size
    pool.add(a, RICH, now=0.0)
    pool.add(b, RICH, now=0.0)
    result = pool.add(tx(2, 0, fee=8), RICH, now=0.0)
    assert [d.tx_hash for d in result.dropped] == [max(a.hash, b.hash)]


def test_byte_limit_evicts_until_the_new_transaction_fits() -> None:
    small = [tx(i, 0, fee=10 + i) for i in range(3)]
    big = tx(3, 0, fee=1_000, memo=b"m" * 100)
    assert small[0].size < big.size <= 2 * small[0].size  # two must go to make room
    pool = new_pool(max_bytes=sum(t.size for t in small))
    for t in small:
        pool.add(t, RICH, now=0.0)
    result = pool.add(big, RICH, now=0.0)
    evicted = [d.tx_hash for d in result.dropped]
    assert evicted == [small[0].hash, small[1].hash]  # lowest fee rates first, just enough to fit
    assert pool.size_bytes == small[2].size + big.size <= pool.max_bytes


def test_byte_limit_refuses_a_lower_fee_rate() -> None:
    pool = new_pool(max_bytes=2 * tx(0, 0, fee=10).size)
    pool.add(tx(0, 0, fee=10), RICH, now=0.0)
    pool.add(tx(1, 0, fee=10), RICH, now=0.0)
    # a higher fee, but spread over more bytes: a lower fee rate
    big = tx(2, 0, fee=11, memo=b"m" * 100)
    assert fee_rate_key(big.fee, big.size) < fee_rate_key(10, tx(0, 0, fee=10).size)
    assert reject_code(pool, big) == "mempool-full"


# ------------------------------------------------------------------------------------------------ template


def test_template_orders_nonces_and_prefers_fee_rate() -> None:
    pool = new_pool()
    a = [tx(0, 0, fee=1), tx(0, 1, fee=50), tx(0, 2, fee=50)]
    b0, c1 = tx(1, 0, fee=10), tx(2, 1, fee=100)  # c1 waits behind a gap
    for t in [*a, b0, c1]:
        pool.add(t, RICH, now=0.0)
    assert pool.template(RICH, max_txs=100, max_bytes=100_000) == [b0, *a]
    assert pool.template(RICH, max_txs=2, max_bytes=100_000) == [b0, a[0]]
    assert pool.template(RICH, max_txs=100, max_bytes=b0.size + a[0].size) == [b0, a[0]]
    # the state moved on: sender 0 is at nonce 1, so its template starts there
    assert pool.template(make_state({0: (1_000, 1), 1: 1_000, 2: 1_000}), max_txs=9, max_bytes=9_999) == [
        a[1], a[2], b0,
    ]


def test_template_stops_where_the_balance_runs_out() -> None:
    pool = new_pool()
    rich_state = make_state({0: 1_000})
    for nonce in range(3):
        pool.add(tx(0, nonce, fee=10, amount=300), rich_state, now=0.0)
    poorer = make_state({0: 650})
    assert pool.template(poorer, max_txs=10, max_bytes=10_000) == [tx(0, 0, fee=10, amount=300),
                                                                   tx(0, 1, fee=10, amount=300)]
    assert pool.template(make_state({}), max_txs=10, max_bytes=10_000) == []


def test_template_skips_a_sender_whose_next_tx_does_not_fit() -> None:
    pool = new_pool()
    big = tx(0, 0, fee=5_000, memo=b"m" * 200)
    small = tx(1, 0, fee=1)
    pool.add(big, RICH, now=0.0)
    pool.add(tx(0, 1, fee=5_000), RICH, now=0.0)
    pool.add(small, RICH, now=0.0)
    assert pool.template(RICH, max_txs=10, max_bytes=big.size - 1) == [small]


# ------------------------------------------------------------------------------------- block connect, reorg


def test_block_connect_removes_included_and_invalidated() -> None:
    genesis_state = make_state({0: 1_000, 1: 1_000, 2: 1_000, 3: 1_000})
    pool = new_pool()
    keep = [tx(0, 1), tx(3, 4)]  # the next nonce of a mined sender, and a future tx
    for t in [tx(0, 0), *keep, tx(1, 0, fee=3), tx(2, 1, amount=500)]:
        pool.add(t, genesis_state, now=0.0)
    # mined: sender 0's pooled tx, a different tx of sender 1 with the same nonce, and a big spend of sender 2
    block = block_of([tx(0, 0), tx(1, 0, fee=4), tx(2, 0, amount=900)])
    after = apply_block(genesis_state, block).state
    update = pool.on_block_connected(block, after)
    assert sorted((d.reason.value, d.tx_hash) for d in update.dropped) == sorted([
        ("included", tx(0, 0).hash), ("stale-nonce", tx(1, 0, fee=3).hash),
        ("unaffordable", tx(2, 1, amount=500).hash),
    ])
    assert update.counts() == {"included": 1, "stale-nonce": 1, "unaffordable": 1}
    assert len(pool) == 2 and all(t.hash in pool for t in keep)
    assert pool.template(after, max_txs=10, max_bytes=10_000) == [tx(0, 1)]
    assert pool.drop_counts == {"included": 1, "stale-nonce": 1, "unaffordable": 1}


def test_remove_included_only_removes_included() -> None:
    pool = new_pool()
    for t in (tx(0, 0), tx(0, 1)):
        pool.add(t, RICH, now=0.0)
    update = pool.remove_included([tx(0, 0), tx(5, 0)])
    assert [d.tx_hash for d in update.dropped] == [tx(0, 0).hash]
    assert pool.txs_from(addr(0)) == [tx(0, 1)]


def test_reorg_returns_disconnected_txs_and_drops_now_invalid_ones() -> None:
    base = make_state({0: 1_000, 1: 1_000, 2: 1_000})  # key 4 starts empty
    pool = new_pool()
    old_block = block_of([tx(0, 0, amount=600, recipient=4), tx(1, 0), tx(2, 0)])
    old_state = apply_block(base, old_block).state
    pool.add(tx(0, 1), old_state, now=0.0)
    pool.add(tx(4, 0, amount=400), old_state, now=0.0)  # spends what the old block paid key 4
    new_block = block_of([tx(1, 0), tx(2, 0, fee=2)])  # keeps tx(1, 0); another tx with sender 2's nonce 0
    new_state = apply_block(base, new_block).state
    update = pool.on_reorg([old_block], [new_block], new_state, now=10.0)
    assert update.readded == (tx(0, 0, amount=600, recipient=4).hash,)
    assert update.not_readded == ((tx(2, 0).hash, "nonce-too-low"),)
    assert [(d.tx_hash, d.reason) for d in update.dropped] == [(tx(4, 0, amount=400).hash, DropReason.UNAFFORDABLE)]
    assert pool.template(new_state, max_txs=10, max_bytes=10_000) == [tx(0, 0, amount=600, recipient=4), tx(0, 1)]
    assert pool.drop_counts == {"unaffordable": 1, "not-readded:nonce-too-low": 1}


# ---------------------------------------------------------------------------------------- expiry, metrics


def test_expire_drops_old_txs_with_their_descendants() -> None:
    pool = new_pool()
    pool.add(tx(0, 0), RICH, now=0.0)
    pool.add(tx(0, 1), RICH, now=50.0)
    pool.add(tx(1, 0), RICH, now=40.0)
    update = pool.expire(now=60.0, max_age_s=30.0)
    assert [d.tx_hash for d in update.dropped] == [tx(0, 0).hash, tx(0, 1).hash]
    assert [t.hash for t in pool.template(RICH, max_txs=9, max_bytes=9_999)] == [tx(1, 0).hash]
    assert pool.expire(now=60.0, max_age_s=30.0).dropped == ()
    assert pool.drop_counts == {"expired": 2}


def test_from_genesis_reads_min_fee() -> None:
    genesis = Genesis(chain_id=CHAIN_ID, consensus="pow", params={"min_fee": 7})
    pool = Mempool.from_genesis(genesis, SignatureChecker(), max_count=10)
    assert pool.min_fee == 7 and pool.max_count == 10 and pool.rules.chain_id == CHAIN_ID
    with pytest.raises(ValueError, match="max_count"):
        new_pool(max_count=0)


# ----------------------------------------------------------------------------------------- signature cache


def test_block_validation_reuses_the_mempools_signature_check() -> None:
    verifier = CountingVerifier()
    cache = SignatureCache()
    pool = Mempool(RULES, SignatureChecker(cache, verifier))
    pool.add(tx(0, 0, fee=21), RICH, now=0.0)
    assert verifier.verified == 1 and tx(0, 0, fee=21).hash in cache
    # block validation with its own checker object over the same cache, counting separately
    block_verifier = CountingVerifier()
    block = block_of(pool.template(RICH, max_txs=10, max_bytes=10_000))
    check_block_stateless(block, RULES, now_ms=block.header.timestamp_ms, signatures=SignatureChecker(cache,
                                                                                                      block_verifier))
    assert block_verifier.verified == 0
    SignatureChecker(cache, block_verifier).check(block.txs)
    assert block_verifier.verified == 0
    SignatureChecker(cache, block_verifier).check([*block.txs, tx(1, 0, fee=21)])  # control: an unseen tx
    assert block_verifier.verified == 1


# ------------------------------------------------------------------------------------------ property test

SENDERS = 4
ADD_CODES = {
    "already-known", "fee-too-low", "nonce-too-low", "nonce-gap-too-large", "insufficient-funds",
    "replacement-fee-too-low", "sender-queue-full", "mempool-full",
}


def check_invariants(pool: Mempool, state: State) -> None:
    """The pool's promises, through its public API: payable nonce queues, limits, consistent sizes."""
    total_count = total_bytes = 0
    for sender in range(SENDERS):
        account = state.get(addr(sender)) or Account(0, 0)
        queued = pool.txs_from(addr(sender))
        assert len(queued) <= pool.max_per_sender
        assert all(t.nonce >= account.nonce for t in queued)
        assert sum(t.amount + t.fee for t in queued) <= account.balance
        total_count += len(queued)
        total_bytes += sum(t.size for t in queued)
    assert len(pool) == total_count <= pool.max_count
    assert pool.size_bytes == total_bytes <= pool.max_bytes


def check_template(pool: Mempool, state: State, max_txs: int, max_bytes: int) -> State:
    """Build a template, check its bounds, apply it (must not raise) and connect it; returns the new state."""
    chosen = pool.template(state, max_txs=max_txs, max_bytes=max_bytes)
    assert len(chosen) <= max_txs and sum(t.size for t in chosen) <= max_bytes
    assert all(t.hash in pool for t in chosen)
    block = block_of(chosen)
    after = apply_block(state, block).state  # raises on a bad nonce, insufficient funds or overflow
    pool.on_block_connected(block, after)
    assert not any(t.hash in pool for t in chosen)
    check_invariants(pool, after)
    return after


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[int, tuple[int, int]], list[Transaction], dict[str, int],
                                        tuple[int, int]]:
    senders = draw(st.integers(1, SENDERS))
    accounts = {i: (draw(st.integers(0, 2_000)), draw(st.integers(0, 3))) for i in range(senders)}
    txs = draw(st.lists(st.builds(
        lambda s, n, amount, fee, memo, r: tx(s, n, fee, amount, recipient=r, memo=memo),
        st.integers(0, senders - 1), st.integers(0, 8), st.integers(0, 800), st.integers(1, 60),
        st.sampled_from([b"", b"m" * 40]), st.integers(0, SENDERS),
    ), max_size=30))
    limits = {
        "max_count": draw(st.integers(2, 40)), "max_bytes": draw(st.integers(400, 6_000)),
        "max_per_sender": draw(st.integers(1, 8)), "max_nonce_gap": draw(st.integers(0, 6)),
        "rbf_bump_percent": draw(st.sampled_from([0, 10, 100])),
    }
    return accounts, txs, limits, (draw(st.integers(1, 30)), draw(st.integers(100, 5_000)))


@given(scenarios())
def test_templates_always_apply(scenario: tuple[dict[int, tuple[int, int]], list[Transaction], dict[str, int],
                                                tuple[int, int]]) -> None:
    accounts, txs, limits, (max_txs, max_bytes) = scenario
    state = make_state(accounts)
    pool = new_pool(**limits)
    for index, transaction in enumerate(txs):
        try:
            pool.add(transaction, state, now=float(index))
        except RejectError as exc:
            assert exc.code in ADD_CODES
        check_invariants(pool, state)
    before = {t.hash for sender in range(SENDERS) for t in pool.txs_from(addr(sender))}
    after = check_template(pool, state, max_txs, max_bytes)
    check_template(pool, after, max_txs, max_bytes)
    # undo both blocks at once: everything pooled before comes back or is reported, and templates still apply
    mined = [t for t in before if t not in pool]
    update = pool.on_reorg([block_of([t for t in txs if t.hash in mined])], [], state, now=99.0)
    assert set(update.readded) | {h for h, _ in update.not_readded} <= set(mined)
    check_invariants(pool, state)
    check_template(pool, state, max_txs, max_bytes)


# ------------------------------------------------------------------------------------------- measurement


def test_template_speed_measurement() -> None:
    """Not a timed assertion: prints how long a 5,000-tx template from a 50,000-tx pool takes (-s to see it)."""
    senders = [key(2_000 + i) for i in range(1_000)]
    state = State.from_balances({k.address: 10**12 for k in senders})
    pool = Mempool(RULES, SignatureChecker(verify_batch=lambda items: [True] * len(items)))
    rng = random.Random(7)
    started = time.perf_counter()
    for k in senders:
        for nonce in range(50):
            unsigned = Transaction(chain_id=CHAIN_ID, sender=k.public_key, recipient=addr(RECIPIENT), amount=1,
                                   fee=rng.randrange(1, 10_000), nonce=nonce, signature=bytes(64))
            pool.add(unsigned, state, now=0.0)
    added = time.perf_counter()
    chosen = pool.template(state, max_txs=5_000, max_bytes=10**9)
    built = time.perf_counter()
    assert len(pool) == 50_000 and len(chosen) == 5_000
    print(f"\nmempool: 50,000 adds {(added - started) * 1e6 / 50_000:.1f} us each; "
          f"5,000-tx template from 50,000 in {(built - added) * 1e3:.1f} ms")
