"""P2PService over real websockets on 127.0.0.1: handshake, gossip, relay, sync, refusals, bans, reconnects and
fault injection. Every scenario runs bounded in time and stops its services."""

from __future__ import annotations

import asyncio

import aiohttp

from chain import crypto
from chain.block import Block
from p2p.protocol.codec import decode_frame, encode_frame
from p2p.protocol.faults import FaultConfig
from p2p.protocol.messages import (
    BlockMsg,
    Blocks,
    Bundle,
    Disconnect,
    GetBlocks,
    GetData,
    GetPeers,
    Inv,
    NotFound,
    Peers,
    Ping,
    Pong,
    TxMsg,
)
from p2p.protocol.session import MessageReceived
from tests.conftest import key
from tests.p2p.fakes import OTHER_GENESIS, Network, RawPeer, TreeChain, connected, pow_chain, run, transfer, wait_until


def test_connect_and_handshake() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add(TreeChain(blocks=pow_chain(3)))
            b = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, b), what="handshake")
            [peer_of_b] = b.peers()
            assert peer_of_b["node_id"] == a.node_id
            assert peer_of_b["direction"] == "outbound"
            assert peer_of_b["url"] == a.url
            assert peer_of_b["best_height"] == 3
            [peer_of_a] = a.peers()
            assert peer_of_a["direction"] == "inbound"
            assert peer_of_a["url"] == b.url  # learnt from b's Hello
            await wait_until(lambda: b.peers()[0]["rtt_ms"] is not None, what="a pong")
            assert a.metrics.messages_in["Hello"] == 1 and a.metrics.messages_in["HelloAck"] == 1
        finally:
            await net.close()

    run(scenario)


def test_tx_announced_on_a_reaches_c_over_a_line() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add(target_peers=1)
            b = await net.add(bootstrap=(a,), target_peers=1)
            c = await net.add(bootstrap=(b,), target_peers=1)
            await wait_until(lambda: connected(a, b) and connected(b, c), what="the line a-b-c")
            tx = transfer(0)
            a_chain, c_chain = a.chain, c.chain
            assert isinstance(a_chain, TreeChain) and isinstance(c_chain, TreeChain)
            a_chain.mempool[tx.hash] = tx
            a.announce_tx(tx.hash)
            await wait_until(lambda: tx.hash in c_chain.mempool, what="the tx at c")
            assert not connected(a, c), "the test needs a line, not a triangle"
            assert b.metrics.messages_in["TxMsg"] == 1 and c.metrics.messages_in["TxMsg"] == 1
            assert c.metrics.messages_out["Inv"] == 0 or b.metrics.messages_in["Inv"] == 1  # c does not echo to b
        finally:
            await net.close()

    run(scenario)


def test_block_relay_along_a_line() -> None:
    async def scenario() -> None:
        blocks = pow_chain(6)
        net = Network()
        try:
            a = await net.add(TreeChain(blocks=blocks[:5]), target_peers=1)
            b = await net.add(TreeChain(blocks=blocks[:5]), bootstrap=(a,), target_peers=1)
            c = await net.add(TreeChain(blocks=blocks[:5]), bootstrap=(b,), target_peers=1)
            await wait_until(lambda: connected(a, b) and connected(b, c), what="the line a-b-c")
            a_chain = a.chain
            assert isinstance(a_chain, TreeChain)
            a_chain.tree.add_block(blocks[5], now_ms=a_chain.now_ms())
            a.announce_block(blocks[5])
            await wait_until(lambda: c.chain.best_height() == 6, what="block 6 at c")
            assert b.metrics.messages_in["BlockMsg"] == 1 and c.metrics.messages_in["BlockMsg"] == 1
            assert c.metrics.messages_in["Blocks"] == 0  # relayed, not synced
        finally:
            await net.close()

    run(scenario)


