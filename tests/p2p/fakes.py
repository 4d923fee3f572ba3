"""Test doubles for the P2P tests: a ChainAccess over a real BlockTree, a raw protocol peer, and a network of
services on 127.0.0.1 with OS-assigned ports."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp

from chain import crypto
from chain.block import Block
from chain.blocktree import BlockTree
from chain.chainstore import ChainStore
from chain.devtools import dev_genesis, dev_keys
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.tx import Transaction, make_transfer
from consensus.pow.devtools import generate_pow_chain
from consensus.pow.seal import check_pow
from p2p.config import BlockVerdict, P2PConfig
from p2p.protocol.codec import encode_frame
from p2p.protocol.messages import Message
from p2p.protocol.session import Event, PeerClosed, PeerSession, Reply
from p2p.service import P2PService
from storage.memory import MemoryStore
from tests.conftest import key

KEYS = dev_keys(4, seed=b"chainlab-p2p-test")
GENESIS = dev_genesis(KEYS, chain_id="p2p-test", params={"block_interval_s": 1.0})
OTHER_GENESIS = dev_genesis(KEYS, chain_id="p2p-test", params={"block_interval_s": 2.0})
MINER = KEYS[0].address

# Short timers so the tests see pings, timeouts and redials within a second or two.
FAST = P2PConfig(ping_interval_s=0.2, peer_timeout_s=2.0, reconnect_min_s=0.05, reconnect_max_s=0.3, target_peers=4)


@functools.cache
def pow_chain(length: int, genesis: Genesis = GENESIS) -> tuple[Block, ...]:
    """`length` valid PoW blocks on `genesis` (the same blocks every call)."""
    return tuple(generate_pow_chain(genesis, KEYS, blocks=length, txs_per_block=0, miner=MINER))


def transfer(nonce: int, sender: int = 1) -> Transaction:
    """A signed transfer on the test chain."""
    return make_transfer(KEYS[sender], chain_id=GENESIS.chain_id, recipient=KEYS[3].address, amount=1, fee=1,
                         nonce=nonce)


class TreeChain:
    """ChainAccess over a real BlockTree (PoW policy, in-memory store) and a dict mempool."""

    def __init__(self, genesis: Genesis = GENESIS, blocks: tuple[Block, ...] = ()) -> None:
        from consensus.pow.policy import PowPolicy

        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.genesis_hash = genesis.hash
        self.tree = BlockTree(ChainStore(MemoryStore()), genesis, PowPolicy(genesis))
        self.mempool: dict[bytes, Transaction] = {}
        self.submitted_blocks: list[tuple[bytes, str]] = []
        self.engine_messages: list[tuple[str, str, bytes]] = []
        self.service: P2PService | None = None  # set by Network.add
        for block in blocks:
            self.tree.add_block(block, now_ms=self.now_ms())

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def best_height(self) -> int:
        return self.tree.height

    def has_block(self, block_hash: bytes) -> bool:
        return self.tree.meta(block_hash) is not None or block_hash in self.tree.orphans

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        block = self.tree.get_block(block_hash) if self.tree.meta(block_hash) is not None else None
        return block.encoded if block is not None else None

    def locator(self) -> list[bytes]:
        return self.tree.locator()

    def blocks_after(self, locator: list[bytes], limit: int) -> list[bytes]:
        start = self.tree.fork_point(locator) + 1
        out = []
        for height in range(start, min(self.tree.height, start + limit - 1) + 1):
            block_hash = self.tree.hash_at(height)
            assert block_hash is not None
            block = self.tree.get_block(block_hash)
            assert block is not None
            out.append(block.encoded)
        return out

    def has_tx(self, tx_hash: bytes) -> bool:
        return tx_hash in self.mempool

    def tx_bytes(self, tx_hash: bytes) -> bytes | None:
        tx = self.mempool.get(tx_hash)
        return tx.encoded if tx is not None else None

    def pending_tx_hashes(self, limit: int) -> list[bytes]:
        return list(self.mempool)[:limit]

    def precheck_block(self, block: Block) -> None:
        check_pow(block.header)
        if block.computed_tx_root() != block.header.tx_root:
            raise RejectError("bad-merkle-root", "body does not match the header")

    async def submit_block(self, block: Block, peer: str) -> BlockVerdict:
        self.submitted_blocks.append((block.hash, peer))
        result = self.tree.add_block(block, now_ms=self.now_ms(), source=peer)
        return BlockVerdict(status=result.status, missing_parent=result.missing_parent)

    async def submit_tx(self, tx: Transaction, peer: str) -> None:
        if not crypto.verify(tx.sender, tx.signature, tx.signing_hash):
            raise RejectError("bad-signature", "transaction signature does not verify")
        if tx.hash in self.mempool:
            raise RejectError("already-known", "in the pool")
        self.mempool[tx.hash] = tx
        if self.service is not None:  # as a node does: what it admits, it announces onward (gossip)
            self.service.announce_tx(tx.hash, exclude=peer)

    def on_engine_message(self, peer: str, kind: str, payload: bytes) -> None:
        self.engine_messages.append((peer, kind, payload))


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds; AssertionError naming `what` after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run(scenario: Callable[[], Awaitable[None]], timeout_s: float = 15.0) -> None:
    """Run one async test scenario, bounded in time."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout_s)

    asyncio.run(bounded())


