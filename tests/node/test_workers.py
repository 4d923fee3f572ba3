"""Signature checks in worker processes give exactly the in-process results, whatever happens to the workers."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from chain.block import make_block
from chain.errors import RejectError
from chain.state import apply_block
from chain.validation import Rules, SignatureChecker, TxSignatureItems, connect_block, verify_in_process
from node.workers import ProcessVerifier
from tests.chain.helpers import PROPOSER, genesis, transfer
from tests.conftest import key

DIGEST = bytes(range(32))


@pytest.fixture(scope="module")
def verifier() -> Iterator[ProcessVerifier]:
    with ProcessVerifier(3) as pool:  # two worker processes plus the caller
        yield pool


def _items(count: int) -> list[tuple[bytes, bytes, bytes]]:
    """Valid triples from a few keys, with every seventh one spoiled in a different way."""
    items = []
    for i in range(count):
        signer = key(i % 5)
        digest = bytes([i % 256]) + DIGEST[1:]
        item = (signer.public_key, signer.sign(digest), digest)
        if i % 7 == 3:
            item = (item[0], item[1], bytes(32))  # signature of another digest
        elif i % 7 == 5:
            item = (key((i + 1) % 5).public_key, item[1], item[2])  # another key
        items.append(item)
    return items


@pytest.mark.parametrize("count", [2, 3, 50, 301])
def test_results_identical_to_in_process(verifier: ProcessVerifier, count: int) -> None:
    items = _items(count)
    assert verifier.submit(items)() == verify_in_process(items)


def test_malformed_items_are_checked_in_process_with_the_same_answer(verifier: ProcessVerifier) -> None:
    items = _items(40)
    items[30] = (items[30][0][:32], items[30][1] + b"\x00", items[30][2])  # sizes still sum to a whole record
    items[35] = (items[35][0], b"", items[35][2])
    expected = verify_in_process(items)
    assert expected[30] is False and expected[35] is False
    assert verifier.submit(items)() == expected


def test_a_killed_worker_costs_time_not_correctness() -> None:
    items = _items(120)
    expected = verify_in_process(items)
    with ProcessVerifier(2) as pool:
        victim = pool._pool[0].process
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(5)
        assert pool.submit(items)() == expected  # the dead worker is replaced before the work goes out
        replacement = pool._pool[0].process
        assert replacement.pid != victim.pid and replacement.is_alive()
        wait = pool.submit(items)
        assert replacement.pid is not None
        os.kill(replacement.pid, signal.SIGKILL)  # dies holding work: the caller checks that share itself
        assert wait() == expected


def test_a_submission_nobody_waited_for_never_answers_the_next_one() -> None:
    good = _items(40)
    forged = [(public_key, signature, bytes(32)) for public_key, signature, _ in good]
    with ProcessVerifier(2) as pool:
        pool.submit(good)  # e.g. block application raised something other than a RejectError: never waited on
        assert pool.submit(forged)() == verify_in_process(forged)  # not the left-over answers for `good`
        assert pool.submit(good)() == verify_in_process(good)


def test_close_stops_every_worker() -> None:
    pool = ProcessVerifier(3)
    processes = [worker.process for worker in pool._pool]
    assert all(process.is_alive() for process in processes)
    pool.close()
    assert not any(process.is_alive() for process in processes)


def test_block_validation_reports_the_same_first_bad_signature(verifier: ProcessVerifier) -> None:
    g = genesis(accounts=8)
    state = g.initial_state()
    txs = [transfer(i % 8, 20 + i, 1, 1, i // 8) for i in range(64)]
    bad = txs[41]
    txs[41] = bad._replace(signature=txs[40].signature)  # well-formed, wrong signature
    txs[52] = txs[52]._replace(signature=txs[51].signature)
    draft = make_block(parent=g.block().header, height=1, timestamp_ms=1000, txs=txs, state_root=bytes(32),
                       proposer=PROPOSER)
    after = apply_block(state, draft, reward=50).state
    block = make_block(parent=g.block().header, height=1, timestamp_ms=1000, txs=txs, state_root=after.commitment,
                       proposer=PROPOSER)
    rules = Rules.from_genesis(g)
    codes = []
    for checker in (SignatureChecker(), SignatureChecker(parallel=verifier)):
        with pytest.raises(RejectError) as info:
            connect_block(state, block, rules, reward=50, now_ms=10_000, signatures=checker)
        codes.append((info.value.code, info.value.message))
        assert len(checker.cache) == 0  # nothing from a failed block enters the cache
    assert codes[0] == codes[1]
    assert codes[0][0] == "bad-signature" and codes[0][1].startswith("tx 41 ")


def test_lazy_items_match_the_transactions() -> None:
    txs = [transfer(i, 10 + i, 1, 1, 0) for i in range(4)]
    items = TxSignatureItems(txs)
    assert len(items) == 4
    assert items[1] == (txs[1].sender, txs[1].signature, txs[1].signing_hash)
    assert items[1:3] == [(tx.sender, tx.signature, tx.signing_hash) for tx in txs[1:3]]
