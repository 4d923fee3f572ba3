"""No split at birth, on real node processes: a node with configured peers does not mine until it has reached one
and caught up (then says so), or until its grace period ends (then mines alone, with a warning). Every test
bounds its time and stops what it started (by pid)."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from pathlib import Path

import pytest

from node.config import load_config, write_config
from testnet.cluster import Cluster
from testnet.local import wait_until

pytestmark = pytest.mark.slow


def grace(cluster: Cluster, index: int, seconds: float) -> None:
    datadir = cluster.nodes[index].datadir
    config = load_config(datadir)
    write_config(datadir, replace(config, mining=replace(config.mining, startup_grace_s=seconds)))


def test_a_lone_miner_with_an_unreachable_peer_waits_out_its_grace_then_mines_alone(tmp_path: Path) -> None:
    # The only miner of its network: without the wait it would mine at once (it reaches all the hash power).
    cluster = Cluster.create(tmp_path, 1, params={"block_interval_s": 0.2}, finality_threshold=2)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = int(sock.getsockname()[1])
    try:
        grace(cluster, 0, 3.0)
        node = cluster.nodes[0]
        node.start(peers=[f"127.0.0.1:{dead}"])
        started = time.monotonic()
        while time.monotonic() - started < 2.0:
            status = node.client().status()
            assert status["engine"]["state"] == "paused-startup" and int(status["height"]) == 0, status
            time.sleep(0.2)
        wait_until(lambda: int(node.client().status()["height"]) >= 3, 30, "blocks once the grace has ended")
        assert time.monotonic() - started >= 2.5
        log = node.log_path.read_text()
        assert "WARNING" in log and "mining alone" in log and "mining waits to reach a configured peer" in log
    finally:
        cluster.stop()


def test_a_node_that_reaches_its_peer_mines_once_caught_up(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 2, params={"block_interval_s": 0.3}, hashrate_shares=[3, 1],
                             finality_threshold=3)
    try:
        grace(cluster, 1, 60.0)
        cluster.start([0])
        wait_until(lambda: int(cluster.nodes[0].client().status()["height"]) >= 5, 30, "node 0's first blocks")
        cluster.start([1])
        wait_until(lambda: "mining may start" in cluster.nodes[1].log_path.read_text(), 20, "node 1 to catch up")
        line = next(x for x in cluster.nodes[1].log_path.read_text().splitlines() if "mining may start" in x)
        assert "reached 1 peer(s) and caught up at height" in line
        height = int(line.split("caught up at height ")[1].split(":")[0])
        assert height >= 5  # it waited for the chain before mining on it
    finally:
        cluster.stop()
