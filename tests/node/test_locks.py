"""Locks through the node: admission of operations, their outcomes, lock events, and the lock and register reads
at every read level (chain/leases.py, node/adapters.py, node/rpc.py; docs/LOCKS.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from chain import crypto
from chain.errors import RejectError
from chain.locks import KvPut, LockAcquire, LockRelease, LockRenew, Operation, fencing_token
from chain.tx import Transaction, make_operation
from node.core import NodeCore
from node.mining import grind_range
from node.runtime import Node
from storage.memory import MemoryStore
from tests.chain.helpers import CHAIN_ID, genesis
from tests.conftest import key
from tests.node import Client
from tests.node.test_core import NOW_MS
from tests.node.test_reads import run, scripted, scripted_engine

__all__ = ["scripted_engine"]  # the autouse fixture that registers the scripted engine for these tests

ALICE, BOB = 0, 1


def op(sender: int, operation: Operation, nonce: int) -> Transaction:
    return make_operation(key(sender), operation, chain_id=CHAIN_ID, fee=2, nonce=nonce)


# -- the node core: admission and events (PoW, blocks on demand) ----------------------------------------------


def _mine(core: NodeCore) -> list[dict[str, object]]:
    job = core.demand_job(key(50).address, now_ms=NOW_MS)
    nonce, _ = grind_range(job.puzzle.prefix, job.puzzle.target, 0, 1 << 24, 1)
    assert nonce is not None
    _, out = core.mined_on_demand(job, nonce, now=1.0, now_ms=NOW_MS)
    return [event for event in out.events if event["type"] in ("lock", "kv")]


def test_core_admits_operations_refuses_doomed_ones_and_reports_lock_events() -> None:
    core = NodeCore.over_store(name="n", genesis=genesis(), store=MemoryStore(), key=key(1), mining=False)
    core.start(now=0.0, now_ms=NOW_MS)
    core.receive_tx(op(ALICE, LockAcquire(name="jobs", lease_blocks=3), 0), source=None, now=0.0, now_ms=NOW_MS)
    (granted,) = _mine(core)  # height 1: held in 1, 2, 3
    token = fencing_token(1, 0)
    assert granted | {"final": None} == {
        "type": "lock", "event": "granted", "name": "jobs", "token": token, "expires_at": 4, "height": 1,
        "index": 0, "tx": op(ALICE, LockAcquire(name="jobs", lease_blocks=3), 0).hash.hex(), "final": None,
        "sender": crypto.address_to_text(key(ALICE).address)}
    with pytest.raises(RejectError) as refused:  # a client learns at once, and keeps its fee
        core.receive_tx(op(BOB, LockAcquire(name="jobs", lease_blocks=3), 0), source=None, now=0.0, now_ms=NOW_MS)
    assert refused.value.code == "lock-held"
    # a peer's relay is not second-guessed: the block records the refusal
    late = op(BOB, LockAcquire(name="jobs", lease_blocks=3), 0)
    core.receive_tx(late, source="peer", now=0.0, now_ms=NOW_MS)
    write = op(ALICE, KvPut(key="k", value=b"v", lock="jobs", token=token), 1)
    core.receive_tx(write, source=None, now=0.0, now_ms=NOW_MS)
    events = _mine(core)  # height 2
    assert sorted((e["type"], e["event"], e.get("result")) for e in events) == [
        ("kv", "written", "ok"), ("lock", "refused", "lock-held")]  # in fee order, which the template picks
    assert core.tree.store.tx_outcome(late.hash) == "lock-held"
    assert _mine(core) == []  # height 3: the lease's last block
    (expired,) = _mine(core)  # height 4: the chain passed the lease
    assert (expired["event"], expired["name"], expired["token"], expired["expires_at"]) == ("expired", "jobs",
                                                                                           token, 4)
    with pytest.raises(RejectError) as stale:
        core.receive_tx(op(ALICE, KvPut(key="k", value=b"late", lock="jobs", token=token), 2), source=None,
                        now=0.0, now_ms=NOW_MS)
    assert stale.value.code == "lock-not-held"


# -- RPC through a real in-process node (primary-backup: final at commit) ---------------------------------------


async def _submit(client: Client, tx: Transaction) -> dict[str, object]:
    reply = await client.post("/v1/transactions?wait=final", json_body={"tx": tx.encoded.hex()})
    assert reply.status == 200, reply
    body: dict[str, object] = reply.body
    return body


def test_rpc_lock_lifecycle_reads_at_every_level_and_events(tmp_path: Path) -> None:
    async def scenario(running: Node, client: Client) -> None:
        scripted(running).read_mode = "now"
        events: list[dict[str, object]] = []

        async def listen() -> None:
            async with client.session.get(client.url + "/v1/events") as response:
                async for line in response.content:
                    if line.startswith(b"data:"):
                        events.append(json.loads(line[5:]))

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.1)
        assert (await client.get("/v1/locks/jobs")).body["lock"] is None
        acquire = op(ALICE, LockAcquire(name="jobs", lease_blocks=1000), 0)
        done = await _submit(client, acquire)
        status = (await client.get(f"/v1/transactions/{acquire.hash.hex()}")).body
        assert status["result"] == "ok" and status["tx"]["op"] == {"kind": "lock-acquire", "name": "jobs",
                                                                  "lease_blocks": 1000}
        token = fencing_token(done["height"], status["index"])  # type: ignore[arg-type]
        for level in ("final", "latest", "linearizable"):
            lock = (await client.get(f"/v1/locks/jobs?at={level}")).body
            assert lock["at"] == level and lock["lock"]["token"] == token and lock["lock"]["held"] is True
            assert lock["lock"]["holder"] == crypto.address_to_text(key(ALICE).address)
        assert "read_proof" in (await client.get("/v1/locks/jobs?at=linearizable")).body
        refused = await client.post("/v1/transactions", json_body={
            "tx": op(BOB, LockAcquire(name="jobs", lease_blocks=5), 0).encoded.hex()})
        assert (refused.status, refused.body["error"]["code"]) == (422, "lock-held")
        await _submit(client, op(ALICE, KvPut(key="cfg", value=b"\x01\x02", lock="jobs", token=token), 1))
        for level in ("final", "latest", "linearizable"):
            kv = (await client.get(f"/v1/kv/cfg?at={level}")).body
            assert (kv["value"], kv["lock"], kv["token"]) == ("0102", "jobs", token)
        assert (await client.get("/v1/kv/nothing")).body["value"] is None
        await _submit(client, op(ALICE, LockRenew(name="jobs", lease_blocks=2000), 2))
        await _submit(client, op(ALICE, LockRelease(name="jobs"), 3))
        regrant = await _submit(client, op(BOB, LockAcquire(name="jobs", lease_blocks=50), 0))
        stale = await client.post("/v1/transactions", json_body={
            "tx": op(ALICE, KvPut(key="cfg", value=b"late", lock="jobs", token=token), 4).encoded.hex()})
        assert (stale.status, stale.body["error"]["code"]) == (422, "stale-fencing-token")
        new_token = (await client.get("/v1/locks/jobs")).body["lock"]["token"]
        assert new_token > token and new_token >> 32 == regrant["height"]
        for path, code in (("/v1/locks/jobs?at=soon", "unsupported-read-level"), ("/v1/kv/" + "x" * 65, "bad-name")):
            reply = await client.get(path)
            assert (reply.status, reply.body["error"]["code"]) == (400, code)
        await asyncio.sleep(0.3)
        listener.cancel()
        lock_events = [(e["event"], e["name"]) for e in events if e["type"] == "lock"]
        assert lock_events[:4] == [("granted", "jobs"), ("renewed", "jobs"), ("released", "jobs"),
                                   ("granted", "jobs")]
        assert [e["event"] for e in events if e["type"] == "kv"] == ["written"]

    run(tmp_path, scenario)
