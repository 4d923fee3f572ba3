"""Real node processes on 127.0.0.1: convergence, transactions to finality, late sync, the partition handler,
primary-backup. Every test bounds its time and stops what it started (by pid) in a finally block."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chain.crypto import address_to_text
from chain.tx import make_transfer
from cli.main import main
from testnet.cluster import Cluster
from testnet.local import wait_until

pytestmark = pytest.mark.slow


def send(cluster: Cluster, node_index: int, sender: int, recipient: bytes, amount: int, nonce: int) -> str:
    tx = make_transfer(cluster.load_keys[sender], chain_id=cluster.genesis.chain_id, recipient=recipient,
                       amount=amount, fee=1, nonce=nonce)
    return cluster.nodes[node_index].client().submit_tx(tx.encoded)


def final_hashes(cluster: Cluster, index: int) -> dict[int, str]:
    client = cluster.nodes[index].client()
    final = int(client.status()["final_height"])
    blocks = []
    start = 0
    while start <= final:
        batch = client.blocks(start, min(100, final - start + 1))
        if not batch:
            break
        blocks.extend(batch)
        start += len(batch)
    return {int(b["height"]): str(b["hash"]) for b in blocks}


def test_three_pow_nodes_converge_and_a_transaction_becomes_final_everywhere(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3, finality_threshold=3, params={"block_interval_s": 0.5},
                             hashrate_hps=3000)
    try:
        cluster.start()
        cluster.wait_connected(2)
        wait_until(lambda: min(cluster.heights()) >= 3, 60, "three blocks everywhere")
        recipient = cluster.load_keys[5].address
        tx_hash = send(cluster, 0, 0, recipient, 1234, 0)
        wait_until(lambda: all(n.client().tx_status(tx_hash)["status"] == "final" for n in cluster.nodes), 90,
                   "the transaction to be final on every node")
        for node in cluster.nodes:
            account = node.client().account(address_to_text(recipient), at="final")
            assert account["balance"] == 10**12 + 1234
        # The final prefixes agree.
        finals = [final_hashes(cluster, i) for i in range(3)]
        common = set(finals[0]) & set(finals[1]) & set(finals[2])
        assert common and all(finals[0][h] == finals[1][h] == finals[2][h] for h in common)
        # The CLI reads a running node.
        runner = CliRunner()
        url = cluster.nodes[2].rpc_url
        status = runner.invoke(main, ["chain", "status", "--node", url, "--json"])
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["chain_id"] == cluster.genesis.chain_id
        block = runner.invoke(main, ["chain", "block", "1", "--node", url, "--json"])
        assert block.exit_code == 0 and json.loads(block.stdout)["height"] == 1
        tips = runner.invoke(main, ["chain", "tips", "--node", url])
        assert tips.exit_code == 0 and "active" in tips.stdout
        down = runner.invoke(main, ["chain", "status", "--node", "http://127.0.0.1:9"])
        assert down.exit_code == 1 and "not reachable" in down.output
    finally:
        cluster.stop()


def test_a_late_node_syncs_hundreds_of_blocks(tmp_path: Path) -> None:
    # Node 0 mines fast alone; node 1 starts later with mining off and must catch up by sync.
    cluster = Cluster.create(tmp_path, 2, params={"block_interval_s": 0.02, "retarget_window": 1000},
                             hashrate_shares=[1, 0.001], hashrate_hps=20000, finality_threshold=6)
    try:
        cluster.nodes[1].extra_args = ["--no-mining"]
        cluster.start([0])
        wait_until(lambda: cluster.heights()[0] >= 300, 120, "node 0 to mine 300 blocks")
        cluster.nodes[0].client().set_mining(False)
        target = int(cluster.nodes[0].client().status()["height"])
        cluster.start([1])
        wait_until(lambda: int(cluster.nodes[1].client().status()["height"]) >= target, 120,
                   f"node 1 to sync to {target}")
        assert cluster.nodes[1].client().status()["head"] == cluster.nodes[0].client().block(target)["hash"]
        # A sync a person can follow: progress lines and a summary, not a line per block.
        wait_until(lambda: "synced: height" in cluster.nodes[1].log_path.read_text(), 20, "the synced line")
        block_lines = [line for line in cluster.nodes[1].log_path.read_text().splitlines() if " block " in line]
        assert len(block_lines) < 50, block_lines[:5]
    finally:
        cluster.stop()


def test_a_node_with_signature_workers_syncs_a_large_block_it_never_saw(tmp_path: Path) -> None:
    # Node 0 gathers transactions with mining off, then mines them (node 2 is its peer: an isolated miner pauses);
    # node 1 (two signature workers, mining off) starts afterwards and has never seen them, so it checks their
    # signatures in its worker pool ahead of validation while it syncs.
    senders = 120
    cluster = Cluster.create(tmp_path, 3, params={"block_interval_s": 0.5}, hashrate_shares=[1, 0, 0],
                             load_accounts=senders, finality_threshold=3)
    try:
        cluster.nodes[0].extra_args = ["--no-mining"]
        cluster.nodes[1].extra_args = ["--no-mining", "--workers", "2"]
        cluster.start([0, 2])
        recipient = cluster.load_keys[0].address
        for sender in range(1, senders):
            send(cluster, 0, sender, recipient, 1, 0)
        miner = cluster.nodes[0].client()
        miner.set_mining(True)
        wait_until(lambda: miner.status()["mempool_size"] == 0 and int(miner.status()["height"]) >= 1, 60,
                   "node 0 to mine the transactions")
        miner.set_mining(False)
        blocks = miner.blocks(1, 100)
        assert max(len(b["txs"]) for b in blocks) >= 64  # at least one block takes the worker path
        head = miner.status()["head"]
        cluster.start([1])
        follower = cluster.nodes[1].client()
        wait_until(lambda: follower.status()["head"] == head, 60, "node 1 to sync")
        preverified = [line for line in follower.metrics_text().splitlines()
                       if line.startswith("chainlab_signatures_preverified_total ")]
        assert preverified and float(preverified[0].split()[1]) >= 64
        assert follower.block(head)["hash"] == head
    finally:
        cluster.stop()


def test_partition_minority_pauses_majority_continues_and_all_converge(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3, finality_threshold=3,
                             params={"block_interval_s": 0.5, "heartbeat_interval_s": 0.25,
                                     "heartbeat_timeout_multiple": 4.0},
                             hashrate_hps=3000)
    try:
        cluster.start()
        cluster.wait_connected(2)
        wait_until(lambda: min(cluster.heights()) >= 2, 60, "blocks everywhere")
        a, b, c = cluster.nodes
        ids = [n.node_id for n in cluster.nodes]
        a.client().set_faults({"blocked_peers": [ids[1], ids[2]]})
        b.client().set_faults({"blocked_peers": [ids[0]]})
        c.client().set_faults({"blocked_peers": [ids[0]]})
        wait_until(lambda: a.client().status()["engine"]["mining"] is False, 20, "A to pause mining")
        engine = a.client().status()["engine"]
        assert engine["reachable_share"] <= 0.5
        paused_final = final_hashes(cluster, 0)
        heights_bc = [int(n.client().status()["height"]) for n in (b, c)]
        wait_until(lambda: all(int(n.client().status()["height"]) >= h + 4 for n, h in zip((b, c), heights_bc,
                                                                                           strict=True)),
                   60, "B and C to keep mining")
        assert b.client().status()["engine"]["mining"] is True
        # Heal: everyone converges on B and C's chain and no final block was reverted anywhere.
        for node in cluster.nodes:
            node.client().set_faults({})
        wait_until(lambda: len({n.client().status()["head"] for n in cluster.nodes}) == 1
                   or len({n.client().block(min(cluster.heights()))["hash"] for n in cluster.nodes}) == 1,
                   60, "convergence after heal")
        after = final_hashes(cluster, 0)
        for height, block_hash in paused_final.items():
            assert after.get(height, block_hash) == block_hash
        for node in cluster.nodes:
            assert node.client().status()["safety_alarms"] == 0
    finally:
        cluster.stop()


def test_primary_backup_finalizes_and_stalls_visibly_without_its_primary(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3, consensus="primary-backup",
                             params={"block_interval_s": 0.3, "acks_required": 2})
    try:
        cluster.start()
        cluster.wait_connected(2)
        tx_hash = send(cluster, 1, 0, cluster.load_keys[4].address, 77, 0)
        wait_until(lambda: all(n.client().tx_status(tx_hash)["status"] == "final" for n in cluster.nodes), 30,
                   "the transaction to be final everywhere")
        backup = cluster.nodes[1].client()
        assert backup.status()["engine"]["role"] == "backup"
        cluster.nodes[0].kill()
        time.sleep(0.3 * 3 + 1.5)
        height = int(backup.status()["height"])
        time.sleep(1.0)
        status = backup.status()
        assert int(status["height"]) == height  # nothing new without the primary
        assert status["engine"]["primary_reachable"] is False and status["engine"]["stalled"] is True
    finally:
        cluster.stop()
