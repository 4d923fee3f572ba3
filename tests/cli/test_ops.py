"""The operator conveniences against a real node: `chainlab devnet --mine-on-demand --json` in a child process
(RPC on a free port, read from its JSON start-up line), then `mine`, `tx show`, `mempool`, `events`, `node peers`
and their bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.devnet import DEV_SECRET_FILE
from tests.cli.helpers import Invoke, assert_ok, assert_one_line_error, assert_usage_error, ok_json

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Devnet:
    """A running devnet: its start-up line, data dir and child process."""

    started: dict[str, object]
    directory: Path
    process: subprocess.Popen[str]

    @property
    def url(self) -> str:
        return str(self.started["rpc_url"])

    def env(self) -> dict[str, str | None]:
        """Environment for commands aimed at this devnet: its URL and its admin token."""
        config = (self.directory / "config.toml").read_text(encoding="utf-8")
        token = next(line.split('"')[1] for line in config.splitlines() if line.startswith("admin_token"))
        return {"CHAINLAB_NODE": self.url, "CHAINLAB_ADMIN_TOKEN": token}


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    directory = tmp_path_factory.mktemp("devnet") / "dn"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "devnet", "--dir", str(directory), "--rpc-port", "0",
         "--mine-on-demand", "--json"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        line = ""
        while not line and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()  # the node prints its start-up line within seconds
        started = json.loads(line)
        yield Devnet(started=started, directory=directory, process=process)
    finally:
        _stop(process)


def test_devnet_json_start_up_line(devnet: Devnet) -> None:
    started = devnet.started
    assert started["event"] == "started" and started["chain_id"] == "chainlab-devnet"
    assert started["datadir"] == str(devnet.directory) and str(started["p2p_url"]).startswith("ws://127.0.0.1:")
    assert devnet.url.startswith("http://127.0.0.1:") and started["pid"] == devnet.process.pid


def test_devnet_on_a_busy_port_is_one_line_and_prints_no_url(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "cli.main", "devnet", "--dir", str(tmp_path / "dn"),
                                 "--rpc-port", str(port)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=START_TIMEOUT_S)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "address already in use" in errors[0] and f"--rpc-port (now {port})" in errors[0]
    assert "devnet in" not in result.stderr and f":{port}/explorer" not in result.stderr


def test_mine_on_demand_makes_exactly_n_valid_blocks(devnet: Devnet, invoke: Invoke, wallet_dir: Path) -> None:
    env = devnet.env()
    before = ok_json(invoke("chain", "status", "--json", env=env))["height"]
    time.sleep(0.5)
    assert ok_json(invoke("chain", "status", "--json", env=env))["height"] == before  # it mines nothing alone
    hashes = ok_json(invoke("mine", "3", "--json", env=env))["blocks"]
    assert len(hashes) == 3 == len(set(hashes))
    status = ok_json(invoke("chain", "status", "--json", env=env))
    assert status["height"] == before + 3 and status["head"] == hashes[-1]
    for offset, block_hash in enumerate(hashes, start=1):
        block = ok_json(invoke("chain", "block", block_hash, "--json", env=env))
        assert block["height"] == before + offset and block["on_best_chain"]
    # --to pays another address: a wallet name works too.
    assert_ok(invoke("wallet", "new", "miner"))
    result = invoke("mine", "1", "--to", "miner", env=env)
    assert_ok(result)
    mined = ok_json(invoke("chain", "block", result.stdout.strip(), "--json", env=env))
    assert mined["proposer"] == invoke("wallet", "address", "miner").stdout.strip()


def test_mine_bad_inputs(devnet: Devnet, invoke: Invoke) -> None:
    env = devnet.env()
    assert_usage_error(invoke("mine", "0", env=env), "0 is not in the range")
    assert_usage_error(invoke("mine", "x", env=env), "is not a valid integer")
    assert_one_line_error(invoke("mine", "1", "--to", "cl123", env=env), "cl123")
    assert_one_line_error(invoke("mine", "1", env={**env, "CHAINLAB_ADMIN_TOKEN": "wrong"}), "[unauthorized]")


def test_tx_show_follows_a_transfer_from_pending_to_final(devnet: Devnet, invoke: Invoke) -> None:
    env = devnet.env()
    assert_ok(invoke("wallet", "import", "dev", "--secret-file", str(devnet.directory / DEV_SECRET_FILE)))
    assert_ok(invoke("wallet", "new", "bob"))
    sent = ok_json(invoke("tx", "send", "--from", "dev", "--to", "bob", "--amount", "7", "--json", env=env))
    pending = ok_json(invoke("tx", "show", sent["hash"], "--json", env=env))
    assert pending["status"] == "pending" and pending["confirmations"] == 0 and pending["block"] is None
    assert (pending["amount"], pending["to"], pending["nonce"]) == (7, sent["to"], sent["nonce"])
    pool = ok_json(invoke("mempool", "--json", env=env))
    assert pool["size"] >= 1 and sent["hash"] in [tx["hash"] for tx in pool["txs"]]
    text = invoke("mempool", env=env)
    assert_ok(text)
    assert text.stdout.startswith(f"{pool['size']} transaction") and sent["hash"] in text.stdout
    [block_hash] = ok_json(invoke("mine", "1", "--json", env=env))["blocks"]
    included = ok_json(invoke("tx", "show", sent["hash"], "--json", env=env))
    assert (included["status"], included["block"], included["confirmations"]) == ("included", block_hash, 1)
    assert_ok(invoke("mine", "3", env=env))
    final = invoke("tx", "show", sent["hash"], env=env)
    assert_ok(final)
    assert "status:        final" in final.stdout and "confirmations: 4" in final.stdout
    assert ok_json(invoke("mempool", "--json", env=env))["size"] == 0


def test_tx_show_bad_inputs(devnet: Devnet, invoke: Invoke) -> None:
    env = devnet.env()
    assert_one_line_error(invoke("tx", "show", "xyz", env=env), "not a transaction hash")
    assert_one_line_error(invoke("tx", "show", "ab" * 32, env=env), "does not know transaction", devnet.url)


def test_events_prints_one_line_per_event_and_says_when_the_node_ends_the_stream(devnet: Devnet,
                                                                                 invoke: Invoke) -> None:
    env = {**os.environ, **{k: v for k, v in devnet.env().items() if v is not None}}
    follower = subprocess.Popen([sys.executable, "-m", "cli.main", "events", "--json"], cwd=PROJECT_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(1.5)  # the follower subscribes
        [block_hash] = ok_json(invoke("mine", "1", "--json", env=devnet.env()))["blocks"]
        assert follower.stdout is not None
        deadline = time.monotonic() + 20
        events: list[dict[str, object]] = []
        while time.monotonic() < deadline and not any(e.get("hash") == block_hash for e in events):
            events.append(json.loads(follower.stdout.readline()))
        assert any(e["type"] == "block" and e["hash"] == block_hash for e in events)
        follower.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly
        _, stderr = follower.communicate(timeout=15)
        assert "Traceback" not in stderr and follower.returncode == 0, stderr
    finally:
        _stop(follower)


def test_node_peers_list_and_add(devnet: Devnet, invoke: Invoke) -> None:
    env = devnet.env()
    assert ok_json(invoke("node", "peers", "list", "--json", env=env)) == {"peers": []}
    listed = invoke("node", "peers", "list", env=env)
    assert_ok(listed)
    assert listed.stdout == "no connected peers\n"
    added = invoke("node", "peers", "add", "ws://127.0.0.1:9/p2p", env=env)
    assert_ok(added)
    assert added.stdout == "connecting to ws://127.0.0.1:9/p2p\n"
    assert_one_line_error(invoke("node", "peers", "add", "http://x", env=env), "[bad-peer-url]")
    no_token = {**env, "CHAINLAB_ADMIN_TOKEN": None}
    assert_one_line_error(invoke("node", "peers", "add", "ws://127.0.0.1:9/p2p", env=no_token), "[unauthorized]")
    # --datadir reads the token from the node's config.toml.
    assert_ok(invoke("node", "peers", "add", "ws://127.0.0.1:9/p2p", "--datadir", str(devnet.directory),
                     env=no_token))
    removed = invoke("node", "peers", "remove", "ws://127.0.0.1:9/p2p", env=env)
    assert_ok(removed)
    assert removed.stdout == "removed ws://127.0.0.1:9/p2p\n"
    assert_one_line_error(invoke("node", "peers", "remove", "ws://127.0.0.1:9/p2p", env=env), "[unknown-peer]")


def test_events_ends_with_a_message_when_the_node_goes_away(tmp_path: Path) -> None:
    devnet = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "devnet", "--dir", str(tmp_path / "dn"), "--rpc-port", "0",
         "--mine-on-demand", "--json"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    follower: subprocess.Popen[str] | None = None
    try:
        assert devnet.stdout is not None
        url = json.loads(devnet.stdout.readline())["rpc_url"]
        follower = subprocess.Popen([sys.executable, "-m", "cli.main", "events", "--node", url], cwd=PROJECT_ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        _stop(devnet)
        _, stderr = follower.communicate(timeout=30)
        assert follower.returncode == 1 and len(stderr.splitlines()) == 1, stderr
        assert stderr.startswith("error: ") and url in stderr
    finally:
        _stop(devnet)
        if follower is not None:
            _stop(follower)


def test_node_peers_list_and_remove_between_two_real_nodes(tmp_path: Path, invoke: Invoke) -> None:
    from testnet.cluster import Cluster

    cluster = Cluster.create(tmp_path / "net", 2, mining=False, finality_threshold=2)
    try:
        cluster.start()
        cluster.wait_connected(1)
        first, second = cluster.nodes
        listed = ok_json(invoke("node", "peers", "list", "--node", first.rpc_url, "--json"))["peers"]
        assert [row["node_id"] for row in listed] == [second.node_id]
        table = invoke("node", "peers", "list", "--node", first.rpc_url)
        assert_ok(table)
        assert table.stdout.startswith("node_id  url") and second.node_id in table.stdout
        removed = invoke("node", "peers", "remove", second.node_id, "--node", first.rpc_url,
                         "--datadir", str(first.datadir))
        assert_ok(removed)
        assert removed.stdout.startswith(f"removed {second.node_id}") and second.node_id[:16] in removed.stdout
        assert_one_line_error(invoke("node", "peers", "remove", "ab" * 33, "--node", first.rpc_url,
                                     "--datadir", str(first.datadir)), "[unknown-peer]")
    finally:
        cluster.stop()


def test_events_into_a_closed_pipe_ends_quietly(devnet: Devnet, invoke: Invoke) -> None:
    env = {**os.environ, **{k: v for k, v in devnet.env().items() if v is not None}}
    pipeline = subprocess.Popen(f"{sys.executable} -m cli.main events | head -n 1", shell=True, cwd=PROJECT_ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    try:
        time.sleep(1.5)
        for _ in range(3):  # head takes the first line and exits; the next events meet the closed pipe
            assert_ok(invoke("mine", "1", env=devnet.env()))
            time.sleep(0.3)
        stdout, stderr = pipeline.communicate(timeout=20)
        assert stdout.startswith("block height=") and len(stdout.splitlines()) == 1
        assert stderr == "", stderr
    finally:
        if pipeline.poll() is None:
            os.killpg(pipeline.pid, signal.SIGKILL)
            pipeline.wait()


def test_node_run_json_start_up_line(tmp_path: Path) -> None:
    from testnet.cluster import Cluster

    node = Cluster.create(tmp_path / "net", 1, mining=False).nodes[0]
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "node", "run", "--datadir", str(node.datadir),
                                "--json"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["event"] == "started" and started["datadir"] == str(node.datadir)
        assert str(started["rpc_url"]).startswith("http://127.0.0.1:") and started["chain_id"].startswith("chainlab-")
        assert started["pid"] == process.pid
    finally:
        _stop(process)
