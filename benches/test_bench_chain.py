"""Block validation, storage and reorg benchmarks (the same measurements as `chainlab bench validate|store|reorg`)."""

from __future__ import annotations

import coincurve
import pytest

from chain.block import decode_block
from chain.devtools import block_on, dev_genesis, dev_keys, fresh_transfers
from chain.validation import Rules, SignatureChecker, connect_block
from cli.bench import measure_reorg, measure_store, measure_validation

TXS = 1000


@pytest.fixture(scope="module")
def block_of_fresh_transfers():  # type: ignore[no-untyped-def]
    keys = dev_keys(TXS, seed=b"bench-validate")
    genesis = dev_genesis(keys)
    txs = fresh_transfers(keys, {}, chain_id=genesis.chain_id, count=TXS)
    block, _ = block_on(genesis.initial_state(), genesis.block(), txs, reward=genesis.block_reward,
                        proposer=keys[0].address, timestamp_ms=1)
    signers = {k.public_key: coincurve.PrivateKey(k.secret) for k in keys}
    bare = [(tx.sender, signers[tx.sender].sign(tx.signing_hash, hasher=None), tx.signing_hash) for tx in txs]
    return genesis, block.encoded, bare


def test_validate_block(benchmark, block_of_fresh_transfers, figures) -> None:  # type: ignore[no-untyped-def]
    genesis, raw, _ = block_of_fresh_transfers
    rules = Rules.from_genesis(genesis)

    def setup():  # type: ignore[no-untyped-def]
        return (genesis.initial_state(),), {}

    def validate(state):  # type: ignore[no-untyped-def]
        connect_block(state, decode_block(raw), rules, reward=genesis.block_reward, now_ms=10_000,
                      signatures=SignatureChecker())

    benchmark.pedantic(validate, setup=setup, rounds=7)
    benchmark.extra_info.update(measure_validation(TXS, workers=1, repeats=5))
    figures("validate", benchmark.extra_info)


def test_bare_signature_verification(benchmark, block_of_fresh_transfers) -> None:  # type: ignore[no-untyped-def]
    _, _, bare = block_of_fresh_transfers

    def verify() -> None:
        for public_key, der, digest in bare:
            coincurve.PublicKey(public_key).verify(der, digest, hasher=None)

    benchmark.pedantic(verify, rounds=7)


def test_validate_with_two_workers(benchmark, figures) -> None:  # type: ignore[no-untyped-def]
    # One measurement times both: rounds alternate two-process and one-process validation of the same block.
    result = benchmark.pedantic(lambda: measure_validation(4000, workers=2, repeats=7), rounds=1)
    benchmark.extra_info.update(result)
    figures("validate", result)


def test_store_import(benchmark, figures) -> None:  # type: ignore[no-untyped-def]
    result = benchmark.pedantic(lambda: measure_store(50, 1000), rounds=1)
    benchmark.extra_info.update(result)
    figures("store", result)


def test_reorg(benchmark, figures) -> None:  # type: ignore[no-untyped-def]
    result = benchmark.pedantic(lambda: measure_reorg(10, 1000), rounds=1)
    benchmark.extra_info.update(result)
    figures("reorg", result)
