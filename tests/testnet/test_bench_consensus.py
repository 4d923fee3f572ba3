"""`chainlab bench consensus` end to end: a real 2-node network under a short closed-loop load."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner

from chain.genesis import Genesis
from cli.bench import command, format_consensus_report
from testnet.bench_consensus import FinalWatcher, TransferLoad, bench_genesis, comparison_params
from testnet.cluster import Cluster
from testnet.local import LocalNode
from tests.conftest import key


@pytest.mark.slow
def test_a_short_bench_commits_transfers_and_reports_sane_percentiles() -> None:
    outcome = CliRunner().invoke(command, ["consensus", "--consensus", "primary-backup", "--nodes", "2",
                                           "--clients", "4", "--duration", "3", "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert report["consensus"] == "primary-backup" and report["nodes"] == 2 and report["clients"] == 4
    assert report["committed_tx"] > 0
    assert report["committed_tx_per_s"] == pytest.approx(report["committed_tx"] / report["duration_s"], rel=0.01)
    assert 0 < report["commit_p50_ms"] <= report["commit_p99_ms"] <= report["commit_max_ms"] < 30_000
    assert report["blocks"] > 0
    assert report["genesis_params"]["acks_required"] == 1
    assert report["machine"]["cpu_count"] >= 1 and report["date"]
    assert report["nodes_cpu"]["cpu_s"] > 0 and report["nodes_cpu"]["cpu_per_commit_us"] > 0


@pytest.mark.slow
@pytest.mark.long  # two bench runs back to back (~14 s)
def test_compare_with_another_engine_runs_it_on_the_same_load_and_reports_the_ratio() -> None:
    outcome = CliRunner().invoke(command, ["consensus", "--consensus", "pbft", "--nodes", "2", "--clients", "4",
                                           "--duration", "2", "--json", "--compare", "raft",
                                           "--genesis-param", "view_change_timeout_s=2"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    compare = report["compare"]
    assert report["consensus"] == "pbft" and compare["consensus"] == "raft" and compare["system"] == "chainlab"
    assert compare["nodes"] == 2 and compare["clients"] == 4 and compare["writes"] > 0
    assert report["committed_tx"] > 0
    assert compare["ratio_tx_per_s"] == pytest.approx(report["committed_tx_per_s"] / compare["writes_per_s"],
                                                      rel=0.01)
    # pbft's own parameter stays with pbft; raft runs at its own bench defaults.
    assert compare["params_not_taken"] == ["view_change_timeout_s"]
    assert compare["genesis_params"]["block_interval_s"] == 0.01 and "view_change_timeout_s" not in compare[
        "genesis_params"]
    assert "failover" not in report


def test_a_comparison_takes_the_chain_parameters_and_leaves_the_other_engines() -> None:
    given = {"block_interval_s": 0.05, "view_change_timeout_s": 2.0, "election_timeout_s": 0.5,
             "finality_threshold": 3}
    assert comparison_params("raft", given) == ({"block_interval_s": 0.05, "election_timeout_s": 0.5,
                                                  "finality_threshold": 3}, ["view_change_timeout_s"])
    assert comparison_params("pbft", given)[1] == ["election_timeout_s"]


def test_the_human_table_has_a_row_and_a_ratio_for_the_compared_engine() -> None:
    report = {"consensus": "pbft", "nodes": 4, "clients": 64, "duration_s": 20.0,
              "genesis_params": {"block_interval_s": 0.01}, "committed_tx": 20_000, "committed_tx_per_s": 1000.0,
              "commit_p50_ms": 60.0, "commit_p99_ms": 100.0, "commit_max_ms": 150.0, "blocks": 500, "errors": {},
              "client": {"client_cpu_share": 0.05, "client_cpu_per_op_us": 60.0},
              "nodes_cpu": {"cpu_share": 1.5, "cpu_per_commit_us": 1500.0},
              "machine": {"cpu_count": 2, "cpu_model": "test CPU"}, "date": "2026-12-06T20:00:00+00:00",
              "compare": {"system": "chainlab", "consensus": "raft", "version": "chainlab raft",
                          "writes_per_s": 1600.0, "p50_ms": 40.0, "p99_ms": 90.0, "max_ms": 120.0, "errors": {},
                          "genesis_params": {"block_interval_s": 0.01}, "ratio_tx_per_s": 0.625}}
    lines = format_consensus_report(report)
    assert any(line.startswith("chainlab pbft ") and "1000.0" in line for line in lines)
    assert any(line.startswith("chainlab raft ") and "1600.0" in line for line in lines)
    assert any(line.startswith("pbft/raft: 0.625 of raft's commits/s") for line in lines)


def test_the_bench_block_interval_suits_the_engine_unless_given() -> None:
    assert bench_genesis("raft", 3, {})[1]["block_interval_s"] == 0.01
    assert bench_genesis("pbft", 4, {})[1]["block_interval_s"] == 0.02
    assert bench_genesis("primary-backup", 3, {})[1]["block_interval_s"] == 0.1
    assert bench_genesis("raft", 3, {"block_interval_s": 0.05})[1]["block_interval_s"] == 0.05


def test_an_unknown_genesis_parameter_is_a_one_line_error() -> None:
    outcome = CliRunner().invoke(command, ["consensus", "--consensus", "round-robin", "--nodes", "1",
                                           "--genesis-param", "nonsense=1"])
    assert outcome.exit_code != 0
    assert outcome.output.startswith("error: ") and "nonsense" in outcome.output
    assert "Traceback" not in outcome.output


def test_a_node_that_answers_wait_final_settles_the_transfer_without_the_event_stream(tmp_path: Path) -> None:
    """The long-poll API (`POST /v1/transactions?wait=final`) is taken at its word; 202 falls back to the
    watcher, whose commit-timeout is the only way out when no final block ever shows up."""
    answers: list[tuple[int, dict[str, Any]]] = [
        (200, {"hash": "h", "height": 7, "block_hash": "b", "status": "final"}),
        (422, {"error": {"code": "insufficient-funds", "message": "no"}}),
    ]
    seen: list[str] = []

    async def submit(request: web.Request) -> web.Response:
        seen.append(request.query.get("wait", ""))
        status, body = answers.pop(0)
        return web.json_response(body, status=status)

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/v1/transactions", submit)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        node = LocalNode(name="node0", datadir=tmp_path, log_path=tmp_path / "log",
                         info={"rpc_url": f"http://127.0.0.1:{port}"})
        cluster = Cluster(root=tmp_path, genesis=Genesis(chain_id="bench-test", consensus="round-robin",
                                                         validators={key(0).address: 1}),
                          nodes=[node], keys=[key(0)], load_keys=[key(1)])
        async with aiohttp.ClientSession() as session:
            watcher = FinalWatcher(cluster.nodes, [session])
            load = TransferLoad(cluster, [session], watcher, clients=1)
            assert await load(0) is None
            assert load.answered_final == 1 and load.clients[0].nonce == 1
            assert await load(0) == "insufficient-funds"
            assert load.clients[0].nonce == 1 and not watcher.waiters
        await runner.cleanup()

    asyncio.run(scenario())
    assert seen == ["final", "final"]
