"""Builders for chain tests: genesis, signed transfers, valid blocks."""

from __future__ import annotations

from collections.abc import Sequence

from chain.block import Block, make_block
from chain.blocktree import ForkChoice
from chain.genesis import Genesis
from chain.state import State, apply_block
from chain.tx import Transaction, make_transfer
from tests.conftest import key

CHAIN_ID = "chainlab-test"
PROPOSER = key(1000).address


def genesis(accounts: int = 8, balance: int = 1_000_000, reward: int = 50) -> Genesis:
    """A PoW genesis funding test keys 0..accounts-1."""
    return Genesis(
        chain_id=CHAIN_ID, consensus="pow", block_reward=reward,
        balances={key(i).address: balance for i in range(accounts)},
    )


def transfer(sender: int, recipient: int, amount: int, fee: int, nonce: int, chain_id: str = CHAIN_ID) -> Transaction:
    """A signed transfer between test keys."""
    return make_transfer(key(sender), chain_id=chain_id, recipient=key(recipient).address, amount=amount, fee=fee,
                         nonce=nonce)


def build_block(
    state: State, parent: Block, txs: Sequence[Transaction], *, reward: int = 50, proposer: bytes = PROPOSER,
    timestamp_ms: int | None = None,
) -> Block:
    """A block over `txs` on `parent` whose header commits to the state after applying it."""
    ts = parent.header.timestamp_ms + 1000 if timestamp_ms is None else timestamp_ms
    draft = make_block(parent=parent.header, height=parent.height + 1, timestamp_ms=ts, txs=txs,
                       state_root=bytes(32), proposer=proposer)
    after = apply_block(state, draft, reward=reward).state
    return make_block(parent=parent.header, height=parent.height + 1, timestamp_ms=ts, txs=txs,
                      state_root=after.commitment, proposer=proposer)


class WorkSealPolicy:
    """A test chain policy: the seal is 2 bytes giving the block's work directly, so tests can build branches of
    chosen weight without grinding proof of work."""

    fork_choice = ForkChoice.MOST_WORK
    confirmation_finality = True

    def __init__(self, reward: int = 50, *, confirmation_finality: bool = True,
                 fork_choice: ForkChoice = ForkChoice.MOST_WORK) -> None:
        self.reward = reward
        self.confirmation_finality = confirmation_finality
        self.fork_choice = fork_choice

    def check_detached_header(self, header) -> None:  # type: ignore[no-untyped-def]
        pass

    def block_work(self, header) -> int:  # type: ignore[no-untyped-def]
        return int.from_bytes(header.seal, "big") if len(header.seal) == 2 else 0

    def check_header(self, header, parent, view, now_ms) -> None:  # type: ignore[no-untyped-def]
        from chain.errors import RejectError

        if len(header.seal) != 2 or header.seal == b"\x00\x00":
            raise RejectError("bad-seal", "test seal is 2 bytes of non-zero work")

    def block_reward(self, header) -> int:  # type: ignore[no-untyped-def]
        return self.reward


def sealed_block(state: State, parent: Block, txs: Sequence[Transaction], *, work: int = 1, reward: int = 50,
                 timestamp_ms: int | None = None, proposer: bytes = PROPOSER) -> tuple[Block, State]:
    """A block with a WorkSealPolicy seal of `work` on `parent`, and the state after it."""
    from chain.devtools import block_on

    ts = parent.header.timestamp_ms + 1000 if timestamp_ms is None else timestamp_ms
    return block_on(state, parent, txs, reward=reward, proposer=proposer, timestamp_ms=ts,
                    seal=work.to_bytes(2, "big"))
