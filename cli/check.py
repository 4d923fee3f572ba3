"""`chainlab check ...`: judge a recorded client history (`check linearizable`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import click

from cli.common import emit_json, fail
from testnet.history import HistoryError, Op, read_history
from testnet.linearizability import (
    DEFAULT_MAX_STATES,
    MODELS,
    ModelError,
    Operation,
    Result,
    check,
    model_named,
    pair_operations,
)
from testnet.report import render_history_report
from testnet.state import EVENTS_FILE, read_event_file


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
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write the HTML report (lanes per process, the offending operation highlighted)")
@click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"nemesis events to draw in the report (default: {EVENTS_FILE} beside HISTORY, if any)")
def linearizable_command(history: Path, model: str, timeout_s: float, max_states: int, as_json: bool,
                         html_path: Path | None, events_path: Path | None) -> None:
    """Is HISTORY linearizable? Exit 0 when it is, 1 when it is not (the first operation that cannot be placed
    and the operations around it are printed), 2 when the budget ran out (`unknown`)."""
    if not history.exists():
        fail(f"{history}: no such file")
    if events_path is not None and html_path is None:
        fail("--events only says what the --html report draws; give --html REPORT.html too")
    if events_path is not None and not events_path.is_file():
        fail(f"{events_path}: no such file")
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
    if html_path is not None:  # written before the verdict is printed, so a bad path fails before any output
        _write_report(html_path, result, ops, history, events_path)
    if as_json:
        report = {"report": str(html_path)} if html_path is not None else {}
        emit_json({**result.to_json(), "history": str(history), "seconds": round(seconds, 3), **report})
    else:
        _print(result, history, seconds)
        if html_path is not None:
            click.echo(f"report: {html_path}")
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


def _write_report(path: Path, result: Result, ops: Sequence[Op], history: Path, events_path: Path | None) -> None:
    """The HTML report of the checked history: every operation (failed ones too, which the model leaves out), the
    first one that cannot be linearized highlighted and the operations around it marked."""
    operations = pair_operations(ops, keep=lambda invoke, done: True)
    by_call = {op.call: op for op in operations}
    highlighted: dict[int, str] = {}
    window: list[int] = []
    failed = result.failed_key
    if failed is not None and failed.stuck is not None:
        stuck = by_call[result.operations[failed.stuck].call]  # the model's ids count only the operations it kept
        highlighted[stuck.id] = "cannot be linearized"
        window = [by_call[op.call].id for op in result.window(failed.stuck) if op.call != stuck.call]
    events_file = events_path if events_path is not None else history.parent / EVENTS_FILE
    try:
        events = read_event_file(events_file) if events_file.is_file() else []
    except (OSError, ValueError) as exc:
        fail(f"{events_file}: cannot read the events: {exc}")
    html = render_history_report(
        title=f"{history.name}: {result.verdict}", operations=operations, highlighted=highlighted, events=events,
        summary=[(f"linearizable (model {result.model})", result.verdict, _verdict_detail(result))],
        notes=[f"history {history}" + (f", events {events_file}" if events else ", no nemesis events")],
        window=window)
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        fail(f"{path}: cannot write the report: {exc.strerror or exc}")


def _verdict_detail(result: Result) -> str:
    failed = result.failed_key
    if failed is not None and failed.stuck is not None:
        stuck: Operation = result.operations[failed.stuck]
        return (f"key {failed.key}: no linearization places {stuck.describe()} (invoked at index {stuck.call}); "
                f"the deepest attempt placed {len(failed.linearized_before)} operation(s) before it")
    if result.verdict == "unknown":
        return f"unknown: {result.reason}"
    return f"{len(result.operations)} operations on {len(result.keys)} key(s), {result.states:,} states explored"
