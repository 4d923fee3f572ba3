"""`chainlab bench consensus` end to end: a real 2-node network under a short closed-loop load."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.bench import command


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


def test_an_unknown_genesis_parameter_is_a_one_line_error() -> None:
    outcome = CliRunner().invoke(command, ["consensus", "--consensus", "round-robin", "--nodes", "1",
                                           "--genesis-param", "nonsense=1"])
    assert outcome.exit_code != 0
    assert outcome.output.startswith("error: ") and "nonsense" in outcome.output
    assert "Traceback" not in outcome.output
