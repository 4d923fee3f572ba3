"""CAP side by side (testnet/cap.py): the per-side table from a hand-made history, and `chainlab testnet cap` run
as a user runs it, with the outcomes the issue expects: Raft's minority refuses writes and linearizable reads with
no-quorum and its linearizable reads stay linearizable; PoW's minority answers stale reads that the checker
catches; final reads are monotonic in every session. Nothing is left running."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testnet import launcher, procs
from testnet.cap import cap_rows, partition_window
from testnet.state import load_testnet
from tests.testnet.test_consistency import History

ROOT = Path(__file__).resolve().parents[2]


def test_partition_window_and_groups() -> None:
    events = [{"time_ns": 10, "action": "up"},
              {"time_ns": 20, "action": "partition", "detail": {"groups": [[0, 1, 2], [3, 4]]}},
              {"time_ns": 30, "action": "heal"}]
    names = [f"node{i}" for i in range(5)]
    assert partition_window(events, names) == (20, 30, [["node0", "node1", "node2"], ["node3", "node4"]])
    assert partition_window(events[:2], names) == (20, 20, [["node0", "node1", "node2"], ["node3", "node4"]])
    assert partition_window(events[:1], names) is None


def test_rows_count_each_side_inside_the_window() -> None:
    h = History()
    tx = h.send("client-0", "a", 0)  # node0, majority
    h.final(tx, 1)
    value = {"from": "b", "to": "sink", "amount": 1, "fee": 1, "nonce": 0}
    h.add("invoke", "client-1", "transfer", "tx-b", value, node="node3")
    h.add("fail", "client-1", "transfer", "tx-b", value, node="node3", error="no-quorum")
    h.read("client-3", "a", 0, level="latest", node="node3")  # stale: minority
    h.read("client-2", "a", 1, level="latest", node="node1")
    h.add("invoke", "client-3", "read", "a", {"level": "linearizable"}, node="node3")
    h.add("fail", "client-3", "read", "a", None, node="node3", error="no-quorum")
    window = (0, h.ops[-1].time_ns)
    majority, minority = cap_rows("raft", h.ops, window, [["node3", "node4"], ["node0", "node1", "node2"]])
    assert (majority.side, minority.side) == ("majority", "minority")
    assert (majority.writes_accepted, majority.writes_sent) == (1, 1)
    assert (minority.writes_accepted, minority.writes_sent, dict(minority.write_errors)) == (0, 1, {"no-quorum": 1})
    assert minority.reads["latest"]["stale"] == 1 and minority.reads["latest"]["linearizable"] == "not-linearizable"
    assert majority.reads["latest"]["stale"] == 0 and majority.reads["latest"]["linearizable"] == "linearizable"
    assert minority.reads["linearizable"] == {"sent": 1, "answered": 0, "errors": {"no-quorum": 1}, "stale": 0,
                                              "max_staleness": 0, "linearizable": "no reads", "reads_checked": 0}
    outside = cap_rows("raft", h.ops, (10**18, 10**18 + 1), [["node0", "node1", "node2"], ["node3", "node4"]])
    assert outside[0].writes_sent == 0 and outside[1].reads["latest"]["sent"] == 0


@pytest.mark.slow
@pytest.mark.long  # ~45 s of two real testnets; the CAP rows and windows are tested above without processes
def test_cap_command_shows_raft_consistent_and_pow_available(tmp_path: Path) -> None:
    directory = tmp_path / "cap"
    try:
        done = subprocess.run([sys.executable, "-m", "cli.main", "testnet", "cap", "--dir", str(directory),
                               "--json"], capture_output=True, text=True, timeout=240, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)
        rows = {(row["engine"], row["side"]): row for row in result["rows"]}
        raft_minority, raft_majority = rows[("raft", "minority")], rows[("raft", "majority")]
        pow_minority = rows[("pow", "minority")]
        # Raft: the minority refuses (consistent, not available) ...
        assert raft_minority["writes"]["errors"].get("no-quorum", 0) > 0
        assert raft_minority["writes"]["accepted"] < raft_minority["writes"]["sent"]
        linearizable = raft_minority["reads"]["linearizable"]
        assert linearizable["answered"] < linearizable["sent"] and linearizable["errors"].get("no-quorum", 0) > 0
        # ... and every linearizable read either side served is linearizable
        assert raft_majority["reads"]["linearizable"]["linearizable"] == "linearizable"
        assert raft_minority["reads"]["linearizable"]["linearizable"] in ("linearizable", "no reads")
        assert raft_majority["reads"]["linearizable"]["answered"] > 0
        # PoW: the minority answers (available) with stale data, and the checker finds the violation
        assert pow_minority["writes"]["accepted"] == pow_minority["writes"]["sent"] > 0
        latest = pow_minority["reads"]["latest"]
        assert latest["answered"] == latest["sent"] > 0 and latest["stale"] > 0
        assert latest["linearizable"] == "not-linearizable"
        assert result["final_monotonic"] == {"raft": "holds", "pow": "holds"}
        assert all(run["ok"] for run in result["runs"].values()), result["runs"]
        for engine in ("raft", "pow"):
            page = (directory / engine / "consistency.html").read_text()
            assert re.search(r'class="op [^"]*violation', page) and 'class="lane"' in page
            for node in load_testnet(directory / engine).nodes:
                assert node.pid is not None and not procs.alive(node.pid) and procs.group_members(node.pid) == []
    finally:
        for engine in ("raft", "pow"):
            if (directory / engine / "testnet.json").exists():
                launcher.down(directory / engine, timeout_s=5)