class Network:
    """Services on 127.0.0.1 in this event loop; `close` stops them all."""

    def __init__(self) -> None:
        self.services: list[P2PService] = []
        self._seed = 0

    async def add(self, chain: TreeChain | None = None, *, bootstrap: tuple[P2PService, ...] = (),
                  identity: crypto.PrivateKey | None = None, **overrides: object) -> P2PService:
        """Start a service with the FAST config (plus `overrides`) that bootstraps from `bootstrap`."""
        self._seed += 1
        config = replace(FAST, bootstrap=tuple(s.url for s in bootstrap), **overrides)  # type: ignore[arg-type]
        chain = chain or TreeChain()
        service = P2PService(config, identity or key(100 + self._seed), chain, rng=random.Random(self._seed))
        chain.service = service
        await service.start()
        self.services.append(service)
        return service

    async def close(self) -> None:
        for service in self.services:
            await service.stop()


def connected(a: P2PService, b: P2PService) -> bool:
    """True when both services list each other as ready peers."""
    return b.node_id in {p["node_id"] for p in a.peers()} and a.node_id in {p["node_id"] for p in b.peers()}


class RawPeer:
    """A hand-driven protocol peer over a real websocket (to misbehave on purpose)."""

    def __init__(self, identity: crypto.PrivateKey, genesis: Genesis = GENESIS, max_message_bytes: int = 1 << 24):
        self.identity = identity
        self.genesis = genesis
        self.max_message_bytes = max_message_bytes
        self.session: PeerSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.http: aiohttp.ClientSession | None = None
        self.closed_with: str | None = None
        self.best_height = 0  # what our Hello claims

    async def connect(self, url: str) -> bool:
        """Dial `url` and handshake; True when READY, False when the node said goodbye (see `closed_with`)."""
        self.http = self.http or aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(url, max_msg_size=0)
        self.closed_with = None
        self.session = PeerSession(identity=self.identity, chain_id=self.genesis.chain_id,
                                   genesis_hash=self.genesis.hash, outbound=True, rng=random.Random(7),
                                   now=time.monotonic(), best_height=self.best_height,
                                   max_message_bytes=self.max_message_bytes)
        await self.ws.send_bytes(self.session.start())
        while not self.session.ready:
            events = await self.receive_events()
            if events is None:
                return False
        return True

    async def receive_events(self) -> list[Event] | None:
        """Read one frame and run it through the session; None when the socket closed."""
        assert self.ws is not None and self.session is not None
        msg = await self.ws.receive()
        if msg.type is not aiohttp.WSMsgType.BINARY:
            return None
        events = self.session.receive(msg.data, time.monotonic())
        for event in events:
            if isinstance(event, Reply):
                await self.ws.send_bytes(event.frame)
            elif isinstance(event, PeerClosed):
                self.closed_with = event.code
        return events

    async def send(self, message: Message) -> None:
        await self.send_raw(encode_frame(message))

    async def send_raw(self, frame: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(frame)

    async def until_closed(self) -> str | None:
        """Read until the node closes the connection; the reason code it gave, if any."""
        while await self.receive_events() is not None:
            pass
        return self.closed_with

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()
