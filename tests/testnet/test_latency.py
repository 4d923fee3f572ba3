"""Latency matrices (testnet/latency.py): regions and per-pair delays from TOML, every mistake one line; the
kernel's per-destination classes for them (testnet/netns.py); the nodes' own per-peer delay without --netns, on a
real 3-node testnet (the ping RTT between regions grows by the matrix's two one-way delays); and a kernel without
sch_netem refusing the matrix in one line with nothing left."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from node.client import RpcClient
from testnet import launcher, netns
from testnet.latency import delays_by_index, load_matrix, parse_matrix
from testnet.netns import Netem, NetnsPlan
from testnet.state import TestnetError, load_testnet
from tests.testnet.clitools import kernel_has_netem, netns_unavailable, one_error, run, stopped_testnet

NAMES = ["node0", "node1", "node2"]
GOOD = {"regions": {"node0": "eu", "1": "eu", "node2": "us"}, "latency_ms": {"eu-us": 80, "eu-eu": 2}}


def test_regions_give_every_pair_its_one_way_delay_both_ways() -> None:
    matrix = parse_matrix(GOOD, NAMES)
    assert matrix.regions == {"node0": "eu", "node1": "eu", "node2": "us"}
    assert matrix.delay_ms("node0", "node2") == matrix.delay_ms("node2", "node1") == 80.0
    assert matrix.delay_ms("node0", "node1") == 2.0
    assert matrix.delays() == {"node0": {"node1": 2.0, "node2": 80.0}, "node1": {"node0": 2.0, "node2": 80.0},
                               "node2": {"node0": 80.0, "node1": 80.0}}
    same_region = parse_matrix({"regions": {"node0": "eu", "node1": "us", "node2": "us"},
                                "latency_ms": {"us-eu": 40}}, NAMES)
    assert same_region.delays()["node1"] == {"node0": 40.0}  # within a region: 0 unless given
    assert delays_by_index(same_region.delays(), NAMES) == {0: {1: 40.0, 2: 40.0}, 1: {0: 40.0}, 2: {0: 40.0}}


@pytest.mark.parametrize(("doc", "message"), [
    ({"regions": {"node0": "eu"}, "latency_ms": {}}, "no region for node1, node2"),
    ({**GOOD, "regions": {**GOOD["regions"], "node7": "eu"}}, "regions.node7: not a node of this testnet"),
    ({**GOOD, "regions": {**GOOD["regions"], "0": "us"}}, "regions.0: node0 is given a region twice"),
    ({**GOOD, "regions": {"node0": "e-u", "node1": "eu", "node2": "us"}}, "no '-'"),
    ({**GOOD, "latency_ms": {"eu-eu": 1}}, "no delay for eu-us"),
    ({**GOOD, "latency_ms": {"eu-us": 80, "us-eu": 90}}, "gives the pair eu-us a second time"),
    ({**GOOD, "latency_ms": {"eu-us": -1}}, "must be a number of ms in [0, 60000]"),
    ({**GOOD, "latency_ms": {"eu-us": True}}, "must be a number of ms"),
    ({**GOOD, "latency_ms": {"eu-us": 80, "eu-asia": 10}}, "no node is in region 'asia'"),
    ({**GOOD, "latency_ms": {"eu_us": 80}}, "want \"regionA-regionB\""),
    ({"regions": GOOD["regions"]}, "[latency_ms] is missing"),
    ({"latency_ms": {}}, "[regions] is missing or empty"),
    ({**GOOD, "region": {}}, "unknown key 'region'"),
])
def test_a_bad_matrix_is_one_typed_error_naming_the_key(doc: dict[str, object], message: str) -> None:
    with pytest.raises(TestnetError) as caught:
        parse_matrix(doc, NAMES)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_matrix_file_that_is_missing_or_not_toml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TestnetError, match="cannot read it"):
        load_matrix(tmp_path / "none.toml", NAMES)
    (tmp_path / "bad.toml").write_text("[regions\n")
    with pytest.raises(TestnetError, match="not valid TOML"):
        load_matrix(tmp_path / "bad.toml", NAMES)


def test_the_kernel_gets_a_class_per_destination_with_its_own_netem_delay() -> None:
    plan = NetnsPlan(testnet_id="abc123", subnet="10.77.0.0/24", nodes=3)
    tc = ["tc", "-n", "cl-abc123-node0"]
    commands = netns.netem_commands(plan, 0, Netem(delay_ms=10, loss=0.01, rate_kbit=3000), {2: 80.0, 1: 0.0})
    assert commands == [
        [*tc, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "20"],
        [*tc, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit", "quantum",
         "1514"],
        # one parent holds the link's rate; the default class and each destination's class borrow from it
        [*tc, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "3000kbit", "ceil",
         "3000kbit", "quantum", "1514"],
        [*tc, "class", "add", "dev", "eth0", "parent", "1:1", "classid", "1:20", "htb", "rate", "1500kbit", "ceil",
         "3000kbit", "quantum", "1514"],
        [*tc, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip",
         "dst", "10.77.0.1/32", "flowid", "1:10"],
        [*tc, "qdisc", "add", "dev", "eth0", "parent", "1:20", "handle", "20:", "netem", "delay", "10ms", "loss",
         "1%"],
        [*tc, "class", "add", "dev", "eth0", "parent", "1:1", "classid", "1:102", "htb", "rate", "1500kbit", "ceil",
         "3000kbit", "quantum", "1514"],
        [*tc, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "2", "u32", "match", "ip",
         "dst", "10.77.0.4/32", "flowid", "1:102"],  # node2's address
        [*tc, "qdisc", "add", "dev", "eth0", "parent", "1:102", "handle", "102:", "netem", "delay", "90ms", "loss",
         "1%"],  # the matrix's 80 ms plus the node's own 10 ms
    ]
    only_matrix = netns.netem_commands(plan, 2, Netem(), {0: 80.0})
    assert only_matrix[-1] == ["tc", "-n", "cl-abc123-node2", "qdisc", "add", "dev", "eth0", "parent", "1:100",
                               "handle", "100:", "netem", "delay", "80ms"]
    assert not any(argv[-2:] == ["20:", "netem"] for argv in only_matrix)  # the default class has no netem
    assert netns.netem_commands(plan, 2, Netem(), {0: 0.0}) == []  # a zero delay is no delay


def test_a_matrix_for_other_nodes_or_bad_arguments_is_refused(tmp_path: Path) -> None:
    stopped_testnet(tmp_path, count=2)
    matrix = tmp_path / "m.toml"
    matrix.write_text('[regions]\nnode0 = "eu"\nnode1 = "us"\nnode2 = "us"\n[latency_ms]\n"eu-us" = 50\n')
    code, _, stderr = run("latency", str(matrix), "--dir", str(tmp_path))
    assert code == 1 and "regions.node2: not a node of this testnet" in one_error(stderr)
    code, _, stderr = run("latency", "--dir", str(tmp_path))
    assert code == 1 and "give a matrix file or --clear" in one_error(stderr)
    code, _, stderr = run("up", "--nodes", "3", "--latency-matrix", str(tmp_path / "none.toml"), "--dir",
                          str(tmp_path / "new"))
    assert code == 1 and "cannot read it" in one_error(stderr) and not (tmp_path / "new").exists()


def test_a_stopped_node_is_given_its_row_when_it_starts(tmp_path: Path) -> None:
    stopped_testnet(tmp_path, count=2)
    matrix = tmp_path / "m.toml"
    matrix.write_text('[regions]\n0 = "eu"\n1 = "us"\n[latency_ms]\n"eu-us" = 50\n')
    code, stdout, stderr = run("latency", str(matrix), "--dir", str(tmp_path), "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["detail"]["latency_ms"] == {"eu-us": 50.0}
    testnet = load_testnet(tmp_path)
    assert testnet.latency_ms == {"node0": {"node1": 50.0}, "node1": {"node0": 50.0}}
    assert [record.faults_applied for record in testnet.nodes] == [False, False]  # sent when they start
    code, _, _ = run("heal", "--dir", str(tmp_path))
    assert code == 0 and load_testnet(tmp_path).latency_ms  # geography, not a fault: heal keeps it
    assert run("latency", "--clear", "--dir", str(tmp_path))[0] == 0
    assert load_testnet(tmp_path).latency_ms == {} and load_testnet(tmp_path).regions == {}


def _rtt_ms(client: RpcClient, node_id: str) -> float | None:
    for peer in client.peers():
        if peer["node_id"] == node_id and peer["rtt_ms"] is not None:
            return float(peer["rtt_ms"])
    return None


@pytest.mark.slow
def test_without_netns_the_nodes_delay_frames_to_the_other_region(tmp_path: Path) -> None:
    matrix = tmp_path / "m.toml"
    matrix.write_text('[regions]\nnode0 = "eu"\nnode1 = "eu"\nnode2 = "us"\n[latency_ms]\n"eu-us" = 150\n')
    directory = tmp_path / "t"
    try:
        code, _, stderr = run("up", "--nodes", "3", "--dir", str(directory), "--load-accounts", "2",
                              "--genesis-param", "block_interval_s=0.5", "--latency-matrix", str(matrix))
        assert code == 0, stderr
        assert "latency matrix: 2 regions (eu-us 150 ms)" in stderr
        nodes = load_testnet(directory).nodes
        client = RpcClient(nodes[0].rpc_url, timeout_s=3)
        deadline = time.monotonic() + 10
        far = near = None
        while time.monotonic() < deadline:  # pings every heartbeat; the RTT is the last one's
            far, near = _rtt_ms(client, nodes[2].node_id), _rtt_ms(client, nodes[1].node_id)
            if far is not None and far >= 300 and near is not None:
                break
            time.sleep(0.2)
        assert far is not None and 300 <= far < 600, far  # ping delayed 150 ms one way, pong 150 ms the other
        assert near is not None and near < 100, near
    finally:
        if (directory / "testnet.json").exists():
            assert launcher.down(directory, timeout_s=5)["ok"]


def test_a_kernel_without_netem_refuses_the_matrix_and_leaves_nothing(tmp_path: Path) -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    if kernel_has_netem():
        pytest.skip("this kernel has sch_netem: the refusal cannot be shown here")
    matrix = tmp_path / "m.toml"
    matrix.write_text('[regions]\nnode0 = "eu"\nnode1 = "us"\n[latency_ms]\n"eu-us" = 40\n')
    directory = tmp_path / "t"
    code, _, stderr = run("up", "--netns", "--nodes", "2", "--dir", str(directory), "--subnet", "10.231.9.0/24",
                          "--load-accounts", "2", "--latency-matrix", str(matrix))
    assert code == 1
    line = one_error("\n".join(line for line in stderr.splitlines() if line.startswith("error: ")))
    assert "no netem qdisc (sch_netem)" in line and "taken down" in line
    testnet = load_testnet(directory)
    assert all(record.state != "running" for record in testnet.nodes)
    assert testnet.netns_id not in netns.survey()
