"""Deterministic PoW chains for tests, benchmarks and `chain generate`.

They live here rather than in chain/devtools.py because sealing is the engine's business and chain/ does not
import consensus/; everything is pure and reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from chain.block import Block
from chain.crypto import PrivateKey
from chain.devtools import block_on, fresh_transfers
from chain.genesis import Genesis
from consensus.pow.params import PowParams
from consensus.pow.seal import grind


def generate_pow_chain(
    genesis: Genesis, senders: Sequence[PrivateKey], *, blocks: int, txs_per_block: int, miner: bytes,
    tx_offset: int = 0,
) -> Iterator[Block]:
    """Valid PoW blocks on `genesis` at its initial (minimum) difficulty, each with `txs_per_block` fresh transfers
    from `senders` (which genesis must fund). Timestamps advance by exactly the block interval, so the retarget
    keeps the initial target and grinding stays cheap."""
    target = PowParams.of(genesis).initial_target
    interval_ms = max(1, int(float(genesis.param("block_interval_s")) * 1000))
    state, parent = genesis.initial_state(), genesis.block()
    nonces: dict[bytes, int] = {}
    for index in range(blocks):
        txs = fresh_transfers(senders, nonces, chain_id=genesis.chain_id, count=txs_per_block,
                              first=tx_offset + index * txs_per_block)
        draft, state = block_on(state, parent, txs, reward=genesis.block_reward, proposer=miner,
                                timestamp_ms=parent.header.timestamp_ms + interval_ms)
        sealed = grind(draft.header, target)
        if sealed is None:
            raise RuntimeError("no nonce met the dev target")
        parent = Block(header=sealed, txs=draft.txs)
        yield parent