def test_sync_300_blocks_behind_in_batches_from_two_peers() -> None:
    async def scenario() -> None:
        blocks = pow_chain(300)
        net = Network()
        try:
            # A small frame limit cuts the batches short (about 30 blocks each), so the sync takes many rounds.
            full1 = await net.add(TreeChain(blocks=blocks), max_message_bytes=8 * 1024)
            full2 = await net.add(TreeChain(blocks=blocks), max_message_bytes=8 * 1024)
            fresh = await net.add(bootstrap=(full1, full2), max_message_bytes=8 * 1024)
            await wait_until(lambda: fresh.chain.best_height() == 300, timeout_s=10, what="sync to 300")
            assert fresh.sync_progress == (300, 300)
            await wait_until(lambda: not fresh.syncing, what="sync to settle")
            batches = fresh.metrics.messages_in["Blocks"]
            assert batches >= 5
            assert full1.metrics.messages_out["Blocks"] >= 2 and full2.metrics.messages_out["Blocks"] >= 2
        finally:
            await net.close()

    run(scenario)


def test_orphan_block_triggers_sync_from_its_sender() -> None:
    async def scenario() -> None:
        blocks = pow_chain(15)
        net = Network()
        try:
            a = await net.add(TreeChain(blocks=blocks[:5]))
            b = await net.add(TreeChain(blocks=blocks[:5]), bootstrap=(a,))
            await wait_until(lambda: connected(a, b), what="handshake")
            a_chain = a.chain
            assert isinstance(a_chain, TreeChain)
            for block in blocks[5:]:
                a_chain.tree.add_block(block, now_ms=a_chain.now_ms())
            a.announce_block(blocks[-1])  # only the tip: b lacks its nine ancestors
            await wait_until(lambda: b.chain.best_height() == 15, what="b to catch up")
            assert b.metrics.messages_in["Blocks"] >= 1
        finally:
            await net.close()

    run(scenario)


def test_peer_with_another_genesis_is_refused_on_both_sides() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            b = await net.add(TreeChain(OTHER_GENESIS), bootstrap=(a,))
            await wait_until(lambda: a.metrics.disconnects["wrong-genesis"] >= 1
                             and b.metrics.disconnects["wrong-genesis"] >= 1, what="both sides to refuse")
            assert b.metrics.refusals_received["wrong-genesis"] >= 1
            assert a.peers() == [] and b.peers() == []
            assert not a.is_banned(b.node_id)  # another network is not misbehaviour
        finally:
            await net.close()

    run(scenario)


def test_a_bundle_is_handled_frame_by_frame_and_a_bad_one_is_refused() -> None:
    async def scenario() -> None:
        net = Network()
        peer, evil, nested = RawPeer(key(910)), RawPeer(key(911)), RawPeer(key(912))
        try:
            a = await net.add()
            assert await peer.connect(a.url)
            await peer.send(Bundle(frames=(encode_frame(Ping(nonce=5, sent_ms=1)), encode_frame(GetPeers()))))
            seen: list[object] = []
            while not any(isinstance(e, MessageReceived) and isinstance(e.message, Peers) for e in seen):
                events = await peer.receive_events()
                assert events is not None
                seen.extend(events)
            assert a.metrics.messages_in["Bundle"] == 1 and a.metrics.messages_in["GetPeers"] == 1
            assert await evil.connect(a.url)  # a bundle whose second frame is junk: refused as that frame would be
            await evil.send_raw(encode_frame(Bundle(frames=(encode_frame(Pong(nonce=1)), b"\x92\x22\xc1"))))
            assert await evil.until_closed() == "malformed"
            assert await nested.connect(a.url)  # a bundle in a bundle is not a bundle
            inner = encode_frame(Bundle(frames=(encode_frame(Pong(nonce=1)), encode_frame(Pong(nonce=2)))))
            await nested.send_raw(b"\x93\x2f\x01\x92" + b"".join(
                bytes([0xc4, len(f)]) + f for f in (encode_frame(Pong(nonce=3)), inner)))
            assert await nested.until_closed() == "malformed"
        finally:
            for raw in (peer, evil, nested):
                await raw.close()
            await net.close()

    run(scenario)


