"""Linearizable reads, write refusal and `wait=` through a real in-process node (node/runtime.py, node/waits.py,
node/adapters.py, node/rpc.py), driven by a scripted engine registered for the test: primary-backup's blocks
(one validator, final at once) with read answers and write refusals the test sets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

import node.runtime
from chain import crypto
from chain.errors import RejectError
from chain.genesis import Genesis
from consensus import registry
from consensus.engine import EngineContext, ReadResult
from consensus.primary_backup.engine import PrimaryBackupEngine
from consensus.primary_backup.spec import PRIMARY_BACKUP
from node.config import MiningSection, NodeConfig
from node.datadir import init_datadir
from node.identity import load_or_create_key
from node.runtime import Node
from tests.chain.helpers import CHAIN_ID, transfer
from tests.conftest import key
from tests.node import BALANCE, Client, fake_genesis

ALICE = crypto.address_to_text(key(0).address)
TERM = 7


class ScriptedReadsEngine(PrimaryBackupEngine):
    """Primary-backup whose read answers and write refusals the test decides.

    `read_mode`: `tick` answers on the next tick with the final height then plus `ahead` (so the node must wait
    for more blocks), `now` answers at once with the final height, `error` answers `read_error` at once, `silent`
    never answers. `paused` stops block production."""

    name = "test-reads"

    def __init__(self, context: EngineContext) -> None:
        super().__init__(context)
        self.read_mode = "tick"
        self.ahead = 3
        self.read_error: RejectError | None = None
        self.refusal: RejectError | None = None
        self.paused = False
        self.deferred: list[int] = []
        self.answered: list[ReadResult] = []  # what the engine answered, and when (final height then)
        self.final_when_answered: list[int] = []

    def _answer(self, request_id: int, index: int) -> None:
        assert self._chain is not None
        result = ReadResult(request_id=request_id, index=index, term=TERM)
        self.answered.append(result)
        self.final_when_answered.append(self._chain.final_height)
        self._ready.reads.append(result)

    def read_index(self, request_id: int, *, now: float) -> None:
        assert self._chain is not None
        if self.read_mode == "now":
            self._answer(request_id, self._chain.final_height)
        elif self.read_mode == "error":
            assert self.read_error is not None
            self._ready.reads.append(ReadResult(request_id=request_id, error=self.read_error))
        elif self.read_mode == "tick":
            self.deferred.append(request_id)

    def tick(self, *, now: float, now_ms: int) -> None:
        if not self.paused:
            super().tick(now=now, now_ms=now_ms)
        if self.deferred and self._chain is not None:
            for request_id in self.deferred:
                self._answer(request_id, self._chain.final_height + self.ahead)
            self.deferred.clear()

    def write_refusal(self, *, now: float) -> RejectError | None:
        return self.refusal


SPEC = dataclasses.replace(PRIMARY_BACKUP, name="test-reads", build=ScriptedReadsEngine)


@pytest.fixture(autouse=True)
def scripted_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine is registered for this test only."""
    monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))
    registry.register(SPEC)


def _scripted_genesis(primary: bytes) -> Genesis:
    return Genesis(chain_id=CHAIN_ID, consensus="test-reads", block_reward=50,
                   params={"block_interval_s": 0.1, "primary": crypto.address_to_text(primary)},
                   validators={primary: 1}, balances={key(i).address: BALANCE for i in range(4)})


@contextlib.asynccontextmanager
async def running_node(datadir: Path, *, pow_network: bool = False) -> AsyncIterator[tuple[Node, Client]]:
    """A started node in this loop (the scripted engine, or a PoW network without mining) and an HTTP client."""
    datadir.mkdir()
    node_key = load_or_create_key(datadir)
    init_datadir(datadir, fake_genesis() if pow_network else _scripted_genesis(node_key.address))
    running = Node(datadir, NodeConfig(mining=MiningSection(enabled=not pow_network)))
    await running.start()
    try:
        assert running.rpc is not None
        async with aiohttp.ClientSession() as session:
            yield running, Client(session, running.rpc.url)
    finally:
        await running.stop()


