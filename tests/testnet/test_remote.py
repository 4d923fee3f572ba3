"""Remote nodes (testnet/remote.py): the admin token file, a hand-written testnet.json, the one-line refusals of
actions that need a local process, `down` forgetting an attached testnet, and `testnet attach` against a network
started separately: status, partition and heal, load and check through the attached directory."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from node.client import RpcClient
from testnet import launcher, procs
from testnet.remote import read_admin_tokens
from testnet.state import STATE_FILE, TestnetError, load_testnet
from tests.testnet.clitools import one_error, run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the admin token file -------------------------------------------------------------------------------------------

def test_one_token_is_shared_and_name_token_lines_are_per_node(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.write_text("# the cluster's token\n s3cret \n")
    assert read_admin_tokens(shared, ["node0", "node1"]) == {"node0": "s3cret", "node1": "s3cret"}
    per_node = tmp_path / "per-node"
    per_node.write_text("node0 a\n\nnode1 b\n")
    assert read_admin_tokens(per_node, ["node0", "node1"]) == {"node0": "a", "node1": "b"}


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("node0 a b\n", "line 1 is not `NAME TOKEN`"),
    ("node0 a\n", "no token for node1"),
    ("node0 a\nnode1 b\nnode7 c\n", "unknown node node7"),
])
def test_a_bad_token_file_says_what_is_wrong(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "tokens"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TestnetError, match=message):
        read_admin_tokens(path, ["node0", "node1"])


def test_an_unreadable_token_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TestnetError, match="cannot read it"):
        read_admin_tokens(tmp_path, ["node0"])  # a directory
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TestnetError, match="cannot read it"):
        read_admin_tokens(binary, ["node0"])


# -- a hand-written record ------------------------------------------------------------------------------------------

def hand_written(directory: Path, consensus: str = "pow") -> Path:
    """The smallest testnet.json of remote nodes that docs/TESTNET.md shows (ids given: no RPC needed here)."""
    directory.mkdir(parents=True, exist_ok=True)
    nodes = [{"name": f"n{i}", "rpc_url": f"http://127.0.0.1:{free_port()}", "admin_token": "t", "remote": True,
              "node_id": f"{i:02x}" * 33, "p2p_url": f"ws://127.0.0.1:{free_port()}/p2p"}
             for i in range(3)]
    record = {"version": 1, "chain_id": "c", "genesis": "ab" * 32, "consensus": consensus,
              "block_interval_s": 1.0, "finality_threshold": 3, "nodes": nodes}
    (directory / STATE_FILE).write_text(json.dumps(record))
    return directory


def test_a_hand_written_record_gets_indices_and_a_full_mesh(tmp_path: Path) -> None:
    testnet = load_testnet(hand_written(tmp_path))
    assert [n.index for n in testnet.nodes] == [0, 1, 2] and all(n.remote for n in testnet.nodes)
    assert testnet.edges == [[0, 1], [0, 2], [1, 2]] and testnet.load_accounts == 0 and testnet.seed == ""
    assert testnet.node("n1").pid is None and testnet.node("n1").datadir == ""
    assert testnet.node("n1").state == "running"  # a hand-written remote node without a state runs


@pytest.mark.parametrize(("change", "message"), [
    ({"pid": 42}, "is remote but has a pid or a datadir"),
    ({"rpc_url": ""}, "has no rpc_url"),
    ({"remote": False}, r"has no datadir \(say \"remote\": true"),
])
def test_a_remote_entry_that_contradicts_itself_is_refused(tmp_path: Path, change: dict[str, object],
                                                           message: str) -> None:
    hand_written(tmp_path)
    record = json.loads((tmp_path / STATE_FILE).read_text())
    record["nodes"][1].update(change)
    (tmp_path / STATE_FILE).write_text(json.dumps(record))
    with pytest.raises(TestnetError, match=message):
        load_testnet(tmp_path)


@pytest.mark.parametrize("args", [["kill", "n1"], ["stop", "1"], ["start", "n1"], ["restart", "n1"],
                                  ["restart", "n1", "--hard"], ["pause", "n1"], ["resume", "n1"], ["logs", "n1"]])
def test_local_process_actions_on_a_remote_node_are_one_line_errors(tmp_path: Path, args: list[str]) -> None:
    directory = hand_written(tmp_path)
    code, _, stderr = run(*args, "--dir", str(directory))
    line = one_error(stderr)
    assert code == 1 and "remote node n1 (http://127.0.0.1:" in line, line
    assert f"{args[0]} needs" in line


def test_twins_of_a_remote_validator_are_refused(tmp_path: Path) -> None:
    directory = hand_written(tmp_path, consensus="pbft")
    code, _, stderr = run("byzantine", "n0", "--behaviour", "twins", "--dir", str(directory))
    assert code == 1 and "needs a process this machine started; remote node n0" in one_error(stderr)


def test_load_without_load_accounts_says_how_to_get_them(tmp_path: Path) -> None:
    directory = hand_written(tmp_path)
    code, _, stderr = run("load", "--dir", str(directory), "--tps", "1", "--duration", "1")
    assert code == 1 and "no load accounts: attach it with --seed S" in one_error(stderr)


def test_down_forgets_an_attached_testnet_without_touching_its_nodes(tmp_path: Path) -> None:
    directory = hand_written(tmp_path)  # its URLs answer nothing: down must not try to reach them
    code, stdout, stderr = run("down", "--dir", str(directory))
    assert code == 0, stderr
    assert stdout.splitlines() == [f"n{i}: forgotten (remote: not touched)" for i in range(3)]
    assert "forgot the attached testnet" in stderr
    assert not (directory / STATE_FILE).exists() and (directory / "events.jsonl").exists()


def test_attach_to_an_unreachable_url_is_one_line(tmp_path: Path) -> None:
    tokens = tmp_path / "token"
    tokens.write_text("t\n")
    url = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = run("attach", "--dir", str(tmp_path / "a"), "--rpc", url, "--admin-token-file", str(tokens))
    assert code == 1 and f"node0 ({url}) does not answer /v1/status" in one_error(stderr)
    assert not (tmp_path / "a").exists()


# -- against a network started separately ------------------------------------------------------------------------

def wait_for(condition: str, predicate: object, timeout_s: float = 8.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, condition
        time.sleep(0.2)


@pytest.mark.slow
def test_attach_drives_a_network_started_separately(tmp_path: Path) -> None:
    started, other = tmp_path / "started", tmp_path / "other"
    attached = tmp_path / "attached"
    pids: list[int] = []
    try:
        launcher.up(launcher.UpOptions(nodes=2, directory=started, seed="att", load_accounts=8,
                                       genesis_params={"block_interval_s": 0.5, "finality_threshold": 2}))
        launcher.up(launcher.UpOptions(nodes=1, directory=other, seed="other", load_accounts=1,
                                       genesis_params={"block_interval_s": 0.5}))
        nodes = load_testnet(started).nodes
        stranger = load_testnet(other).nodes[0]
        pids = [n.pid for n in [*nodes, stranger] if n.pid]
        tokens = tmp_path / "tokens"
        tokens.write_text("".join(f"node{n.index} {n.admin_token}\n" for n in nodes))
        urls = ",".join(n.rpc_url for n in nodes)

        code, _, stderr = run("attach", "--dir", str(tmp_path / "mixed"), "--rpc",
                              f"{nodes[0].rpc_url},{stranger.rpc_url}", "--admin-token-file", str(tokens))
        assert code == 1 and "the nodes are not one network" in one_error(stderr)
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-token\n")
        code, _, stderr = run("attach", "--dir", str(tmp_path / "w"), "--rpc", urls, "--admin-token-file", str(wrong))
        assert code == 1 and "refuses the admin token: unauthorized" in one_error(stderr)

        code, stdout, stderr = run("attach", "--dir", str(attached), "--rpc", urls, "--admin-token-file",
                                   str(tokens), "--seed", "att")
        assert code == 0 and stdout.strip() == str(attached.resolve()), stderr
        record = load_testnet(attached)
        assert record.load_accounts == 8 and record.edges == [[0, 1]]
        assert record.genesis == load_testnet(started).genesis and (attached / "genesis.toml").is_file()
        assert [n.node_id for n in record.nodes] == [n.node_id for n in nodes]

        code, stdout, _ = run("status", "--dir", str(attached), "--json")
        view = json.loads(stdout)
        assert code == 0 and all(n["remote"] and n["status"]["peers"] == 1 for n in view["nodes"])

        assert run("partition", "0", "1", "--dir", str(attached))[0] == 0
        client = RpcClient(nodes[0].rpc_url, timeout_s=3)
        wait_for("the partition cut node0 off", lambda: client.status()["peers"] == 0)
        assert run("heal", "--dir", str(attached))[0] == 0
        wait_for("node0 reconnected after heal", lambda: client.status()["peers"] == 1)

        code, _, stderr = run("kill", "node1", "--dir", str(attached))
        assert code == 1 and "kill needs a process this machine started; remote node node1" in one_error(stderr)
        assert procs.owned(nodes[1].pid, nodes[1].datadir)

        code, stdout, stderr = run("load", "--dir", str(attached), "--tps", "5", "--duration", "1.5",
                                   "--settle-timeout-s", "15", "--json")
        assert code == 0, stderr
        assert json.loads(stdout)["final"] == json.loads(stdout)["accepted"] > 0
        code, stdout, stderr = run("check", "--dir", str(attached), "--converge-timeout-s", "10", "--json")
        result = json.loads(stdout)
        assert code == 0 and result["ok"], result["checks"]
        assert result["sources"] == {"node0": "rpc", "node1": "rpc"}

        code, _, stderr = run("trace", "--dir", str(attached))  # these nodes do not trace: said per node
        assert code == 1 and "node0: remote node does not trace: this node does not trace" in one_error(stderr)

        assert run("down", "--dir", str(attached))[0] == 0
        assert all(procs.owned(n.pid, n.datadir) for n in nodes)  # forgotten, not stopped

        # The same network as a hand-written record: ids and genesis are asked of the nodes when needed.
        by_hand = tmp_path / "by-hand"
        by_hand.mkdir()
        (by_hand / STATE_FILE).write_text(json.dumps({
            "version": 1, "chain_id": record.chain_id, "genesis": record.genesis, "consensus": "pow",
            "block_interval_s": 0.5, "finality_threshold": 2,
            "nodes": [{"name": f"h{n.index}", "rpc_url": n.rpc_url, "admin_token": n.admin_token, "remote": True}
                      for n in nodes]}))
        assert run("partition", "h0", "h1", "--dir", str(by_hand))[0] == 0
        wait_for("the hand-written partition cut node0 off", lambda: client.status()["peers"] == 0)
        assert [n.node_id for n in load_testnet(by_hand).nodes] == [n.node_id for n in nodes]
        assert run("heal", "--dir", str(by_hand))[0] == 0
        wait_for("node0 reconnected after the hand-written heal", lambda: client.status()["peers"] == 1)
        code, stdout, stderr = run("check", "--dir", str(by_hand), "--only", "ledger-invariants", "--json")
        assert code == 0 and json.loads(stdout)["ok"], stdout + stderr
        assert (by_hand / "genesis.toml").is_file()
    finally:
        for directory in (started, other):
            if (directory / STATE_FILE).exists():
                assert launcher.down(directory, timeout_s=5)["ok"]
    for pid in pids:
        assert not procs.alive(pid)