def test_frames_due_together_leave_as_one_bundle() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            b = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, b), what="a pair")
            for index in range(20):  # one event-loop step: the writer finds them all due
                a.send_engine("burst", index.to_bytes(2, "big"), to=b.node_id)
            b_chain = b.chain
            assert isinstance(b_chain, TreeChain)
            await wait_until(lambda: len(b_chain.engine_messages) == 20, what="the burst")
            assert [int.from_bytes(p, "big") for _, _, p in b_chain.engine_messages] == list(range(20))
            assert b.metrics.messages_in["Bundle"] >= 1 and b.metrics.messages_in["EngineMsg"] == 20
        finally:
            await net.close()

    run(scenario)


def test_malformed_frame_bans_the_sender_until_the_ban_ends() -> None:
    async def scenario() -> None:
        net = Network()
        evil = RawPeer(key(900))
        try:
            a = await net.add()
            assert await evil.connect(a.url)
            await evil.send_raw(b"\x92\x22\xc1")  # tag 34 (Ping) and a byte that is not msgpack
            assert await evil.until_closed() == "malformed"
            assert a.is_banned(key(900).public_key.hex())
            assert a.metrics.bans == 1
            assert not await evil.connect(a.url)
            assert evil.closed_with == "banned"
        finally:
            await evil.close()
            await net.close()

    run(scenario)


def test_oversize_frames_are_refused_and_banned() -> None:
    async def scenario() -> None:
        net = Network()
        just_over, far_over = RawPeer(key(901)), RawPeer(key(902))
        try:
            a = await net.add(max_message_bytes=64 * 1024)
            assert await just_over.connect(a.url)
            await just_over.send_raw(bytes(64 * 1024 + 1))  # passes the websocket cap, fails our own check
            assert await just_over.until_closed() == "oversize"
            assert await far_over.connect(a.url)
            await far_over.send_raw(bytes(1024 * 1024))  # the websocket layer refuses it
            await far_over.until_closed()
            await wait_until(lambda: a.is_banned(key(902).public_key.hex()), what="the second ban")
            assert a.is_banned(key(901).public_key.hex())
            assert a.metrics.bans == 2
        finally:
            await just_over.close()
            await far_over.close()
            await net.close()

    run(scenario)


def test_block_failing_precheck_bans_the_sender() -> None:
    async def scenario() -> None:
        from consensus.pow.seal import encode_seal

        blocks = pow_chain(4)
        net = Network()
        evil = RawPeer(key(903))
        try:
            a = await net.add(TreeChain(blocks=blocks[:3]))
            assert await evil.connect(a.url)
            forged = Block(header=blocks[3].header.with_seal(encode_seal(1, 0)), txs=())  # target 1: no valid PoW
            await evil.send(BlockMsg(raw=forged.encoded))
            assert await evil.until_closed() == "bad-pow"
            assert a.is_banned(key(903).public_key.hex())
            assert a.chain.best_height() == 3
            assert not await evil.connect(a.url)
            assert evil.closed_with == "banned"
        finally:
            await evil.close()
            await net.close()

    run(scenario)


def test_a_message_before_the_handshake_is_a_violation() -> None:
    async def scenario() -> None:
        net = Network()
        http = aiohttp.ClientSession()
        try:
            a = await net.add()
            ws = await http.ws_connect(a.url)
            await ws.send_bytes(encode_frame(Inv(kind="tx", hashes=())))  # instead of Hello
            goodbye = decode_frame((await ws.receive()).data)
            assert isinstance(goodbye, Disconnect) and goodbye.code == "unexpected-message"
            await ws.close()
            assert a.metrics.disconnects["unexpected-message"] == 1
        finally:
            await http.close()
            await net.close()

    run(scenario)


def test_reconnect_with_backoff_after_the_remote_restarts() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            b = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, b), what="first connection")
            port = a.port
            await a.stop()
            await wait_until(lambda: b.peers() == [], what="b to notice")
            await wait_until(lambda: b.metrics.dial_failures >= 3, what="failed redials")
            failures = b.metrics.dial_failures
            await asyncio.sleep(1.0)
            # Backing off (0.05 s doubling to 0.3 s, equal jitter): at most 1 / 0.15 more tries in a second.
            assert b.metrics.dial_failures - failures <= 8
            a2 = await net.add(a.chain, identity=a.identity, listen_port=port)  # type: ignore[arg-type]
            await wait_until(lambda: connected(a2, b), what="reconnection")
        finally:
            await net.close()

    run(scenario)


