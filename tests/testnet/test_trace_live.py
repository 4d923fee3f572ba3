"""A traced PoW testnet through a partition and heal, driven as a user drives it (docs/TRACING.md): every node
writes its trace, `testnet trace` merges them, the clocks that travelled in the stamped frames give the same
happens-before relation as the message graph, and a fork shows as concurrent mined blocks during the partition."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from random import Random

import pytest

from causality.events import parse_trace
from causality.graph import TraceGraph
from testnet import launcher, procs
from testnet.state import load_testnet
from tests.causality.test_graph import _reachable

ROOT = Path(__file__).resolve().parents[2]


def chainlab(*args: str, timeout_s: float = 60, codes: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT)
    assert done.returncode in codes, f"{args}: {done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_a_partitioned_pow_testnet_traces_its_fork(tmp_path: Path) -> None:
    directory = tmp_path / "traced"
    try:
        # Threshold 0.2: the isolated third keeps mining, so the partition forks the chain; with 2 confirmations
        # for finality both sides usually make their own blocks final, and `testnet check` catches it.
        chainlab("testnet", "up", "--nodes", "3", "--dir", str(directory), "--trace", "--seed", "traced",
                 "--genesis-param", "block_interval_s=1", "--genesis-param", "partition_threshold=0.2",
                 "--genesis-param", "finality_threshold=2")
        time.sleep(2)
        chainlab("testnet", "partition", "--dir", str(directory), "--shape", "isolate:node2")
        time.sleep(6)
        chainlab("testnet", "heal", "--dir", str(directory))
        time.sleep(3)
        verdict = json.loads(chainlab("testnet", "check", "--dir", str(directory), "--json", "--only",
                                      "final-prefix-agreement", timeout_s=90, codes=(0, 1)))
        if not verdict["ok"]:  # the trace names the two blocks, mined without knowledge of each other
            linked = verdict["trace"]["final-prefix-agreement"]
            assert linked["made"].endswith(": concurrent"), linked
            assert linked["commands"][0].startswith("chainlab testnet trace --dir")
        out = directory / "merged.jsonl"
        summary = json.loads(chainlab("testnet", "trace", "--dir", str(directory), "--out", str(out), "--json"))
        assert set(summary["per_node"]) == {"node0", "node1", "node2"} and not summary["missing"]
        events = list(parse_trace(out.read_text().splitlines(keepends=True), str(out)))
        graph = TraceGraph(events)
        summary_of = graph.summary()
        assert summary_of["unmatched_receives"] == 0 and summary_of["seq_gaps"] == 0  # each send is written first
        assert all(e.peer in ("node0", "node1", "node2") for e in events if e.kind != "internal")
        rng = Random(3)
        for source in rng.sample(range(len(graph)), 25):
            reachable = _reachable(graph, source)
            for target in rng.sample(range(len(graph)), min(len(graph), 150)):
                if target != source:
                    assert graph.happened_before(source, target) == (target in reachable), (source, target)
        partition = [e["time_ns"] for e in map(json.loads, (directory / "merged.events.jsonl").read_text()
                                               .splitlines()) if e["action"] in ("partition", "heal")]
        inside = [e for e in events if e.what == "block-mined" and partition[0] <= e.time_ns <= partition[1]]
        if any(e.node == "node2" for e in inside) and any(e.node != "node2" for e in inside):
            found = json.loads(chainlab("trace", "concurrent", str(out), "--what", "block-mined", "--json"))
            assert found["pair_count"] > 0
            assert any({a["node"], b["node"]} & {"node2"} and {a["node"], b["node"]} - {"node2"}
                       for a, b in found["pairs"])
        page = directory / "diagram.html"
        chainlab("trace", "diagram", str(out), "--out", str(page))
        assert "partition" in page.read_text()
    finally:
        if (directory / "testnet.json").exists():
            launcher.down(directory, timeout_s=5)
            for node in load_testnet(directory).nodes:
                assert node.pid is None or not procs.alive(node.pid)
