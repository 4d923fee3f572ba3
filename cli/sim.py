"""`chainlab sim`: the deterministic simulator (testnet/sim) from the command line, one seed or a swarm.

This shell does what the pure simulator may not: it picks a random seed when none is given, times the run on
the wall clock, samples the process's memory, prints, and builds each node's core from node.core (docs/SIMULATOR.md).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Any

import click

from cli.common import emit_json, fail
from cli.simtrace import TraceWriter
from node.core import NodeCore
from testnet.history import Op
from testnet.sim.causal import CausalTracer
from testnet.sim.config import (
    CONSENSUS,
    MAX_LOCKS,
    MAX_NODES,
    SEED_MAX,
    WORKLOADS,
    ConfigError,
    SimConfig,
    parse_faults,
    parse_split,
)
from testnet.sim.core import CoreSpec, SimCore
from testnet.sim.latency import BUILT_IN, LatencyError, LatencyMatrix, parse_latency
from testnet.sim.network import MODELS
from testnet.sim.simulator import SimResult, Simulator
from testnet.sim.swarm import SPACES, SwarmSpace, swarm_configs
from testnet.state import trace_events_path


def node_core_factory(spec: CoreSpec) -> SimCore:
    """The real node core over the spec's in-memory store: what every simulated node runs."""
    return NodeCore.over_store(name=spec.name, genesis=spec.genesis, store=spec.store, key=spec.key,
                               mining=spec.mining, rng=Random(spec.rng_seed),
                               verified_signatures=spec.verified_signatures)


def write_history(path: Path, history: Sequence[Op]) -> None:
    """The run's client history as JSONL, one record a line (what `chainlab check consistency` reads)."""
    try:
        with open(path, "w", encoding="utf-8") as out:
            for op in history:
                out.write(json.dumps(op.to_json(), separators=(",", ":")) + "\n")
    except OSError as exc:
        fail(f"--history: cannot write {path}: {exc.strerror or exc}")


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """How long a run took on this machine."""

    wall_s: float
    cpu_s: float  # this process's CPU time: the figure that other load on the machine does not inflate
    memory: tuple[dict[str, Any], ...] = ()  # {"virtual_s", "rss_mib", "store_mib", "max_height"} samples


def run_timed(config: SimConfig, *, memory_every_s: float = 0.0,
              tracer: CausalTracer | None = None) -> tuple[SimResult, Timing]:
    """Run `config` with the real node cores, timing it and (if asked) sampling RSS every `memory_every_s`."""
    samples: list[dict[str, Any]] = []

    def observe(t: float, simulator: Simulator) -> None:
        stored = sum(len(key) + len(value) for node in simulator.nodes for key, value in node.store.iterate())
        heights = [node.core.tree.height for node in simulator.nodes if node.core is not None]
        samples.append({"virtual_s": round(t, 1), "rss_mib": round(rss_bytes() / 2**20, 1),
                        "store_mib": round(stored / 2**20, 1), "max_height": max(heights, default=0)})

    simulator = Simulator(config, node_core_factory, observer=observe if memory_every_s > 0 else None,
                          observe_every_s=memory_every_s, tracer=tracer)
    started, started_cpu = time.perf_counter(), time.process_time()
    result = simulator.run()
    timing = Timing(wall_s=time.perf_counter() - started, cpu_s=time.process_time() - started_cpu,
                    memory=tuple(samples))
    return result, timing


def _quiet_logs(verbose: bool) -> None:
    """The cores log through `chainlab.*` loggers; a simulation shows them only with --verbose."""
    logger = logging.getLogger("chainlab")
    if verbose:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    else:
        logger.setLevel(logging.CRITICAL + 1)


@click.command(name="sim")
@click.option("--consensus", type=click.Choice(CONSENSUS), default="pow", show_default=True)
@click.option("--nodes", type=click.IntRange(1, MAX_NODES), default=5, show_default=True,
              help="nodes in the network (more than 64 need --degree)")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=None, help="64-bit seed (default: random)")
@click.option("--duration", "duration_s", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="virtual seconds of the safety phase (faults on); the liveness phase follows")
@click.option("--faults", default="partition,crash,loss,dup,drift", show_default=True,
              help="comma-separated: partition, crash, loss, dup, drift; or all, none")