def test_blocked_peer_gets_no_traffic_until_cleared() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            b = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, b), what="handshake")
            a.set_faults(FaultConfig(blocked_peers=frozenset({b.node_id})))
            await wait_until(lambda: a.peers() == [] and b.peers() == [], what="the cut")
            hellos_sent = a.metrics.messages_out["Hello"]
            tx = transfer(0)
            b_chain, a_chain = b.chain, a.chain
            assert isinstance(b_chain, TreeChain) and isinstance(a_chain, TreeChain)
            b_chain.mempool[tx.hash] = tx
            b.announce_tx(tx.hash)
            await wait_until(lambda: a.metrics.disconnects["blocked"] >= 2, what="b's redial to be dropped")
            assert tx.hash not in a_chain.mempool and a.peers() == []
            assert a.metrics.messages_out["Hello"] == hellos_sent  # a neither answers b nor dials it
            a.set_faults(FaultConfig())
            await wait_until(lambda: connected(a, b), what="the heal")
            b.announce_tx(tx.hash)
            await wait_until(lambda: tx.hash in a_chain.mempool, what="the tx after the heal")
            assert not a.is_banned(b.node_id)
        finally:
            await net.close()

    run(scenario)


def test_total_loss_stops_gossip_and_duplication_is_harmless() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            b = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, b), what="handshake")
            a_chain, b_chain = a.chain, b.chain
            assert isinstance(a_chain, TreeChain) and isinstance(b_chain, TreeChain)
            a.set_faults(FaultConfig(loss=1.0))
            lost = transfer(0)
            a_chain.mempool[lost.hash] = lost
            a.announce_tx(lost.hash)
            await asyncio.sleep(0.5)
            assert lost.hash not in b_chain.mempool
            assert a.metrics.frames_dropped["loss"] >= 1
            a.set_faults(FaultConfig(duplicate=1.0, delay_ms=50))
            inv_before = b.metrics.messages_in["Inv"]
            doubled = transfer(1)
            a_chain.mempool[doubled.hash] = doubled
            a.announce_tx(doubled.hash)
            await wait_until(lambda: doubled.hash in b_chain.mempool, what="the duplicated gossip")
            await wait_until(lambda: b.metrics.messages_in["Inv"] == inv_before + 2, what="both copies")
            assert b.metrics.messages_in["TxMsg"] >= 1 and len(b_chain.mempool) == 1
        finally:
            await net.close()

    run(scenario)


def test_engine_messages_reach_the_engine() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            b = await net.add(bootstrap=(a,))
            c = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, b) and connected(a, c), what="a star")
            assert a.peer_ids() == {b.node_id, c.node_id} == {str(p["node_id"]) for p in a.peers()}
            a.send_engine("heartbeat", b"\x01")
            a.send_engine("ack", b"\x02", to=c.node_id)
            b_chain, c_chain = b.chain, c.chain
            assert isinstance(b_chain, TreeChain) and isinstance(c_chain, TreeChain)
            await wait_until(lambda: len(b_chain.engine_messages) == 1 and len(c_chain.engine_messages) == 2,
                             what="engine payloads")
            assert b_chain.engine_messages == [(a.node_id, "heartbeat", b"\x01")]
            assert (a.node_id, "ack", b"\x02") in c_chain.engine_messages
            # Addressed by the validator address of a peer's node key: to that peer alone.
            a.send_engine("vote", b"\x03", address=crypto.address_of(bytes.fromhex(b.node_id)))
            await wait_until(lambda: len(b_chain.engine_messages) == 2, what="the addressed payload")
            assert b_chain.engine_messages[1] == (a.node_id, "vote", b"\x03")
            # An address no peer has: to every peer (the envelope layer relays it on).
            a.send_engine("vote", b"\x04", address=bytes(20))
            await wait_until(lambda: len(b_chain.engine_messages) == 3 and len(c_chain.engine_messages) == 3,
                             what="the unroutable payload, flooded")
            assert all(len(chain.engine_messages) == 3 for chain in (b_chain, c_chain))  # c never got \x03
        finally:
            await net.close()

    run(scenario)


