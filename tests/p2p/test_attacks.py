"""Hostile peers against a P2PService over real websockets on 127.0.0.1 (issue 14, items 1, 4 and 5): each test
performs one attack and asserts the bound docs/P2P.md ("What an attacker can and cannot do") promises."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path

import aiohttp
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import crypto
from chain.errors import DecodeError, RejectError
from chain.genesis import Genesis
from consensus.engine import EngineMessage, Outgoing
from consensus.envelope import ENVELOPE_KIND, EnvelopeRouter
from consensus.registry import engine_for
from node.core import NodeCore
from p2p.protocol.codec import encode_frame
from p2p.protocol.messages import CHALLENGE_BYTES, PROTOCOL_VERSION, EngineMsg, Hello
from p2p.service import P2PService
from storage.memory import MemoryStore
from testnet.cluster import Cluster
from tests.conftest import key
from tests.p2p.fakes import GENESIS, Network, RawPeer, TreeChain, connected, run, wait_until

# -- 1. impersonation ------------------------------------------------------------------------------------------------


class Impostor:
    """A connection that claims someone else's node id in its Hello; it cannot sign the HelloAck."""

    def __init__(self, genesis: Genesis = GENESIS) -> None:
        self.genesis = genesis
        self.http = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def claim(self, url: str, node_id: str) -> None:
        """Dial `url`, send a Hello claiming `node_id`, and read the node's Hello and HelloAck."""
        self.ws = await self.http.ws_connect(url, max_msg_size=0)
        hello = Hello(protocol_version=PROTOCOL_VERSION, chain_id=self.genesis.chain_id,
                      genesis_hash=self.genesis.hash,
                      node_id=bytes.fromhex(node_id), challenge=random.Random(3).randbytes(CHALLENGE_BYTES),
                      listen_url="", best_height=0, user_agent="impostor")
        await self.ws.send_bytes(encode_frame(hello))
        for _ in range(2):  # the node's Hello, then its HelloAck (it answers the claim before it is proven)
            msg = await asyncio.wait_for(self.ws.receive(), 2.0)
            if msg.type is not aiohttp.WSMsgType.BINARY:
                return

    async def junk(self) -> None:
        """A frame that is not a message (a ban for whoever is charged with it)."""
        assert self.ws is not None
        if not self.ws.closed:
            await self.ws.send_bytes(b"\xc1junk")
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()


def ordered_keys() -> tuple[crypto.PrivateKey, crypto.PrivateKey]:
    """Two keys, the first with the larger node id (so a connection dialed by the first is the one to replace)."""
    first, second = key(201), key(202)
    if first.public_key.hex() < second.public_key.hex():
        first, second = second, first
    return first, second


def test_an_impostor_of_an_offline_node_cannot_get_it_banned() -> None:
    async def scenario() -> None:
        net = Network()
        impostor = Impostor()
        try:
            honest_key = key(203)
            a = await net.add()
            await impostor.claim(a.url, honest_key.public_key.hex())
            await impostor.junk()
            assert not a.is_banned(honest_key.public_key.hex())
            honest = await net.add(bootstrap=(a,), identity=honest_key)
            await wait_until(lambda: connected(a, honest), what="the honest node connected")
        finally:
            await impostor.close()
            await net.close()

    run(scenario)


def test_an_impostor_cannot_replace_or_ban_a_live_honest_connection() -> None:
    async def scenario() -> None:
        net = Network()
        impostor = Impostor()
        try:
            larger, smaller = ordered_keys()
            honest = await net.add(identity=smaller)
            a = await net.add(bootstrap=(honest,), identity=larger)  # a dials: the connection a claim could replace
            await wait_until(lambda: connected(a, honest), what="a and the honest node")
            await impostor.claim(a.url, honest.node_id)
            await impostor.junk()
            await asyncio.sleep(0.3)
            assert connected(a, honest)
            assert a.metrics.disconnects["duplicate-peer"] == 0
            assert not a.is_banned(honest.node_id) and a.metrics.bans == 0
        finally:
            await impostor.close()
            await net.close()

    run(scenario)


