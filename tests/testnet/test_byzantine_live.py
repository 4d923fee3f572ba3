"""Byzantine validators in a real 4-node PBFT testnet: a behaviour switched on, left out of the checks, given back
after a restart; a twin that joins the network with the same validator key and goes down with the testnet."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from node.client import RpcClient
from testnet import launcher, procs
from testnet.audit import CheckOptions, run_checks
from testnet.nemesis import Nemesis
from testnet.state import load_testnet

pytestmark = pytest.mark.slow


def engine_status(directory: Path, name: str) -> dict[str, object]:
    record = load_testnet(directory).by_name(name)
    engine: dict[str, object] = RpcClient(record.rpc_url, timeout_s=5).status()["engine"]
    return engine


def wait_height(directory: Path, name: str, height: int, timeout_s: float = 15.0) -> None:
    record = load_testnet(directory).by_name(name)
    deadline = time.monotonic() + timeout_s
    while int(RpcClient(record.rpc_url, timeout_s=5).status()["final_height"]) < height:
        assert time.monotonic() < deadline, f"{name} did not reach final height {height} in {timeout_s} s"
        time.sleep(0.2)


def test_behaviour_twin_exclusion_restart_and_down(tmp_path: Path) -> None:
    directory = tmp_path / "t"
    options = launcher.UpOptions(nodes=4, consensus="pbft", directory=directory, seed="byz",
                                 genesis_params={"block_interval_s": 0.5}, load_accounts=8)
    pids: list[int] = []
    try:
        launcher.up(options)
        nemesis = Nemesis(directory)
        event = nemesis.byzantine("node0", "equivocate")
        assert event["detail"]["answer"] == "equivocate"
        assert engine_status(directory, "node0")["byzantine"] == "equivocate"

        nemesis.restart("node0")  # it comes back with its behaviour
        assert engine_status(directory, "node0")["byzantine"] == "equivocate"

        event = nemesis.byzantine("node1", "twins")
        twin = load_testnet(directory).by_name("node1-twin")
        assert twin.twin_of == "node1" and twin.address == load_testnet(directory).by_name("node1").address
        assert twin.node_id != load_testnet(directory).by_name("node1").node_id  # its own P2P identity
        start = int(RpcClient(load_testnet(directory).by_name("node2").rpc_url).status()["final_height"])
        wait_height(directory, "node1-twin", start + 3)  # synced, and following the network's commits

        result = run_checks(directory, CheckOptions(converge_timeout_s=10))
        assert result["excluded"] == {"node0": "behaviour equivocate", "node1": "has a twin (node1-twin)",
                                      "node1-twin": "twin of node1"}
        assert set(result["sources"]) == {"node2", "node3"}
        assert result["ok"], result["checks"]
        assert any(c["name"] == "certificates" and c["ok"] for c in result["checks"])
        pids = [r.pid for r in load_testnet(directory).nodes if r.pid]
        assert len(pids) == 5
    finally:
        if (directory / "testnet.json").exists():
            down = launcher.down(directory, timeout_s=5)
            assert down["ok"], down
    for pid in pids:
        assert not procs.alive(pid) and procs.group_members(pid) == []