def test_simultaneous_dials_keep_one_connection() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            b = await net.add(bootstrap=(a,))
            a.connect(b.url)
            await wait_until(lambda: connected(a, b), what="handshake")
            await asyncio.sleep(0.5)
            assert connected(a, b)
            assert len(a.peers()) == 1 and len(b.peers()) == 1
        finally:
            await net.close()

    run(scenario)


def test_peer_exchange_finds_more_peers() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            hub = await net.add()
            b = await net.add(bootstrap=(hub,))
            c = await net.add(bootstrap=(hub,))
            await wait_until(lambda: connected(b, c), what="b and c to find each other through the hub")
        finally:
            await net.close()

    run(scenario)


def test_a_flooding_peer_is_rate_limited_then_banned() -> None:
    async def scenario() -> None:
        net = Network()
        flood = RawPeer(key(905))
        try:
            a = await net.add(rate_messages_per_s=20.0)
            assert await flood.connect(a.url)
            for nonce in range(200):
                await flood.send(Ping(nonce=nonce, sent_ms=0))
            assert await flood.until_closed() == "rate-limited"
            assert a.is_banned(key(905).public_key.hex())
            assert a.metrics.frames_dropped["rate-limited"] >= 10
        finally:
            await flood.close()
            await net.close()

    run(scenario)


def test_a_silent_peer_is_dropped() -> None:
    async def scenario() -> None:
        net = Network()
        silent = RawPeer(key(906))
        try:
            a = await net.add(ping_interval_s=0.1, peer_timeout_s=0.5)
            assert await silent.connect(a.url)
            await wait_until(lambda: a.metrics.disconnects["timeout"] == 1, what="the failure detector")
            assert not a.is_banned(key(906).public_key.hex())
        finally:
            await silent.close()
            await net.close()

    run(scenario)


def test_transactions_with_bad_signatures_ban_but_known_ones_do_not() -> None:
    async def scenario() -> None:
        from chain.tx import Transaction

        net = Network()
        relay = RawPeer(key(907))
        try:
            a = await net.add()
            a_chain = a.chain
            assert isinstance(a_chain, TreeChain)
            assert await relay.connect(a.url)
            known = transfer(0)
            a_chain.mempool[known.hash] = known
            await relay.send(TxMsg(raw=known.encoded))  # already known: nothing to hold against the relay
            good = transfer(1)
            await relay.send(TxMsg(raw=good.encoded))
            await wait_until(lambda: good.hash in a_chain.mempool, what="the good tx")
            assert not a.is_banned(key(907).public_key.hex())
            unsigned = transfer(2)
            forged = Transaction(chain_id=unsigned.chain_id, sender=unsigned.sender, recipient=unsigned.recipient,
                                 amount=unsigned.amount + 1, fee=unsigned.fee, nonce=unsigned.nonce,
                                 signature=unsigned.signature)  # the signature covers another amount
            await relay.send(TxMsg(raw=forged.encoded))
            assert await relay.until_closed() == "bad-signature"
            assert a.is_banned(key(907).public_key.hex())
            assert forged.hash not in a_chain.mempool
        finally:
            await relay.close()
            await net.close()

    run(scenario)


