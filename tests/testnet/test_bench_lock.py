"""`chainlab bench lock` end to end: a real Raft network under a short closed-loop lock load, checked after."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.bench import command, format_lock_report


@pytest.mark.slow
@pytest.mark.long  # a real network and a closed loop (~10 s)
def test_a_short_lock_bench_grants_writes_and_passes_the_locks_check() -> None:
    outcome = CliRunner().invoke(command, ["lock", "--nodes", "2", "--clients", "4", "--locks", "2",
                                           "--lease-blocks", "200", "--writes-per-lease", "2", "--duration", "2",
                                           "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert report["nodes"] == 2 and report["clients"] == 4 and report["locks"] == 2
    assert report["lock_ops"] > 0 and report["grants"] > 0
    assert report["lock_ops_per_s"] == pytest.approx(report["lock_ops"] / report["duration_s"], rel=0.01)
    assert 0 < report["acquire_p50_ms"] <= report["acquire_p99_ms"] <= report["acquire_max_ms"] < 30_000
    assert report["outcomes"]["lock-acquire ok"] > 0 and report["outcomes"]["kv-put ok"] > 0
    assert report["check"]["ok"] and "no violation" in report["check"]["detail"]
    assert report["check"]["operations"] >= report["lock_ops"]
    lines = format_lock_report(report)
    assert lines[-1].startswith("locks check: ok") and "acquire to granted" in lines[2]


def test_bad_options_are_one_line_errors() -> None:
    outcome = CliRunner().invoke(command, ["lock", "--clients", "0"])
    assert outcome.exit_code == 2 and "--clients" in outcome.output and "Traceback" not in outcome.output
