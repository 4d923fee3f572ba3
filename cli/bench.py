"""`chainlab bench ...`: measurements of the hot paths against their physical limit, in the same run."""

from __future__ import annotations

import gc
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import coincurve

from chain.block import decode_block
from chain.devtools import block_on, dev_genesis, dev_keys, fresh_transfers
from chain.genesis import Genesis, GenesisError, parse_param_value
from chain.validation import Rules, SignatureChecker, connect_block
from cli import plots
from cli.common import emit_json, fail, int_list
from consensus.pow.devtools import generate_pow_chain
from consensus.registry import all_parameters, engine_names
from node.datadir import init_datadir, open_chain
from node.mining import measure_hashes
from testnet.bench_consensus import (
    DEFAULT_BLOCK_INTERVAL_S,
    BenchError,
    ConsensusBenchOptions,
    compare_engine,
    measure_consensus,
)
from testnet.bench_etcd import EtcdUnavailable, etcd_binary, measure_etcd
from testnet.bench_lock import LockBenchOptions, format_lock_report, measure_locks
from testnet.linearizability import DEFAULT_MAX_STATES, DEFAULT_TIMEOUT_S
from testnet.local import LocalNodeError

if TYPE_CHECKING:
    from node.workers import ProcessVerifier


@click.group(name="bench")
def command() -> None:
    """Measure block validation, storage, mining, sync and RPC against their limits."""