@click.option("--model", type=click.Choice(MODELS), default="partial-sync", show_default=True)
@click.option("--block-interval", "block_interval_s", type=click.FloatRange(min=0.1), default=10.0,
              show_default=True)
@click.option("--finality", "finality_threshold", type=click.IntRange(1), default=6, show_default=True,
              help="PoW confirmations that make a block final")
@click.option("--max-delay", "max_delay_s", type=click.FloatRange(min=0.001), default=0.5, show_default=True,
              help="D: the delay bound of the synchronous regime")
@click.option("--async-scale", "async_scale_s", type=click.FloatRange(min=0.0001), default=0.1, show_default=True,
              help="scale of the asynchronous regime's Pareto delays")
@click.option("--tx-rate", "tx_rate_per_s", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="client transfers per virtual second")
@click.option("--read-rate", "read_rate_per_s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="client account reads per virtual second (half linearizable; checked as linearizable-reads)")
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the clients' history (transfers, reads, finality) here as JSONL")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the run's causal trace (every send, receive and decision, with vector clocks) here as "
                   "JSONL, and its faults beside it (FILE with .events.jsonl): for `chainlab trace`")
@click.option("--heartbeat", "heartbeat_interval_s", type=click.FloatRange(min=0.01), default=1.0,
              show_default=True, help="PoW presence heartbeat interval")
@click.option("--acks", "acks_required", type=click.IntRange(-1), default=-1, show_default=True,
              help="primary-backup acknowledgements for finality (-1: a majority of the backups)")
@click.option("--liveness-budget", "liveness_budget_s", type=click.FloatRange(min=0), default=0.0,
              help="virtual seconds the healed network gets (default: from the interval and finality)")
@click.option("--byzantine", default="", metavar="random|NODE:BEHAVIOUR,...",
              help="Byzantine validators (pbft): `random` lets the seed draw 1..f of them, or name them, e.g. "
                   "1:equivocate,3:silent (docs/ENGINES.md lists the behaviours)")
@click.option("--twins", type=click.IntRange(0, 63), default=0, show_default=True,
              help="validators 0..N-1 run a twin with the same key on the other side of a split (pbft; f+1 twins "
                   "break safety: a demonstration)")
@click.option("--degree", type=click.IntRange(0), default=0, show_default=True,
              help="P2P overlay: every node linked to this many random peers (a random regular graph); 0: full mesh")
@click.option("--latency", "latency_source", default="", metavar="world|FILE",
              help="latency matrix: the built-in `world` regions, or a TOML file of regions and per-pair delays "
                   "(docs/SCALE.md); the model's delay then adds jitter on top")
@click.option("--miners", type=click.IntRange(0), default=0, show_default=True,
              help="pow: only the first N nodes mine, the others relay (0: every node mines)")
@click.option("--split", "split_spec", default="", metavar="SHARE@START+DURATION",
              help="pow: cut the network in two at START for DURATION virtual s, one side holding SHARE of the hash "
                   "power (e.g. 0.7@1200+600), and report what the partition handler did")
@click.option("--workload", type=click.Choice(WORKLOADS), default="transfer", show_default=True,
              help="what the clients send: transfers, or lock sessions competing for --locks locks through the "
                   "fenced register (--tx-rate is then their turns per second; judged by the locks check)")
@click.option("--locks", type=click.IntRange(1, MAX_LOCKS), default=2, show_default=True,
              help="locks the lock sessions compete for (--workload lock)")
@click.option("--swarm", is_flag=True, help="run --runs seeds with options drawn at random")
@click.option("--space", "swarm_space", type=click.Choice(sorted(SPACES)), default="default", show_default=True,
              help="what the swarm draws from: every engine with crash and network faults, PBFT with up to f "
                   "Byzantine validators and twins, or lock sessions on Raft, PBFT, primary-backup and PoW")
@click.option("--runs", type=click.IntRange(1), default=20, show_default=True, help="swarm runs")
@click.option("--swarm-seed", type=click.IntRange(0, SEED_MAX), default=None, help="swarm seed (default: random)")
@click.option("--memory-every", "memory_every_s", type=click.FloatRange(min=0), default=0.0,
              help="sample the process's RSS every this many virtual seconds (reported with --json)")
