"""node/rpc.py: every route's answers and every error code, admin auth, the event stream, metrics, and a fuzzer
that never gets a 500 or a non-JSON error."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from chain import crypto
from chain.genesis import parse_genesis
from chain.tx import Transaction
from node.api import AccountView, EventBroker, TxStatus
from node.metrics import NodeMetrics
from node.rpc import RpcConfig, RpcServer
from tests.chain.helpers import transfer
from tests.conftest import key
from tests.node import (
    ADMIN_TOKEN,
    BALANCE,
    MIN_FEE,
    Client,
    FakeNode,
    ServerThread,
    assert_error_shape,
    run_scenario,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALICE = crypto.address_to_text(key(0).address)
NOBODY = crypto.address_to_text(key(500).address)


def _run(scenario: Any, **kwargs: Any) -> None:
    run_scenario(scenario, **kwargs)


# --- status, blocks, tips ----------------------------------------------------------------------------------


def test_status() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.get("/v1/status")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
        assert reply.body == json.loads(json.dumps(node.status()))
        assert server.url == f"http://127.0.0.1:{server.port}"

    _run(scenario)


def test_genesis_document_parses_back_to_the_served_hash() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.get("/v1/genesis")
        assert reply.status == 200
        assert reply.body["genesis"] == node.genesis.hash.hex() and reply.body["chain_id"] == node.genesis.chain_id
        assert parse_genesis(reply.body["toml"]).hash == node.genesis.hash

    _run(scenario)


def test_block_by_height_and_hash() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        block = node.blocks[1]
        by_height = (await client.get("/v1/blocks/1")).body
        assert by_height == {**json.loads(json.dumps(block.to_json())), "final": True, "on_best_chain": True,
                             "seal_decoded": {"engine": "fake"}}
        assert by_height["txs"] == [tx.hash.hex() for tx in block.txs]
        assert (await client.get(f"/v1/blocks/{block.hash.hex().upper()}")).body == by_height
        full = (await client.get("/v1/blocks/1?txs=full")).body
        assert full["txs"] == [json.loads(json.dumps(tx.to_json())) for tx in block.txs]
        tip = (await client.get("/v1/blocks/3")).body
        assert (tip["final"], tip["on_best_chain"]) == (False, True)
        side = (await client.get(f"/v1/blocks/{node.side.hash.hex()}")).body
        assert (side["height"], side["final"], side["on_best_chain"]) == (2, False, False)

    _run(scenario)


def test_blocks_range() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        everything = (await client.get("/v1/blocks")).body["blocks"]
        assert [b["height"] for b in everything] == [0, 1, 2, 3]
        assert [b["final"] for b in everything] == [True, True, False, False]
        page = (await client.get("/v1/blocks?from=2&limit=1&txs=full")).body["blocks"]
        assert [b["height"] for b in page] == [2] and isinstance(page[0]["txs"][0], dict)
        assert (await client.get("/v1/blocks?from=50")).body == {"blocks": []}
        assert len((await client.get("/v1/blocks?limit=100")).body["blocks"]) == 4

    _run(scenario)


def test_tips() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        tips = (await client.get("/v1/tips")).body["tips"]
        assert tips[0] == {"hash": node.blocks[3].hash.hex(), "height": 3, "work": str(2**80 + 3),
                           "status": "active", "branch_length": 0}
        assert tips[1]["status"] == "valid-fork" and tips[1]["hash"] == node.side.hash.hex()

    _run(scenario)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/blocks/4", 404, "unknown-block"),
        ("/v1/blocks/99999999999999999999", 404, "unknown-block"),
        ("/v1/blocks/" + "ab" * 32, 404, "unknown-block"),
        ("/v1/blocks/-1", 400, "bad-block-ref"),
        ("/v1/blocks/" + "ab" * 31, 400, "bad-block-ref"),
        ("/v1/blocks/1.0", 400, "bad-block-ref"),
        ("/v1/blocks/%D9%A3", 400, "bad-block-ref"),  # an Arabic-Indic digit is not a height
        ("/v1/blocks/1?txs=all", 400, "bad-query"),
        ("/v1/blocks?limit=0", 400, "bad-query"),
        ("/v1/blocks?limit=101", 400, "bad-query"),
        ("/v1/blocks?from=-1", 400, "bad-query"),
        ("/v1/blocks?from=abc", 400, "bad-query"),
        ("/v1/mempool?limit=0", 400, "bad-query"),
        ("/v1/transactions/xyz", 400, "bad-hex"),
        ("/v1/transactions/" + "ab" * 33, 400, "bad-hex"),
        ("/v1/nothing", 404, "not-found"),
        ("/v1/blocks/1/extra", 404, "not-found"),
        ("/", 404, "not-found"),
    ],
)
def test_get_errors(path: str, status: int, code: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.get(path)
        assert (reply.status, reply.error_code) == (status, code), reply

    _run(scenario)


def test_wrong_method_is_405_with_allow() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        for method, path, allow in [("DELETE", "/v1/status", "GET"), ("GET", "/v1/transactions", "POST"),
                                    ("PUT", "/v1/admin/mining", "POST"), ("HEAD", "/v1/events", "GET")]:
            reply = await client.request(method, path)
            assert reply.status == 405 and reply.headers["Allow"] == allow, reply
            if method != "HEAD":
                assert reply.error_code == "method-not-allowed"

    _run(scenario)


# --- transactions ------------------------------------------------------------------------------------------


def _submit_body(tx: Transaction) -> dict[str, str]:
    return {"tx": tx.encoded.hex()}


def test_submit_then_status_and_mempool() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        tx = transfer(4, 5, 10, MIN_FEE, 0)
        reply = await client.post("/v1/transactions", json_body=_submit_body(tx))
        assert (reply.status, reply.body) == (202, {"hash": tx.hash.hex()})
        status = (await client.get(f"/v1/transactions/{tx.hash.hex()}")).body
        assert status["status"] == "pending" and status["height"] is None and status["tx"]["nonce"] == 0
        pool = (await client.get("/v1/mempool")).body
        assert pool["size"] == 1 and pool["bytes"] == tx.size and pool["txs"][0]["hash"] == tx.hash.hex()
        node.mine()
        status = (await client.get(f"/v1/transactions/{tx.hash.hex()}")).body
        assert (status["status"], status["height"], status["index"]) == ("included", 4, 0)
        assert status["block"] == node.blocks[4].hash.hex()

    _run(scenario)


def test_tx_status_included_final_unknown() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        final_tx, included_tx = node.blocks[1].txs[1], node.blocks[2].txs[0]
        final = (await client.get(f"/v1/transactions/{final_tx.hash.hex()}")).body
        assert final == {"hash": final_tx.hash.hex(), "status": "final", "height": 1, "index": 1,
                         "block": node.blocks[1].hash.hex(), "tx": json.loads(json.dumps(final_tx.to_json()))}
        assert (await client.get(f"/v1/transactions/{included_tx.hash.hex()}")).body["status"] == "included"
        unknown = await client.get("/v1/transactions/" + "00" * 32)
        assert unknown.status == 200
        assert unknown.body == {"hash": "00" * 32, "status": "unknown", "height": None, "block": None,
                                "index": None, "tx": None}

    _run(scenario)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: transfer(4, 5, 10, MIN_FEE - 1, 0), "fee-too-low"),
        (lambda: transfer(4, 5, 10, MIN_FEE, 0, chain_id="other-chain"), "bad-chain-id"),
        (lambda: transfer(0, 5, 10, MIN_FEE, 0), "nonce-too-low"),
        (lambda: transfer(4, 5, BALANCE, MIN_FEE, 0), "insufficient-funds"),
        (lambda: transfer(4, 5, 10, MIN_FEE, 500), "nonce-gap-too-large"),
    ],
)
def test_rejections_are_422_with_the_reject_code(make: Any, code: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.post("/v1/transactions", json_body=_submit_body(make()))
        assert (reply.status, reply.error_code) == (422, code)

    _run(scenario)


def test_bad_signature_and_duplicate_are_422() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        tx = transfer(4, 5, 10, MIN_FEE, 0)
        forged = bytearray(tx.encoded)
        forged[-1] ^= 1
        reply = await client.post("/v1/transactions", json_body={"tx": forged.hex()})
        assert (reply.status, reply.error_code) == (422, "bad-signature")
        assert (await client.post("/v1/transactions", json_body=_submit_body(tx))).status == 202
        reply = await client.post("/v1/transactions", json_body=_submit_body(tx))
        assert (reply.status, reply.error_code) == (422, "already-known")

    _run(scenario)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b'{"tx": "abcd"}', 400, "malformed"),
        (json.dumps({"tx": "00" * 600}).encode(), 400, "oversize"),
        (b'{"tx": "zz"}', 400, "bad-hex"),
        (b'{"tx": "abc"}', 400, "bad-hex"),
        (b'{"tx": " ab"}', 400, "bad-hex"),
        (b'{"tx": 12}', 400, "bad-request"),
        (b'{"hex": "ab"}', 400, "bad-request"),
        (b'["ab"]', 400, "bad-request"),
        (b'"ab"', 400, "bad-request"),
        (b"{", 400, "bad-json"),
        (b"", 400, "bad-json"),
        (b'{"tx": NaN}', 400, "bad-json"),
        (b'{"tx": "\xff\xfe"}', 400, "bad-json"),
        (b"[" * 200_000, 400, "bad-json"),
        (b"1" * 5000, 400, "bad-json"),  # above Python's int-parsing digit limit
    ],
    ids=["short", "oversize", "not-hex", "odd", "space", "int", "missing", "array", "string", "brace", "empty",
         "nan", "invalid-utf8", "deep", "huge-int"],
)
def test_submit_body_errors(data: bytes, status: int, code: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.post("/v1/transactions", data=data, headers={"Content-Type": "application/json"})
        assert (reply.status, reply.error_code) == (status, code), reply

    _run(scenario)


def test_body_too_large_by_content_length_and_by_actual_size() -> None:
    config = RpcConfig(admin_token=ADMIN_TOKEN, max_body_bytes=1000)

    async def chunks() -> Any:  # no Content-Length: aiohttp sends it chunked
        for _ in range(10):
            yield b" " * 200

    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.post("/v1/transactions", data=b" " * 1001)
        assert (reply.status, reply.error_code) == (413, "body-too-large")
        assert (await client.post("/v1/transactions", data=b" " * 1000)).error_code == "bad-json"
        reply = await client.post("/v1/transactions", data=chunks())
        assert (reply.status, reply.error_code) == (413, "body-too-large")
        reply = await client.post("/v1/admin/faults", data=b"{}" + b" " * 2000, headers=AUTH)
        assert (reply.status, reply.error_code) == (413, "body-too-large")

    _run(scenario, config=config)


def test_declared_content_length_is_refused_before_the_body_is_sent() -> None:
    server = ServerThread(FakeNode())
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server.port, timeout=5)
        connection.putrequest("POST", "/v1/transactions")
        connection.putheader("Content-Length", str(10 * 1024**3))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"]["code"] == "body-too-large"
        connection.close()
    finally:
        server.stop()


# --- accounts, mempool, peers ------------------------------------------------------------------------------


def test_accounts() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        submitted = await client.post("/v1/transactions", json_body=_submit_body(transfer(0, 5, 1, MIN_FEE, 2)))
        assert submitted.status == 202
        latest = (await client.get(f"/v1/accounts/{ALICE}")).body
        assert latest == {"address": ALICE, "at": "latest", "balance": BALANCE - 150 - 2 * MIN_FEE, "nonce": 2,
                          "height": 3, "pending_nonce": 3}
        assert (await client.get(f"/v1/accounts/{ALICE.upper().replace('CL', 'cl', 1)}?at=latest")).body == latest
        final = (await client.get(f"/v1/accounts/{ALICE}?at=final")).body
        assert final == {"address": ALICE, "at": "final", "balance": BALANCE - 100 - MIN_FEE, "nonce": 1,
                         "height": 1}
        fresh = (await client.get(f"/v1/accounts/{NOBODY}")).body
        assert (fresh["balance"], fresh["nonce"], fresh["pending_nonce"]) == (0, 0, 0)

    _run(scenario)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"/v1/accounts/{ALICE}?at=linearizable", "unsupported-read-level"),
        (f"/v1/accounts/{ALICE}?at=", "unsupported-read-level"),
        (f"/v1/accounts/{ALICE[:-1]}{'0' if ALICE[-1] != '0' else '1'}", "bad-address"),
        (f"/v1/accounts/{ALICE}00", "bad-address"),
        ("/v1/accounts/alice", "bad-address"),
        ("/v1/accounts/cl" + "zz" * 24, "bad-address"),
    ],
)
def test_account_errors(path: str, code: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.get(path)
        assert (reply.status, reply.error_code) == (400, code)

    _run(scenario)


def test_mempool_limit_and_peers() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        for nonce in range(3):
            await client.post("/v1/transactions", json_body=_submit_body(transfer(4, 5, 1, MIN_FEE + nonce, nonce)))
        pool = (await client.get("/v1/mempool?limit=2")).body
        assert pool["size"] == 3 and len(pool["txs"]) == 2
        assert (await client.get("/v1/peers")).body == {"peers": [], "configured": []}
        node.connected_peers.append("ws://10.0.0.2:30301/p2p")
        assert (await client.get("/v1/peers")).body["peers"][0]["url"] == "ws://10.0.0.2:30301/p2p"

    _run(scenario)


# --- admin ---------------------------------------------------------------------------------------------------


def test_admin_routes_with_the_token() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.post("/v1/admin/faults", json_body={"delay_ms": 50, "drop_to": ["n1"]}, headers=AUTH)
        assert reply.status == 200 and reply.body == {"delay_ms": 50, "drop_to": ["n1"]}
        assert node.faults == {"delay_ms": 50, "drop_to": ["n1"]}
        reply = await client.post("/v1/admin/mining", json_body={"enabled": False}, headers=AUTH)
        assert reply.body == {"mining_enabled": False, "mining": False, "reason": "admin"}
        assert node.mining_enabled is False
        reply = await client.post("/v1/admin/peers", json_body={"url": "ws://127.0.0.1:30301/p2p"}, headers=AUTH)
        assert reply.status == 202 and node.connected_peers == ["ws://127.0.0.1:30301/p2p"]
        height = len(node.blocks) - 1
        reply = await client.post("/v1/admin/mine", json_body={"blocks": 2}, headers=AUTH)
        assert reply.status == 200 and reply.body == {"blocks": [node.blocks[height + 1].hash.hex(),
                                                                 node.blocks[height + 2].hash.hex()]}
        to = crypto.address_to_text(key(3).address)
        reply = await client.post("/v1/admin/mine", json_body={"blocks": 1, "address": to}, headers=AUTH)
        assert reply.status == 200 and node.mined_to == [None, key(3).address]
        reply = await client.post("/v1/admin/peers/remove", json_body={"peer": "ws://127.0.0.1:30301/p2p"},
                                  headers=AUTH)
        assert reply.status == 200 and reply.body == {"peer": "ws://127.0.0.1:30301/p2p", "disconnected": []}
        assert node.connected_peers == []
        reply = await client.post("/v1/admin/peers/remove", json_body={"peer": "ws://127.0.0.1:30301/p2p"},
                                  headers=AUTH)
        assert (reply.status, reply.error_code) == (404, "unknown-peer")

    _run(scenario)


def test_admin_mine_on_an_engine_without_it_is_a_typed_400() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        node.mines_on_demand = False
        reply = await client.post("/v1/admin/mine", json_body={"blocks": 1}, headers=AUTH)
        assert (reply.status, reply.error_code) == (400, "mining-unsupported")

    _run(scenario)


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/v1/admin/faults", {"delay_ms": "soon"}, "bad-fault-spec"),
        ("/v1/admin/faults", {"meteor": 1}, "bad-fault-spec"),
        ("/v1/admin/faults", [1], "bad-request"),
        ("/v1/admin/mining", {"enabled": 1}, "bad-request"),
        ("/v1/admin/mining", {"enabled": "true"}, "bad-request"),
        ("/v1/admin/mining", {}, "bad-request"),
        ("/v1/admin/peers", {"url": "http://127.0.0.1:1"}, "bad-peer-url"),
        ("/v1/admin/peers", {"url": "ws://127.0.0.1"}, "bad-peer-url"),
        ("/v1/admin/peers", {"url": "ws://127.0.0.1:port"}, "bad-peer-url"),
        ("/v1/admin/peers", {"url": "ws://refused:1"}, "bad-peer-url"),
        ("/v1/admin/peers", {"url": ["ws://a:1"]}, "bad-request"),
        ("/v1/admin/mine", {}, "bad-request"),
        ("/v1/admin/mine", {"blocks": 0}, "bad-request"),
        ("/v1/admin/mine", {"blocks": 1001}, "bad-request"),
        ("/v1/admin/mine", {"blocks": "2"}, "bad-request"),
        ("/v1/admin/mine", {"blocks": True}, "bad-request"),
        ("/v1/admin/mine", {"blocks": 1, "address": "cl00"}, "bad-address"),
        ("/v1/admin/mine", {"blocks": 1, "address": 5}, "bad-request"),
        ("/v1/admin/mine", {"blocks": 1, "to": "x"}, "bad-request"),
        ("/v1/admin/peers/remove", {"peer": ""}, "bad-request"),
        ("/v1/admin/peers/remove", {"peer": 1}, "bad-request"),
    ],
)
def test_admin_input_errors(path: str, body: Any, code: str) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.post(path, json_body=body, headers=AUTH)
        assert (reply.status, reply.error_code) == (400, code), reply

    _run(scenario)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": "Bearer \u00e9t\u00e9".encode().decode("latin-1")},
    ],
    ids=["none", "wrong", "longer", "basic", "no-scheme", "non-ascii"],
)
def test_admin_needs_the_right_token(headers: dict[str, str]) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        for path, body in [("/v1/admin/faults", {}), ("/v1/admin/mining", {"enabled": False}),
                           ("/v1/admin/peers", {"url": "ws://a:1"}), ("/v1/admin/mine", {"blocks": 1})]:
            reply = await client.post(path, json_body=body, headers=headers)
            assert (reply.status, reply.error_code) == (401, "unauthorized")
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert node.mining_enabled and not node.connected_peers and not node.faults

    _run(scenario)


@pytest.mark.parametrize("token", [None, "", "   "])
def test_admin_routes_are_off_without_a_token(token: str | None) -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        for headers in [{}, AUTH, {"Authorization": "Bearer "}]:
            reply = await client.post("/v1/admin/mining", json_body={"enabled": False}, headers=headers)
            assert (reply.status, reply.error_code) == (403, "admin-disabled")
        assert node.mining_enabled

    _run(scenario, config=RpcConfig(admin_token=token))


# --- bugs, CORS, metrics ---------------------------------------------------------------------------------------


def test_a_node_bug_is_a_logged_500_internal(caplog: pytest.LogCaptureFixture) -> None:
    node = FakeNode()
    node.fail_with = RuntimeError("boom")

    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        reply = await client.get("/v1/status", allow_500=True)
        assert (reply.status, reply.error_code) == (500, "internal")
        assert "boom" not in json.dumps(reply.body)  # internals stay in the log

    with caplog.at_level(logging.ERROR, logger="chainlab.rpc"):
        _run(scenario, api=node)
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    assert NodeMetrics.of(node.metrics).rpc_internal_errors._value.get() == 1


def test_cors() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        assert (await client.get("/v1/status")).headers["Access-Control-Allow-Origin"] == "*"
        assert (await client.get("/v1/nothing")).headers["Access-Control-Allow-Origin"] == "*"
        preflight = await client.request("OPTIONS", "/v1/transactions")
        assert preflight.status == 204 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
        admin = await client.post("/v1/admin/mining", json_body={"enabled": True}, headers=AUTH)
        assert admin.status == 200 and "Access-Control-Allow-Origin" not in admin.headers
        assert (await client.request("OPTIONS", "/v1/admin/mining")).error_code == "forbidden"

    _run(scenario, config=RpcConfig(admin_token=ADMIN_TOKEN, cors=True))


def test_no_cors_by_default() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        assert "Access-Control-Allow-Origin" not in (await client.get("/v1/status")).headers
        assert (await client.request("OPTIONS", "/v1/status")).status == 405

    _run(scenario)


def test_metrics_parse_and_count_requests_by_route_and_status() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        await client.get("/v1/blocks/1")
        await client.get("/v1/blocks/2")
        await client.get("/v1/blocks/77")
        await client.get("/no/such/route")
        await client.post("/v1/transactions", json_body=_submit_body(transfer(4, 5, 1, MIN_FEE, 0)))
        reply = await client.get("/metrics")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(reply.body):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        block_route = (("method", "GET"), ("route", "/v1/blocks/{ref}"))
        assert samples[("chainlab_rpc_requests_total", (*block_route, ("status", "200")))] == 2
        assert samples[("chainlab_rpc_requests_total", (*block_route, ("status", "404")))] == 1
        unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
        assert samples[("chainlab_rpc_requests_total", unmatched)] == 1
        assert samples[("chainlab_tx_submissions_total", (("result", "accepted"),))] == 1
        for name in ["chainlab_chain_height", "chainlab_reorgs_total", "chainlab_safety_alarms_total",
                     "chainlab_mempool_size", "chainlab_peers", "chainlab_mining", "chainlab_reachable_hash_share",
                     "chainlab_sync_height", "chainlab_blocks_connected_total"]:
            assert (name, ()) in samples, name

    _run(scenario)


def test_node_metrics_are_shared_per_registry() -> None:
    node = FakeNode()
    metrics = NodeMetrics.of(node.metrics)
    assert NodeMetrics.of(node.metrics) is metrics
    assert RpcServer(RpcConfig(), node).metrics is metrics  # no duplicate registration
    with pytest.raises(ValueError, match="already"):
        NodeMetrics(node.metrics)
    registry = CollectorRegistry()
    constructed = NodeMetrics(registry)  # as the node runtime does
    assert NodeMetrics.of(registry) is constructed
    metrics.observe_reorg(disconnected=2, connected=3)
    metrics.observe_mempool(5, 700, {"evicted": 2})
    metrics.set_mining(True, reachable_share=0.75)
    assert metrics.reorgs._value.get() == 1 and metrics.blocks_disconnected._value.get() == 2
    assert metrics.blocks_connected._value.get() == 0  # the caller counts each connected block itself
    assert metrics.mempool_dropped.labels(reason="evicted")._value.get() == 2
    assert metrics.reachable_hash_share._value.get() == 0.75


# --- events --------------------------------------------------------------------------------------------------


async def _read_event(stream: aiohttp.StreamReader) -> dict[str, Any]:
    """The next `data:` line's JSON, skipping comments, `retry:` and blank lines."""
    while True:
        line = await stream.readline()
        assert line, "the stream ended"
        if line.startswith(b"data: "):
            event: dict[str, Any] = json.loads(line[6:])
            return event


