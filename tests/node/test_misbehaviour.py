"""A hand-driven peer misbehaves against a real node process: each invalid block is rejected with its reject code
and the peer is banned; a peer of another network is refused at handshake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from chain.block import Block, make_block
from chain.crypto import PrivateKey
from chain.devtools import block_on
from chain.genesis import Genesis
from chain.tx import Transaction, make_transfer
from consensus.pow.params import PowParams
from consensus.pow.seal import encode_seal, grind, mining_prefix, pow_hash_from_prefix
from p2p.protocol.messages import BlockMsg
from testnet.cluster import Cluster
from tests.p2p.fakes import RawPeer

pytestmark = pytest.mark.slow


def sealed(genesis: Genesis, draft: Block) -> Block:
    header = grind(draft.header, PowParams.of(genesis).initial_target)
    assert header is not None
    return Block(header=header, txs=draft.txs)


def bad_pow(cluster: Cluster) -> Block:
    genesis = cluster.genesis
    draft, _ = block_on(genesis.initial_state(), genesis.block(), [], reward=genesis.block_reward,
                        proposer=cluster.keys[0].address, timestamp_ms=genesis.timestamp_ms + 1000)
    target = PowParams.of(genesis).initial_target
    prefix = mining_prefix(draft.header.seal_hash, target)
    nonce = next(n for n in range(10**6) if int.from_bytes(pow_hash_from_prefix(prefix, n), "big") > target)
    return Block(header=draft.header.with_seal(encode_seal(target, nonce)), txs=draft.txs)


def bad_signature(cluster: Cluster) -> Block:
    genesis = cluster.genesis
    good = make_transfer(cluster.load_keys[0], chain_id=genesis.chain_id, recipient=cluster.load_keys[1].address,
                         amount=5, fee=1, nonce=0)
    forged = Transaction(chain_id=good.chain_id, sender=good.sender, recipient=good.recipient, amount=good.amount,
                         fee=good.fee, nonce=good.nonce, signature=PrivateKey.from_seed(b"mallory").sign(
                             good.signing_hash))
    draft, _ = block_on(genesis.initial_state(), genesis.block(), [forged], reward=genesis.block_reward,
                        proposer=cluster.keys[0].address, timestamp_ms=genesis.timestamp_ms + 1000)
    return sealed(genesis, draft)


def bad_state_commitment(cluster: Cluster) -> Block:
    genesis = cluster.genesis
    draft = make_block(parent=genesis.block().header, height=1, timestamp_ms=genesis.timestamp_ms + 1000, txs=[],
                       state_root=bytes(32), proposer=cluster.keys[0].address)
    return sealed(genesis, draft)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cluster = Cluster.create(tmp_path_factory.mktemp("misbehaviour"), 1, mining=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def rejected_count(cluster: Cluster, code: str) -> float:
    text = cluster.nodes[0].client().metrics_text()
    for line in text.splitlines():
        if line.startswith("chainlab_blocks_rejected_total{") and f'code="{code}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(("make", "code"), [
    (bad_pow, "bad-pow"),
    (bad_signature, "bad-signature"),
    (bad_state_commitment, "bad-state-commitment"),
])
def test_invalid_block_is_rejected_with_its_code_and_the_peer_banned(
    node: Cluster, make: Callable[[Cluster], Block], code: str,
) -> None:
    block = make(node)
    url = node.nodes[0].p2p_url
    identity = PrivateKey.from_seed(f"misbehaving/{code}".encode())
    before = rejected_count(node, code)

    async def scenario() -> tuple[str | None, bool, str | None]:
        peer = RawPeer(identity, genesis=node.genesis)
        try:
            assert await peer.connect(url)
            await peer.send(BlockMsg(raw=block.encoded))
            reason = await peer.until_closed()
            await peer.close()
            again = RawPeer(identity, genesis=node.genesis)
            reconnected = await again.connect(url)
            refusal = again.closed_with
            await again.close()
            return reason, reconnected, refusal
        finally:
            await peer.close()

    reason, reconnected, refusal = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert reason == code
    assert not reconnected and refusal == "banned"
    assert rejected_count(node, code) == before + 1
    assert node.nodes[0].client().status()["height"] == 0


def test_peer_of_another_genesis_is_refused_at_handshake(node: Cluster) -> None:
    other = Genesis(chain_id=node.genesis.chain_id, consensus="pow", params={"block_interval_s": 2.0})

    async def scenario() -> tuple[bool, str | None]:
        peer = RawPeer(PrivateKey.from_seed(b"stranger"), genesis=other)
        try:
            ready = await peer.connect(node.nodes[0].p2p_url)
            return ready, peer.closed_with
        finally:
            await peer.close()

    ready, reason = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert not ready and reason == "wrong-genesis"
    assert "wrong-genesis" in node.nodes[0].tail_log(200)
