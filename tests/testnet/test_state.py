"""testnet.json and events.jsonl (testnet/state.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testnet.state import (
    Faults,
    NodeRecord,
    Testnet,
    TestnetError,
    append_event,
    load_testnet,
    read_events,
    save_testnet,
)


def make(tmp_path: Path) -> Testnet:
    nodes = [NodeRecord(index=i, name=f"node{i}", datadir=str(tmp_path / f"node{i}"), log=str(tmp_path / f"n{i}.log"),
                        admin_token="t", node_id=f"id{i}", state="running") for i in range(3)]
    return Testnet(dir=str(tmp_path), seed="s", chain_id="c", genesis="g", consensus="pow", topology="line",
                   edges=[[0, 1], [1, 2]], nodes=nodes, load_accounts=8, block_interval_s=1.0, finality_threshold=3)


def test_round_trip_and_node_lookup(tmp_path: Path) -> None:
    testnet = make(tmp_path)
    testnet.nodes[1].faults = Faults(blocked=["node2"], delay_ms=50.0)
    save_testnet(testnet)
    loaded = load_testnet(tmp_path)
    assert loaded.to_json() == testnet.to_json()
    assert loaded.node("node1").faults.netem() == {"delay_ms": 50.0}
    assert loaded.node(2).name == "node2" and loaded.node("0").name == "node0"
    with pytest.raises(TestnetError, match=r"no node 'node9'.*node0, node1, node2"):
        loaded.node("node9")


def test_unreadable_records_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(TestnetError, match="not a testnet directory"):
        load_testnet(tmp_path / "nothing")
    (tmp_path / "testnet.json").write_text("{")
    with pytest.raises(TestnetError, match="not JSON"):
        load_testnet(tmp_path)
    (tmp_path / "testnet.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(TestnetError, match="version-1"):
        load_testnet(tmp_path)
    data = make(tmp_path).to_json()
    data["nodes"][0]["state"] = "sleepy"
    (tmp_path / "testnet.json").write_text(json.dumps(data))
    with pytest.raises(TestnetError, match="bad node state"):
        load_testnet(tmp_path)


def test_events_record_the_network_state_after_each_action(tmp_path: Path) -> None:
    testnet = make(tmp_path)
    testnet.nodes[0].faults.blocked = ["node2"]
    testnet.nodes[2].faults.blocked = ["node0"]
    testnet.nodes[1].state = "paused"
    append_event(testnet, "partition", nodes=["node0", "node2"], groups=[[0, 1], [2]])
    with (tmp_path / "events.jsonl").open("a") as events_file:
        events_file.write('{"torn')
    events = read_events(tmp_path)
    assert len(events) == 1
    network = events[0]["network"]
    assert network["running"] == ["node0", "node2"] and network["paused"] == ["node1"]
    assert network["blocked"] == {"node0": ["node2"], "node2": ["node0"]}
    assert events[0]["detail"] == {"groups": [[0, 1], [2]]} and events[0]["time"].endswith("Z")


def test_the_record_holds_admin_tokens_so_only_its_owner_reads_it(tmp_path: Path) -> None:
    save_testnet(make(tmp_path))
    assert (tmp_path / "testnet.json").stat().st_mode & 0o777 == 0o600
