"""`chainlab check ...`: judge a recorded client history (`check linearizable`, `check consistency`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from causality.events import TraceError, TraceEvent, parse_trace
from cli.common import emit_json, fail
from testnet.consistency import (
    GUARANTEES,
    LINEARIZABLE_LEVELS,
    PROMISES,
    Report,
    analyse,
    level_order,
    reads_of,
)
from testnet.history import HistoryError, Op, check_well_formed, read_history
from testnet.linearizability import (
    DEFAULT_MAX_STATES,
    DEFAULT_TIMEOUT_S,
    MODELS,
    READ_LEVELS,
    AccountModel,
    ModelError,
    Operation,
    Result,
    check,
    model_named,
    pair_operations,
    read_level,
)
from testnet.report import render_consistency_report, render_history_report
from testnet.state import EVENTS_FILE, read_event_file
from testnet.tracelinks import link_ops


@click.group(name="check")
def command() -> None:
    """Judge a client history (history.jsonl: one {index, time_ns, type, process, node, op, key, value, error}
    record per line, docs/CONSISTENCY.md)."""


@command.command(name="linearizable")
@click.argument("history", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", type=click.Choice(sorted(MODELS)), default="register", show_default=True,
              help="the sequential specification: register (read, write, cas per key) or account (the load's "
                   "transfers and reads: nonce and balance per account)")
@click.option("--levels", help="with --model account: the read levels whose reads are checked, with every transfer "
                               "(default: linearizable, the only level that promises it; e.g. "
                               "latest,final,linearizable)")
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=DEFAULT_TIMEOUT_S, show_default=True,
              help="give up with verdict `unknown` after this long")
@click.option("--max-states", type=click.IntRange(1), default=DEFAULT_MAX_STATES, show_default=True,
              help="give up with verdict `unknown` after exploring this many (linearized set, state) pairs")
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write the HTML report (lanes per process, the offending operation highlighted)")
@click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"nemesis events to draw in the report (default: {EVENTS_FILE} beside HISTORY, if any)")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path),
              help="a causal trace of the run (`testnet trace`): name the trace events around the first violation")
def linearizable_command(history: Path, model: str, levels: str | None, timeout_s: float, max_states: int,
                         as_json: bool, html_path: Path | None, events_path: Path | None,
                         trace_path: Path | None) -> None:
    """Is HISTORY linearizable? Exit 0 when it is, 1 when it is not (the first operation that cannot be placed
    and the operations around it are printed), 2 when the budget ran out (`unknown`). With --model account, the
    reads checked are those of the levels that promise linearizability (--levels to choose)."""
    if not history.exists():
        fail(f"{history}: no such file")
    if events_path is not None and html_path is None:
        fail("--events only says what the --html report draws; give --html REPORT.html too")
    if events_path is not None and not events_path.is_file():
        fail(f"{events_path}: no such file")
    if levels is not None and model != "account":
        fail("--levels chooses the account model's reads; give --model account too")
    chosen = _parse_levels(levels) if levels is not None else list(LINEARIZABLE_LEVELS)
    ops = _read_ops(history)
    events = _events_for(history, events_path) if html_path is not None else []
    trace = _read_trace(trace_path)
    checked_model = AccountModel(levels=chosen) if model == "account" else model_named(model)
    deadline = time.monotonic() + timeout_s
    started = time.perf_counter()
    try:
        result = check(ops, checked_model, max_states=max_states,
                       should_stop=lambda: time.monotonic() > deadline)
    except ModelError as exc:
        fail(f"{history}: {exc}")
    seconds = time.perf_counter() - started
    budget = f"--max-states {max_states:,}, --timeout-s {timeout_s:g}"
    scope = _levels_scope(ops, chosen) if model == "account" else None
    if html_path is not None:  # written before the verdict is printed, so a bad path fails before any output
        _write_report(html_path, result, ops, history, events_path, events)
    linked = None
    failed = result.failed_key
    if trace_path is not None and failed is not None and failed.stuck is not None:
        stuck = result.operations[failed.stuck]
        indices = [stuck.call] + ([int(stuck.ret)] if stuck.ret != float("inf") else [])
        linked = link_ops(trace, ops, indices, str(trace_path))
    if as_json:
        report = {"report": str(html_path)} if html_path is not None else {}
        emit_json({**result.to_json(), "history": str(history), "seconds": round(seconds, 3), **report,
                   **({"levels": scope} if scope is not None else {}),
                   **({"budget": {"max_states": max_states, "timeout_s": timeout_s}}
                      if result.verdict == "unknown" else {}),
                   **({"trace": linked} if trace_path is not None else {})})
    else:
        _print(result, history, seconds, budget, scope)
        _print_linked(linked, trace_path, result.verdict == "not-linearizable")
        if html_path is not None:
            click.echo(f"report: {html_path}")
    if result.verdict != "linearizable":
        raise SystemExit(1 if result.verdict == "not-linearizable" else 2)


def _parse_levels(levels: str) -> list[str]:
    """--levels latest,final: the named read levels, or a one-line error."""
    chosen = [level.strip() for level in levels.split(",") if level.strip()]
    unknown = [level for level in chosen if level not in READ_LEVELS]
    if unknown or not chosen:
        fail(f"--levels: unknown level {unknown[0] if unknown else levels!r} (levels: {', '.join(READ_LEVELS)})")
    return chosen


def _levels_scope(ops: Sequence[Op], chosen: Sequence[str]) -> dict[str, Any]:
    """Which read levels the account model checked, and how many answered reads of other levels it left out."""
    left_out: dict[str, int] = {}
    for invoke, done in reads_of(ops)[1]:
        level = read_level(invoke)
        if level not in chosen and done is not None and done.type == "ok":
            left_out[level] = left_out.get(level, 0) + 1
    return {"checked": list(chosen), "left_out": dict(sorted(left_out.items(), key=lambda item: level_order(item[0])))}


def _print(result: Result, history: Path, seconds: float, budget: str, scope: dict[str, Any] | None) -> None:
    levels = f", reads at {', '.join(scope['checked'])} with every transfer" if scope is not None else ""
    click.echo(f"{history}: {result.verdict} ({result.scope()}, model {result.model}{levels}, "
               f"{result.states:,} states explored in {seconds:.2f} s)")
    if scope is not None and scope["left_out"]:
        shown = ", ".join(f"{count} {level}" for level, count in scope["left_out"].items())
        click.echo(f"reads left out: {shown} (their levels do not promise linearizability; --levels to include them)")
    if result.reason:
        click.echo(f"unknown: {result.reason} ({budget})")
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


@command.command(name="consistency")
@click.argument("history", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--levels", help="read levels to judge, e.g. final,linearizable (default: those in the history)")
@click.option("--engine", help="the engine that made the history, for the report (default: from testnet.json "
                               "beside the history)")
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=DEFAULT_TIMEOUT_S, show_default=True,
              help="time for the linearizability search of each level; past it, that verdict is `unknown`")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="also write an HTML report: one lane per client, violations highlighted, nemesis events drawn")
@click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"nemesis events to draw in the report (default: {EVENTS_FILE} beside HISTORY, if any)")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path),
              help="a causal trace of the run (`testnet trace`): name the trace events around the first violation")
def consistency_command(history: Path, levels: str | None, engine: str | None, timeout_s: float,
                        as_json: bool, html_path: Path | None, events_path: Path | None,
                        trace_path: Path | None) -> None:
    """Which guarantees does the load history HISTORY satisfy, per read level: linearizable, read-your-writes,
    monotonic reads, monotonic writes, writes-follow-reads; and did the nodes converge after quiescence? Exit 1
    when a guarantee that the level promises is violated (docs/CONSISTENCY.md), 0 otherwise."""
    if not history.exists():
        fail(f"{history}: no such file")
    if events_path is not None and html_path is None:
        fail("--events only says what the --html report draws; give --html REPORT.html too")
    if events_path is not None and not events_path.is_file():
        fail(f"{events_path}: no such file")
    chosen = _parse_levels(levels) if levels is not None else None
    ops = _read_ops(history)
    events = _events_for(history, events_path) if html_path is not None else []
    engine = engine or _engine_beside(history)
    trace = _read_trace(trace_path)
    started = time.monotonic()
    try:
        report = analyse(ops, levels=chosen, should_stop=lambda: time.monotonic() > started + timeout_s)
    except ModelError as exc:
        fail(f"{history}: {exc}")
    broken = report.broken_promises()
    seconds = round(time.monotonic() - started, 3)
    if html_path is not None:
        _write_html(html_path, render_consistency_report(title=f"{history.name}: consistency", ops=ops,
                                                         report=report, events=events, engine=engine))
    linked = None
    if trace_path is not None and broken:
        first = next((g.examples[0] for r in report.levels.values() for g in r.guarantees.values()
                      if g.examples and f"{g.name} ({r.level} reads)" in broken), None)
        first = first or (report.convergence.examples[0] if report.convergence.examples else None)
        if first is not None:
            linked = link_ops(trace, ops, first["indices"], str(trace_path))
    if as_json:
        emit_json({**report.to_json(), "history": str(history), "engine": engine, "broken_promises": broken,
                   "seconds": seconds, **({"report": str(html_path)} if html_path is not None else {}),
                   **({"trace": linked} if trace_path is not None else {})})
    else:
        _print_consistency(report, history, engine, broken)
        _print_linked(linked, trace_path, bool(broken))
        if html_path is not None:
            click.echo(f"report: {html_path}")
    if broken:
        raise SystemExit(1)


def _read_ops(history: Path) -> list[Op]:
    """HISTORY's records, or a one-line error: unreadable, not a history, no records, or not well formed (a
    completion without its invoke, two open invokes of one process, indices not counting up by one). A torn last
    line is ignored with a note on stderr."""
    def torn(number: int) -> None:
        click.echo(f"note: {history} line {number}: torn last line (no newline, not a record) ignored", err=True)

    try:
        ops = read_history(history, on_torn_line=torn)
    except (HistoryError, OSError) as exc:
        fail(str(exc))
    if not ops:
        fail(f"no history records in {history}")
    problems = check_well_formed(ops)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        fail(f"{history}: not a well-formed history: {problems[0]}{more}")
    return ops


def _read_trace(trace_path: Path | None) -> list[TraceEvent]:
    """The events of --trace (none without it); a one-line error for a missing or malformed file."""
    if trace_path is None:
        return []
    try:
        with trace_path.open(encoding="utf-8") as lines:
            return list(parse_trace(lines, str(trace_path)))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--trace: cannot read {trace_path}: {exc}")
    except TraceError as exc:
        fail(f"--trace: {exc}")


def _print_linked(linked: dict[str, Any] | None, trace_path: Path | None, violated: bool) -> None:
    """The trace events around the first violation and the commands that show them."""
    if trace_path is None or not violated:
        return
    if linked is None:
        click.echo(f"trace: {trace_path} has no event of the violation's nodes while its operations were in flight")
        return
    click.echo("trace events while the violation's operations were in flight: " + "; ".join(linked["events"]))
    for command_line in linked["commands"]:
        click.echo(f"  {command_line}")


def _events_for(history: Path, events_path: Path | None) -> list[dict[str, Any]]:
    """The nemesis events to draw: --events (every line an event, else a one-line error), or the events.jsonl beside
    HISTORY when there is one (read leniently: it may be growing)."""
    events_file = events_path if events_path is not None else history.parent / EVENTS_FILE
    try:
        return read_event_file(events_file, strict=events_path is not None) if events_file.is_file() else []
    except UnicodeDecodeError as exc:
        fail(f"{events_file}: cannot read the events: not UTF-8 ({exc.reason} at byte {exc.start})")
    except ValueError as exc:
        fail(f"--events: {exc}")
    except OSError as exc:
        fail(f"{events_file}: cannot read the events: {exc.strerror or exc}")


def _write_html(path: Path, html: str) -> None:
    try:
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        fail(f"{path}: cannot write the report: {exc.strerror or exc}")


def _engine_beside(history: Path) -> str | None:
    try:
        data = json.loads((history.parent / "testnet.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    engine = data.get("consensus") if isinstance(data, dict) else None
    return engine if isinstance(engine, str) else None


def _print_consistency(report: Report, history: Path, engine: str | None, broken: list[str]) -> None:
    click.echo(f"{history}: {report.writes} transfers ({report.writes_final} final) by {report.sessions} sessions; "
               f"engine {engine or 'unknown'}")
    if not report.levels:
        click.echo("no reads in this history (run the load with --reads LEVEL[,LEVEL...])")
    else:
        levels = list(report.levels)
        width = max(14, *(len(level) + 4 for level in levels))
        click.echo(f"{'':22}" + "".join(f"{level:>{width}}" for level in levels))
        for name in GUARANTEES:
            cells = []
            for level in levels:
                guarantee = report.levels[level].guarantees[name]
                text = {"holds": "holds", "violated": f"VIOLATED x{guarantee.violations}",
                        "not-measured": "-", "unknown": "unknown"}[guarantee.verdict]
                cells.append(text + ("*" if name in PROMISES.get(level, ()) else " "))
            click.echo(f"{name:22}" + "".join(f"{cell:>{width}}" for cell in cells))
        answered = [f"{r.reads_ok}/{r.reads_ok + r.reads_failed + r.reads_unknown} " for r in report.levels.values()]
        stale = [f"{r.stale_reads} ({r.max_staleness}) " for r in report.levels.values()]
        for label, cells in (("reads answered", answered), ("stale reads (max)", stale)):
            click.echo(f"{label:22}" + "".join(f"{cell:>{width}}" for cell in cells))
        click.echo("* promised by the level (docs/CONSISTENCY.md); - not measured: nothing in the history tests it")
    convergence = report.convergence
    click.echo(f"eventual convergence: {convergence.verdict} ({convergence.checked} account read(s) compared "
               f"across nodes after quiescence)")
    for level, level_report in report.levels.items():
        for guarantee in level_report.guarantees.values():
            for example in guarantee.examples[:1]:
                click.echo(f"  {guarantee.name} ({level} reads): {example['text']}")
            if guarantee.detail:
                click.echo(f"  {guarantee.name} ({level} reads): {guarantee.detail}")
    for example in convergence.examples[:1]:
        click.echo(f"  eventual convergence: {example['text']}")
    if broken:
        click.echo("broken promises: " + ", ".join(broken))


def _write_report(path: Path, result: Result, ops: Sequence[Op], history: Path, events_path: Path | None,
                  events: list[dict[str, Any]]) -> None:
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
    return f"{result.scope()}, {result.states:,} states explored"