def test_a_forged_ack_is_charged_to_the_address_not_the_claimed_id() -> None:
    async def scenario() -> None:
        net = Network()
        impostor = Impostor()
        try:
            honest_key = key(204)
            # Address rules on loopback so the address can be charged in a one-host test.
            a = await net.add(loopback_address_limits=True)
            await impostor.claim(a.url, honest_key.public_key.hex())
            await impostor.junk()
            await wait_until(lambda: a.is_banned("ip:127.0.0.1"), what="the impostor's address banned")
            assert not a.is_banned(honest_key.public_key.hex())
        finally:
            await impostor.close()
            await net.close()

    run(scenario)


@pytest.mark.slow
def test_real_nodes_an_impostor_cannot_lock_an_honest_node_out(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 2, mining=False)
    try:
        cluster.start([0])
        victim = cluster.nodes[0]
        honest_id = cluster.keys[1].public_key.hex()

        async def attack() -> None:
            impostor = Impostor(cluster.genesis)
            try:
                await impostor.claim(victim.p2p_url, honest_id)
                await impostor.junk()
            finally:
                await impostor.close()

        asyncio.run(asyncio.wait_for(attack(), 20))
        cluster.start([1])
        cluster.wait_connected(1, timeout_s=20.0)
        assert honest_id in {p["node_id"] for p in victim.client().peers()}
        assert f"banned {honest_id[:16]}" not in victim.tail_log(500)
    finally:
        cluster.stop()


# -- 4. eclipse by slot filling --------------------------------------------------------------------------------------


async def fill(url: str, count: int, first_key: int) -> list[RawPeer]:
    """`count` throwaway identities that complete the handshake (as many as the node lets in)."""
    peers = [RawPeer(key(first_key + n)) for n in range(count)]
    for peer in peers:
        await peer.connect(url)
    return peers


def test_our_bootstrap_dial_and_a_newcomer_get_a_slot_while_throwaway_identities_fill_the_book() -> None:
    async def scenario() -> None:
        net = Network()
        junk: list[RawPeer] = []
        try:
            a = await net.add(max_peers=8, target_peers=2, peer_timeout_s=20.0)
            old_friend = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, old_friend), what="a long-lived inbound peer")
            await wait_until(lambda: any(p["rtt_ms"] is not None for p in a.peers()), what="a round trip")
            junk = await fill(a.url, 30, 300)
            assert len(a.peers()) <= 8
            bootstrap = await net.add()
            a.connect(bootstrap.url)  # our own dial: never refused for too-many-peers
            await wait_until(lambda: connected(a, bootstrap), what="our bootstrap dial admitted")
            newcomer = await net.add(bootstrap=(a,))  # an honest inbound newcomer: an inbound junk makes room
            await wait_until(lambda: connected(a, newcomer), what="the newcomer admitted")
            assert connected(a, old_friend), "the long-lived, responsive peer is protected from eviction"
            assert a.metrics.disconnects["evicted"] >= 1
            assert len(a.peers()) <= 8
        finally:
            for peer in junk:
                await peer.close()
            await net.close()

    run(scenario, timeout_s=30.0)


def test_inbound_peers_are_limited_per_address() -> None:
    async def scenario() -> None:
        net = Network()
        junk: list[RawPeer] = []
        try:
            a = await net.add(max_inbound_per_ip=2, loopback_address_limits=True, peer_timeout_s=20.0)
            junk = [RawPeer(key(400 + n)) for n in range(3)]
            assert await junk[0].connect(a.url) and await junk[1].connect(a.url)
            await junk[2].connect(a.url)  # ready on its side: the node decides once the ack proved the key
            assert await junk[2].until_closed() == "too-many-from-address"
            assert len(a.peers()) == 2
        finally:
            for peer in junk:
                await peer.close()
            await net.close()

    run(scenario)


# -- 5. junk engine messages -----------------------------------------------------------------------------------------


class RefusingEngine(TreeChain):
    """A chain whose engine refuses every message as a decoder would (or fails on it, with `bug`)."""

    def __init__(self, bug: bool = False) -> None:
        super().__init__()
        self.bug = bug

    def on_engine_message(self, peer: str, kind: str, payload: bytes) -> None:
        if self.bug:
            raise RuntimeError("an engine bug")
        raise DecodeError("presence: not a presence")