def _timed(run: Callable[[], object]) -> float:
    """Seconds one call takes, with the collector quiet (as in a node, which freezes its start-up heap)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        gc.enable()


@contextmanager
def _pinned(helpers: list[int]) -> Iterator[None]:
    """Keep this process on one CPU and its `helpers` (verifier pids) on the others while measuring, as pyperf
    does: on the shared VM the scheduler otherwise migrates the process between vCPUs mid-run and the
    Python-heavy side pays for cold caches (measured: unpinned ratios read 1.31 where pinned ones read 1.23-1.25,
    alternating runs). A no-op where the platform cannot pin or there is one CPU."""
    getter, setter = getattr(os, "sched_getaffinity", None), getattr(os, "sched_setaffinity", None)
    allowed = getter(0) if getter is not None else set()
    if setter is None or len(allowed) < 2:
        yield
        return
    mine = max(allowed)
    try:
        setter(0, {mine})
    except OSError:  # a restricted cpuset: measure unpinned rather than not at all
        yield
        return
    for pid in helpers:
        with suppress(OSError):  # a helper that is gone is the verifier's business, not the measurement's
            setter(pid, allowed - {mine})
    try:
        yield
    finally:
        setter(0, allowed)


def measure_validation(tx_count: int, workers: int, repeats: int = 15) -> dict[str, float | int]:
    """Validate-and-apply time of one block of `tx_count` fresh transfers from distinct senders, against bare
    coincurve verification of the same signatures, both measured back to back `repeats` times.

    With `workers` > 1 each round also validates in one process, and `speedup` is the median round's in-process
    time over its parallel time; `tx_per_s` and `single_worker_tx_per_s` are that round's two rates (while
    `validate_s`, `verify_only_s` and `ratio` stay the median round by ratio).

    The figures are the median pair (by ratio), not the best of each side: on a shared VM a neighbour's burst
    (steal time, a contended cache) lasts longer than one pair, so it slows both halves of a pair alike, while a
    best-of comparison can set one side's quiet moment against the other's noisy one (measured in
    docs/PERFORMANCE.md: best-of ratios spread 1.06-1.50 over five runs where median pairs spread 1.20-1.28).
    """
    keys = dev_keys(tx_count, seed=b"bench-validate")
    genesis = dev_genesis(keys)
    rules = Rules.from_genesis(genesis)
    txs = fresh_transfers(keys, {}, chain_id=genesis.chain_id, count=tx_count)
    proposer = dev_keys(1, seed=b"bench-proposer")[0].address
    block, _ = block_on(genesis.initial_state(), genesis.block(), txs, reward=genesis.block_reward,
                        proposer=proposer, timestamp_ms=1)
    raw = block.encoded
    # The bare loop: what libsecp256k1 costs through coincurve's own API (DER signatures, key parsing included).
    signers = {k.public_key: coincurve.PrivateKey(k.secret) for k in keys}
    bare_items = [(tx.sender, signers[tx.sender].sign(tx.signing_hash, hasher=None), tx.signing_hash) for tx in txs]

    def bare() -> None:
        for public_key, der, digest in bare_items:
            if not coincurve.PublicKey(public_key).verify(der, digest, hasher=None):
                raise AssertionError("bench signature did not verify")

    parallel = None
    if workers > 1:
        from node.workers import ProcessVerifier

        parallel = ProcessVerifier(workers)
    try:
        def validate_with(verifier: ProcessVerifier | None) -> Callable[[], object]:
            # A fresh parent state and an empty signature cache per run: nothing carries over between repeats.
            state = genesis.initial_state()
            return lambda: connect_block(state, decode_block(raw), rules, reward=genesis.block_reward,
                                         now_ms=10_000, signatures=SignatureChecker(parallel=verifier))

        runs: list[Callable[[], Callable[[], object]]] = [lambda: bare, lambda: validate_with(parallel)]
        if parallel is not None:
            runs.append(lambda: validate_with(None))  # the same block in one process, for the speedup
        rounds: list[list[float]] = []  # per round: [bare_s, validate_s, (in-process validate_s)], back to back
        with _pinned(parallel.pids if parallel is not None else []):
            for make in runs:  # warm-up: first-call costs are not block validation
                _timed(make())
            for attempt in range(repeats):
                order = range(len(runs)) if attempt % 2 == 0 else reversed(range(len(runs)))
                seconds = [0.0] * len(runs)
                for index in order:
                    seconds[index] = _timed(runs[index]())
                rounds.append(seconds)
    finally:
        if parallel is not None:
            parallel.close()
    bare_s, validate_s = _median_pair([(r[0], r[1]) for r in rounds])
    result: dict[str, float | int] = {
        "txs": tx_count,
        "workers": workers,
        "validate_s": round(validate_s, 6),
        "verify_only_s": round(bare_s, 6),
        "ratio": round(validate_s / bare_s, 4),
        "tx_per_s": round(tx_count / validate_s, 1),
    }
    if parallel is not None:
        # Both rates from the median-speedup round, so speedup = tx_per_s / single_worker_tx_per_s exactly.
        single_s, multi_s = _median_pair([(r[2], r[1]) for r in rounds], key=lambda one, many: one / many)
        result["tx_per_s"] = round(tx_count / multi_s, 1)
        result["single_worker_tx_per_s"] = round(tx_count / single_s, 1)
        result["speedup"] = round(single_s / multi_s, 3)
    return result


def _median_pair(
    pairs: list[tuple[float, float]], key: Callable[[float, float], float] = lambda base, other: other / base,
) -> tuple[float, float]:
    """The pair whose `key` (by default second / first) is the median: a real pair, measured back to back."""
    ranked = sorted(pairs, key=lambda pair: key(*pair))
    return ranked[len(ranked) // 2]


@command.command(name="validate")
@click.option("--txs", "tx_count", type=click.IntRange(1, 20_000), default=1000, show_default=True,
              help="transactions in the block")
@click.option("--workers", "worker_counts", callback=int_list(1, 64), default="1", metavar="W[,W...]",
              show_default=True,
              help="processes checking signatures (1 = in this process); several (1,2,4) measure each in turn")
@click.option("--repeats", type=click.IntRange(1, 101), default=15, show_default=True,
              help="back-to-back pairs measured; the median pair is reported")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@plots.option
def validate_command(tx_count: int, worker_counts: tuple[int, ...], repeats: int, as_json: bool,
                     plot_path: str | None) -> None:
    """Validate and apply one block of fresh transfers, against bare signature checks of the same block.

    ratio = validate_s / verify_only_s: what decoding, hashing, state and commitment add to the signatures.
    With --workers W > 1, `speedup` is in-process validation time over W-process time, measured in the same
    rounds. Every figure is the median of back-to-back rounds (see docs/PERFORMANCE.md). Several worker counts
    (--workers 1,2) are measured one after the other; --json then prints {"runs": [...]}.
    """
    target = plots.target_or_fail(plot_path)
    results = [measure_validation(tx_count, workers, repeats) for workers in worker_counts]
    plots.draw_or_fail(target, lambda path: plots.validation(results, path))
    if as_json:
        emit_json(results[0] if len(results) == 1 else {"runs": results})
        return
    for result in results:
        line = (
            f"{result['txs']} txs, {result['workers']} worker(s): validate {result['validate_s'] * 1e3:.1f} ms, "
            f"bare verify {result['verify_only_s'] * 1e3:.1f} ms, ratio {result['ratio']:.3f}, "
            f"{result['tx_per_s']:.0f} tx/s"
        )
        if "speedup" in result:
            line += f", {result['speedup']:.2f}x the {result['single_worker_tx_per_s']:.0f} tx/s of one process"
        click.echo(line)


def _dev_chain(blocks: int, txs: int, seed: bytes, *, finality_threshold: int = 6, branches: int = 1,
               ) -> tuple[Genesis, list[list[bytes]]]:
    """A dev PoW genesis and `branches` competing chains forking at genesis, each of `blocks` encoded blocks of
    `txs` transfers (senders reused across blocks; every branch has its own transactions)."""
    senders = dev_keys(max(1, min(txs, 2000)), seed=seed)
    genesis = dev_genesis(senders, params={"block_interval_s": 1.0}, finality_threshold=finality_threshold)
    chains = []
    for branch in range(branches):
        miner = dev_keys(1, seed=seed + b"/miner" + bytes([branch]))[0].address
        generated = generate_pow_chain(genesis, senders, blocks=blocks + branch, txs_per_block=txs, miner=miner,
                                       tx_offset=branch * 10**9)
        chains.append([block.encoded for block in generated])
    return genesis, chains


def measure_store(blocks: int, txs: int) -> dict[str, float | int]:
    """In-memory validate+apply of a chain against importing it into LevelDB through the block tree."""
    genesis, (raws,) = _dev_chain(blocks, txs, b"bench-store")
    rules = Rules.from_genesis(genesis)

    def validate() -> None:
        state = genesis.initial_state()
        checker = SignatureChecker()
        for raw in raws:
            state = connect_block(state, decode_block(raw), rules, reward=genesis.block_reward, now_ms=2**62,
                                  signatures=checker).state

    with tempfile.TemporaryDirectory(prefix="chainlab-bench-") as workdir:
        def import_all() -> None:
            init_datadir(workdir, genesis)
            with open_chain(workdir, create=True) as chain:
                now_ms = 2**62
                for raw in raws:
                    chain.tree.add_block(decode_block(raw), now_ms=now_ms, source="bench")
                if chain.tree.height != blocks:
                    raise AssertionError("bench import did not reach the tip")

        validate_s = _timed(validate)
        import_s = _timed(import_all)
    return {"blocks": blocks, "txs": txs, "validate_s": round(validate_s, 4), "import_s": round(import_s, 4),
            "store_overhead": round(import_s / validate_s - 1, 4)}


@command.command(name="store")
@click.option("--blocks", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--txs", type=click.IntRange(0, 20_000), default=1000, show_default=True, help="transactions per block")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@plots.option
def store_command(blocks: int, txs: int, as_json: bool, plot_path: str | None) -> None:
    """Import a generated chain into LevelDB against validating it in memory (store_overhead = import/validate - 1)."""
    target = plots.target_or_fail(plot_path)
    result = measure_store(blocks, txs)
    plots.draw_or_fail(target, lambda path: plots.store(result, path))
    if as_json:
        emit_json(result)
        return
    click.echo(f"{blocks} blocks x {txs} txs: validate {result['validate_s']:.2f} s, "
               f"import {result['import_s']:.2f} s, store overhead {result['store_overhead']:.1%}")


def measure_reorg(depth: int, txs: int) -> dict[str, float | int]:
    """Connect a branch of `depth` blocks, then switch to a competing branch of depth + 1 forking at genesis."""
    genesis, (main, rival) = _dev_chain(depth, txs, b"bench-reorg", finality_threshold=depth + 10, branches=2)
    now_ms = 2**62
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-") as workdir:
        init_datadir(workdir, genesis)
        with open_chain(workdir, create=True) as chain:
            tree = chain.tree
            main_blocks = [decode_block(raw) for raw in main]
            rival_blocks = [decode_block(raw) for raw in rival]

            def connect_main() -> None:
                for block in main_blocks:
                    tree.add_block(block, now_ms=now_ms)

            def switch() -> None:
                for block in rival_blocks:
                    tree.add_block(block, now_ms=now_ms)

            connect_s = _timed(connect_main)
            reorg_s = _timed(switch)
            if tree.tip.hash != rival_blocks[-1].hash:
                raise AssertionError("the rival branch did not win")
    return {"depth": depth, "txs": txs, "connect_s": round(connect_s, 4), "reorg_s": round(reorg_s, 4),
            "ratio": round(reorg_s / connect_s, 4)}


@command.command(name="reorg")
@click.option("--depth", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--txs", type=click.IntRange(0, 20_000), default=1000, show_default=True, help="transactions per block")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@plots.option
def reorg_command(depth: int, txs: int, as_json: bool, plot_path: str | None) -> None:
    """Time a reorg: disconnect DEPTH blocks and connect a rival branch of DEPTH + 1, against connecting DEPTH.

    ratio = reorg_s / connect_s (the rival branch has one block more, which it needs to win on work).
    """
    target = plots.target_or_fail(plot_path)
    result = measure_reorg(depth, txs)
    plots.draw_or_fail(target, lambda path: plots.reorg(result, path))
    if as_json:
        emit_json(result)
        return
    click.echo(f"depth {depth} x {txs} txs: connect {result['connect_s']:.3f} s, reorg {result['reorg_s']:.3f} s, "
               f"ratio {result['ratio']:.2f}")


def _mine_worker(seconds: float, out: Any) -> None:
    """One mining process at full speed for `seconds` on an impossible target; reports hashes done."""
    out.put(measure_hashes(seconds))


def measure_mining(seconds: float) -> dict[str, float]:
    """One mining process (the node's own nonce loop, midstate reuse included) against a bare double-SHA-256
    loop over 80-byte headers, each alone on the machine for `seconds`."""
    import hashlib
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=_mine_worker, args=(seconds, queue))
    started = time.perf_counter()
    worker.start()
    hashes = queue.get(timeout=seconds + 60)
    worker.join()
    elapsed = time.perf_counter() - started
    # The node loop ran `seconds` of grinding inside `elapsed` (which includes process start); rate over grinding.
    hashes_per_s = hashes / seconds
    header = bytearray(80)
    raw, deadline = 0, time.perf_counter() + seconds
    sha256 = hashlib.sha256
    while time.perf_counter() < deadline:
        for nonce in range(raw, raw + 4096):
            header[72:80] = nonce.to_bytes(8, "big")
            sha256(sha256(header).digest()).digest()
        raw += 4096
    raw_per_s = raw / seconds
    return {"seconds": seconds, "hashes_per_s": round(hashes_per_s), "raw_hashes_per_s": round(raw_per_s),
            "ratio": round(hashes_per_s / raw_per_s, 4), "process_start_s": round(elapsed - seconds, 3)}


@command.command(name="mine")
@click.option("--seconds", type=click.FloatRange(0.5, 600), default=5.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@plots.option
def mine_command(seconds: float, as_json: bool, plot_path: str | None) -> None:
    """One mining process against a bare double-SHA-256 loop over 80-byte headers (ratio = mining / raw)."""
    target = plots.target_or_fail(plot_path)
    result = measure_mining(seconds)
    plots.draw_or_fail(target, lambda path: plots.mining(result, path))
    if as_json:
        emit_json(result)
        return
    click.echo(f"mining {result['hashes_per_s']:,.0f} H/s, raw double-SHA-256 {result['raw_hashes_per_s']:,.0f} H/s, "
               f"ratio {result['ratio']:.2f}")


@command.command(name="checker")
@click.option("--ops", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True,
              help="operations in the generated history")
@click.option("--processes", type=click.IntRange(1, 10_000), default=64, show_default=True,
              help="concurrent client processes")
@click.option("--keys", type=click.IntRange(1, 10_000_000), default=1_000, show_default=True,
              help="registers (the checker splits the history per key)")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=DEFAULT_TIMEOUT_S, show_default=True,
              help="give up with verdict `unknown` after this long (as `check linearizable`)")
@click.option("--max-states", type=click.IntRange(1), default=DEFAULT_MAX_STATES, show_default=True,
              help="give up with verdict `unknown` after exploring this many (linearized set, state) pairs")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def checker_command(ops: int, processes: int, keys: int, seed: int, timeout_s: float, max_states: int,
                    as_json: bool) -> None:
    """The linearizability checker on a generated linearizable register history (real registers, each operation
    taking effect at a random moment of its interval): seconds to a verdict and the process's peak memory. The
    search has `check linearizable`'s budget: past it the verdict is `unknown` and the budget is named."""
    import random
    import resource

    from testnet.linearizability import RegisterModel, check, generate_register_history

    started = time.perf_counter()
    history = generate_register_history(random.Random(seed), operations=ops, processes=processes, keys=keys)
    generated_s = time.perf_counter() - started
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    result = check(history, RegisterModel(), max_states=max_states, should_stop=lambda: time.monotonic() > deadline)
    check_s = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    report: dict[str, Any] = {
        "ops": ops, "processes": processes, "keys": keys, "seed": seed, "verdict": result.verdict,
        "states": result.states, "check_s": round(check_s, 3), "generate_s": round(generated_s, 3),
        "ops_per_s": round(ops / check_s) if check_s > 0 else None, "peak_rss_mib": round(peak_mib, 1),
        "budget": {"max_states": max_states, "timeout_s": timeout_s}}
    if result.verdict == "unknown":
        report["reason"] = result.reason
        report["keys_checked"] = len(result.keys)
    if as_json:
        emit_json(report)
        return
    click.echo(f"{ops:,} operations, {processes} processes, {keys:,} keys: {result.verdict} in {check_s:.2f} s "
               f"({result.states:,} states), peak memory {peak_mib:,.0f} MiB")
    if result.verdict == "unknown":
        click.echo(f"unknown: {result.reason} at key {len(result.keys)} of {result.key_count} (--max-states "
                   f"{max_states:,}, --timeout-s {timeout_s:g}); a smaller --ops or more --keys gives a verdict")


@command.command(name="sync")
@click.option("--blocks", type=click.IntRange(1, 100_000), default=2000, show_default=True)
@click.option("--txs", type=click.IntRange(0, 5_000), default=100, show_default=True, help="transactions per block")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@plots.option
def sync_command(blocks: int, txs: int, as_json: bool, plot_path: str | None) -> None:
    """A fresh node process syncing from a peer over loopback, against importing the same blocks from a file."""
    from testnet.bench_network import measure_sync

    target = plots.target_or_fail(plot_path)
    result = measure_sync(blocks, txs)
    plots.draw_or_fail(target, lambda path: plots.sync(result, path))
    if as_json:
        emit_json(result)
        return
    click.echo(f"sync {result['sync_blocks_per_s']} blocks/s, file import {result['import_blocks_per_s']} blocks/s, "
               f"ratio {result['ratio']:.2f}")


@command.command(name="rpc")
@click.option("--txs", "tx_count", type=click.IntRange(1, 1_000_000), default=20_000, show_default=True)
@click.option("--clients", "client_counts", callback=int_list(1, 1024), default="64", metavar="N[,N...]",
              show_default=True,
              help="concurrent HTTP clients; several (1,4,16,64) measure each in turn")
@click.option("--trace", is_flag=True, help="measure causal tracing's cost: untraced and traced runs in turn, each "
                                            "with one peer the transactions are gossiped to")
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="with --trace: untraced/traced pairs of runs (medians are reported)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@plots.option
def rpc_command(tx_count: int, client_counts: tuple[int, ...], trace: bool, rounds: int, as_json: bool,
                plot_path: str | None) -> None:
    """Signed transfers POSTed over HTTP by concurrent clients to one node process.

    Several client counts (--clients 1,4,16,64) are measured one after the other, each on a fresh node; --json
    then prints {"runs": [...]}, and --plot draws throughput and latency against the clients.
    """
    from testnet.bench_network import measure_rpc, measure_rpc_trace_overhead

    if trace:
        if len(client_counts) > 1 or plot_path is not None:
            fail("--trace measures one client count and draws no plot: give one --clients and no --plot")
        overhead = measure_rpc_trace_overhead(tx_count, client_counts[0], rounds)
        if as_json:
            emit_json(overhead)
            return
        click.echo(f"untraced {overhead['untraced_per_s']}/s, traced {overhead['traced_per_s']}/s "
                   f"({overhead['trace_events_per_run']} events per run): tracing costs "
                   f"{overhead['overhead_pct']}% of the throughput (medians of {rounds} rounds, 1 peer)")
        click.echo(f"nodes' CPU per transaction: untraced {overhead['untraced_cpu_us_per_tx']} us, traced "
                   f"{overhead['traced_cpu_us_per_tx']} us ({overhead['cpu_overhead_pct']}%)")
        return
    target = plots.target_or_fail(plot_path)
    results = [measure_rpc(tx_count, clients) for clients in client_counts]
    plots.draw_or_fail(target, lambda path: plots.rpc(results, path))
    if as_json:
        emit_json(results[0] if len(results) == 1 else {"runs": results})
        return
    for result in results:
        click.echo(f"{result['clients']} clients: {result['accepted']} accepted in {result['seconds']} s: "
                   f"{result['accepted_per_s']}/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")


@command.command(name="sim-trace")
@click.option("--rounds", type=click.IntRange(1, 100), default=20, show_default=True,
              help="pairs of runs, untraced and traced in turn")
@click.option("--duration", "duration_s", type=click.FloatRange(1), default=300.0, show_default=True,
              help="virtual seconds of each run (5 PoW nodes, seed 42, default faults)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def sim_trace_command(rounds: int, duration_s: float, as_json: bool) -> None:
    """What `sim --trace` costs: the same simulated run untraced and traced (the lines made by the writer
    process, cli/simtrace.py) in turn, wall time until the trace file is complete."""
    import statistics
    from pathlib import Path

    from cli.sim import run_timed
    from cli.simtrace import TraceWriter
    from testnet.sim.causal import CausalTracer
    from testnet.sim.config import SimConfig

    config = SimConfig(seed=42, consensus="pow", nodes=5, duration_s=duration_s)
    seconds: dict[str, list[float]] = {"untraced": [], "traced": []}
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-trace-") as workdir:
        for _ in range(rounds):
            for name in seconds:
                gc.collect()
                started = time.perf_counter()
                if name == "traced":
                    writer = TraceWriter(Path(workdir) / "trace.jsonl")
                    try:
                        run_timed(config, tracer=CausalTracer(sink=writer.send))
                    finally:
                        if not writer.close():
                            fail("the trace writer failed")
                else:
                    run_timed(config)
                seconds[name].append(time.perf_counter() - started)
        lines = sum(1 for _ in (Path(workdir) / "trace.jsonl").open())
    ratios = [traced / untraced for untraced, traced in zip(seconds["untraced"], seconds["traced"], strict=True)]
    result: dict[str, Any] = {"rounds": rounds, "duration_s": duration_s, "events": lines,
              "untraced_s": {"median": round(statistics.median(seconds["untraced"]), 3),
                             "min": round(min(seconds["untraced"]), 3)},
              "traced_s": {"median": round(statistics.median(seconds["traced"]), 3),
                           "min": round(min(seconds["traced"]), 3)},
              "cost_pct": {"median_of_pairs": round(100 * (statistics.median(ratios) - 1), 1),
                           "min_to_min": round(100 * (min(seconds["traced"]) / min(seconds["untraced"]) - 1), 1)}}
    if as_json:
        emit_json(result)
        return
    click.echo(f"{lines} events; untraced {result['untraced_s']}, traced {result['traced_s']} s: tracing costs "
               f"{result['cost_pct']['median_of_pairs']}% (median of {rounds} pairs), "
               f"{result['cost_pct']['min_to_min']}% (min to min)")


@command.command(name="propagation")
@click.option("--txs", "tx_count", type=click.IntRange(1, 5000), default=1000, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 100), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def propagation_command(tx_count: int, rounds: int, as_json: bool) -> None:
    """A block of already-gossiped transactions from its miner to the far end of a 4-node line (3 hops)."""
    from testnet.bench_network import measure_propagation

    result = measure_propagation(tx_count, rounds)
    if as_json:
        emit_json(result)
        return
    click.echo(f"{tx_count}-tx block over 3 hops: p50 {result['p50_ms']} ms, max {result['max_ms']} ms")


@command.command(name="dashboard")
@click.option("--nodes", type=click.IntRange(1, 32), default=8, show_default=True,
              help="nodes of the temporary PoW testnet (ignored with --dir)")
@click.option("--dir", "directory", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="measure this running testnet instead of starting one")
@click.option("--window", "window_s", type=click.FloatRange(2, 600), default=20.0, show_default=True,
              help="seconds per window; windows alternate without and with the page")
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def dashboard_command(nodes: int, directory: Path | None, window_s: float, rounds: int, as_json: bool) -> None:
    """Each node's CPU with the testnet dashboard refreshing once a second against without it (percent of one
    core; docs/DASHBOARD.md). Starts a NODES-node PoW testnet in a temporary directory unless --dir is given."""
    import asyncio

    from testnet import launcher
    from testnet.bench_dashboard import measure
    from testnet.state import TestnetError

    try:
        with _exit_on_sigterm(), tempfile.TemporaryDirectory(prefix="chainlab-dash-bench-") as scratch:
            target = directory
            if target is None:
                target = launcher.up(launcher.UpOptions(nodes=nodes, directory=Path(scratch) / "net",
                                                        load_accounts=2)).path
            try:
                report = asyncio.run(measure(target, window_s=window_s, rounds=rounds))
            finally:
                if directory is None:
                    launcher.down(target)
    except TestnetError as exc:
        fail(str(exc))
    report["date"] = time.strftime("%Y-%m-%d")
    if as_json:
        emit_json(report)
        return
    click.echo(f"dashboard cost on {len(report['nodes'])} {report['consensus']} nodes, {rounds} x {window_s:g} s "
               f"off/on, page every 1 s ({report['machine']['cpu_count']} cores, {report['date']})")
    for node in report["nodes"]:
        click.echo(f"  {node['node']:<8} off {node['cpu_off_pct']:5.2f}%  on {node['cpu_on_pct']:5.2f}%  "
                   f"cost {node['cost_pct']:+.2f}% of a core")
    build = report["build_ms"]
    click.echo(f"max cost {report['max_cost_pct']:+.2f}% of a core; {report['states_per_s']} states/s; "
               f"state built in p50 {build['p50']} ms, p95 {build['p95']} ms, max {build['max']} ms")


def _parse_genesis_params(entries: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            fail(f"--genesis-param {entry!r}: use KEY=VALUE")
        try:
            params[key.strip()] = parse_param_value(key.strip(), value.strip(), all_parameters())
        except GenesisError as exc:
            fail(str(exc))
    return params


@contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while inside, so the bench's context managers stop every process they
    started (the previous handler comes back on the way out)."""
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@command.command(name="consensus")
@click.option("--consensus", "engine", type=click.Choice(engine_names()), required=True, help="the engine to run")
@click.option("--nodes", type=click.IntRange(1, 16), default=3, show_default=True)
@click.option("--clients", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="closed-loop clients (one funded account each, one transfer in flight each)")
@click.option("--duration", "duration_s", type=click.FloatRange(0.5, 3600), default=20.0, show_default=True,
              help="seconds measured (after a 1 s warm-up)")
@click.option("--genesis-param", "genesis_params", multiple=True, metavar="KEY=VALUE",
              help=f"genesis parameter (repeatable); the bench sets block_interval_s={DEFAULT_BLOCK_INTERVAL_S} "
                   "(raft, pbft: 0.01) and acks_required=1 (engines that have it) unless given")
@click.option("--failover-kills", type=click.IntRange(0, 100), default=0, show_default=True,
              help="after the window, SIGKILL the leader/primary this many times and time the recovery")
@click.option("--compare", type=click.Choice(["etcd", *engine_names()]),
              help="then run the same load against a 3-member etcd, or a network of another engine (e.g. raft: "
                   "same nodes, clients and duration, no fail-over), and report the ratio")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@plots.option
def consensus_command(engine: str, nodes: int, clients: int, duration_s: float, genesis_params: tuple[str, ...],
                      failover_kills: int, compare: str | None, as_json: bool, plot_path: str | None) -> None:
    """Committed transfers per second of a real NODES-node network under a closed-loop load.

    Each client submits one signed transfer, waits until a final block holds it, then submits the next; clients
    are spread over the nodes and every node writes durably. Reports commits/s, commit latency p50/p99/max, blocks,
    errors, the load generator's own CPU, the machine and the date (docs/PERFORMANCE.md "Consensus throughput").
    """
    options = ConsensusBenchOptions(consensus=engine, nodes=nodes, clients=clients, duration_s=duration_s,
                                    genesis_params=_parse_genesis_params(genesis_params),
                                    failover_kills=failover_kills)
    target = plots.target_or_fail(plot_path)
    try:
        with _exit_on_sigterm():
            report = run_consensus_bench(options, compare)
    except (BenchError, EtcdUnavailable, LocalNodeError) as exc:
        fail(str(exc))
    plots.draw_or_fail(target, lambda path: plots.consensus(report, path))
    if as_json:
        emit_json(report)
        return
    for line in format_consensus_report(report):
        click.echo(line)


def run_consensus_bench(options: ConsensusBenchOptions, compare: str | None) -> dict[str, Any]:
    """The chainlab network's report, with etcd's or another engine's under `compare` (and the ratio of the rates)
    when asked."""
    if compare == "etcd":
        etcd_binary()  # before minutes of chainlab: say now when etcd is missing
    report = measure_consensus(options)
    if compare == "etcd":
        click.echo("running etcd...", err=True)
        etcd = measure_etcd(options.clients, options.duration_s, options.warmup_s)
        rate = etcd["writes_per_s"]
        report["compare"] = {**etcd, "ratio_tx_per_s": round(report["committed_tx_per_s"] / rate, 4) if rate else None}
    elif compare is not None:
        click.echo(f"running {compare}...", err=True)
        report["compare"] = compare_engine(options, report, compare)
    return report


def format_consensus_report(report: dict[str, Any]) -> list[str]:
    """The human table of a `bench consensus` report."""
    params = ", ".join(f"{k}={v}" for k, v in sorted(report["genesis_params"].items()))
    lines = [f"{report['consensus']}: {report['nodes']} nodes, {report['clients']} clients, "
             f"{report['duration_s']:.1f} s measured ({params})"]
    rows = [("", "commits/s", "p50 ms", "p99 ms", "max ms", "errors")]

    def errors(counts: dict[str, int]) -> str:
        return ", ".join(f"{code} {count}" for code, count in counts.items()) or "-"

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows.append((f"chainlab {report['consensus']}", f"{report['committed_tx_per_s']:.1f}",
                 cell(report["commit_p50_ms"]), cell(report["commit_p99_ms"]), cell(report["commit_max_ms"]),
                 errors(report["errors"])))
    compare = report.get("compare")
    if compare:
        rows.append((compare["version"].replace("Version: ", ""), f"{compare['writes_per_s']:.1f}",
                     cell(compare["p50_ms"]), cell(compare["p99_ms"]), cell(compare["max_ms"]),
                     errors(compare["errors"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(value.ljust(w) if i in (0, 5) else value.rjust(w) for i, (value, w)
                        in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
    client = report["client"]
    lines.append(f"{report['committed_tx']} transfers committed in {report['blocks']} blocks; the load used "
                 f"{client['client_cpu_share']:.0%} of a core ({client['client_cpu_per_op_us']} us per commit)")
    nodes_cpu = report.get("nodes_cpu") or {}
    if nodes_cpu.get("cpu_share") is not None:
        lines.append(f"the nodes used {nodes_cpu['cpu_share']:.2f} cores ({nodes_cpu['cpu_per_commit_us']} us of CPU "
                     f"per commit)")
    if compare and compare.get("ratio_tx_per_s") is not None:
        if compare.get("system") == "chainlab":
            lines.append(f"{report['consensus']}/{compare['consensus']}: {compare['ratio_tx_per_s']:.3f} of "
                         f"{compare['consensus']}'s commits/s in the same run ({compare['genesis_params']})")
        else:
            lines.append(f"chainlab/etcd: {compare['ratio_tx_per_s']:.3f} of etcd's writes/s")
    failover = report.get("failover")
    if failover:
        lines.append(f"fail-over ({failover['kills']} leader kills): commit on a survivor after "
                     f"p50 {cell(failover['commit_after_kill_p50_ms'])} ms, max "
                     f"{cell(failover['commit_after_kill_max_ms'])} ms ({failover['no_commit_within_timeout']} "
                     f"without one within {failover['timeout_s']:.0f} s); restarted node caught up after p50 "
                     f"{cell(failover['recovery_p50_ms'])} ms, max {cell(failover['recovery_max_ms'])} ms")
    lines.append(f"machine: {report['machine']['cpu_count']} x {report['machine']['cpu_model']}, {report['date']}")
    return lines


@command.command(name="lock")
@click.option("--nodes", type=click.IntRange(1, 16), default=3, show_default=True, help="Raft nodes")
@click.option("--clients", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="closed-loop lock clients (one funded account each, one operation in flight each)")
@click.option("--locks", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="locks the clients compete for (client i takes lock i mod LOCKS)")
@click.option("--lease-blocks", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--writes-per-lease", type=click.IntRange(0, 10_000), default=8, show_default=True,
              help="fenced writes a client makes under each grant before it releases")
@click.option("--pipeline", type=click.IntRange(1, 64), default=4, show_default=True,
              help="fenced writes a holder has in flight at once under one grant (each still waited for until "
                   "final; the release goes out after all of them)")
@click.option("--duration", "duration_s", type=click.FloatRange(0.5, 3600), default=20.0, show_default=True,
              help="seconds measured (after a 1 s warm-up)")
@click.option("--genesis-param", "genesis_params", multiple=True, metavar="KEY=VALUE",
              help="genesis parameter (repeatable); as for `bench consensus`")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def lock_command(nodes: int, clients: int, locks: int, lease_blocks: int, writes_per_lease: int, pipeline: int,
                 duration_s: float, genesis_params: tuple[str, ...], as_json: bool) -> None:
    """Acquire-to-granted latency (p50/p99) and sustained lock operations per second of a real Raft network.

    Clients compete for the locks: acquire, write through the fenced register with the grant's token, release;
    each operation waits until final. After the window the `locks` checker runs on the chain; exit 1 if it finds
    a violation (docs/LOCKS.md "Performance", docs/PERFORMANCE.md).
    """
    options = LockBenchOptions(nodes=nodes, clients=clients, locks=locks, lease_blocks=lease_blocks,
                               writes_per_lease=writes_per_lease, pipeline=pipeline, duration_s=duration_s,
                               genesis_params=_parse_genesis_params(genesis_params))
    try:
        with _exit_on_sigterm():
            report = measure_locks(options)
    except (BenchError, LocalNodeError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(report)
    else:
        for line in format_lock_report(report):
            click.echo(line)
    if not report["check"]["ok"]:
        raise SystemExit(1)
