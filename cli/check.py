"""`chainlab check ...`: judge a recorded client history (`check linearizable`)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli.common import emit_json, fail
from testnet.history import HistoryError, read_history
from testnet.linearizability import DEFAULT_MAX_STATES, MODELS, ModelError, Result, check, model_named


@click.group(name="check")
def command() -> None:
    """Judge a client history (history.jsonl: one {index, time_ns, type, process, node, op, key, value, error}
    record per line, docs/CONSISTENCY.md)."""


@command.command(name="linearizable")
@click.argument("history", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", type=click.Choice(sorted(MODELS)), default="register", show_default=True,
              help="the sequential specification: register (read, write, cas per key)")
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=60.0, show_default=True,
              help="give up with verdict `unknown` after this long")
@click.option("--max-states", type=click.IntRange(1), default=DEFAULT_MAX_STATES, show_default=True,
              help="give up with verdict `unknown` after exploring this many (linearized set, state) pairs")
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON")
def linearizable_command(history: Path, model: str, timeout_s: float, max_states: int, as_json: bool) -> None:
    """Is HISTORY linearizable? Exit 0 when it is, 1 when it is not (the first operation that cannot be placed
    and the operations around it are printed), 2 when the budget ran out (`unknown`)."""
    if not history.exists():
        fail(f"{history}: no such file")
    try:
        ops = read_history(history)
    except (HistoryError, OSError) as exc:
        fail(str(exc))
    deadline = time.monotonic() + timeout_s
    started = time.perf_counter()
    try:
        result = check(ops, model_named(model), max_states=max_states, should_stop=lambda: time.monotonic() > deadline)
    except ModelError as exc:
        fail(f"{history}: {exc}")
    seconds = time.perf_counter() - started
    if as_json:
        emit_json({**result.to_json(), "history": str(history), "seconds": round(seconds, 3)})
    else:
        _print(result, history, seconds)
    if result.verdict != "linearizable":
        raise SystemExit(1 if result.verdict == "not-linearizable" else 2)


def _print(result: Result, history: Path, seconds: float) -> None:
    click.echo(f"{history}: {result.verdict} ({len(result.operations)} operations on {len(result.keys)} key(s), "
               f"model {result.model}, {result.states:,} states explored in {seconds:.2f} s)")
    if result.reason:
        click.echo(f"unknown: {result.reason}")
    failed = result.failed_key
    if failed is None or failed.stuck is None:
        return
    stuck = result.operations[failed.stuck]
    click.echo(f"key {failed.key}: no linearization places {stuck.describe()} (invoked at index {stuck.call}); the "
               f"deepest attempt placed {len(failed.linearized_before)} operation(s) before it")
    click.echo("operations around it (invoke..complete index):")
    for op in result.window(failed.stuck):
        end = "inf" if op.ret == float("inf") else str(int(op.ret))
        marker = ">>" if op.id == stuck.id else "  "
        click.echo(f"{marker} [{op.call}..{end}] {op.describe()}")
