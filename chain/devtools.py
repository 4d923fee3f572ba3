"""Deterministic fixtures for benchmarks, `chain generate`, the simulator and testnet load accounts.

Keys come from seeds (never use them for real funds); everything here is pure and reproducible. Chains sealed by
an engine live with that engine (PoW: consensus/pow/devtools.py), since chain/ does not depend on consensus/.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.block import Block, make_block
from chain.crypto import PrivateKey
from chain.genesis import Genesis
from chain.state import State, apply_block
from chain.tx import Transaction, make_transfer


def dev_keys(count: int, seed: bytes = b"chainlab-dev") -> list[PrivateKey]:
    """`count` deterministic keys derived from `seed`."""
    return [PrivateKey.from_seed(seed + b"/" + index.to_bytes(4, "big")) for index in range(count)]


def dev_genesis(
    keys: Sequence[PrivateKey], *, balance: int = 10**12, consensus: str = "pow", chain_id: str = "chainlab-dev",
    params: dict[str, object] | None = None, block_reward: int = 50, finality_threshold: int = 6,
) -> Genesis:
    """A genesis funding every key in `keys` with `balance`."""
    return Genesis(
        chain_id=chain_id, consensus=consensus, balances={k.address: balance for k in keys},
        params=params or {}, block_reward=block_reward, finality_threshold=finality_threshold,
    )


def fresh_transfers(
    senders: Sequence[PrivateKey], nonces: dict[bytes, int], *, chain_id: str, count: int, amount: int = 1,
    fee: int = 1, first: int = 0,
) -> list[Transaction]:
    """`count` signed transfers cycling through `senders` (starting at `first`), each to a new address derived
    from its position, advancing `nonces` (address -> next nonce) as it goes."""
    txs = []
    for position in range(first, first + count):
        sender = senders[position % len(senders)]
        recipient = PrivateKey.from_seed(b"recipient/" + position.to_bytes(8, "big")).address[::-1]
        nonce = nonces.get(sender.address, 0)
        txs.append(make_transfer(sender, chain_id=chain_id, recipient=recipient, amount=amount, fee=fee, nonce=nonce))
        nonces[sender.address] = nonce + 1
    return txs


def block_on(
    state: State, parent: Block, txs: Sequence[Transaction], *, reward: int, proposer: bytes, timestamp_ms: int,
    seal: bytes = b"",
) -> tuple[Block, State]:
    """A block over `txs` on `parent` that commits to its resulting state, and that state."""
    draft = make_block(parent=parent.header, height=parent.height + 1, timestamp_ms=timestamp_ms, txs=txs,
                       state_root=bytes(32), proposer=proposer)
    after = apply_block(state, draft, reward=reward).state
    block = make_block(parent=parent.header, height=parent.height + 1, timestamp_ms=timestamp_ms, txs=txs,
                       state_root=after.commitment, proposer=proposer, seal=seal)
    return block, after
