"""`chainlab bench lock` end to end: a real Raft network under a short closed-loop lock load, checked after."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

from cli.bench import command, format_lock_report
from testnet.bench_lock import LockWatch


@pytest.mark.slow
@pytest.mark.long  # a real network and a closed loop (~10 s)
def test_a_short_lock_bench_grants_writes_and_passes_the_locks_check() -> None:
    outcome = CliRunner().invoke(command, ["lock", "--nodes", "2", "--clients", "4", "--locks", "2",
                                           "--lease-blocks", "200", "--writes-per-lease", "3", "--pipeline", "2",
                                           "--duration", "2", "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert report["nodes"] == 2 and report["clients"] == 4 and report["locks"] == 2 and report["pipeline"] == 2
    assert report["admission_refusals"] >= 0 and report["free_events"] > 0  # releases reached the waiters
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


def test_a_waiting_client_wakes_on_the_free_event_and_never_misses_one_that_came_first() -> None:
    async def scenario() -> tuple[float, float, float]:
        watch = LockWatch("http://127.0.0.1:1")  # not started: events are fed by hand
        begun = time.monotonic()
        before = watch.generation.get("jobs", 0)
        waiting = asyncio.ensure_future(watch.wait_free("jobs", before, timeout_s=5.0))
        await asyncio.sleep(0.05)
        watch._free("jobs")
        await waiting
        woke = time.monotonic() - begun
        # freed between the refusal and the wait: the generation moved, so no wait at all
        stale = watch.generation["jobs"] - 1
        begun = time.monotonic()
        await watch.wait_free("jobs", stale, timeout_s=5.0)
        missed = time.monotonic() - begun
        # nobody frees it: the fallback timeout ends the wait
        begun = time.monotonic()
        await watch.wait_free("other", 0, timeout_s=0.1)
        return woke, missed, time.monotonic() - begun

    woke, missed, fallback = asyncio.run(scenario())
    assert woke < 1.0 and missed < 0.05 and 0.09 <= fallback < 1.0