def test_junk_engine_messages_lead_to_a_ban_and_a_disconnect_without_tracebacks(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        net = Network()
        raw = RawPeer(key(500))
        try:
            a = await net.add(RefusingEngine(), peer_timeout_s=20.0)
            assert await raw.connect(a.url)
            for _ in range(100):
                await raw.send(EngineMsg(kind="pow/presence", payload=b"\x00junk"))
            assert await raw.until_closed() == "malformed"
            assert a.is_banned(raw.identity.public_key.hex())
            assert a.metrics.engine_rejects["malformed"] == 5  # the fifth one banned it; the rest were not read
        finally:
            await raw.close()
            await net.close()

    with caplog.at_level(logging.INFO, logger="chainlab.p2p"):
        run(scenario)
    assert not [r for r in caplog.records if r.exc_info], "a peer's junk is not our bug: no traceback"
    assert len([r for r in caplog.records if "misbehaviour" in r.getMessage()]) <= 1


def test_an_engine_bug_is_logged_with_its_traceback_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        net = Network()
        raw = RawPeer(key(501))
        try:
            a: P2PService = await net.add(RefusingEngine(bug=True), peer_timeout_s=20.0)
            assert await raw.connect(a.url)
            for _ in range(50):
                await raw.send(EngineMsg(kind="pow/presence", payload=b"\x00"))
            await wait_until(lambda: a.metrics.messages_in["EngineMsg"] == 50, what="the messages handled")
            assert a.peers(), "our bug does not cost the peer its connection"
        finally:
            await raw.close()
            await net.close()

    with caplog.at_level(logging.INFO, logger="chainlab.p2p"):
        run(scenario)
    assert len([r for r in caplog.records if r.exc_info]) == 1


# -- 5b. every engine's junk, as it arrives through the envelope router -------------------------------------------


ENGINE_KEYS = (key(600), key(601), key(602))
ENGINE_KINDS = {
    "pow": ("pow/presence",),
    "primary-backup": ("pb/ack",),
    "raft": ("raft/vote", "raft/vote-resp", "raft/append", "raft/append-resp", "raft/read", "raft/read-resp",
             "raft/timeout-now"),
}


def engine_core(consensus: str) -> NodeCore:
    params: dict[str, object] = {}
    if consensus == "primary-backup":
        params = {"primary": crypto.address_to_text(ENGINE_KEYS[0].address), "acks_required": 1}
    g = Genesis(chain_id="junk-test", consensus=consensus, balances={k.address: 10**9 for k in ENGINE_KEYS},
                params=params, validators={k.address: 1 for k in ENGINE_KEYS})
    ours = ENGINE_KEYS[0]
    core = NodeCore.over_store(name="n", genesis=g, store=MemoryStore(), key=ours,
                               engine=engine_for(g, ours, rng=random.Random(1)), rng=random.Random(1))
    core.start(now=0.0, now_ms=10**13)
    return core


@pytest.mark.parametrize("consensus", sorted(ENGINE_KINDS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_engine_refuses_junk_with_a_reject_code(consensus: str, data: st.DataObject) -> None:
    """What P2P penalizes is a RejectError; anything else the engine raises on a peer's bytes would be logged as
    our bug and cost the peer nothing, so junk must never get that far."""
    core = engine_core(consensus)
    peer_key = ENGINE_KEYS[1]
    kind = data.draw(st.sampled_from(ENGINE_KINDS[consensus]))
    integers = st.lists(st.integers(-(2**63), 2**64 - 1), max_size=12)
    body = data.draw(st.binary(max_size=64) | st.builds(encode_frame_body, integers))
    router = EnvelopeRouter(core.genesis.hash, peer_key)
    router.start(0, 10**13)
    envelope, _ = router.seal(Outgoing(message=EngineMessage(kind=kind, payload=body), to=ENGINE_KEYS[0].address))
    junk = data.draw(st.sampled_from([envelope, envelope[:-3], b"\x93\x01\x02", b""]))
    with contextlib.suppress(RejectError):  # anything else fails the test
        core.receive_engine_message(peer_key.public_key.hex(), ENVELOPE_KIND, junk, now=1.0, now_ms=10**13)


def encode_frame_body(items: list[int]) -> bytes:
    """A msgpack array of integers: well-formed msgpack, not a message."""
    packed: bytes = msgpack.packb(items)
    return packed
