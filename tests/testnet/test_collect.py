"""RPC builders of the checkers' inputs (testnet/collect.py), against a fake client that answers from a real
block tree: the views pass the checks, a node lying about one balance fails the ledger check, and reads are
retried while finality moves."""

from __future__ import annotations

from typing import Any

import pytest

from chain.block import Block
from chain.blocktree import BlockTree
from chain.chainstore import ChainStore
from chain.crypto import address_from_text, address_to_text
from chain.devtools import dev_genesis, dev_keys
from chain.genesis import Genesis
from consensus.pow.devtools import generate_pow_chain
from consensus.registry import chain_policy
from storage.memory import MemoryStore
from testnet.checks import check_final_prefix, check_ledger
from testnet.collect import CollectError, header_of, rpc_view


def build(blocks: list[Block], genesis: Genesis) -> BlockTree:
    tree = BlockTree(ChainStore(MemoryStore()), genesis, chain_policy(genesis))
    for block in blocks:
        tree.add_block(block, now_ms=10**13)
    return tree


class TreeClient:
    """Answers status, blocks and accounts (at the final height) like a node's RPC, from a block tree."""

    def __init__(self, tree: BlockTree, final_state: BlockTree, *, lie: str | None = None,
                 stale_reads: int = 0) -> None:
        self.tree, self.final_state, self.lie, self.stale_reads = tree, final_state, lie, stale_reads
        self.account_calls = 0

    def status(self) -> dict[str, Any]:
        return {"height": self.tree.height, "final_height": self.tree.final_height,
                "head": self.tree.tip.hash.hex(), "safety_alarms": 0}

    def blocks(self, from_height: int, limit: int, *, full_txs: bool = False) -> list[dict[str, Any]]:
        out = []
        for height in range(from_height, min(self.tree.height, from_height + limit - 1) + 1):
            block_hash = self.tree.hash_at(height)
            assert block_hash is not None
            block = self.tree.get_block(block_hash)
            assert block is not None
            out.append({**block.to_json(full_txs=full_txs), "hash": block.hash.hex()})
        return out

    def account(self, address: str, at: str = "latest") -> dict[str, Any]:
        assert at == "final"
        self.account_calls += 1
        account = self.final_state.state.get(address_from_text(address))
        balance, nonce = (account.balance, account.nonce) if account else (0, 0)
        if address == self.lie:
            balance += 1
        height = self.tree.final_height
        if self.stale_reads > 0:
            self.stale_reads -= 1
            height -= 1
        return {"address": address, "balance": balance, "nonce": nonce, "height": height}


@pytest.fixture(scope="module")
def chain() -> tuple[Genesis, list[Block]]:
    keys = dev_keys(5, seed=b"collect-test")
    genesis = dev_genesis(keys, params={"block_interval_s": 1.0}, finality_threshold=3)
    return genesis, list(generate_pow_chain(genesis, keys, blocks=8, txs_per_block=4, miner=keys[4].address))


def clients(chain: tuple[Genesis, list[Block]], **options: Any) -> TreeClient:
    genesis, blocks = chain
    tree = build(blocks, genesis)
    return TreeClient(tree, build(blocks[:tree.final_height], genesis), **options)


def test_rpc_view_builds_views_that_pass(chain: tuple[Genesis, list[Block]]) -> None:
    genesis, blocks = chain
    client = clients(chain)
    view = rpc_view("n0", client, genesis)  # type: ignore[arg-type]
    assert view.snapshot.height == 8 and view.snapshot.final_height == 6
    assert view.snapshot.hashes[8] == blocks[-1].hash.hex()
    assert view.final_txs == {tx.hash.hex() for block in blocks[:6] for tx in block.txs}
    assert view.block_times_ms[1] == blocks[0].header.timestamp_ms
    assert view.ledger is not None
    result = check_ledger(view.ledger)
    assert result.ok, result.detail
    assert view.ledger.minted == 6 * genesis.block_reward
    assert check_final_prefix([view.snapshot, rpc_view("n1", clients(chain), genesis).snapshot]).ok  # type: ignore[arg-type]


def test_a_node_reporting_a_wrong_balance_fails_the_ledger_check(chain: tuple[Genesis, list[Block]]) -> None:
    genesis, _ = chain
    victim = address_to_text(next(iter(genesis.balances)))
    view = rpc_view("n0", clients(chain, lie=victim), genesis)  # type: ignore[arg-type]
    assert view.ledger is not None
    result = check_ledger(view.ledger)
    assert not result.ok and "total supply" in result.detail


def test_account_reads_are_retried_until_they_agree_on_the_final_height(chain: tuple[Genesis, list[Block]]) -> None:
    genesis, _ = chain
    client = clients(chain, stale_reads=3)
    view = rpc_view("n0", client, genesis)  # type: ignore[arg-type]
    assert view.ledger is not None and check_ledger(view.ledger).ok
    accounts = len(view.ledger.balances)
    assert client.account_calls >= 2 * accounts


def test_a_block_whose_header_does_not_hash_to_its_id_is_refused(chain: tuple[Genesis, list[Block]]) -> None:
    _, blocks = chain
    data = blocks[0].to_json()
    assert header_of({**data, "hash": blocks[0].hash.hex()}).height == 1
    with pytest.raises(CollectError, match="does not hash"):
        header_of({**data, "hash": "00" * 32})
