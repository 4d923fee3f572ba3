"""Block validation: every single-field mutation is rejected with the right code; the signature cache."""

from __future__ import annotations

import dataclasses

import pytest

from chain.block import Block, BlockHeader, make_block
from chain.errors import RejectError
from chain.state import State
from chain.tx import Transaction
from chain.validation import Rules, SignatureCache, SignatureChecker, check_tx, connect_block
from tests.chain.helpers import CHAIN_ID, build_block, genesis, transfer
from tests.conftest import key

NOW_MS = 10_000_000


def setup() -> tuple[State, Block, Rules, Block]:
    g = genesis()
    state = g.initial_state()
    block = build_block(state, g.block(), [transfer(0, 1, 100, 5, 0), transfer(2, 3, 7, 1, 0)],
                        timestamp_ms=NOW_MS)
    return state, g.block(), Rules.from_genesis(g), block


def connect(state: State, block: Block, rules: Rules) -> None:
    connect_block(state, block, rules, reward=50, now_ms=NOW_MS, signatures=SignatureChecker())


def with_header(block: Block, **changes: object) -> Block:
    fields = {f.name: getattr(block.header, f.name) for f in dataclasses.fields(BlockHeader) if f.init}
    fields.update(changes)
    return Block(header=BlockHeader(**fields), txs=block.txs)  # type: ignore[arg-type]


def with_tx(block: Block, index: int, **changes: object) -> Block:
    """Replace transaction `index` by a mutated copy that keeps its (now invalid) signature, re-rooting the
    header so only the intended check can fail."""
    tx = block.txs[index]
    fields = {name: getattr(tx, name) for name in ("chain_id", "sender", "recipient", "amount", "fee", "nonce",
                                                   "memo", "signature")}
    fields.update(changes)
    txs = list(block.txs)
    txs[index] = Transaction(**fields)  # type: ignore[arg-type]
    rebuilt = make_block(parent=None, parent_hash=block.parent, height=block.height,
                         timestamp_ms=block.header.timestamp_ms, txs=txs, state_root=block.header.state_root,
                         proposer=block.header.proposer)
    return rebuilt


def test_valid_block_connects() -> None:
    state, _, rules, block = setup()
    connect(state, block, rules)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: with_header(b, tx_root=bytes(32)), "bad-merkle-root"),
        (lambda b: with_header(b, state_root=bytes(32)), "bad-state-commitment"),
        (lambda b: with_header(b, proposer=key(7).address), "bad-state-commitment"),
        (lambda b: with_header(b, timestamp_ms=NOW_MS + 60_000), "time-too-new"),
        (lambda b: Block(header=b.header, txs=b.txs[:1]), "bad-merkle-root"),
        (lambda b: Block(header=b.header, txs=(b.txs[1], b.txs[0])), "bad-merkle-root"),
        (lambda b: with_tx(b, 0, amount=101), "bad-signature"),
        (lambda b: with_tx(b, 0, fee=6), "bad-signature"),
        (lambda b: with_tx(b, 0, recipient=key(5).address), "bad-signature"),
        (lambda b: with_tx(b, 0, memo=b"x"), "bad-signature"),
        (lambda b: with_tx(b, 0, signature=b"\x01" * 64), "bad-signature"),
        (lambda b: with_tx(b, 0, sender=key(4).public_key), "bad-signature"),
        (lambda b: with_tx(b, 0, chain_id="other-chain"), "bad-chain-id"),
    ],
)
def test_single_field_mutation_is_rejected_with_its_code(mutate, code: str) -> None:  # type: ignore[no-untyped-def]
    state, _, rules, block = setup()
    with pytest.raises(RejectError) as info:
        connect(state, mutate(block), rules)
    assert info.value.code == code


def test_nonce_and_funds_codes_through_connect() -> None:
    g = genesis()
    state, rules = g.initial_state(), Rules.from_genesis(g)
    bad_nonce = make_block(parent=g.block().header, height=1, timestamp_ms=1, txs=[transfer(0, 1, 1, 1, 3)],
                           state_root=bytes(32), proposer=key(9).address)
    with pytest.raises(RejectError, match="bad-nonce"):
        connect(state, bad_nonce, rules)


def test_duplicate_tx_rejected() -> None:
    g = genesis()
    tx = transfer(0, 1, 1, 1, 0)
    block = make_block(parent=g.block().header, height=1, timestamp_ms=1, txs=[tx, tx], state_root=bytes(32),
                       proposer=key(9).address)
    with pytest.raises(RejectError) as info:
        connect(g.initial_state(), block, Rules.from_genesis(g))
    assert info.value.code == "duplicate-tx"


def test_oversize_block_rejected() -> None:
    state, _, rules, block = setup()
    tight = dataclasses.replace(rules, max_block_txs=1)
    with pytest.raises(RejectError) as info:
        connect(state, block, tight)
    assert info.value.code == "oversize"


def test_signature_cache_skips_verified_transactions() -> None:
    calls: list[int] = []

    def counting(items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        from chain.validation import verify_in_process
        return verify_in_process(items)

    state, _, rules, block = setup()
    checker = SignatureChecker(SignatureCache(), counting)
    check_tx(block.txs[0], rules, checker)
    assert calls == [1]
    connect_block(state, block, rules, reward=50, now_ms=NOW_MS, signatures=checker)
    assert calls == [1, 1]  # only the transaction the cache had not seen
    connect_block(state, block, rules, reward=50, now_ms=NOW_MS, signatures=checker)
    assert calls == [1, 1]


def test_signature_cache_is_bounded() -> None:
    cache = SignatureCache(capacity=3)
    for i in range(5):
        cache.add(bytes([i]) * 32)
    assert len(cache) == 3
    assert bytes([0]) * 32 not in cache
    assert bytes([4]) * 32 in cache


def test_check_tx_codes() -> None:
    g = genesis()
    rules = Rules.from_genesis(g)
    with pytest.raises(RejectError, match="bad-chain-id"):
        check_tx(transfer(0, 1, 1, 1, 0, chain_id="elsewhere"), rules, SignatureChecker())
    forged = Transaction(chain_id=CHAIN_ID, sender=key(0).public_key, recipient=key(1).address, amount=1, fee=1,
                         nonce=0, signature=b"\x02" * 64)
    with pytest.raises(RejectError, match="bad-signature"):
        check_tx(forged, rules, SignatureChecker())
