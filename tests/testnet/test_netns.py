"""Network namespaces (testnet/netns.py): the `ip`/`tc` commands the builders produce, the parsers of what `ip`
prints, the one-line refusals, and (as root, where `ip netns` works) a 4-node --netns testnet partitioned and
healed through the kernel, checked, and taken down leaving no namespace, link, bridge or route behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testnet import launcher, netns, procs
from testnet.netns import Netem, NetnsPlan
from testnet.state import Faults, TestnetError, load_testnet
from tests.testnet.clitools import netns_unavailable, one_error, run, stopped_testnet

PLAN = NetnsPlan(testnet_id="abc123", subnet="10.77.0.0/24", nodes=2)


# -- names and commands (pure) --------------------------------------------------------------------------------------

def test_the_plan_names_everything_with_the_testnet_id_and_fits_linux_link_names() -> None:
    plan = NetnsPlan(testnet_id="abc123", subnet="10.77.0.0/24", nodes=64)
    assert (plan.bridge, plan.gateway) == ("cl-abc123-br", "10.77.0.1")
    assert (plan.namespace(0), plan.host_link(0), plan.ip(0)) == ("cl-abc123-node0", "cl-abc123-v0", "10.77.0.2")
    assert plan.ip(63) == "10.77.0.65"
    assert max(len(name) for name in (plan.bridge, plan.host_link(63))) <= 15  # IFNAMSIZ - 1


@pytest.mark.parametrize(("subnet", "nodes", "message"), [
    ("10.77.0.0/30", 2, "too small"),
    ("10.77.0.1/24", 2, "has host bits set"),
    ("fd00::/64", 2, "IPv4"),
    ("nonsense", 2, "IPv4"),
])
def test_a_bad_subnet_is_refused(subnet: str, nodes: int, message: str) -> None:
    with pytest.raises(TestnetError, match=message):
        NetnsPlan(testnet_id="abc123", subnet=subnet, nodes=nodes)


def test_setup_makes_a_bridge_then_a_namespace_and_veth_per_node_and_teardown_undoes_it() -> None:
    commands = netns.setup_commands(PLAN)
    assert commands[:3] == [["ip", "link", "add", "cl-abc123-br", "type", "bridge"],
                            ["ip", "addr", "add", "10.77.0.1/24", "dev", "cl-abc123-br"],
                            ["ip", "link", "set", "cl-abc123-br", "up"]]
    assert ["ip", "netns", "add", "cl-abc123-node1"] in commands
    assert ["ip", "link", "add", "cl-abc123-v1", "type", "veth", "peer", "name", "eth0", "netns",
            "cl-abc123-node1"] in commands
    assert ["ip", "link", "set", "cl-abc123-v1", "master", "cl-abc123-br", "up"] in commands
    assert ["ip", "-n", "cl-abc123-node1", "addr", "add", "10.77.0.3/24", "dev", "eth0"] in commands
    assert ["ip", "-n", "cl-abc123-node1", "link", "set", "lo", "up"] in commands
    assert netns.plan_teardown_commands(PLAN) == [
        ["ip", "netns", "del", "cl-abc123-node0"], ["ip", "netns", "del", "cl-abc123-node1"],
        ["ip", "link", "del", "cl-abc123-v0"], ["ip", "link", "del", "cl-abc123-v1"],
        ["ip", "link", "del", "cl-abc123-br"]]


def test_a_partition_replaces_the_blackhole_routes_in_the_blocking_nodes_namespace() -> None:
    assert netns.block_commands(PLAN, 0, [1]) == [
        ["ip", "-n", "cl-abc123-node0", "route", "flush", "type", "blackhole"],
        ["ip", "-n", "cl-abc123-node0", "route", "replace", "blackhole", "10.77.0.3/32"]]
    assert netns.block_commands(PLAN, 0, []) == [["ip", "-n", "cl-abc123-node0", "route", "flush", "type",
                                                  "blackhole"]]  # heal


def test_netem_shapes_peer_traffic_and_spares_the_toolkits_rpc() -> None:
    netem = Netem(delay_ms=100, jitter_ms=10, loss=0.01, duplicate=0.005, reorder=0.25, rate_kbit=1000)
    commands = netns.netem_commands(PLAN, 1, netem)
    tc = ["tc", "-n", "cl-abc123-node1"]
    assert commands == [
        [*tc, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "20"],
        [*tc, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit", "quantum",
         "1514"],
        [*tc, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "1000kbit", "ceil",
         "1000kbit", "quantum", "1514"],
        [*tc, "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip",
         "dst", "10.77.0.1/32", "flowid", "1:10"],
        [*tc, "qdisc", "add", "dev", "eth0", "parent", "1:20", "handle", "20:", "netem", "delay", "100ms", "10ms",
         "loss", "1%", "duplicate", "0.5%", "reorder", "25%"],
    ]
    assert netns.clear_netem_command(PLAN, 1) == [*tc, "qdisc", "del", "dev", "eth0", "root"]
    assert netns.netem_commands(PLAN, 1, Netem()) == []
    only_rate = netns.netem_commands(PLAN, 1, Netem(rate_kbit=500))
    assert len(only_rate) == 4 and not any("netem" in argv for argv in only_rate)  # works without sch_netem
    assert Netem.of(Faults(delay_ms=5, reorder=0.5)).arguments() == ["delay", "5ms", "reorder", "50%"]


def test_the_parsers_read_what_ip_prints() -> None:
    assert netns.parse_netns_list("cl-abc123-node1 (id: 1)\ncl-abc123-node0\n\n") == ["cl-abc123-node1",
                                                                                        "cl-abc123-node0"]
    links = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback 00:00\n"
             "5: cl-abc123-br: <BROADCAST,MULTICAST,UP> mtu 1500\n"
             "6: cl-abc123-v0@if2: <BROADCAST,MULTICAST,UP> mtu 1500 master cl-abc123-br\n")
    assert netns.parse_link_names(links) == ["lo", "cl-abc123-br", "cl-abc123-v0"]
    addresses = netns.parse_ipv4_addresses("1: lo    inet 127.0.0.1/8 scope host lo\n"
                                           "5: cl-abc123-br    inet 10.77.0.1/24 scope global cl-abc123-br\n")
    assert addresses == [("lo", "127.0.0.1/8"), ("cl-abc123-br", "10.77.0.1/24")]
    assert netns.subnet_conflicts("10.77.0.0/24", addresses) == ["cl-abc123-br 10.77.0.1/24"]
    assert netns.subnet_conflicts("10.78.0.0/24", addresses) == []


def test_doctor_groups_only_the_projects_names_by_testnet_id() -> None:
    groups = netns.group_by_testnet(["cl-abc123-node0", "other", "cl-abc123-node1", "cl-ffffff-node0"],
                                    ["lo", "cl-abc123-br", "cl-abc123-v0", "cl-nothex-br", "cl-ffffff-v9"])
    assert sorted(groups) == ["abc123", "ffffff"]
    assert groups["abc123"].namespaces == ["cl-abc123-node0", "cl-abc123-node1"]
    assert groups["abc123"].links == ["cl-abc123-br", "cl-abc123-v0"]
    assert groups["ffffff"].links == ["cl-ffffff-v9"]


# -- refusals -----------------------------------------------------------------------------------------------------

def test_netns_without_root_or_ip_is_one_line_naming_what_to_do(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, stdout, stderr = run("up", "--netns", "--nodes", "2", "--dir", str(tmp_path / "t"))
    assert code == 1 and stdout == "" and "--netns needs root" in one_error(stderr) and "sudo" in stderr
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "ip" else real_which(name))
    code, _, stderr = run("up", "--netns", "--nodes", "2", "--dir", str(tmp_path / "t"))
    assert code == 1 and "apt-get install iproute2" in one_error(stderr)
    assert not (tmp_path / "t").exists()
    code, _, stderr = run("up", "--subnet", "10.9.0.0/24", "--dir", str(tmp_path / "t"))
    assert code == 1 and "--subnet goes with --netns" in one_error(stderr)


# -- a real --netns testnet -----------------------------------------------------------------------------------------

def _host_names() -> tuple[str, str]:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return namespaces, links


def _routes(namespace: str) -> str:
    return subprocess.run(["ip", "-n", namespace, "route", "show", "type", "blackhole"], capture_output=True,
                          text=True, check=True).stdout


def _dials(namespace: str, p2p_url: str) -> bool:
    """A TCP connection from inside `namespace` to the node at `p2p_url` is accepted."""
    host, port = p2p_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=1).close()"
    result = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", probe], capture_output=True,
                            check=False, timeout=10)
    return result.returncode == 0


def test_a_netns_testnet_is_partitioned_and_healed_by_the_kernel_and_leaves_nothing(tmp_path: Path) -> None:
    reason = netns_unavailable()
    if reason:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    started = time.monotonic()
    directory = tmp_path / "t"
    testnet_id = ""
    try:
        code, _, stderr = run("up", "--netns", "--nodes", "4", "--consensus", "pow", "--dir", str(directory),
                              "--subnet", "10.231.7.0/24", "--genesis-param", "block_interval_s=1",
                              "--load-accounts", "16")
        assert code == 0, stderr
        testnet = load_testnet(directory)
        testnet_id = testnet.netns_id
        plan = launcher.netns_plan(testnet)
        assert plan is not None
        assert [record.rpc_url.split(":")[1] for record in testnet.nodes] == [
            "//10.231.7.2", "//10.231.7.3", "//10.231.7.4", "//10.231.7.5"]
        assert all(record.p2p_url.startswith(f"ws://{plan.ip(record.index)}:") for record in testnet.nodes)
        namespaces, links = _host_names()
        assert all(plan.namespace(i) in namespaces for i in range(4)) and plan.bridge in links

        code, _, stderr = run("partition", "0,1", "2,3", "--dir", str(directory))
        assert code == 0, stderr
        assert _routes(plan.namespace(0)).split() == ["blackhole", "10.231.7.4", "blackhole", "10.231.7.5"]
        assert _routes(plan.namespace(3)).split() == ["blackhole", "10.231.7.2", "blackhole", "10.231.7.3"]
        assert _dials(plan.namespace(0), testnet.nodes[1].p2p_url)
        assert not _dials(plan.namespace(0), testnet.nodes[2].p2p_url)  # the kernel drops it, not the node
        code, _, stderr = run("netem", "--rate-kbit", "4000", "--dir", str(directory))  # no sch_netem needed
        assert code == 0, stderr
        classes = subprocess.run(["tc", "-n", plan.namespace(1), "class", "show", "dev", "eth0"],
                                 capture_output=True, text=True, check=True).stdout
        assert "rate 4Mbit" in classes
        time.sleep(3)
        code, _, stderr = run("heal", "--dir", str(directory))
        assert code == 0, stderr
        assert all(_routes(plan.namespace(i)) == "" for i in range(4))
        qdiscs = subprocess.run(["tc", "-n", plan.namespace(1), "qdisc", "show", "dev", "eth0"],
                                capture_output=True, text=True, check=True).stdout
        assert "htb" not in qdiscs
        code, stdout, stderr = run("check", "--dir", str(directory), "--converge-timeout-s", "20")
        assert code == 0, stdout + stderr

        code, _, stderr = run("down", "--dir", str(directory))
        assert code == 0, stderr
        namespaces, links = _host_names()
        assert f"cl-{testnet_id}" not in namespaces + links
        assert not (netns.REGISTRY_DIR / testnet_id).exists()
        assert time.monotonic() - started < 40
    finally:
        if directory.joinpath("testnet.json").exists():
            for record in load_testnet(directory).nodes:
                if record.pid and procs.owned(record.pid, record.datadir):
                    procs.kill_group(record.pid)
        if testnet_id:
            for group in netns.survey().values():
                if group.testnet_id == testnet_id:
                    netns.remove_group(group)


def test_a_killed_launchers_namespaces_are_listed_and_removed_by_doctor(tmp_path: Path) -> None:
    reason = netns_unavailable()
    if reason:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    directory = tmp_path / "t"
    launcher_process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "testnet", "up", "--netns", "--nodes", "2", "--foreground", "--no-web",
         "--dir", str(directory), "--subnet", "10.231.8.0/24", "--load-accounts", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    testnet_id = ""
    try:
        deadline = time.monotonic() + 30
        while not directory.joinpath("testnet.json").exists() and time.monotonic() < deadline:
            assert launcher_process.poll() is None, launcher_process.stderr.read() if launcher_process.stderr else ""
            time.sleep(0.1)
        testnet = load_testnet(directory)
        testnet_id = testnet.netns_id
        launcher_process.kill()  # SIGKILL: no clean-up of its own
        launcher_process.wait(10)
        for record in testnet.nodes:  # they go with it (parent-death signal), their workers just after
            assert record.pid is not None and procs.wait_gone(record.pid, 10)
        deadline = time.monotonic() + 10
        while netns.survey()[testnet_id].pids and time.monotonic() < deadline:
            time.sleep(0.1)
        code, stdout, _ = run("doctor")
        assert code == 0 and f"cl-{testnet_id} (testnet {directory}): leftover; 2 namespaces" in stdout
        code, stdout, stderr = run("doctor", "--fix")
        assert code == 0 and f"cl-{testnet_id} (testnet {directory}): removed" in stdout, stderr
        namespaces, links = _host_names()
        assert f"cl-{testnet_id}" not in namespaces + links
        code, _, stderr = run("down", "--dir", str(directory))  # nothing left to do, and no error for it
        assert code == 0, stderr
    finally:
        if launcher_process.poll() is None:
            launcher_process.kill()
            launcher_process.wait(10)
        if launcher_process.stderr is not None:
            launcher_process.stderr.close()
        if directory.joinpath("testnet.json").exists():
            for record in load_testnet(directory).nodes:
                if record.pid and procs.owned(record.pid, record.datadir):
                    procs.kill_group(record.pid)
        if testnet_id:
            for group in netns.survey().values():
                if group.testnet_id == testnet_id:
                    netns.remove_group(group)


def test_reorder_and_rate_need_a_netns_testnet(tmp_path: Path) -> None:
    stopped_testnet(tmp_path, count=2)
    code, _, stderr = run("netem", "--delay-ms", "10", "--reorder", "0.1", "--dir", str(tmp_path))
    assert code == 1 and "need the kernel's netem" in one_error(stderr)
    code, _, stderr = run("netem", "--rate-kbit", "100", "--dir", str(tmp_path))
    assert code == 1 and "testnet up --netns" in one_error(stderr)


NETNS_SCENARIO = """
name = "netns-isolate"
[network]
nodes = 3
netns = true
subnet = "10.231.11.0/24"
load_accounts = 4
[network.params]
block_interval_s = 0.5
[[timeline]]
at_s = 1
action = "partition"
shape = "isolate:2"
[[timeline]]
after_s = 2
action = "heal"
[end]
wait = ["converged"]
timeout_s = 20
[checks]
converge_timeout_s = 10
"""


@pytest.mark.long
def test_a_scenario_with_netns_true_runs_in_namespaces_and_leaves_nothing(tmp_path: Path) -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    manifest = tmp_path / "m.toml"
    manifest.write_text(NETNS_SCENARIO)
    directory = tmp_path / "run"
    code, stdout, stderr = run("run", str(manifest), "--dir", str(directory), "--seed", "1")
    assert code == 0, stdout + stderr
    testnet = load_testnet(directory)
    assert testnet.netns_id and all(record.rpc_url.startswith("http://10.231.11.") for record in testnet.nodes)
    partition = next(json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()
                     if json.loads(line)["action"] == "partition")
    assert partition["network"]["blocked"]["node2"] == ["node0", "node1"]
    namespaces, links = _host_names()
    assert f"cl-{testnet.netns_id}" not in namespaces + links
