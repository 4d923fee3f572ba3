"""Test support for node/: an in-memory NodeAPI and two ways to serve it.

`FakeNode` keeps a best chain of real blocks (with real signed transfers), one side branch, a real
`chain.mempool.Mempool` and an `EventBroker`. `serve_async` runs an RpcServer in the calling test's event loop
with an aiohttp ClientSession; `ServerThread` runs one in a background thread with its own loop, for synchronous
clients (RpcClient, the CLI, raw http.client requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from prometheus_client import CollectorRegistry

from chain import crypto
from chain.block import Block
from chain.blocktree import TipInfo
from chain.devtools import block_on
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.mempool import Mempool, PoolEntryView
from chain.state import State
from chain.tx import Transaction
from chain.validation import SignatureChecker
from node.api import (
    AccountTx,
    AccountTxPage,
    AccountView,
    BlockPosition,
    EventBroker,
    EventSubscription,
    ReadLevel,
    ReadProof,
    TxStatus,
    WaitLevel,
)
from node.metrics import NodeMetrics
from node.rpc import RpcConfig, RpcServer
from node.waits import FinalHeightWaits, TxCommitWaits
from tests.chain.helpers import CHAIN_ID, PROPOSER, transfer
from tests.conftest import key

T = TypeVar("T")
ADMIN_TOKEN = "s3cret-admin-token"
MIN_FEE = 2
FUNDED_KEYS = 8
BALANCE = 1_000_000


def fake_genesis() -> Genesis:
    """A PoW genesis funding test keys 0..7, with min_fee 2 (so the CLI's default fee comes from the node)."""
    return Genesis(
        chain_id=CHAIN_ID, consensus="pow", block_reward=50, finality_threshold=2, params={"min_fee": MIN_FEE},
        balances={key(i).address: BALANCE for i in range(FUNDED_KEYS)},
    )


class FakeNode:
    """An in-memory NodeAPI over a short real chain (genesis + 3 blocks, final height 1) and a side block."""

    def __init__(self, *, auto_mine: bool = False, finality_depth: int = 2) -> None:
        self.genesis = fake_genesis()
        self.metrics = CollectorRegistry()
        self.node_metrics = NodeMetrics.of(self.metrics)
        self.pool = Mempool.from_genesis(self.genesis, SignatureChecker())
        self.broker = EventBroker(max_queued=8)
        self.auto_mine = auto_mine
        self.finality_depth = finality_depth
        self.blocks: list[Block] = [self.genesis.block()]
        self.states: list[State] = [self.genesis.initial_state()]
        self.final_height = 0
        self.faults: dict[str, object] = {}
        self.mining_enabled = True
        self.connected_peers: list[str] = []
        self.mines_on_demand = True  # False: answers as an engine without on-demand mining
        self.mined_to: list[bytes | None] = []
        self.fail_with: Exception | None = None  # raised by status(): a node bug
        self.nonces: dict[bytes, int] = {}
        # Linearizable reads: None answers like PoW (unsupported-read-level); an error is raised; a (term, index)
        # grant is served at the final height when that has reached the index (the fake does not wait).
        self.read_grant: tuple[int, int] | RejectError | None = None
        self.refusal: RejectError | None = None  # write_refusal's answer
        self.final_waits = FinalHeightWaits()
        self.tx_waits = TxCommitWaits(self.final_waits)
        self._append([transfer(0, 1, 100, MIN_FEE, 0), transfer(2, 3, 5, MIN_FEE, 0)])
        self._append([transfer(0, 1, 50, MIN_FEE, 1)])
        self._append([])
        self.final_height = 1
        self.side, _ = block_on(self.states[1], self.blocks[1], [], reward=50, proposer=key(99).address,
                                timestamp_ms=self.blocks[1].header.timestamp_ms + 777)

    # -- building --------------------------------------------------------------------------------------------

    def _append(self, txs: list[Transaction]) -> Block:
        tip = self.blocks[-1]
        block, state = block_on(self.states[-1], tip, txs, reward=50, proposer=PROPOSER,
                                timestamp_ms=tip.header.timestamp_ms + 1000)
        self.blocks.append(block)
        self.states.append(state)
        self.pool.on_block_connected(block, state)
        return block

    def mine(self) -> Block:
        """Connect a block of the mempool's template, advance finality and publish the events."""
        txs = self.pool.template(self.states[-1], max_txs=1000, max_bytes=1_000_000)
        block = self._append(txs)
        self.tx_waits.on_connected(block)
        self.broker.publish({"type": "block", "height": block.height, "hash": block.hash.hex(), "txs": len(txs),
                             "proposer": crypto.address_to_text(block.header.proposer)})
        final = max(self.final_height, block.height - self.finality_depth + 1)
        if final > self.final_height:
            self.final_height = final
            self.broker.publish({"type": "final", "height": final, "hash": self.blocks[final].hash.hex()})
        self.final_waits.on_final_height(self.final_height)
        return block

    def _find(self, tx_hash: bytes) -> tuple[int, int, Transaction] | None:
        for block in self.blocks:
            for index, tx in enumerate(block.txs):
                if tx.hash == tx_hash:
                    return block.height, index, tx
        return None

    # -- NodeAPI ---------------------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        if self.fail_with is not None:
            raise self.fail_with
        tip = self.blocks[-1]
        return {
            "chain_id": self.genesis.chain_id, "genesis": self.genesis.hash.hex(), "consensus": "pow",
            "height": tip.height, "head": tip.hash.hex(), "final_height": self.final_height,
            "final_hash": self.blocks[self.final_height].hash.hex(), "peers": len(self.connected_peers),
            "mempool_size": len(self.pool), "syncing": False, "min_fee": MIN_FEE,
            "engine": {"mining": self.mining_enabled, "reason": "admin", "reachable_share": 1.0},
        }

    def block(self, ref: int | bytes) -> Block | None:
        if isinstance(ref, int):
            return self.blocks[ref] if ref < len(self.blocks) else None
        return next((b for b in [*self.blocks, self.side] if b.hash == ref), None)

    def block_height_info(self, block_hash: bytes) -> BlockPosition:
        block = self.block(block_hash)
        if block is None:
            raise KeyError(block_hash.hex())
        on_best = self.blocks[block.height].hash == block_hash if block.height < len(self.blocks) else False
        return BlockPosition(height=block.height, on_best_chain=on_best,
                             final=on_best and block.height <= self.final_height)

    def op_outcome(self, tx_hash: bytes) -> str | None:
        return None  # the fake chain carries transfers only

    def blocks_range(self, from_height: int, limit: int) -> list[Block]:
        return self.blocks[from_height:from_height + limit]

    def describe_seal(self, header: object) -> dict[str, object]:
        return {"engine": "fake"}

    def reorgs(self) -> list[dict[str, object]]:
        return [{"time_ms": 1_000, "depth": 1, "old_tip": "ab" * 32, "old_height": 3, "new_tip": "cd" * 32,
                 "new_height": 4, "fork_height": 2}]

    def tips(self) -> list[TipInfo]:
        tip = self.blocks[-1]
        return [
            TipInfo(hash=tip.hash, height=tip.height, cumulative_work=2**80 + tip.height, status="active",
                    branch_length=0),
            TipInfo(hash=self.side.hash, height=self.side.height, cumulative_work=2, status="valid-fork",
                    branch_length=1),
        ]

    async def submit_tx(self, tx: Transaction) -> None:
        self.pool.add(tx, self.states[-1], now=time.monotonic())
        if self.auto_mine:
            self.mine()

    def tx_status(self, tx_hash: bytes) -> TxStatus:
        pooled = self.pool.get(tx_hash)
        if pooled is not None:
            return TxStatus(status="pending", tx=pooled)
        found = self._find(tx_hash)
        if found is None:
            return TxStatus(status="unknown")
        height, index, tx = found
        return TxStatus(status="final" if height <= self.final_height else "included", height=height,
                        block_hash=self.blocks[height].hash, index=index, tx=tx)

    def account(self, address: bytes, at: ReadLevel) -> AccountView:
        height = len(self.blocks) - 1 if at == "latest" else self.final_height
        state = self.states[height]
        account = state.get(address)
        balance, nonce = (account.balance, account.nonce) if account is not None else (0, 0)
        pending = self.pool.pending_nonce(address, state) if at == "latest" else None
        return AccountView(balance=balance, nonce=nonce, height=height, pending_nonce=pending)

    def account_txs(self, address: bytes, before: tuple[int, int] | None, limit: int) -> AccountTxPage:
        # A scan of the fake's chain: the reference the node's index is held to (tests/node/test_account_txs.py).
        tip = len(self.blocks) - 1
        history = [
            AccountTx(tx=tx, height=block.height, block_hash=block.hash, position=position,
                      final=block.height <= self.final_height, confirmations=tip - block.height + 1)
            for block in reversed(self.blocks) for position, tx in reversed(list(enumerate(block.txs)))
            if address in (tx.sender_address, tx.recipient) and (before is None or (block.height, position) < before)
        ]
        page = tuple(history[:limit])
        older = (page[-1].height, page[-1].position) if len(history) > limit else None
        pending = tuple(self.pool.txs_from(address)) if before is None else ()
        return AccountTxPage(txs=page, older=older, pending=pending)

    async def account_linearizable(self, address: bytes) -> tuple[AccountView, ReadProof]:
        grant = self.read_grant
        if grant is None:
            raise RejectError("unsupported-read-level", "the pow engine has no linearizable reads")
        if isinstance(grant, RejectError):
            raise grant
        term, index = grant
        view = self.account(address, "final")
        return view, ReadProof(term=term, read_index=index, applied_height=view.height,
                               block_hash=self.blocks[view.height].hash)

    def write_refusal(self) -> RejectError | None:
        return self.refusal

    async def wait_for_tx(self, tx_hash: bytes, level: WaitLevel, timeout_s: float) -> TxStatus | None:
        def locate(wanted: bytes) -> int | None:
            found = self._find(wanted)
            return found[0] if found is not None else None

        reached = await self.tx_waits.wait(tx_hash, level, locate, lambda: self.final_height, timeout_s=timeout_s)
        return self.tx_status(tx_hash) if reached else None

    def mempool(self) -> list[PoolEntryView]:
        return self.pool.snapshot()

    def peers(self) -> list[dict[str, object]]:
        return [{"url": url, "direction": "outbound"} for url in self.connected_peers]

    def configured_peers(self) -> list[dict[str, object]]:
        return [{"url": url, "state": "connecting"} for url in self.connected_peers]

    def subscribe(self) -> EventSubscription:
        return self.broker.subscribe()

    def trace_path(self) -> Path | None:
        return None

    def set_faults(self, spec: dict[str, object]) -> dict[str, object]:
        allowed = {"drop_to": list, "delay_ms": int, "loss": float}
        for name, value in spec.items():
            if name not in allowed or type(value) is not allowed[name]:
                raise ValueError(f"unknown fault or wrong type: {name}")
        self.faults = dict(spec)
        return dict(self.faults)  # the real node answers the faults in force, flat

    def set_mining(self, enabled: bool) -> dict[str, object]:
        self.mining_enabled = enabled
        return {"mining_enabled": enabled, "mining": enabled, "reason": "admin"}

    async def mine_blocks(self, count: int, address: bytes | None) -> list[bytes]:
        if not self.mines_on_demand:
            raise RejectError("mining-unsupported", "engine raft does not mine blocks on demand")
        self.mined_to.append(address)
        return [self.mine().hash for _ in range(count)]

    def remove_peer(self, target: str) -> list[str]:
        if target not in self.connected_peers:
            raise ValueError(f"no peer address or connected peer {target!r}")
        self.connected_peers.remove(target)
        return []

    def connect_peer(self, url: str) -> None:
        if "refused" in url:
            raise ValueError("the node refuses this peer")
        self.connected_peers.append(url)


# ------------------------------------------------------------------------------------------ in the test's loop


@dataclass
class Reply:
    """One HTTP answer: status, headers and the body (decoded JSON when it is JSON, else text)."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def error_code(self) -> str:
        """The JSON error code (asserts the error shape)."""
        assert_error_shape(self.status, self.body)
        code: str = self.body["error"]["code"]
        return code


def assert_error_shape(status: int, body: Any) -> None:
    """A 4xx/5xx body is exactly {"error": {"code": str, "message": str}}."""
    assert isinstance(body, dict) and set(body) == {"error"}, (status, body)
    error = body["error"]
    extra = {"hash"} if error.get("code") == "wait-timeout" else set()  # documented per code in docs/RPC.md
    assert isinstance(error, dict) and set(error) == {"code", "message"} | extra, (status, body)
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str), body


class Client:
    """A thin aiohttp client for tests that fails on any 500 unless told one is expected."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def request(
        self, method: str, path: str, *, allow_500: bool = False, json_body: Any = None, data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request and decode the answer."""
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        async with self.session.request(method, self.url + path, **kwargs) as response:
            raw = await response.read()
            text = raw.decode("utf-8")
            is_json = response.content_type == "application/json" and method != "HEAD"
            reply = Reply(response.status, dict(response.headers), json.loads(text) if is_json else text)
        assert allow_500 or reply.status != 500, reply
        if reply.status >= 400 and method != "HEAD":
            assert is_json, reply
            assert_error_shape(reply.status, reply.body)
        return reply

    async def get(self, path: str, **kwargs: Any) -> Reply:
        """GET `path`."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Reply:
        """POST `path`."""
        return await self.request("POST", path, **kwargs)


@contextlib.asynccontextmanager
async def serve_async(api: FakeNode, config: RpcConfig | None = None) -> AsyncIterator[tuple[RpcServer, Client]]:
    """An RpcServer for `api` on 127.0.0.1 (free port) and a client session, in the running loop."""
    server = RpcServer(config or RpcConfig(admin_token=ADMIN_TOKEN), api)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield server, Client(session, server.url)
    finally:
        await server.stop()


def run_scenario(
    scenario: Callable[[RpcServer, Client, FakeNode], Awaitable[None]], *, api: FakeNode | None = None,
    config: RpcConfig | None = None, timeout_s: float = 10.0,
) -> None:
    """Run an async scenario against a served FakeNode in a fresh event loop, bounded by `timeout_s`."""
    node = api if api is not None else FakeNode()

    async def main() -> None:
        async with serve_async(node, config) as (server, client):
            await asyncio.wait_for(scenario(server, client, node), timeout_s)

    asyncio.run(main())


# ------------------------------------------------------------------------------------- in a background thread


class ServerThread:
    """An RpcServer for `api` running in a background thread with its own event loop."""

    def __init__(self, api: FakeNode, config: RpcConfig | None = None) -> None:
        self.api = api
        self.config = config or RpcConfig(admin_token=ADMIN_TOKEN)
        self.loop = asyncio.new_event_loop()
        self.server = RpcServer(self.config, api)
        self._thread = threading.Thread(target=self._run, name="rpc-test-server", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> str:
        """Start serving; returns the base URL."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the RPC test server did not start")
        if self._error is not None:
            raise self._error
        return self.server.url

    @property
    def url(self) -> str:
        """Base URL."""
        return self.server.url

    def call(self, function: Callable[[], T]) -> T:
        """Run `function` on the server's loop thread (the fake is not thread-safe) and return its result."""

        async def invoke() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop).result(10)

    def stop(self) -> None:
        """Stop the server and the loop, and join the thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()

    def count_500s(self) -> float:
        """How many 500 answers the server gave (read from its metrics)."""
        total = 0.0
        for family in self.api.metrics.collect():
            for sample in family.samples:
                if sample.name == "chainlab_rpc_requests_total" and sample.labels.get("status") == "500":
                    total += sample.value
        return total
