"""`chainlab lock` and `chainlab kv`, and the Python client's LeaseKeeper, against a real in-process node
(primary-backup with one validator: final at commit, a block every 0.1 s) running in a background thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain import crypto
from node.client import RpcClient
from node.lockclient import LeaseEvent, LeaseKeeper, LockClient, LockRefused
from tests.cli.helpers import Invoke, assert_ok, assert_one_line_error, ok_json
from tests.conftest import key
from tests.node.test_reads import running_node, scripted_engine

__all__ = ["scripted_engine"]  # autouse: registers the test engine the node runs


@pytest.fixture
def node_url(tmp_path: Path) -> Iterator[str]:
    """A node serving RPC from a background thread's event loop, stopped after the test."""
    ready: list[str] = []
    stop = threading.Event()

    async def main() -> None:
        async with running_node(tmp_path / "node") as (running, _):
            assert running.rpc is not None
            ready.append(running.rpc.url)
            while not stop.is_set():
                await asyncio.sleep(0.02)

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not ready and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready, "the node did not start"
    try:
        yield ready[0]
    finally:
        stop.set()
        thread.join(20)


@pytest.fixture
def wallets(invoke: Invoke, tmp_path: Path) -> dict[str, str]:
    """Wallets alice and bob holding funded test keys 0 and 1."""
    addresses = {}
    for name, index in (("alice", 0), ("bob", 1)):
        secret = tmp_path / f"{name}.hex"
        secret.write_text(key(index).secret.hex())
        addresses[name] = ok_json(invoke("wallet", "import", name, "--secret-file", str(secret), "--json"))["address"]
    return addresses


def test_acquire_write_and_a_stale_write_refused(invoke: Invoke, node_url: str, wallets: dict[str, str]) -> None:
    granted = ok_json(invoke("lock", "acquire", "jobs", "--lease-blocks", "5", "--from", "alice", "--node", node_url,
                             "--json"))
    token = granted["token"]
    assert granted["holder"] == wallets["alice"] and granted["expires_at"] == granted["height"] + 5
    result = invoke("kv", "put", "cfg", "v1", "--lock", "jobs", "--token", str(token), "--from", "alice",
                    "--node", node_url)
    assert_ok(result)
    assert "wrote cfg at height" in result.stdout
    got = invoke("kv", "get", "cfg", "--node", node_url)
    assert_ok(got)
    assert f"cfg = 'v1' (lock jobs, token {token}" in got.stdout
    held = invoke("lock", "acquire", "jobs", "--lease-blocks", "5", "--from", "bob", "--node", node_url)
    assert_one_line_error(held, "acquire refused [lock-held]")
    # alice's lease runs out (5 blocks at 0.1 s); bob takes the lock; alice's write with her old token is refused
    deadline = time.monotonic() + 15
    while True:
        result = invoke("lock", "acquire", "jobs", "--lease-blocks", "50", "--from", "bob", "--node", node_url,
                        "--json")
        if result.exit_code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    bob_token = ok_json(result)["token"]
    assert bob_token > token
    stale = invoke("kv", "put", "cfg", "late", "--lock", "jobs", "--token", str(token), "--from", "alice",
                   "--node", node_url)
    assert_one_line_error(stale, "write refused [stale-fencing-token]")
    status = ok_json(invoke("lock", "status", "jobs", "--node", node_url, "--json"))
    assert status["lock"]["holder"] == wallets["bob"] and status["lock"]["token"] == bob_token
    shown = invoke("lock", "status", "jobs", "--node", node_url)
    assert_ok(shown)
    assert "held" in shown.stdout and str(bob_token) in shown.stdout
    assert_ok(invoke("lock", "renew", "jobs", "--lease-blocks", "60", "--from", "bob", "--node", node_url))
    assert_ok(invoke("lock", "release", "jobs", "--from", "bob", "--node", node_url))
    assert_one_line_error(invoke("lock", "release", "jobs", "--from", "bob", "--node", node_url),
                          "release refused [lock-not-held]")


def test_bad_arguments_are_one_line_errors(invoke: Invoke, node_url: str, wallets: dict[str, str]) -> None:
    assert_one_line_error(invoke("lock", "status", "x" * 65, "--node", node_url), "lock name")
    assert_one_line_error(invoke("kv", "put", "k", "zz", "--hex", "--lock", "l", "--token", "1", "--from", "alice",
                                 "--node", node_url), "VALUE is not hex")
    assert_one_line_error(invoke("lock", "renew", "never", "--lease-blocks", "3", "--from", "alice",
                                 "--node", node_url), "renew refused [lock-not-held]: lock 'never' was never granted")
    # the same stable code as a refusal by the node, not a bare sentence
    assert_one_line_error(invoke("lock", "release", "never", "--from", "alice", "--node", node_url),
                          "release refused [lock-not-held]: lock 'never' was never granted")
    result = invoke("lock", "acquire", "jobs", "--lease-blocks", "0", "--from", "alice", "--node", node_url)
    assert result.exit_code == 2  # click's usage error


def test_the_keeper_renews_then_reports_lock_lost(node_url: str) -> None:
    client = LockClient(RpcClient(node_url), key(2))
    lease = client.acquire("keeper", 8)
    events: list[LeaseEvent] = []
    with LeaseKeeper(client, lease, events.append, poll_interval_s=0.05) as keeper:
        deadline = time.monotonic() + 15
        while not any(e.kind == "renewed" for e in events) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(e.kind == "renewed" for e in events)
        assert keeper.current.token == lease.token and keeper.current.expires_at > lease.expires_at
        # someone else's release attempt is refused; then the holder releases behind the keeper's back
        with pytest.raises(LockRefused) as refused:
            LockClient(RpcClient(node_url), key(3)).release(keeper.current)
        assert refused.value.code == "not-lock-holder"
        client.release(keeper.current)
        assert keeper.lost.wait(15), "the keeper reports the lock lost"
    lost = [e for e in events if e.kind == "lost"]
    assert len(lost) == 1 and lost[0].lease.name == "keeper" and lost[0].reason
    assert crypto.address_to_text(key(2).address) == client.address
