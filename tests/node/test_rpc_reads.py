"""node/rpc.py's read levels, write refusal and `wait=` long-polls, against the in-memory FakeNode (the real node
behind them is tests/node/test_reads.py)."""

from __future__ import annotations

import asyncio

import pytest

from chain import crypto
from chain.errors import RejectError
from node.rpc import RpcServer
from tests.chain.helpers import transfer
from tests.conftest import key
from tests.node import BALANCE, MIN_FEE, Client, FakeNode, run_scenario

ALICE = crypto.address_to_text(key(0).address)


def _body(sender: int, nonce: int) -> dict[str, str]:
    return {"tx": transfer(sender, 5, 10, MIN_FEE, nonce).encoded.hex()}


# --- linearizable reads ------------------------------------------------------------------------------------


def test_a_linearizable_read_carries_its_proof() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        node.read_grant = (7, 1)
        reply = await client.get(f"/v1/accounts/{ALICE}?at=linearizable")
        assert reply.status == 200
        assert reply.body == {
            "address": ALICE, "at": "linearizable", "balance": BALANCE - 100 - MIN_FEE, "nonce": 1, "height": 1,
            "read_proof": {"term": 7, "read_index": 1, "applied_height": 1, "block_hash": node.blocks[1].hash.hex()},
        }

    run_scenario(scenario)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RejectError("no-leader", "no leader known"), 503),
        (RejectError("no-quorum", "cannot reach a quorum"), 503),
        (RejectError("read-timeout", "no answer"), 503),
        (RejectError("busy", "too many reads"), 503),
        (RejectError("stopping", "the node is stopping"), 503),
        (RejectError("some-engine-code", "an engine's own refusal"), 503),
        (RejectError("unsupported-read-level", "no reads here"), 400),
    ],
)
def test_linearizable_read_refusals_keep_the_engine_code(error: RejectError, status: int) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        node.read_grant = error
        reply = await client.get(f"/v1/accounts/{ALICE}?at=linearizable")
        assert (reply.status, reply.error_code, reply.body["error"]["message"]) == (status, error.code, error.message)

    run_scenario(scenario)


# --- write refusal -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["no-leader", "no-quorum"])
def test_a_refused_write_is_a_503_and_nothing_is_pooled(code: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        node.refusal = RejectError(code, "not now")
        reply = await client.post("/v1/transactions", json_body=_body(4, 0))
        assert (reply.status, reply.error_code) == (503, code)
        assert len(node.pool) == 0
        node.refusal = None
        assert (await client.post("/v1/transactions", json_body=_body(4, 0))).status == 202
        assert len(node.pool) == 1

    run_scenario(scenario)


# --- wait= -------------------------------------------------------------------------------------------------


def test_wait_final_answers_only_after_finality() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        tx = transfer(4, 5, 10, MIN_FEE, 0)
        request = asyncio.create_task(client.post("/v1/transactions?wait=final&timeout_s=5",
                                                  json_body={"tx": tx.encoded.hex()}))
        await asyncio.sleep(0.2)
        assert not request.done() and tx.hash in node.pool
        node.mine()  # included at height 4, final height 3
        await asyncio.sleep(0.2)
        assert not request.done() and node.tx_status(tx.hash).status == "included"
        node.mine()  # final height 4
        reply = await asyncio.wait_for(request, 2)
        assert (reply.status, reply.body) == (200, {"hash": tx.hash.hex(), "status": "final", "height": 4,
                                                    "block_hash": node.blocks[4].hash.hex(), "index": 0})
        assert node.tx_waits.active == 0 and len(node.final_waits) == 0

    run_scenario(scenario)


def test_wait_included_answers_at_the_first_connected_block() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        tx = transfer(4, 5, 10, MIN_FEE, 0)
        request = asyncio.create_task(client.post("/v1/transactions?wait=included",
                                                  json_body={"tx": tx.encoded.hex()}))
        await asyncio.sleep(0.2)
        assert not request.done()
        node.mine()
        reply = await asyncio.wait_for(request, 2)
        assert (reply.status, reply.body["status"], reply.body["height"]) == (200, "included", 4)

    run_scenario(scenario)


def test_a_transaction_already_final_answers_at_once() -> None:
    node = FakeNode(auto_mine=True, finality_depth=1)  # the submission itself mines and finalizes

    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.post("/v1/transactions?wait=final", json_body=_body(4, 0))
        assert (reply.status, reply.body["status"], reply.body["height"]) == (200, "final", 4)

    run_scenario(scenario, api=node)


def test_wait_timeout_is_a_504_with_the_hash_and_the_tx_stays_submitted() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        tx = transfer(4, 5, 10, MIN_FEE, 0)
        reply = await client.post("/v1/transactions?wait=final&timeout_s=1", json_body={"tx": tx.encoded.hex()})
        assert (reply.status, reply.error_code, reply.body["error"]["hash"]) == (504, "wait-timeout", tx.hash.hex())
        assert tx.hash in node.pool
        assert node.tx_waits.active == 0

    run_scenario(scenario)


@pytest.mark.parametrize(
    "query",
    ["wait=yes", "wait=", "wait=FINAL", "wait=final&timeout_s=0", "wait=final&timeout_s=121",
     "wait=final&timeout_s=abc", "wait=final&timeout_s=-1", "wait=final&timeout_s=1.5", "timeout_s=5"],
)
def test_malformed_wait_queries_are_400_bad_query(query: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.post(f"/v1/transactions?{query}", json_body=_body(4, 0))
        assert (reply.status, reply.error_code) == (400, "bad-query")
        assert len(node.pool) == 0  # refused before anything was submitted

    run_scenario(scenario)


@pytest.mark.parametrize("level", ["LINEARIZABLE", "strong", "linearizable "])
def test_unknown_read_levels_are_400(level: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        node.read_grant = (1, 1)  # would be served, were the level right
        reply = await client.get(f"/v1/accounts/{ALICE}?at={level}")
        assert (reply.status, reply.error_code) == (400, "unsupported-read-level")

    run_scenario(scenario)
