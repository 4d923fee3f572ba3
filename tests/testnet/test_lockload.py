"""`chainlab testnet load --workload lock` on a real 3-node Raft testnet, judged by `testnet check` (locks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chain.crypto import PrivateKey, address_to_text
from node.client import RpcClient
from testnet.state import load_testnet
from tests.testnet.clitools import one_error, run, stopped_testnet

ROOT = Path(__file__).resolve().parents[2]


def chainlab(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout_s, check=False)


@pytest.mark.slow
def test_paused_lock_clients_are_refused_and_the_locks_check_passes(tmp_path: Path) -> None:
    directory = str(tmp_path / "t")
    wallet = address_to_text(PrivateKey.from_seed(b"a wallet of the user's").address)
    up = chainlab("testnet", "up", "--dir", directory, "--nodes", "3", "--consensus", "raft", "--load-accounts", "6",
                  "--genesis-param", "block_interval_s=0.1", "--fund", f"{wallet}=777")
    try:
        assert up.returncode == 0, up.stderr
        # `up` returns once the network takes writes: a load started at once met `no-quorum` from followers that
        # had not yet heard the first leader (a user saw "errors: no-quorum 32" on a fresh testnet)
        for record in load_testnet(Path(directory)).nodes:
            assert RpcClient(record.rpc_url).status()["write_refusal"] is None, record.name
        # --fund: a wallet of the user's own holds its amount from genesis, for the lock commands
        assert RpcClient(record.rpc_url).account(wallet, "final")["balance"] == 777
        load = chainlab("testnet", "load", "--dir", directory, "--workload", "lock", "--accounts", "6", "--locks",
                        "2", "--lease-blocks", "5", "--pause-chance", "0.4", "--duration", "3", "--seed", "3",
                        "--json")
        assert load.returncode == 0, load.stderr
        summary = json.loads(load.stdout)
        assert summary["workload"] == "lock" and summary["grants"] > 2 and summary["pauses"] > 0
        assert not {"no-quorum", "no-leader"} & set(summary["errors"]), summary
        assert summary["outcomes"].get("kv-put ok", 0) > 0
        # a paused holder's late write is refused (at admission or in its block), never accepted
        late = {"stale-fencing-token", "lock-not-held", "not-lock-holder"}
        refused = sum(n for code, n in summary["refused_at_admission"].items() if code in late)
        refused += sum(n for kind, n in summary["outcomes"].items()
                       if kind.startswith("kv-put ") and kind.split(" ", 1)[1] in late)
        assert refused > 0, summary
        check = chainlab("testnet", "check", "--dir", directory, "--only", "locks")
        assert check.returncode == 0, check.stdout + check.stderr
        assert "no violation" in check.stdout and "fenced writes accepted" in check.stdout
    finally:
        chainlab("testnet", "down", "--dir", directory)


def test_the_transfer_workload_still_needs_tps_and_lock_options_are_checked(tmp_path: Path) -> None:
    stopped_testnet(tmp_path)
    code, _, stderr = run("load", "--duration", "1", "--dir", str(tmp_path))
    assert code == 1 and "--tps is required for the transfer workload" in one_error(stderr)
    code, _, stderr = run("load", "--workload", "lock", "--duration", "1", "--accounts", "9", "--dir", str(tmp_path))
    assert code == 1 and "the testnet has 8 load accounts" in one_error(stderr)