async def _subscribed(node: FakeNode, count: int = 1) -> None:
    while node.broker.subscriber_count < count:
        await asyncio.sleep(0.005)


def test_event_stream_delivers_published_events() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        async with client.session.get(server.url + "/v1/events") as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            await _subscribed(node)
            await client.post("/v1/transactions", json_body=_submit_body(transfer(4, 5, 1, MIN_FEE, 0)))
            block = node.mine()
            event = await _read_event(response.content)
            assert event == {"type": "block", "height": 4, "hash": block.hash.hex(), "txs": 1,
                             "proposer": crypto.address_to_text(block.header.proposer)}
            assert await _read_event(response.content) == {"type": "final", "height": 3,
                                                           "hash": node.blocks[3].hash.hex()}

    _run(scenario)


def test_slow_reader_is_told_about_dropped_events() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        async with client.session.get(server.url + "/v1/events") as response:
            await _subscribed(node)
            for index in range(20):  # the fake's queues hold 8: the handler is not scheduled in between
                node.broker.publish({"type": "test", "index": index})
            assert await _read_event(response.content) == {"type": "dropped", "count": 12}
            received = [await _read_event(response.content) for _ in range(8)]
            assert [e["index"] for e in received] == list(range(12, 20))

    _run(scenario)


def test_event_stream_keepalive_and_shutdown() -> None:
    config = RpcConfig(events_keepalive_s=0.05)

    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        async with client.session.get(server.url + "/v1/events") as response:
            await _subscribed(node)
            lines = [await response.content.readline() for _ in range(4)]
            assert b": keepalive\n" in lines
            started = asyncio.get_running_loop().time()
            await server.stop()  # ends the stream instead of waiting for the shutdown timeout
            assert asyncio.get_running_loop().time() - started < 2
            assert node.broker.subscriber_count == 0
            rest = await response.content.read()
            assert b"data:" not in rest

    _run(scenario, config=config)