def test_serves_data_blocks_and_peers_on_request() -> None:
    async def scenario() -> None:
        blocks = pow_chain(5)
        net = Network()
        client = RawPeer(key(908))
        try:
            a = await net.add(TreeChain(blocks=blocks))
            other = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, other), what="a second peer")
            assert await client.connect(a.url)

            pending: list[object] = []  # events read but not yet asked for (a bundle brings several at once)

            async def next_of(kind: type) -> object:
                while True:
                    while pending:
                        event = pending.pop(0)
                        if isinstance(event, MessageReceived) and isinstance(event.message, kind):
                            return event.message
                    events = await client.receive_events()
                    assert events is not None
                    pending.extend(events)

            async def answer_to(request: object, kind: type) -> object:
                await client.send(request)  # type: ignore[arg-type]
                return await next_of(kind)

            missing = bytes(32)
            found = await answer_to(GetData(kind="block", hashes=(blocks[2].hash, missing)), BlockMsg)
            assert found == BlockMsg(raw=blocks[2].encoded)
            assert await next_of(NotFound) == NotFound(kind="block", hashes=(missing,))
            assert await answer_to(GetData(kind="tx", hashes=(missing,)), NotFound) == NotFound(kind="tx",
                                                                                                 hashes=(missing,))
            batch = await answer_to(GetBlocks(locator=(blocks[1].hash,), limit=2), Blocks)
            assert batch == Blocks(raws=(blocks[2].encoded, blocks[3].encoded))
            peers = await answer_to(GetPeers(), Peers)
            assert isinstance(peers, Peers) and other.url in peers.urls
        finally:
            await client.close()
            await net.close()

    run(scenario)


def test_delay_keeps_the_order_and_jitter_may_reorder() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            b = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, b), what="handshake")
            b_chain = b.chain
            assert isinstance(b_chain, TreeChain)
            a.set_faults(FaultConfig(delay_ms=100))
            started = asyncio.get_running_loop().time()
            for n in range(50):
                a.send_engine("seq", n.to_bytes(2, "big"))
            await wait_until(lambda: len(b_chain.engine_messages) == 50, what="delayed messages")
            elapsed = asyncio.get_running_loop().time() - started
            assert 0.1 <= elapsed < 1.0  # delayed once, not 50 times
            assert [int.from_bytes(p, "big") for _, _, p in b_chain.engine_messages] == list(range(50))
            b_chain.engine_messages.clear()
            a.set_faults(FaultConfig(delay_ms=20, jitter_ms=20))
            for n in range(50):
                a.send_engine("seq", n.to_bytes(2, "big"))
            await wait_until(lambda: len(b_chain.engine_messages) == 50, what="jittered messages")
            assert sorted(int.from_bytes(p, "big") for _, _, p in b_chain.engine_messages) == list(range(50))
        finally:
            await net.close()

    run(scenario)


def test_a_fetch_that_goes_unanswered_is_retried_from_another_announcer() -> None:
    async def scenario() -> None:
        net = Network()
        mute = RawPeer(key(909))
        try:
            a = await net.add()
            a_chain = a.chain
            assert isinstance(a_chain, TreeChain)
            tx = transfer(0)
            assert await mute.connect(a.url)
            await mute.send(Inv(kind="tx", hashes=(tx.hash,)))  # and never answers the GetData
            await wait_until(lambda: a.metrics.messages_out["GetData"] == 1, what="the first request")
            b = await net.add(bootstrap=(a,))
            await wait_until(lambda: connected(a, b), what="handshake")
            b_chain = b.chain
            assert isinstance(b_chain, TreeChain)
            b_chain.mempool[tx.hash] = tx
            b.announce_tx(tx.hash)
            await wait_until(lambda: tx.hash in a_chain.mempool, what="the retry from b")
            assert a.metrics.messages_out["GetData"] == 2 and b.metrics.messages_in["GetData"] == 1
        finally:
            await mute.close()
            await net.close()

    run(scenario)


def test_a_peer_that_connects_later_gets_the_pool() -> None:
    async def scenario() -> None:
        net = Network()
        try:
            a = await net.add()
            a_chain = a.chain
            assert isinstance(a_chain, TreeChain)
            waiting = transfer(0)
            a_chain.mempool[waiting.hash] = waiting  # admitted before anyone was connected
            b = await net.add(bootstrap=(a,))
            b_chain = b.chain
            assert isinstance(b_chain, TreeChain)
            await wait_until(lambda: waiting.hash in b_chain.mempool, what="the pool to reach the new peer")
        finally:
            await net.close()

    run(scenario)
