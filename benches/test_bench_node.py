"""Mining, sync, RPC and propagation benchmarks (the same as `chainlab bench mine|sync|rpc|propagation`)."""

from __future__ import annotations

import os

import pytest

from cli.bench import measure_mining
from node.mining import grind_range
from testnet.bench_network import measure_propagation, measure_rpc, measure_sync


def test_mining_loop(benchmark, figures) -> None:  # type: ignore[no-untyped-def]
    prefix = os.urandom(64)
    benchmark(grind_range, prefix, 0, 0, 20_000, 1)
    benchmark.extra_info.update(measure_mining(2.0))
    figures("mine", benchmark.extra_info)


def test_sync(benchmark, figures) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info.update(benchmark.pedantic(lambda: measure_sync(500, 100), rounds=1))
    figures("sync", benchmark.extra_info)


# 64 clients is the figure docs/PERFORMANCE.md tracks; the smaller counts draw throughput against clients.
@pytest.mark.parametrize("clients", [1, 4, 16, 64])
def test_rpc_submission(benchmark, figures, clients) -> None:  # type: ignore[no-untyped-def]
    benchmark.extra_info.update(benchmark.pedantic(lambda: measure_rpc(5000, clients), rounds=1))
    figures("rpc", benchmark.extra_info)


def test_block_propagation(benchmark) -> None:  # type: ignore[no-untyped-def]
    result = benchmark.pedantic(lambda: measure_propagation(1000, 5), rounds=1)
    benchmark.extra_info.update({k: v for k, v in result.items() if k != "per_hop_ms"})
