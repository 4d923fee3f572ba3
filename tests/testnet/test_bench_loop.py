"""The closed-loop driver and its summaries: percentiles, the measured window, error tallies."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from testnet.bench_consensus import bench_genesis
from testnet.bench_loop import LoopResult, latency_summary, run_closed_loop


def test_latency_summary_is_nearest_rank_in_milliseconds() -> None:
    latencies = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert latency_summary(latencies) == {"p50_ms": 50.0, "p99_ms": 99.0, "max_ms": 100.0}
    assert latency_summary([0.0123]) == {"p50_ms": 12.3, "p99_ms": 12.3, "max_ms": 12.3}
    assert latency_summary([]) == {"p50_ms": None, "p99_ms": None, "max_ms": None}


def test_summary_rates_over_the_window_and_sorts_errors() -> None:
    result = LoopResult(clients=2, window_start=10.0, window_end=14.0, latencies_s=[0.01] * 8,
                        errors=Counter({"unavailable": 2, "commit-timeout": 1}), cpu_s=0.4)
    summary = result.summary()
    assert summary["ops"] == 8
    assert summary["ops_per_s"] == 2.0
    assert list(summary["errors"]) == ["commit-timeout", "unavailable"]
    assert summary["client_cpu_share"] == 0.1
    assert summary["client_cpu_per_op_us"] == 50_000.0


def test_only_operations_completing_inside_the_window_count() -> None:
    calls: Counter[int] = Counter()

    async def operation(index: int) -> str | None:
        calls[index] += 1
        await asyncio.sleep(0.01)
        return "refused" if index == 1 else None

    result = asyncio.run(run_closed_loop(2, operation, duration_s=0.3, warmup_s=0.1))
    assert 0 < len(result.latencies_s) < calls[0]  # warm-up completions are left out
    assert all(0.009 <= latency < 0.1 for latency in result.latencies_s)
    assert set(result.errors) == {"refused"}
    assert result.window_s == pytest.approx(0.3)


def test_a_client_that_raises_stops_the_run() -> None:
    async def operation(index: int) -> str | None:
        raise AssertionError("a bug in the operation")

    with pytest.raises(AssertionError, match="a bug"):
        asyncio.run(run_closed_loop(1, operation, duration_s=5, warmup_s=0))


def test_bench_genesis_defaults_and_what_the_user_gives_wins() -> None:
    top, params = bench_genesis("primary-backup", 3, {"finality_threshold": 2})
    assert top == {"finality_threshold": 2}
    assert params["acks_required"] == 1 and params["block_interval_s"] > 0
    _, params = bench_genesis("primary-backup", 3, {"acks_required": 2, "block_interval_s": 0.5})
    assert params == {"acks_required": 2, "block_interval_s": 0.5}
    _, params = bench_genesis("round-robin", 3, {})
    assert "acks_required" not in params
