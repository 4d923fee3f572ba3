"""Hostile peers claim heights they never deliver, against a real PoW node process (issue 14, item 2): a claim
alone never pauses mining, the claimant is disconnected when its claim is not delivered within the sync timeout,
and throwaway identities rotating their claims cannot keep the node from mining (docs/P2P.md, "Height claims").

Each test bounds its time and stops the node it started (by pid) in a finally block."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.crypto import PrivateKey
from p2p.protocol.timing import PEER_TIMEOUT_S
from testnet.cluster import Cluster
from testnet.local import wait_until
from tests.p2p.fakes import RawPeer

pytestmark = pytest.mark.slow

CLAIM = 2**63


class ClaimingPeer(RawPeer):
    """A peer whose Hello claims `best_height` and which never answers GetBlocks (it answers pings, through the
    session, so only the undelivered claim can end its connection)."""

    def __init__(self, identity: PrivateKey, cluster: Cluster, best_height: int = CLAIM) -> None:
        super().__init__(identity, genesis=cluster.genesis)
        self.best_height = best_height


@pytest.fixture()
def miner(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster.create(tmp_path, 1, params={"block_interval_s": 0.5}, hashrate_hps=3000)
    try:
        cluster.start()
        wait_until(lambda: cluster.heights()[0] >= 1, 60, "the first block")
        yield cluster
    finally:
        cluster.stop()


def mining_state(cluster: Cluster) -> str:
    engine = cluster.nodes[0].client().status()["engine"]
    assert isinstance(engine, dict)
    return str(engine["state"])


async def sample_states(cluster: Cluster, seconds: float, every_s: float = 0.25) -> list[str]:
    """The node's mining state every `every_s` for `seconds` (RPC calls in a thread: the loop keeps serving the
    hostile peers)."""
    states = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states.append(await asyncio.to_thread(mining_state, cluster))
        await asyncio.sleep(every_s)
    return states


def test_a_huge_claim_never_delivered_pauses_nothing_and_costs_the_connection(miner: Cluster) -> None:
    url = miner.nodes[0].p2p_url
    height_before = miner.heights()[0]

    async def scenario() -> tuple[list[str], str | None, float]:
        peer = ClaimingPeer(PrivateKey.from_seed(b"height-claims/one"), miner)
        try:
            assert await peer.connect(url)
            started = time.monotonic()
            closed = asyncio.create_task(peer.until_closed())
            states = await sample_states(miner, PEER_TIMEOUT_S + 3)
            done, _ = await asyncio.wait({closed}, timeout=10)
            reason = closed.result() if done else None
            closed.cancel()
            return states, reason, time.monotonic() - started
        finally:
            await peer.close()

    states, reason, _ = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert "paused-syncing" not in states, states
    assert states.count("mining") == len(states), states
    assert reason == "sync-stalled"
    assert miner.heights()[0] > height_before
    assert "sync-stalled" in miner.nodes[0].tail_log(400)


def test_rotating_throwaway_identities_cannot_keep_the_node_from_mining(miner: Cluster) -> None:
    # The attack of the issue: fresh identities, each claiming 2**63 and answering nothing, one every 0.5 s (the
    # issue rotated 18 every 9 s), for 12 s: more than the sync timeout, so the oldest claims also time out.
    url = miner.nodes[0].p2p_url
    height_before = miner.heights()[0]

    async def scenario() -> list[str]:
        peers: list[ClaimingPeer] = []
        readers: list[asyncio.Task[str | None]] = []  # each peer reads (answers pings) until the node closes it

        async def rotate() -> None:
            for index in range(24):
                peer = ClaimingPeer(PrivateKey.from_seed(f"height-claims/rotating/{index}".encode()), miner)
                peers.append(peer)
                if await peer.connect(url):
                    readers.append(asyncio.create_task(peer.until_closed()))
                if len(peers) > 18:
                    await peers[-19].close()
                await asyncio.sleep(0.5)

        rotation = asyncio.create_task(rotate())
        try:
            await asyncio.sleep(0.5)
            return await sample_states(miner, 12)
        finally:
            rotation.cancel()
            for peer in peers:
                await peer.close()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(rotation, *readers, return_exceptions=True)

    states = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert "paused-syncing" not in states, states
    assert states.count("mining") >= 0.9 * len(states), states
    assert miner.heights()[0] > height_before