@click.option("--verbose", is_flag=True, help="show the nodes' warnings and errors on stderr")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document (SEED=... goes to stderr)")
def command(consensus: str, nodes: int, seed: int | None, duration_s: float, faults: str, model: str,
            block_interval_s: float, finality_threshold: int, max_delay_s: float, async_scale_s: float,
            tx_rate_per_s: float, read_rate_per_s: float, history_path: Path | None, trace_path: Path | None,
        heartbeat_interval_s: float,
            acks_required: int, liveness_budget_s: float, byzantine: str, twins: int, degree: int,
            latency_source: str, miners: int, split_spec: str, workload: str, locks: int, swarm: bool, swarm_space: str,
            runs: int, swarm_seed: int | None, memory_every_s: float, verbose: bool,
            as_json: bool) -> None:
    """Run the real node cores of a whole network in one process on a virtual clock: a safety phase with the
    chosen faults, then a liveness phase after healing, judged by the testnet's checks. One 64-bit seed draws
    every delay, loss, partition, crash, clock drift and block time, so `--seed S` with the same options replays a
    run exactly (same trace_hash). With --swarm, runs many seeds with random options and lists the failing ones
    with the command that replays each. Exit status 1 when a check fails."""
    _quiet_logs(verbose)
    context = click.get_current_context()
    if swarm:
        drawn = [_flag(context, name) for name in _PER_RUN_PARAMETERS
                 if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
        if drawn:  # they would be silently ignored: the swarm draws every run's options from its seed
            fail(f"{', '.join(drawn)} cannot go with --swarm, which draws each run's options (use --runs and "
                 "--swarm-seed; replay one run with the command the swarm prints)")
        _swarm(runs, swarm_seed if swarm_seed is not None else secrets.randbits(64), SPACES[swarm_space], as_json)
        return
    for name in ("runs", "swarm_seed", "swarm_space"):
        if context.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
            fail(f"{_flag(context, name)} goes with --swarm")
    if seed is None:
        seed = secrets.randbits(64)
    try:
        latency = load_latency(latency_source) if latency_source else None
        split = parse_split(split_spec) if split_spec else (0.0, 0.0, 0.0)
        config = SimConfig(seed=seed, consensus=consensus, nodes=nodes, duration_s=duration_s,
                           faults=parse_faults(faults), model=model, block_interval_s=block_interval_s,
                           finality_threshold=finality_threshold, max_delay_s=max_delay_s,
                           async_scale_s=async_scale_s, tx_rate_per_s=tx_rate_per_s, read_rate_per_s=read_rate_per_s,
                           heartbeat_interval_s=heartbeat_interval_s, acks_required=acks_required,
                           liveness_budget_s=liveness_budget_s, byzantine=byzantine.strip(), twins=twins,
                           degree=degree, latency=latency, miners=miners, split_share=split[0],
                           split_at_s=split[1], split_for_s=split[2], workload=workload, locks=locks)
    except (ConfigError, LatencyError) as exc:
        fail(str(exc))
    click.echo(f"SEED={seed}", err=as_json)
    if as_json:
        sys.stderr.flush()
    if trace_path is not None:
        result, timing = _run_traced(config, trace_path, memory_every_s)
    else:
        result, timing = run_timed(config, memory_every_s=memory_every_s)
    if history_path is not None:
        write_history(history_path, result.history)
    if as_json:
        document = result.to_json()
        document.update(wall_s=round(timing.wall_s, 3), cpu_s=round(timing.cpu_s, 3),
                        speedup=round(result.virtual_s / max(timing.wall_s, 1e-9), 1),
                        cpu_speedup=round(result.virtual_s / max(timing.cpu_s, 1e-9), 1))
        if timing.memory:
            document["memory"] = list(timing.memory)
        emit_json(document)
    else:
        _print_result(result, timing)
        if history_path is not None:
            click.echo(f"history: {history_path} ({len(result.history)} records)")
        if trace_path is not None:
            _print_trace_hints(result, trace_path)
    if not result.ok:
        sys.exit(1)


def load_latency(source: str) -> LatencyMatrix:
    """A built-in matrix by name, or one read from a TOML file (LatencyError, one line, otherwise)."""
    if source in BUILT_IN:
        return BUILT_IN[source]
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LatencyError(f"--latency {source}: not a built-in matrix ({', '.join(BUILT_IN)}) and not a readable "
                           f"file: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_latency(source, text)


def _run_traced(config: SimConfig, trace_path: Path, memory_every_s: float) -> tuple[SimResult, Timing]:
    """The run, its trace's lines made by a writer process on the other core (cli/simtrace.py)."""
    try:
        with open(trace_events_path(trace_path), "w", encoding="utf-8") as faults_out:
            writer = TraceWriter(trace_path)
            try:
                outcome = run_timed(config, memory_every_s=memory_every_s,
                                    tracer=CausalTracer(faults_out=faults_out, sink=writer.send))
            finally:
                written = writer.close()
    except OSError as exc:
        fail(f"--trace: cannot write {exc.filename or trace_path}: {exc.strerror or exc}")
    if not written:
        fail(f"--trace: the trace writer failed; {trace_path} is incomplete")
    return outcome


def _print_trace_hints(result: SimResult, trace_path: Path) -> None:
    """Where the trace went and, when the run failed, the commands that show the events of its first violation."""
    events = trace_events_path(trace_path)
    click.echo(f"trace: {trace_path} (faults: {events})")
    if result.first_violation_t is None:
        return
    t = result.first_violation_t
    click.echo(f"the first violation in the trace: {' and '.join(result.violation_events) or 'no event'} at "
               f"t={t:.3f}s; see them with")
    if len(result.violation_events) == 2:
        first, second = result.violation_events
        click.echo(f"  chainlab trace hb {trace_path} {first} {second} --events {events}")
    click.echo(f"  chainlab trace concurrent {trace_path} --what block-mined --same height --events {events}")
    click.echo(f"  chainlab trace diagram {trace_path} --events {events} --from {max(0.0, t - 30):.1f} "
               f"--to {t + 1:.1f} --kinds block,blocks,getblocks,block-mined,block-final,reorg,crash,node-start "
               f"--out violation.html")


def _print_result(result: SimResult, timing: Timing) -> None:
    config = result.config
    click.echo(f"{config.consensus}, {config.nodes} nodes, model {config.model}, faults "
               f"{','.join(sorted(config.faults)) or 'none'}, safety phase {config.duration_s:g} s")
    click.echo(f"virtual {result.virtual_s:.1f} s in {timing.wall_s:.2f} s wall "
               f"({result.virtual_s / max(timing.wall_s, 1e-9):.1f}x; CPU {timing.cpu_s:.2f} s), "
               f"{result.trace_events} trace events")
    click.echo(f"trace_hash {result.trace_hash}")
    not_judged = result.stats.get("not_judged")
    if isinstance(not_judged, dict) and not_judged:
        click.echo("not judged (Byzantine): " + ", ".join(f"{name} ({why})" for name, why in not_judged.items()))
    note = _byzantine_note(config, result.stats)
    if note:
        click.echo(f"note: {note}")
    for line in _scale_lines(result.scale or {}):
        click.echo(line)
    for check in result.checks:
        click.echo(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    stats = result.stats
    if "lock_ops_sent" in stats:  # the lock workload: what the sessions did, beside what the chains committed
        click.echo(f"lock sessions: {stats['lock_ops_sent']} operations sent ({stats['lock_refused_at_admission']} "
                   f"refused at admission), {stats['lock_pauses']} pauses past a lease, {stats['lock_late_writes']} "
                   f"late writes ({stats['lock_late_writes_refused']} refused, {stats['lock_late_writes_in_lease']} "
                   "accepted within the lease)")
    if result.first_violation:
        click.echo(f"first violation: {result.first_violation}")
    for sample in timing.memory:
        click.echo(f"  memory at {sample['virtual_s']:g} s: RSS {sample['rss_mib']} MiB, stores "
                   f"{sample['store_mib']} MiB, height {sample['max_height']}")
    click.echo(f"result: {'OK' if result.ok else 'FAILED'}")
    click.echo(f"replay: {config.command()}")


def _scale_lines(scale: Mapping[str, Any]) -> list[str]:
    """The network-wide figures (docs/SCALE.md) as a few lines."""
    lines = []
    overlay, propagation, stale = scale.get("overlay"), scale.get("propagation"), scale.get("stale")
    if isinstance(overlay, dict):
        lines.append(f"overlay: degree {overlay['degree']}, {overlay['links']} links, up to "
                     f"{overlay['hops_from_node0_max']} hops from node0 (mean {overlay['hops_from_node0_mean']}); "
                     f"{scale.get('miners')} miners" + (f"; latency {scale['latency']}" if "latency" in scale else ""))
    if isinstance(propagation, dict):
        lines.append(f"propagation to {propagation['fraction']:.0%} of nodes: p50 {propagation['p50_s']} s, p99 "
                     f"{propagation['p99_s']} s, max {propagation['max_s']} s ({propagation['reached']} of "
                     f"{propagation['blocks']} blocks got there)")
    if isinstance(stale, dict):
        lines.append(f"stale blocks: {stale['stale']} of {stale['mined']} mined (rate {stale['rate']})")
    split = scale.get("split")
    if isinstance(split, dict):
        for name, side in zip("AB", split["sides"], strict=True):
            lines.append(f"split side {name}: {side['nodes']} nodes, {side['miners']} miners, hash "
                         f"{side['hash_share']:.3f}: mining {side['mining_before']} before, {side['mining_at_end']} at "
                         f"the heal, {side['mining_after_heal']} once converged; all paused after "
                         f"{side['all_paused_after_s']} s; {side['blocks_while_cut']} blocks while cut")
        lines.append(f"split heal: {split['reorged_nodes']} nodes reorged (deepest {split['deepest_reorg']}, "
                     f"{split['blocks_disconnected']} blocks disconnected in all); one tip again "
                     f"{split['converged_after_heal_s']} s after the heal")
    return lines


def _byzantine_note(config: SimConfig, stats: Mapping[str, object]) -> str:
    """What the user should know about the Byzantine validators asked for: none drawn by `random`, or more of
    them than the quorums tolerate (a demonstration, not a test of the fault model)."""
    count, f = stats.get("byzantine_validators"), stats.get("f")
    if not isinstance(count, int) or not isinstance(f, int):
        return ""
    if count > f:
        return (f"{count} of {config.nodes} validators are Byzantine, more than f = {f}: the engine promises "
                "neither safety nor liveness here (a failure is no bug; a pass proves nothing)")
    if config.byzantine == "random" and count == config.twins:
        why = (f"f = {f} with {config.nodes} validators" if config.twins == 0
               else f"the {config.twins} twin(s) use up f = {f}")
        return f"--byzantine random drew no Byzantine validator: {why}"
    return ""


# The options of one run; with --swarm they are drawn from the swarm seed instead.
_PER_RUN_PARAMETERS = ("consensus", "nodes", "seed", "duration_s", "faults", "model", "block_interval_s",
                       "finality_threshold", "max_delay_s", "async_scale_s", "tx_rate_per_s", "read_rate_per_s",
                       "history_path", "trace_path", "heartbeat_interval_s",
                       "acks_required", "liveness_budget_s", "byzantine", "twins", "degree", "latency_source",
                       "miners", "split_spec", "workload", "locks")


def _flag(context: click.Context, name: str) -> str:
    """The option a parameter is given with on the command line (`duration_s` -> `--duration`)."""
    return next((p.opts[0] for p in context.command.params if p.name == name), name)


def _swarm(runs: int, swarm_seed: int, space: SwarmSpace, as_json: bool) -> None:
    click.echo(f"SWARM_SEED={swarm_seed}", err=as_json)
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    started = time.perf_counter()
    for number, config in enumerate(itertools.islice(swarm_configs(swarm_seed, space), runs), start=1):
        result, timing = run_timed(config)
        wall_s = timing.wall_s
        row = {"seed": config.seed, "ok": result.ok, "virtual_s": round(result.virtual_s, 1),
               "wall_s": round(wall_s, 2), "trace_hash": result.trace_hash, "command": config.command()}
        rows.append(row)
        if not result.ok:
            failures.append({"seed": config.seed, "failed": result.failed_checks(),
                             "first_violation": result.first_violation, "command": config.command()})
        if not as_json:
            click.echo(f"run {number}/{runs} seed={config.seed} {'ok  ' if result.ok else 'FAIL'} "
                       f"{result.virtual_s:7.1f} s virtual in {wall_s:5.2f} s  {config.command()}")
    if as_json:
        emit_json({"swarm_seed": swarm_seed, "runs": runs, "ok": not failures,
                   "wall_s": round(time.perf_counter() - started, 2), "failures": failures, "results": rows})
    else:
        click.echo(f"{runs - len(failures)}/{runs} runs ok")
        for failure in failures:
            click.echo(f"FAILED seed={failure['seed']}: {', '.join(failure['failed'])}")
            click.echo(f"  replay: {failure['command']}")
    if failures:
        sys.exit(1)
