"""node/client.py against a served FakeNode, and the CLI commands built on it (`tx send`, `wallet balance`)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chain import crypto
from cli.keystore import Keystore
from cli.main import main
from node.client import RpcClient, RpcError, RpcUnavailable, normalize_base_url
from tests.chain.helpers import CHAIN_ID, transfer
from tests.cli.helpers import FAST_SCRYPT_N, PASSPHRASE, assert_ok, assert_one_line_error, ok_json
from tests.conftest import key
from tests.node import ADMIN_TOKEN, BALANCE, MIN_FEE, FakeNode, ServerThread

ALICE = crypto.address_to_text(key(0).address)
BOB = crypto.address_to_text(key(7).address)


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


@pytest.fixture
def served(node: FakeNode) -> Iterator[ServerThread]:
    server = ServerThread(node)
    server.start()
    yield server
    server.stop()
    assert server.count_500s() == 0


@pytest.fixture
def client(served: ServerThread) -> RpcClient:
    return RpcClient(served.url, admin_token=ADMIN_TOKEN, timeout_s=5)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- RpcClient -------------------------------------------------------------------------------------------------


def test_read_routes(client: RpcClient, node: FakeNode) -> None:
    assert client.status()["chain_id"] == CHAIN_ID
    assert client.block(1)["hash"] == node.blocks[1].hash.hex()
    assert client.block(node.side.hash)["on_best_chain"] is False
    assert client.block(node.blocks[2].hash.hex(), full_txs=True)["txs"][0]["nonce"] == 1
    assert [b["height"] for b in client.blocks(1, 2)] == [1, 2]
    assert [t["status"] for t in client.tips()] == ["active", "valid-fork"]
    assert client.account(ALICE, "final")["height"] == 1
    assert client.peers() == []
    assert "chainlab_rpc_requests_total" in client.metrics_text()


def test_submit_and_follow_a_transaction(client: RpcClient, served: ServerThread) -> None:
    tx = transfer(4, 5, 10, MIN_FEE, 0)
    assert client.submit_tx(tx.encoded) == tx.hash.hex()
    assert client.tx_status(tx.hash)["status"] == "pending"
    assert client.mempool()["size"] == 1
    served.call(served.api.mine)
    assert client.tx_status(tx.hash.hex())["status"] == "included"


def test_admin_routes(client: RpcClient, node: FakeNode) -> None:
    assert client.set_mining(False) == {"mining_enabled": False, "mining": False, "reason": "admin"}
    assert client.set_faults({"loss": 0.5}) == {"loss": 0.5}
    client.connect_peer("ws://127.0.0.1:30301/p2p")
    assert node.connected_peers == ["ws://127.0.0.1:30301/p2p"] and node.faults == {"loss": 0.5}


def test_error_answers_raise_rpc_error(client: RpcClient, served: ServerThread) -> None:
    with pytest.raises(RpcError) as caught:
        client.block(99)
    assert (caught.value.code, caught.value.http_status) == ("unknown-block", 404)
    with pytest.raises(RpcError) as caught:
        client.submit_tx(transfer(4, 5, 10, MIN_FEE - 1, 0).encoded)
    assert (caught.value.code, caught.value.http_status) == ("fee-too-low", 422)
    with pytest.raises(RpcError) as caught:
        client.account(ALICE, "linearizable")
    assert caught.value.code == "unsupported-read-level"
    with pytest.raises(RpcError) as caught:
        RpcClient(served.url).set_mining(True)
    assert (caught.value.code, caught.value.http_status) == ("unauthorized", 401)
    with pytest.raises(RpcError) as caught:
        RpcClient(served.url, admin_token="wrong").connect_peer("ws://a:1")
    assert caught.value.code == "unauthorized"


def test_events_iterator(client: RpcClient, served: ServerThread, node: FakeNode) -> None:
    def mine_once_subscribed() -> None:
        for _ in range(500):
            if served.call(lambda: node.broker.subscriber_count):
                served.call(node.mine)
                return
            threading.Event().wait(0.01)

    thread = threading.Thread(target=mine_once_subscribed)
    thread.start()
    events = client.events(timeout_s=5)
    try:
        first = next(events)
    finally:
        events.close()
        thread.join(5)
    assert first["type"] == "block" and first["height"] == 4


def test_unreachable_node() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(RpcUnavailable) as caught:
        RpcClient(url, timeout_s=2).status()
    assert caught.value.url == url and "refused" in caught.value.reason


def test_a_node_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepted by the kernel, never answered
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(RpcUnavailable) as caught:
            RpcClient(url, timeout_s=0.2).status()
    assert caught.value.reason == "timed out"


def test_a_non_json_error_page_is_an_rpc_error() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(502)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"bad gateway")

        def log_message(self, *args: Any) -> None:
            pass

    proxy = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        with pytest.raises(RpcError) as caught:
            RpcClient(f"http://127.0.0.1:{proxy.server_address[1]}").status()
        assert (caught.value.code, caught.value.message, caught.value.http_status) == ("http-502", "bad gateway", 502)
    finally:
        proxy.shutdown()
        proxy.server_close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("http://127.0.0.1:8545/", "http://127.0.0.1:8545"), ("127.0.0.1:8545", "http://127.0.0.1:8545"),
     ("https://node.example", "https://node.example")],
)
def test_normalize_base_url(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("bad", ["ws://127.0.0.1:1", "http://", "http://h:port", "http://h:1/?q=1", ""])
def test_bad_base_urls(bad: str) -> None:
    with pytest.raises(ValueError):
        RpcClient(bad)


# --- CLI: wallet balance and tx send ---------------------------------------------------------------------------


@pytest.fixture
def wallet_dir(tmp_path: Path) -> Path:
    """Wallet alice holds test key 0, which the fake's genesis funds."""
    directory = tmp_path / "wallets"
    Keystore(directory, scrypt_n=int(FAST_SCRYPT_N)).create("alice", PASSPHRASE, key=key(0))
    return directory