def test_a_client_that_leaves_releases_its_subscription() -> None:
    async def scenario(server: RpcServer, client: Client, node: FakeNode) -> None:
        async with client.session.get(server.url + "/v1/events"):
            await _subscribed(node)
        for _ in range(200):
            node.broker.publish({"type": "test"})  # a write to the closed connection ends the handler
            if node.broker.subscriber_count == 0:
                break
            await asyncio.sleep(0.01)
        assert node.broker.subscriber_count == 0

    _run(scenario)


def test_event_broker_and_subscription_close() -> None:
    async def scenario() -> None:
        broker = EventBroker(max_queued=2)
        subscription = broker.subscribe()
        broker.publish({"type": "a"})
        assert await anext(subscription) == {"type": "a"}
        waiter = asyncio.ensure_future(anext(subscription))
        await asyncio.sleep(0)
        broker.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiter, 1)
        assert broker.subscriber_count == 0
        with pytest.raises(ValueError, match="type"):
            broker.publish({"height": 1})

    asyncio.run(scenario())


def test_api_value_types_validate() -> None:
    with pytest.raises(ValueError):
        TxStatus(status="included")
    with pytest.raises(ValueError):
        TxStatus(status="lost")  # type: ignore[arg-type]
    assert AccountView(balance=1, nonce=0, height=0).pending_nonce is None
    with pytest.raises(ValueError):
        RpcConfig(port=70000)


