"""An account's history: `GET /v1/accounts/{address}/txs` (node/rpc.py) paged by its cursor, its typed errors, and
the node's answer (node/adapters.py) read from the store's address index, held to a scan of the best chain, also
after a reorg."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from chain import crypto
from chain.mempool import Mempool
from chain.validation import Rules, SignatureChecker
from node.adapters import NodeApiAdapter
from node.api import AccountTx
from node.rpc import RpcServer, encode_cursor, parse_cursor
from tests.chain.helpers import genesis, transfer
from tests.chain.test_blocktree import NOW_MS, chain_of, new_tree
from tests.conftest import key
from tests.node import MIN_FEE, Client, FakeNode, assert_error_shape, run_scenario

ALICE = crypto.address_to_text(key(0).address)


def busy_node() -> FakeNode:
    """The fake chain plus six blocks in which key 0 sends, receives and pays itself."""
    node = FakeNode()
    nonce = {0: 2, 1: 0, 4: 0}
    for round_ in range(6):
        txs = [transfer(0, 4, 10 + round_, MIN_FEE, nonce[0]), transfer(4, 0, 1, MIN_FEE, nonce[4])]
        nonce[0] += 1
        nonce[4] += 1
        if round_ % 2:
            txs.append(transfer(0, 0, 7, MIN_FEE, nonce[0]))
            nonce[0] += 1
        node._append(txs)
    node.final_height = 5
    return node


def test_pages_follow_the_cursor_newest_first_to_the_end() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        everything = (await client.get(f"/v1/accounts/{ALICE}/txs?limit=100")).body
        assert everything["next"] is None and everything["address"] == ALICE
        rows = everything["txs"]
        assert len(rows) == 2 + 6 * 2 + 3  # blocks 1 and 2, then two or three per added block
        keys_ = [(row["height"], row["position"]) for row in rows]
        assert keys_ == sorted(keys_, reverse=True)
        paged, cursor = [], None
        while True:
            query = f"limit=4&before={cursor}" if cursor else "limit=4"
            page = await client.get(f"/v1/accounts/{ALICE}/txs?{query}")
            assert page.status == 200 and len(page.body["txs"]) <= 4
            paged.extend(page.body["txs"])
            cursor = page.body["next"]
            if cursor is None:
                break
        assert paged == rows
        assert len((await client.get(f"/v1/accounts/{ALICE}/txs")).body["txs"]) == 17  # default 25
        tip = len(node.blocks) - 1
        for row in rows:
            block = node.blocks[row["height"]]
            tx = block.txs[row["position"]]
            assert row["hash"] == tx.hash.hex() and row["block"] == block.hash.hex()
            assert (row["amount"], row["fee"], row["nonce"]) == (tx.amount, tx.fee, tx.nonce)
            assert row["final"] == (row["height"] <= node.final_height)
            assert row["confirmations"] == tip - row["height"] + 1
            if tx.sender_address == tx.recipient:
                assert (row["direction"], row["counterparty"]) == ("self", ALICE)
            elif tx.sender_address == key(0).address:
                assert (row["direction"], row["counterparty"]) == ("sent", crypto.address_to_text(tx.recipient))
            else:
                assert row["direction"] == "received"
                assert row["counterparty"] == crypto.address_to_text(tx.sender_address)
        assert {row["direction"] for row in rows} == {"sent", "received", "self"}

    run_scenario(scenario, api=busy_node())


def test_an_unused_address_has_an_empty_history_and_pooled_transactions_come_with_the_first_page() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        nobody = crypto.address_to_text(key(55).address)
        assert (await client.get(f"/v1/accounts/{nobody}/txs")).body == {
            "address": nobody, "txs": [], "next": None, "pending": []}
        pooled = transfer(0, 3, 9, MIN_FEE, 2)
        await node.submit_tx(pooled)
        first = (await client.get(f"/v1/accounts/{ALICE}/txs?limit=1")).body
        assert first["pending"] == [{"hash": pooled.hash.hex(), "direction": "sent",
                                     "counterparty": crypto.address_to_text(key(3).address), "amount": 9,
                                     "fee": MIN_FEE, "nonce": 2}]
        second = (await client.get(f"/v1/accounts/{ALICE}/txs?limit=1&before={first['next']}")).body
        assert second["pending"] == [] and second["txs"][0]["height"] < first["txs"][0]["height"]

    run_scenario(scenario)


@pytest.mark.parametrize(("query", "code"), [
    ("limit=0", "bad-query"), ("limit=101", "bad-query"), ("limit=ten", "bad-query"), ("limit=-1", "bad-query"),
    ("limit=", "bad-query"), ("before=", "bad-query"), ("before=xyz", "bad-query"),
    ("before=" + "0" * 23, "bad-query"), ("before=" + "0" * 25, "bad-query"), ("before=" + "A" * 24, "bad-query"),
])
def test_malformed_limits_and_cursors_are_400_bad_query(query: str, code: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.get(f"/v1/accounts/{ALICE}/txs?{query}")
        assert reply.status == 400 and reply.error_code == code, reply.body
        assert_error_shape(reply.status, reply.body)

    run_scenario(scenario)


@pytest.mark.parametrize("address", ["cl00", "nothing", ALICE[:-1] + ("0" if ALICE[-1] != "0" else "1")])
def test_malformed_addresses_are_400_bad_address(address: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.get(f"/v1/accounts/{address}/txs")
        assert reply.status == 400 and reply.error_code == "bad-address", reply.body

    run_scenario(scenario)


def test_cursors_round_trip() -> None:
    for height, position in [(0, 0), (1, 2), (2**64 - 1, 2**32 - 1)]:
        assert parse_cursor(encode_cursor(height, position)) == (height, position)


# -- the node's answer, from the store's address index --------------------------------------------------------------


def scanned_history(tree: object, address: bytes) -> list[tuple[int, int, bytes]]:
    rows = []
    for height in range(tree.height, 0, -1):  # type: ignore[attr-defined]
        block = tree.get_block(tree.hash_at(height))  # type: ignore[attr-defined]
        for position in range(len(block.txs) - 1, -1, -1):
            tx = block.txs[position]
            if address in (tx.sender_address, tx.recipient):
                rows.append((height, position, tx.hash))
    return rows


def paged_history(api: NodeApiAdapter, address: bytes, limit: int) -> list[AccountTx]:
    rows: list[AccountTx] = []
    before = None
    while True:
        page = api.account_txs(address, before, limit)
        rows.extend(page.txs)
        if page.older is None:
            return rows
        before = page.older


def test_the_node_pages_its_address_index_and_follows_a_reorg() -> None:
    g = genesis()
    tree = new_tree(g)
    mempool = Mempool(Rules.from_genesis(g), SignatureChecker())
    api = NodeApiAdapter(SimpleNamespace(tree=tree, mempool=mempool, metrics=CollectorRegistry()))  # type: ignore[arg-type]
    txs_at = {i: [transfer(0, 1 + i % 3, 1, 1, i), transfer(2, 0, 1, 1, i)] for i in range(9)}
    main = chain_of(g, 9, txs_at=txs_at)
    for block, _ in main:
        tree.add_block(block, now_ms=NOW_MS)
    for limit in (1, 4, 100):
        rows = paged_history(api, key(0).address, limit)
        assert [(r.height, r.position, r.tx.hash) for r in rows] == scanned_history(tree, key(0).address)
    first = api.account_txs(key(0).address, None, 3)
    assert first.txs[0].confirmations == 1 and first.txs[-1].confirmations == 2
    assert [entry.final for entry in paged_history(api, key(0).address, 5)] == [
        entry.height <= tree.final_height for entry in paged_history(api, key(0).address, 5)]
    assert first.txs[0].direction(key(0).address) == "received"  # key 2's transfer comes second in each block
    # A heavier branch from height 5 on: key 0 only receives there.
    rival = chain_of(g, 6, work=3, salt=9, start=main[3], txs_at={i: [transfer(3, 0, 2, 1, i)] for i in range(6)})
    for block, _ in rival:
        tree.add_block(block, now_ms=NOW_MS)
    assert tree.tip.hash == rival[-1][0].hash
    rows = paged_history(api, key(0).address, 4)
    assert [(r.height, r.position, r.tx.hash) for r in rows] == scanned_history(tree, key(0).address)
    assert [r.direction(key(0).address) for r in rows[:6]] == ["received"] * 6

