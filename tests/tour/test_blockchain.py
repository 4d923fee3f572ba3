"""The blockchain demonstration: one real short testnet through the CLI (about 13 s), and the checks on recorded
observations (data/blockchain-run.json, one real `observe_blockchain` run, fast) with each behaviour switched off."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from testnet import procs
from tour.demos.blockchain import judge

RECORDED = Path(__file__).with_name("data") / "blockchain-run.json"


@pytest.fixture
def observed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORDED.read_text(encoding="utf-8"))
    return copy.deepcopy(data)


@pytest.mark.long  # the same real run is in test_cli_tour's `--all --fast` test, whose `cleanup` check is the demo's
def test_real_run_passes_and_leaves_no_process(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["tour", "run", "blockchain", "--fast", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ok"], document["checks"]
    assert "/explorer/" in result.stderr  # the URL is printed while the testnet runs
    assert (tmp_path / "blockchain" / "heights.svg").exists()
    testnet = json.loads(next(tmp_path.glob("blockchain-run-*/testnet/testnet.json")).read_text())
    assert not any(procs.alive(node.get("pid")) for node in testnet["nodes"])


def test_recorded_run_passes(observed: dict[str, Any]) -> None:
    outcome = judge(observed)
    assert outcome.ok, outcome.checks
    assert {check.name for check in outcome.checks} == {"mining", "gossip", "sync", "finality", "cleanup"}


def test_sync_fails_when_the_late_node_never_catches_up(observed: dict[str, Any]) -> None:
    observed["late"].update(caught_up=False, catch_up_s=None)
    assert judge(observed).failed_checks() == ["sync"]


def test_sync_shows_nothing_when_the_late_node_was_not_behind(observed: dict[str, Any]) -> None:
    observed["late"]["behind"] = 0
    assert judge(observed).failed_checks() == ["sync"]


def test_gossip_and_finality_fail_when_a_node_holds_other_final_blocks(observed: dict[str, Any]) -> None:
    observed["nodes"]["node1"]["chain"][0]["hash"] = "00" * 32
    assert judge(observed).failed_checks() == ["gossip", "finality"]


def test_finality_fails_when_a_final_height_goes_back(observed: dict[str, Any]) -> None:
    sample = next(s for s in reversed(observed["samples"]) if s.get("node0") and s["node0"]["final"] > 0)
    observed["samples"].append({**sample, "t_s": sample["t_s"] + 1, "node0": {**sample["node0"], "final": 0}})
    assert judge(observed).failed_checks() == ["finality"]


def test_mining_fails_when_one_node_mined_every_block(observed: dict[str, Any]) -> None:
    for view in observed["nodes"].values():
        for block in view["chain"]:
            block["proposer"] = observed["nodes"]["node0"]["address"]
    assert judge(observed).failed_checks() == ["mining"]


def test_cleanup_fails_when_a_process_was_left(observed: dict[str, Any]) -> None:
    observed["left"] = [12345]
    assert judge(observed).failed_checks() == ["cleanup"]


def test_a_run_that_did_not_complete_fails(observed: dict[str, Any]) -> None:
    observed.update(error="testnet did not come up: port in use", nodes={}, late=None)
    assert judge(observed).failed_checks() == ["testnet"]


def _processes_naming(directory: Path) -> list[int]:
    """Live processes whose command line names `directory` (the nodes name their data directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(directory) in cmdline and procs.alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_ctrl_c_while_the_late_node_restarts_leaves_no_process(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Between the late node's launch and its first answer its pid was not recorded yet: a Ctrl-C then left it running.
    from testnet import local, tourreal

    monkeypatch.setattr(tourreal, "MINE_S", {True: 0.0, False: 0.0})
    monkeypatch.setattr(tourreal, "LEAD_BLOCKS", 0)
    started = local.LocalNode.wait_started
    waited: list[str] = []

    def interrupted_on_restart(self: local.LocalNode, wait_s: float = 30.0) -> None:
        waited.append(self.name)
        if len(waited) > tourreal.NODES:  # the nodes of `up` come up; the late node's restart is interrupted
            raise KeyboardInterrupt
        started(self, wait_s)

    monkeypatch.setattr(local.LocalNode, "wait_started", interrupted_on_restart)
    try:
        with pytest.raises(KeyboardInterrupt):
            tourreal.observe_blockchain(tmp_path / "testnet", seed=1, fast=True, progress=lambda line: None,
                                        on_explorer=lambda url: None)
        assert waited[-1] == f"node{tourreal.LATE}"
        assert _processes_naming(tmp_path) == []
    finally:
        for pid in _processes_naming(tmp_path):  # what a failure left: this test started it
            procs.terminate(pid, 5.0)


def test_the_run_settles_until_the_final_blocks_come_from_two_miners(monkeypatch: pytest.MonkeyPatch) -> None:
    # A --fast run ended with its three final blocks all node1's and `mining` failed on a chance: the settle phase
    # now also waits for a second miner among the final blocks (bounded). No process here: the RPC answers are faked.
    from types import SimpleNamespace

    from testnet import tourreal
    from testnet.state import NodeRecord

    nodes = [NodeRecord(index=i, name=f"node{i}", state="running") for i in range(tourreal.NODES)]
    miners_seen = iter([1, 1, 1, 2, 2])
    asked: list[int] = []

    def final_miners(record: NodeRecord) -> int:
        asked.append(record.index)
        return next(miners_seen)

    monkeypatch.setattr(tourreal, "MINE_S", {True: 0.0, False: 0.0})
    monkeypatch.setattr(tourreal, "SETTLE_S", {True: 0.0, False: 0.0})
    monkeypatch.setattr(tourreal, "LEAD_BLOCKS", 0)
    monkeypatch.setattr(tourreal.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(tourreal, "_height", lambda record, field="height": 5 if field == "final_height" else 0)
    monkeypatch.setattr(tourreal, "_sample", lambda testnet, started, samples: None)
    monkeypatch.setattr(tourreal.launcher, "stop_nodes", lambda records, timeout_s: [])
    monkeypatch.setattr(tourreal.launcher, "start_node", lambda testnet, record: None)
    monkeypatch.setattr(tourreal, "_wait_caught_up", lambda record, target, bound_s: 0.1)
    monkeypatch.setattr(tourreal, "_final_view", lambda testnet: {})
    monkeypatch.setattr(tourreal, "_final_miners", final_miners)
    observed: dict[str, Any] = {"samples": []}
    tourreal._observe(SimpleNamespace(nodes=nodes), True, lambda line: None, 0.0, observed)  # type: ignore[arg-type]
    assert len(asked) == 4  # asked until the fourth answer named a second miner