# --- fuzzing: never a 500, always the JSON error shape --------------------------------------------------------

_ROUTES = [
    "/v1/status", "/v1/blocks/{}", "/v1/blocks", "/v1/tips", "/v1/transactions", "/v1/transactions/{}",
    "/v1/accounts/{}", "/v1/mempool", "/v1/peers", "/v1/events", "/metrics", "/v1/admin/faults",
    "/v1/admin/mining", "/v1/admin/peers", "/v1/admin/{}", "/{}", "/v1/{}/{}",
]
_FUZZ_BODY_LIMIT = 4096
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_segments = st.one_of(
    st.binary(max_size=70).map(lambda b: urllib.parse.quote(b, safe="")),
    st.text(max_size=70).map(lambda t: urllib.parse.quote(t, safe="")),
    st.sampled_from(["0", "1", "3", "18446744073709551616", "ab" * 32, "AB" * 32, ALICE, NOBODY, "..", "%2F",
                     "%00", "%FF%FE", "-1", "%2B1", "1e3", "%201", "1%0A"]),
)
_query = st.lists(
    st.tuples(st.sampled_from(["from", "limit", "txs", "at", "x", "from[]"]) | st.text(max_size=5),
              st.sampled_from(["", "0", "1", "100", "101", "full", "final", "latest", "linearizable", "-1"])
              | st.text(max_size=12)),
    max_size=4,
).map(lambda pairs: urllib.parse.urlencode(pairs))
_bodies = st.one_of(
    st.none(),
    st.binary(max_size=300),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({}, optional={"tx": _json_values | st.text(alphabet="0123456789abcdef", max_size=40),
                                        "enabled": _json_values, "url": _json_values | st.text(max_size=30),
                                        "delay_ms": _json_values}).map(lambda d: json.dumps(d).encode()),
    st.integers(1, 40_000).map(lambda depth: b"[" * depth),
    st.integers(_FUZZ_BODY_LIMIT - 2, _FUZZ_BODY_LIMIT * 3).map(lambda size: b"{" + b" " * size),
    st.sampled_from([b'{"tx": "\xff"}', b"\xef\xbb\xbf{}", b'{"enabled": true}\x00', b'{"a": 1e999}']),
)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerThread]:
    server = ServerThread(FakeNode(), RpcConfig(admin_token=ADMIN_TOKEN, max_body_bytes=_FUZZ_BODY_LIMIT))
    server.start()
    yield server
    server.stop()
    assert server.count_500s() == 0