def _cli(wallet_dir: Path, *args: str, password: str | None = PASSPHRASE) -> Result:
    env = {"CHAINLAB_WALLET_DIR": str(wallet_dir), "CHAINLAB_SCRYPT_N": FAST_SCRYPT_N, "CHAINLAB_PASSWORD": password,
           "CHAINLAB_NODE": None}
    return CliRunner(env=env).invoke(main, list(args), prog_name="chainlab")


def test_wallet_balance(wallet_dir: Path, served: ServerThread) -> None:
    result = _cli(wallet_dir, "wallet", "balance", "alice", "--node", served.url)
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["address:", ALICE]
    assert lines[1].split() == ["balance:", str(BALANCE - 150 - 2 * MIN_FEE)]
    assert "pending nonce:" in result.stdout and "height:" in result.stdout and "(latest)" in result.stdout
    final = ok_json(_cli(wallet_dir, "wallet", "balance", ALICE, "--node", served.url, "--at", "final", "--json"))
    assert final == {"address": ALICE, "at": "final", "balance": BALANCE - 100 - MIN_FEE, "nonce": 1, "height": 1}
    bob = ok_json(_cli(wallet_dir, "wallet", "balance", BOB, "--node", served.url.removeprefix("http://"), "--json"))
    assert bob["balance"] == BALANCE and bob["pending_nonce"] == 0


def test_wallet_balance_errors(wallet_dir: Path, served: ServerThread) -> None:
    unreachable = f"http://127.0.0.1:{_closed_port()}"
    assert_one_line_error(_cli(wallet_dir, "wallet", "balance", "alice", "--node", unreachable), "cannot reach")
    assert_one_line_error(_cli(wallet_dir, "wallet", "balance", "zed", "--node", served.url), "neither a wallet")
    assert_one_line_error(_cli(wallet_dir, "wallet", "balance", "alice", "--node", "ftp://x"), "--node")


def _send(wallet_dir: Path, url: str, *extra: str, amount: str = "250", password: str | None = PASSPHRASE) -> Result:
    return _cli(wallet_dir, "tx", "send", "--from", "alice", "--to", BOB, "--amount", amount, "--node", url, *extra,
                password=password)


def test_send_uses_the_nodes_chain_id_min_fee_and_pending_nonce(wallet_dir: Path, served: ServerThread) -> None:
    result = _send(wallet_dir, served.url, "--memo", "rent")
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["status:", "pending"]
    tx_hash = bytes.fromhex(lines[0].split()[1])
    tx = served.call(lambda: served.api.pool.get(tx_hash))
    assert tx is not None
    assert (tx.chain_id, tx.recipient, tx.amount, tx.fee, tx.nonce, tx.memo) == (
        CHAIN_ID, key(7).address, 250, MIN_FEE, 2, b"rent")
    second = ok_json(_send(wallet_dir, served.url, "--json", "--fee", "9"))
    assert (second["nonce"], second["fee"], second["status"], second["from"]) == (3, 9, "pending", ALICE)