def run(tmp_path: Path, scenario: Callable[[Node, Client], Awaitable[None]], *, pow_network: bool = False) -> None:
    """Run `scenario` against a fresh node, bounded in time."""

    async def main() -> None:
        async with running_node(tmp_path / "node", pow_network=pow_network) as (running, client):
            await asyncio.wait_for(scenario(running, client), 30)

    asyncio.run(main())


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait (polling the test's own view only) until `condition()`."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


def scripted(running: Node) -> ScriptedReadsEngine:
    """The node's engine, as the test scripts it."""
    assert isinstance(running.engine, ScriptedReadsEngine)
    return running.engine


# --- linearizable reads ------------------------------------------------------------------------------------


def test_a_read_answered_on_a_later_tick_is_served_once_the_final_height_reaches_its_index(tmp_path: Path) -> None:
    async def scenario(running: Node, client: Client) -> None:
        engine = scripted(running)
        await until(lambda: running.tree.final_height >= 2, "a few final blocks")
        reply = await client.get(f"/v1/accounts/{ALICE}?at=linearizable")
        assert reply.status == 200, reply
        (answer,) = engine.answered
        assert engine.final_when_answered[0] < answer.index  # the node had to wait for finality
        proof = reply.body["read_proof"]
        assert (proof["term"], proof["read_index"]) == (TERM, answer.index)
        assert proof["applied_height"] >= answer.index and reply.body["height"] == proof["applied_height"]
        assert proof["block_hash"] == running.tree.hash_at(proof["applied_height"]).hex()
        assert (reply.body["at"], reply.body["balance"], reply.body["nonce"]) == ("linearizable", BALANCE, 0)
        assert running.reads.pending == 0 and len(running.final_waits) == 0

    run(tmp_path, scenario)


def test_a_read_answered_at_once_reflects_a_later_write(tmp_path: Path) -> None:
    async def scenario(running: Node, client: Client) -> None:
        scripted(running).read_mode = "now"
        tx = transfer(0, 1, 25, 1, 0)
        submitted = await client.post("/v1/transactions?wait=final", json_body={"tx": tx.encoded.hex()})
        assert (submitted.status, submitted.body["status"]) == (200, "final")
        reply = await client.get(f"/v1/accounts/{ALICE}?at=linearizable")
        assert reply.status == 200
        assert (reply.body["balance"], reply.body["nonce"]) == (BALANCE - 26, 1)
        assert reply.body["read_proof"]["applied_height"] >= submitted.body["height"]

    run(tmp_path, scenario)


@pytest.mark.parametrize("code", ["no-leader", "no-quorum"])
def test_engine_refusals_of_a_read_are_503_with_their_code(tmp_path: Path, code: str) -> None:
    async def scenario(running: Node, client: Client) -> None:
        engine = scripted(running)
        engine.read_mode, engine.read_error = "error", RejectError(code, "cannot serve it now")
        reply = await client.get(f"/v1/accounts/{ALICE}?at=linearizable")
        assert (reply.status, reply.error_code) == (503, code)
        assert running.reads.pending == 0

    run(tmp_path, scenario)


def test_an_unanswered_read_times_out_with_a_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.runtime, "READ_TIMEOUT_S", 0.5)

    async def scenario(running: Node, client: Client) -> None:
        scripted(running).read_mode = "silent"
        reply = await client.get(f"/v1/accounts/{ALICE}?at=linearizable")
        assert (reply.status, reply.error_code) == (503, "read-timeout")
        assert running.reads.pending == 0

    run(tmp_path, scenario)


def test_a_read_waiting_for_finality_times_out_when_blocks_stop(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.runtime, "READ_TIMEOUT_S", 0.5)

    async def scenario(running: Node, client: Client) -> None:
        engine = scripted(running)
        engine.paused = True
        reply = await client.get(f"/v1/accounts/{ALICE}?at=linearizable")
        assert (reply.status, reply.error_code) == (503, "read-timeout")
        assert "final height" in reply.body["error"]["message"]
        assert len(engine.answered) == 1 and len(running.final_waits) == 0

    run(tmp_path, scenario)


def test_a_pow_node_refuses_linearizable_reads_with_a_400(tmp_path: Path) -> None:
    async def scenario(running: Node, client: Client) -> None:
        reply = await client.get(f"/v1/accounts/{ALICE}?at=linearizable")
        assert (reply.status, reply.error_code) == (400, "unsupported-read-level")
        assert (await client.get(f"/v1/accounts/{ALICE}?at=final")).status == 200

    run(tmp_path, scenario, pow_network=True)


def test_reads_pending_at_stop_are_answered_503_stopping(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_node(tmp_path / "node") as (running, client):
            scripted(running).read_mode = "silent"
            request = asyncio.create_task(client.get(f"/v1/accounts/{ALICE}?at=linearizable"))
            await until(lambda: running.reads.pending == 1, "the read to reach the engine")
            await asyncio.wait_for(running.stop(), 10)
            reply = await asyncio.wait_for(request, 5)
            assert (reply.status, reply.error_code) == (503, "stopping")

    asyncio.run(main())


# --- writes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["no-leader", "no-quorum"])
def test_a_refused_write_is_a_503_and_never_reaches_the_mempool(tmp_path: Path, code: str) -> None:
    async def scenario(running: Node, client: Client) -> None:
        engine = scripted(running)
        engine.refusal = RejectError(code, "writes need a leader with a quorum")
        tx = transfer(0, 1, 25, 1, 0)
        reply = await client.post("/v1/transactions", json_body={"tx": tx.encoded.hex()})
        assert (reply.status, reply.error_code) == (503, code)
        assert tx.hash not in running.mempool
        engine.refusal = None
        assert (await client.post("/v1/transactions", json_body={"tx": tx.encoded.hex()})).status == 202

    run(tmp_path, scenario)


def test_wait_final_answers_after_finality_and_504s_when_blocks_stop(tmp_path: Path) -> None:
    async def scenario(running: Node, client: Client) -> None:
        engine = scripted(running)
        first = transfer(0, 1, 25, 1, 0)
        reply = await client.post("/v1/transactions?wait=final&timeout_s=10", json_body={"tx": first.encoded.hex()})
        assert reply.status == 200
        height = reply.body["height"]
        assert height <= running.tree.final_height
        assert reply.body == {"hash": first.hash.hex(), "status": "final", "height": height,
                              "block_hash": running.tree.hash_at(height).hex(), "index": 0}
        engine.paused = True
        await asyncio.sleep(0.3)  # a proposal in flight lands
        second = transfer(0, 1, 25, 1, 1)
        reply = await client.post("/v1/transactions?wait=included&timeout_s=1",
                                  json_body={"tx": second.encoded.hex()})
        assert (reply.status, reply.error_code, reply.body["error"]["hash"]) == (504, "wait-timeout",
                                                                                 second.hash.hex())
        assert second.hash in running.mempool and running.tx_waits.active == 0
        again = await client.post("/v1/transactions?wait=final", json_body={"tx": second.encoded.hex()})
        assert (again.status, again.error_code) == (422, "already-known")  # the 504 left it submitted
        engine.paused = False  # after the resubmission: a block could otherwise take it first (nonce-too-low)
        await until(lambda: second.hash not in running.mempool, "the transaction to be included")

    run(tmp_path, scenario)