def _exchange(
    server: ServerThread, method: str, target: str, body: bytes | None, *, chunked: bool = False,
    auth: str | None = None,
) -> tuple[int, bytes]:
    """Send one raw request; assert the property (no 500; a 4xx is the JSON error shape); return status, body."""
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    connection = http.client.HTTPConnection("127.0.0.1", server.server.port, timeout=10)
    try:
        if body is not None and chunked:
            connection.request(method, target, body=iter([body]), headers=headers, encode_chunked=True)
        else:
            connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    assert response.status != 500, (method, target, body, raw)
    if method == "HEAD" or (response.status in (202, 204) and not raw):
        return response.status, raw
    content_type = response.getheader("Content-Type", "")
    if response.status >= 400:
        assert content_type.startswith("application/json"), (response.status, content_type, raw)
        assert_error_shape(response.status, json.loads(raw))
    elif content_type.startswith("application/json"):
        json.loads(raw)
    return response.status, raw


_GET_ROUTES = [r for r in _ROUTES if "admin" not in r and r not in ("/v1/transactions", "/v1/events")]
_POST_ROUTES = ["/v1/transactions", "/v1/admin/faults", "/v1/admin/mining", "/v1/admin/peers"]
_FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(route=st.sampled_from(_GET_ROUTES), segments=st.lists(_segments, min_size=2, max_size=2), query=_query)
def test_fuzz_get_paths_and_queries(fuzz_server: ServerThread, route: str, segments: list[str], query: str) -> None:
    path = route.format(*segments)
    _exchange(fuzz_server, "GET", path + ("?" + query if query else ""), None)


@_FUZZ
@given(route=st.sampled_from(_POST_ROUTES), body=_bodies, chunked=st.booleans(),
       auth=st.sampled_from([AUTH["Authorization"]] * 4 + ["Bearer nope", "Bearer"]))
def test_fuzz_post_bodies(fuzz_server: ServerThread, route: str, body: bytes | None, chunked: bool, auth: str) -> None:
    _exchange(fuzz_server, "POST", route, body, chunked=chunked, auth=auth)


@_FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    route=st.sampled_from(_ROUTES),
    segments=st.lists(_segments, min_size=2, max_size=2),
    query=_query,
    body=_bodies,
    chunked=st.booleans(),
    auth=st.sampled_from([None, AUTH["Authorization"], "Bearer nope", "Bearer"]),
)
def test_fuzz_any_request(
    fuzz_server: ServerThread, method: str, route: str, segments: list[str], query: str, body: bytes | None,
    chunked: bool, auth: str | None,
) -> None:
    path = route.format(*segments)
    if method == "GET" and path == "/v1/events":
        method = "POST"  # the stream never ends by itself; it has its own tests
    _exchange(fuzz_server, method, path + ("?" + query if query else ""), body, chunked=chunked, auth=auth)
