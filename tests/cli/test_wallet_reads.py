"""RpcClient's linearizable reads and commit waits, and `chainlab wallet balance --at linearizable`, against a
served FakeNode."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chain import crypto
from chain.errors import RejectError
from cli.keystore import Keystore
from cli.main import main
from node.client import RpcClient, RpcError
from tests.chain.helpers import transfer
from tests.cli.helpers import FAST_SCRYPT_N, PASSPHRASE, assert_ok, assert_one_line_error, ok_json
from tests.conftest import key
from tests.node import BALANCE, MIN_FEE, FakeNode, ServerThread

ALICE = crypto.address_to_text(key(0).address)


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
    return RpcClient(served.url, timeout_s=5)


@pytest.fixture
def wallet_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "wallets"
    Keystore(directory, scrypt_n=int(FAST_SCRYPT_N)).create("alice", PASSPHRASE, key=key(0))
    return directory


def _balance(wallet_dir: Path, url: str, *args: str) -> Result:
    env = {"CHAINLAB_WALLET_DIR": str(wallet_dir), "CHAINLAB_NODE": None}
    return CliRunner(env=env).invoke(main, ["wallet", "balance", "alice", "--node", url, *args],
                                     prog_name="chainlab")


# --- RpcClient ---------------------------------------------------------------------------------------------


def test_client_linearizable_read_and_its_refusals(client: RpcClient, served: ServerThread, node: FakeNode) -> None:
    node.read_grant = (4, 1)
    view = client.account(ALICE, "linearizable")
    assert view["read_proof"] == {"term": 4, "read_index": 1, "applied_height": 1,
                                  "block_hash": served.call(lambda: node.blocks[1].hash.hex())}
    node.read_grant = RejectError("no-quorum", "cannot reach a quorum")
    with pytest.raises(RpcError) as caught:
        client.account(ALICE, "linearizable")
    assert (caught.value.code, caught.value.http_status) == ("no-quorum", 503)


def test_client_submit_and_wait(client: RpcClient, served: ServerThread, node: FakeNode) -> None:
    tx = transfer(4, 5, 10, MIN_FEE, 0)
    miner = threading.Timer(0.3, lambda: served.call(node.mine))
    miner.start()
    answer = client.submit_tx_and_wait(tx.encoded, "included", timeout_s=5)
    miner.join(5)
    assert (answer["hash"], answer["status"], answer["height"]) == (tx.hash.hex(), "included", 4)
    late = transfer(4, 5, 10, MIN_FEE, 1)
    with pytest.raises(RpcError) as caught:
        client.submit_tx_and_wait(late.encoded, "final", timeout_s=1)
    assert (caught.value.code, caught.value.http_status) == ("wait-timeout", 504)
    assert caught.value.details == {"hash": late.hash.hex()}


def test_client_write_refusal(client: RpcClient, node: FakeNode) -> None:
    node.refusal = RejectError("no-leader", "no leader known")
    with pytest.raises(RpcError) as caught:
        client.submit_tx(transfer(4, 5, 10, MIN_FEE, 0).encoded)
    assert (caught.value.code, caught.value.http_status) == ("no-leader", 503)


# --- wallet balance --at linearizable ----------------------------------------------------------------------


def test_wallet_balance_linearizable_prints_the_read_proof(wallet_dir: Path, served: ServerThread,
                                                           node: FakeNode) -> None:
    node.read_grant = (9, 1)
    result = _balance(wallet_dir, served.url, "--at", "linearizable")
    assert_ok(result)
    rows = dict(line.split(":", 1) for line in result.stdout.splitlines())
    block_hash = served.call(lambda: node.blocks[1].hash.hex())
    assert rows["balance"].strip() == str(BALANCE - 100 - MIN_FEE)
    assert rows["height"].strip() == "1 (linearizable)"
    assert (rows["read term"].strip(), rows["read index"].strip(), rows["applied at"].strip(),
            rows["block"].strip()) == ("9", "1", "1", block_hash)
    as_json = ok_json(_balance(wallet_dir, served.url, "--at", "linearizable", "--json"))
    assert as_json["read_proof"]["block_hash"] == block_hash


@pytest.mark.parametrize(
    ("grant", "needle"),
    [
        (RejectError("no-leader", "no leader known"), "[no-leader]"),
        (RejectError("read-timeout", "no answer within 5 s"), "[read-timeout]"),
        (None, "[unsupported-read-level]"),
    ],
)
def test_wallet_balance_linearizable_errors_are_one_line(wallet_dir: Path, served: ServerThread, node: FakeNode,
                                                         grant: RejectError | None, needle: str) -> None:
    node.read_grant = grant
    assert_one_line_error(_balance(wallet_dir, served.url, "--at", "linearizable"), needle)


def test_wallet_balance_refuses_unknown_levels(wallet_dir: Path, served: ServerThread) -> None:
    result = _balance(wallet_dir, served.url, "--at", "strong")
    assert result.exit_code == 2 and "Traceback" not in result.output


# --- wallet history ---------------------------------------------------------------------------------------------


def _history(wallet_dir: Path, url: str, *args: str) -> Result:
    env = {"CHAINLAB_WALLET_DIR": str(wallet_dir), "CHAINLAB_NODE": None}
    return CliRunner(env=env).invoke(main, ["wallet", "history", "alice", "--node", url, *args],
                                     prog_name="chainlab")


def test_wallet_history_pages_newest_first_with_the_cursor(wallet_dir: Path, served: ServerThread,
                                                            node: FakeNode) -> None:
    hashes = served.call(lambda: [node.blocks[2].txs[0].hash.hex(), node.blocks[1].txs[0].hash.hex()])
    first = _history(wallet_dir, served.url, "--limit", "1")
    assert_ok(first)
    lines = first.stdout.splitlines()
    assert lines[0].split()[:2] == ["2", "sent"] and lines[0].endswith(hashes[0]) and "conf" in lines[0]
    # the next page's command, pasted as printed, asks the same node for the same page size
    assert lines[1].startswith(f"older: chainlab wallet history alice --node {served.url} --limit 1 --before ")
    second = _history(wallet_dir, served.url, "--limit", "1", "--before", lines[1].split()[-1])
    assert_ok(second)
    assert second.stdout.splitlines() == [
        f"      1  sent     {crypto.address_to_text(key(1).address)}  amount 100  fee {MIN_FEE}  final  {hashes[1]}"]
    as_json = ok_json(_history(wallet_dir, served.url, "--json"))
    assert [row["hash"] for row in as_json["txs"]] == hashes and as_json["next"] is None


def test_wallet_history_bad_cursor_is_one_line(wallet_dir: Path, served: ServerThread) -> None:
    assert_one_line_error(_history(wallet_dir, served.url, "--before", "nonsense"), "[bad-query]")
