"""Scenario manifests beyond one loopback: `[network] netns = true` and `[network.latency]` (read and checked with
the manifest; twins refused there), and runs against an attached network (`testnet run MANIFEST --dir D`, D from
`testnet attach`): steps that need a local process refused in one line before anything runs, and a short run on a
network started separately that partitions, heals, loads and checks it and leaves it running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testnet import launcher, procs
from testnet.scenario import ManifestError, check_attached, parse_manifest
from testnet.state import STATE_FILE, load_testnet
from tests.testnet.clitools import one_error, run, stopped_testnet
from tests.testnet.test_remote import hand_written

LATENCY = """
[network.latency.regions]
node0 = "eu"
node1 = "eu"
node2 = "us"
[network.latency.latency_ms]
"eu-us" = 80
"""


def test_netns_and_a_latency_matrix_are_network_keys() -> None:
    scenario = parse_manifest("[network]\nnodes = 3\nnetns = true\nsubnet = \"10.231.10.0/24\"\n" + LATENCY)
    assert scenario.network.netns and scenario.network.subnet == "10.231.10.0/24"
    assert scenario.network.latency is not None
    assert scenario.network.latency.delay_ms("node0", "node2") == 80.0


@pytest.mark.parametrize(("text", "message"), [
    ("[network]\nnodes = 3\nnetns = 1\n", "network.netns: must be true or false"),
    ("[network]\nnodes = 3\nsubnet = \"10.1.0.0/24\"\n", "network.subnet: goes with netns = true"),
    ("[network]\nnodes = 2\n" + LATENCY, "network.latency: regions.node2: not a node of this testnet"),
    ("[network]\nnodes = 3\nlatency = 5\n", "network.latency: must be a table"),
    ("[network]\nnodes = 4\nconsensus = \"pbft\"\nnetns = true\n[[timeline]]\naction = \"byzantine\"\nnode = 1\n"
     "behaviour = \"twins\"\n", "timeline[0].behaviour: twins are not supported with network.netns = true"),
])
def test_bad_netns_keys_are_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text)
    assert str(caught.value).startswith(message.split(":")[0]) and message in str(caught.value)


# -- against an attached network -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    ("[[timeline]]\naction = \"kill\"\nnode = 1\n", "timeline[0].action: kill on the attached network in"),
    ("[[timeline]]\naction = \"pause\"\nnode = 0\n", "pause on the attached network"),
    ("[[timeline]]\naction = \"random\"\ncount = 2\n", "timeline[0].faults: kill, stop, restart, pause on"),
    ("[load]\ntps = 1\nduration_s = 1\n", "load: the attached network in"),
])
def test_steps_that_need_a_local_process_are_refused_before_anything_runs(tmp_path: Path, body: str,
                                                                            message: str) -> None:
    hand_written(tmp_path / "d")
    manifest = tmp_path / "m.toml"
    manifest.write_text("[network]\nnodes = 3\n" + body)
    code, _, stderr = run("run", str(manifest), "--dir", str(tmp_path / "d"))
    assert code == 1 and message in one_error(stderr)
    assert not (tmp_path / "d" / "events.jsonl").exists()  # nothing ran


def test_an_attached_network_must_be_the_manifests_network(tmp_path: Path) -> None:
    testnet = load_testnet(hand_written(tmp_path))
    with pytest.raises(ManifestError, match=r"network.nodes: 4, but the attached network .* has 3 nodes"):
        check_attached(parse_manifest("[network]\nnodes = 4\n"), testnet)
    with pytest.raises(ManifestError, match=r"network.consensus: raft, but .* runs pow"):
        check_attached(parse_manifest("[network]\nnodes = 3\nconsensus = \"raft\"\n"), testnet)
    with pytest.raises(ManifestError, match=r"network\.netns: not on the attached network"):
        check_attached(parse_manifest("[network]\nnodes = 3\nnetns = true\n"), testnet)
    ignored = check_attached(parse_manifest("[network]\nnodes = 3\ntopology = \"ring\"\n[network.params]\n"
                                            "block_interval_s = 1.0\n"), testnet)
    assert ignored == ["network.topology", "network.params"]


def test_a_run_never_reuses_a_testnet_this_machine_started(tmp_path: Path) -> None:
    stopped_testnet(tmp_path, count=3)
    manifest = tmp_path / "m.toml"
    manifest.write_text("[network]\nnodes = 3\n")
    code, _, stderr = run("run", str(manifest), "--dir", str(tmp_path))
    assert code == 1 and "already holds a testnet this machine started" in one_error(stderr)


ATTACHED_RUN = """
name = "attached-partition"
[network]
nodes = 2
topology = "line"
[load]
tps = 5
duration_s = 3
settle_timeout_s = 15
[[timeline]]
at_s = 0.5
action = "partition"
groups = [[0], [1]]
[[timeline]]
after_s = 1
action = "heal"
[[timeline]]
wait = "converged"
timeout_s = 15
[end]
timeout_s = 20
[checks]
converge_timeout_s = 10
"""


@pytest.mark.slow
def test_a_manifest_runs_against_a_network_started_separately(tmp_path: Path) -> None:
    started, attached = tmp_path / "started", tmp_path / "attached"
    try:
        launcher.up(launcher.UpOptions(nodes=2, directory=started, seed="scn", load_accounts=4, trace=True,
                                       genesis_params={"block_interval_s": 0.5, "finality_threshold": 2}))
        nodes = load_testnet(started).nodes
        tokens = tmp_path / "tokens"
        tokens.write_text("".join(f"node{n.index} {n.admin_token}\n" for n in nodes))
        code, _, stderr = run("attach", "--dir", str(attached), "--rpc", ",".join(n.rpc_url for n in nodes),
                              "--admin-token-file", str(tokens), "--seed", "scn")
        assert code == 0, stderr
        manifest = tmp_path / "m.toml"
        manifest.write_text(ATTACHED_RUN)
        code, stdout, stderr = run("run", str(manifest), "--dir", str(attached), "--seed", "3")
        assert code == 0, stdout + stderr
        assert "ignored: network.topology" in stderr and "attached network left running" in stderr
        report = json.loads((attached / "report.json").read_text())
        assert report["ok"] and report["down"]["attached"] and list(report["checks"]) == ["rpc"]
        assert report["load"]["final"] == report["load"]["accepted"] > 0
        actions = [json.loads(line)["action"] for line in (attached / "events.jsonl").read_text().splitlines()]
        assert actions == ["attach", "partition", "heal", "heal"]  # the timeline's, then the end phase's
        assert (attached / STATE_FILE).exists()  # still attached: the run forgot nothing
        assert all(procs.owned(n.pid, n.datadir) for n in nodes)  # and stopped nothing
        assert all(not n.faults.blocked for n in load_testnet(attached).nodes)

        # Their causal traces come over RPC (GET /v1/admin/trace): nothing of theirs is on this side.
        code, stdout, stderr = run("trace", "--dir", str(attached), "--json")
        assert code == 0, stderr
        collected = json.loads(stdout)
        assert set(collected["per_node"]) == {"node0", "node1"} and collected["missing"] == {}
        merged = (attached / "trace.jsonl").read_text().splitlines()
        assert {json.loads(line)["node"] for line in merged} == {"node0", "node1"}
        assert (attached / "trace.events.jsonl").is_file()  # the run's partition and heal, for the diagram
    finally:
        if (started / STATE_FILE).exists():
            assert launcher.down(started, timeout_s=5)["ok"]