def test_send_and_wait_until_final(wallet_dir: Path, node: FakeNode, served: ServerThread) -> None:
    node.auto_mine, node.finality_depth = True, 1
    view = ok_json(_send(wallet_dir, served.url, "--wait", "final", "--json"))
    assert view["status"] == "final" and view["height"] == 4 and view["index"] == 0
    assert view["block"] == served.call(lambda: node.blocks[4].hash.hex())
    result = _send(wallet_dir, served.url, "--wait", "included")
    assert_ok(result)
    assert "status: final" in result.stdout and "(height 5, index 0)" in result.stdout


def test_send_waits_with_progress_dots(wallet_dir: Path, node: FakeNode, served: ServerThread) -> None:
    def mine_later() -> None:
        threading.Event().wait(0.3)
        served.call(node.mine)

    miner = threading.Thread(target=mine_later)
    miner.start()
    result = _send(wallet_dir, served.url, "--wait", "included", "--poll-interval-s", "0.05", "--json")
    miner.join(5)
    assert ok_json(result)["status"] == "included"
    assert result.stderr.startswith(".") and result.stderr.endswith("\n")


def test_send_wait_timeout_is_one_error_after_the_dots(wallet_dir: Path, served: ServerThread) -> None:
    result = _send(wallet_dir, served.url, "--wait", "final", "--timeout-s", "0.3", "--poll-interval-s", "0.05")
    assert result.exit_code == 1 and "Traceback" not in result.output and result.stdout == ""
    progress, error = result.stderr.splitlines()
    assert set(progress) == {"."}
    assert error.startswith("error: timed out after 0.3 s") and "last status: pending" in error


def test_send_wait_fails_when_the_node_forgets_the_tx(wallet_dir: Path, node: FakeNode, served: ServerThread) -> None:
    original = node.tx_status
    node.tx_status = lambda tx_hash: original(b"\x00" * 32)  # type: ignore[method-assign]
    result = _send(wallet_dir, served.url, "--wait", "included")
    assert_one_line_error(result, "no longer knows transaction")


@pytest.mark.parametrize(
    ("extra", "amount", "needle"),
    [
        ((), str(BALANCE), "the node refused the transaction [insufficient-funds]"),
        (("--fee", "1"), "1", "[fee-too-low]"),
        (("--nonce", "0"), "1", "[nonce-too-low]"),
        (("--memo", "x" * 257), "1", "257 bytes"),
        (("--fee", str(2**64 - 1)), "1", "exceeds u64"),
    ],
)
def test_send_errors(wallet_dir: Path, served: ServerThread, extra: tuple[str, ...], amount: str, needle: str) -> None:
    assert_one_line_error(_send(wallet_dir, served.url, *extra, amount=amount), needle)


def test_send_to_an_unreachable_node_fails_before_asking_the_passphrase(wallet_dir: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    assert_one_line_error(_send(wallet_dir, url, password=None), "cannot reach the node")


def test_send_with_a_wrong_passphrase_submits_nothing(wallet_dir: Path, node: FakeNode, served: ServerThread) -> None:
    assert_one_line_error(_send(wallet_dir, served.url, password="nope"), "wrong passphrase")
    assert served.call(lambda: len(node.pool)) == 0


def test_send_reads_the_node_from_the_environment(wallet_dir: Path, served: ServerThread) -> None:
    env = {"CHAINLAB_WALLET_DIR": str(wallet_dir), "CHAINLAB_SCRYPT_N": FAST_SCRYPT_N,
           "CHAINLAB_PASSWORD": PASSPHRASE, "CHAINLAB_NODE": served.url}
    result = CliRunner(env=env).invoke(main, ["tx", "send", "--from", "alice", "--to", BOB, "--amount", "1",
                                              "--json"], prog_name="chainlab")
    assert json.loads(result.stdout)["status"] == "pending"


@pytest.mark.parametrize("args", [["tx", "send"], ["wallet", "balance"]])
def test_help_reads(wallet_dir: Path, args: list[str]) -> None:
    result = _cli(wallet_dir, *args, "--help")
    assert_ok(result)
    assert "--node" in result.stdout and "--poll-interval-s" not in result.stdout
