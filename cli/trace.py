"""`chainlab trace ...`: ask a trace what caused what, and draw it (docs/CAUSALITY.md).

FILE is a trace: JSON lines of events `{node, seq, kind, what, msg_id, peer, vc, lamport, time_ns, detail}`, as
`node run --trace`, `testnet trace` and `sim --trace` write them. EVENT names one event: `node1:17` (node:seq),
`node1:block-mined:3` (node1's third block-mined; -1 the last) or `[node:]block-mined@ab12` (by block hash
prefix).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from causality.clocks import Order
from causality.diagram import (
    Fault,
    Filters,
    fault_periods,
    faults_during,
    render_html,
    render_shiviz,
    render_svg,
    select,
)
from causality.events import TraceError, parse_trace
from causality.graph import DEFAULT_MAX_PAIRS, RefError, Relation, TraceGraph
from cli.common import emit_json, fail
from testnet.state import EVENTS_FILE, read_event_file, trace_events_path

SHOWN_IN_TEXT = 40  # text output lists at most this many events or messages; --json lists them all
FORMATS = ("html", "svg", "shiviz")

_REF_HELP = "node1:17, node1:block-mined:3 or block-mined@HASHPREFIX"


@click.group(name="trace")
def command() -> None:
    """Happens-before queries and space-time diagrams of an event trace (docs/CAUSALITY.md). EVENT is node:seq
    (node1:17), node:what:n (node1:block-mined:3, -1 for the last) or [node:]what@hashprefix (block-mined@ab12)."""


def _load(path: Path) -> TraceGraph:
    if not path.is_file():
        fail(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8") as lines:
            graph = TraceGraph(parse_trace(lines, str(path)))
    except TraceError as exc:
        fail(str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read: {exc}")
    if not len(graph):
        fail(f"{path}: no events in the trace")
    return graph


def _resolve(graph: TraceGraph, ref: str) -> int:
    try:
        return graph.resolve(ref)
    except RefError as exc:
        fail(str(exc))


def _faults(trace: Path, events_path: Path | None) -> list[Fault]:
    """The fault periods of --events, else of TRACE.events.jsonl (written by `sim --trace` and `testnet trace`),
    else of the events.jsonl beside the trace (none when there is none)."""
    if events_path is not None and not events_path.is_file():
        fail(f"{events_path}: no such file")
    source = events_path or next((path for path in (trace_events_path(trace), trace.parent / EVENTS_FILE)
                                  if path.is_file()), None)
    if source is None:
        return []
    try:
        return fault_periods(read_event_file(source))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{source}: cannot read: {exc}")


def _fault_text(graph: TraceGraph, faults: list[Fault], indices: tuple[int, ...]) -> str:
    """The faults in force where and when the events happened: `partition 0,1 | 2 on node0, node2`."""
    found: dict[str, set[str]] = {}
    for index in indices:
        event = graph.events[index]
        for fault in faults_during(faults, event.node, event.time_ns):
            found.setdefault(fault.label, set()).add(event.node)
    return "; ".join(f"{label} on {', '.join(sorted(nodes))}" for label, nodes in sorted(found.items()))


def _notes(graph: TraceGraph) -> None:
    for note in graph.notes:
        click.echo(f"note: {note}", err=True)


def _line(graph: TraceGraph, index: int) -> str:
    event = graph.events[index]
    peer = f" {'to' if event.kind == 'send' else 'from'} {event.peer}" if event.peer else ""
    detail = " " + " ".join(f"{k}={v}" for k, v in sorted(event.detail.items())) if event.detail else ""
    return f"{graph.name(index)} {event.kind} {event.what}{peer}{detail}"


@command.command(name="hb")
@click.argument("trace", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("first")
@click.argument("second")
@click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"a testnet's {EVENTS_FILE}: name the faults in force (default: {EVENTS_FILE} beside TRACE)")
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
def hb_command(trace: Path, first: str, second: str, events_path: Path | None, as_json: bool) -> None:
    """Did FIRST happen before SECOND, after it, or are they concurrent? With the causal chain (program-order
    steps and messages) that proves it. Exit 0 when answered, 1 on a bad file or event."""
    graph = _load(trace)
    relation = graph.relation(_resolve(graph, first), _resolve(graph, second))
    during = _fault_text(graph, _faults(trace, events_path), (relation.first, relation.second))
    if as_json:
        emit_json({**_relation_json(graph, relation), "faults": during or None})
        return
    _notes(graph)
    a, b = graph.name(relation.first), graph.name(relation.second)
    click.echo(f"{_line(graph, relation.first)}\n{_line(graph, relation.second)}")
    verdict = {Order.BEFORE: f"{a} happened before {b}", Order.AFTER: f"{a} happened after {b}",
               Order.EQUAL: f"{a} and {b} are the same event" if relation.first == relation.second
               else f"{a} and {b} have the same clock", Order.CONCURRENT: f"{a} and {b} are concurrent: neither "
               "knew of the other"}[relation.order]
    click.echo(verdict)
    if relation.chain:
        hops = sum(1 for step in relation.chain if step.kind == "message")
        click.echo(f"causal chain ({hops} message(s), {len(relation.chain)} step(s)):")
        for step in relation.chain[:SHOWN_IN_TEXT]:
            if step.kind == "message":
                click.echo(f"  {graph.name(step.source)} -> {graph.name(step.target)}  message "
                           f"{graph.events[step.source].what} {graph.events[step.source].msg_id}")
            else:
                click.echo(f"  {graph.name(step.source)} -> {graph.name(step.target)}  program order, "
                           f"{step.count} step(s) on {graph.process_of[step.source]}")
        if len(relation.chain) > SHOWN_IN_TEXT:
            click.echo(f"  ... and {len(relation.chain) - SHOWN_IN_TEXT} more step(s) (--json lists them all)")
    if relation.note:
        click.echo(f"{'incomplete' if not relation.complete else 'note'}: {relation.note}")
    if during:
        click.echo(f"during: {during}")


def _relation_json(graph: TraceGraph, relation: Relation) -> dict[str, Any]:
    return {"first": graph.event_json(relation.first), "second": graph.event_json(relation.second),
            "order": relation.order.value, "complete": relation.complete, "note": relation.note or None,
            "chain": None if relation.chain is None else [graph.step_json(s) for s in relation.chain],
            "trace": graph.summary()}


def _cone_command(trace: Path, event: str, as_json: bool, direction: str) -> None:
    graph = _load(trace)
    index = _resolve(graph, event)
    cone = graph.past(index) if direction == "past" else graph.future(index)
    if as_json:
        emit_json({"event": graph.event_json(index), "direction": direction,
                   "events": [graph.name(i) for i in cone.events],
                   "messages": [{"send": graph.name(s), "receive": graph.name(r), "what": graph.events[s].what,
                                 "msg_id": graph.events[s].msg_id} for s, r in cone.messages],
                   "trace": graph.summary()})
        return
    _notes(graph)
    click.echo(_line(graph, index))
    by_process: dict[str, int] = {}
    for i in cone.events:
        by_process[graph.process_of[i]] = by_process.get(graph.process_of[i], 0) + 1
    spread = ", ".join(f"{name} {count}" for name, count in sorted(by_process.items()))
    click.echo(f"causal {direction}: {len(cone.events)} event(s) ({spread or 'none'}), {len(cone.messages)} "
               "message(s)")
    decisions = [i for i in cone.events if graph.events[i].kind == "internal"]
    if decisions:
        click.echo("decisions in it:")
        for i in decisions[:SHOWN_IN_TEXT]:
            click.echo(f"  {_line(graph, i)}")
        if len(decisions) > SHOWN_IN_TEXT:
            click.echo(f"  ... and {len(decisions) - SHOWN_IN_TEXT} more (--json lists them all)")
    if cone.messages:
        click.echo("messages in it:")
        for send, receive in cone.messages[:SHOWN_IN_TEXT]:
            click.echo(f"  {graph.name(send)} -> {graph.name(receive)}  {graph.events[send].what}")
        if len(cone.messages) > SHOWN_IN_TEXT:
            click.echo(f"  ... and {len(cone.messages) - SHOWN_IN_TEXT} more (--json lists them all)")


@command.command(name="past")
@click.argument("trace", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("event")
@click.option("--json", "as_json", is_flag=True, help="print every event and message as JSON")
def past_command(trace: Path, event: str, as_json: bool) -> None:
    """The causal past of EVENT: every event that happened before it (by the vector clocks), the decisions among
    them and the messages that carried them (e.g. all that led to a block becoming final on node3)."""
    _cone_command(trace, event, as_json, "past")


@command.command(name="future")
@click.argument("trace", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("event")
@click.option("--json", "as_json", is_flag=True, help="print every event and message as JSON")
def future_command(trace: Path, event: str, as_json: bool) -> None:
    """The causal future of EVENT: every event it happened before, and the messages among them."""
    _cone_command(trace, event, as_json, "future")


@command.command(name="concurrent")
@click.argument("trace", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--what", required=True, help="the event's `what`, e.g. block-mined")
@click.option("--same", help="only pairs whose detail has the same value of this field, e.g. height")
@click.option("--limit", type=click.IntRange(1), default=DEFAULT_MAX_PAIRS, show_default=True,
              help="list at most this many pairs (all are counted)")
@click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"a testnet's {EVENTS_FILE}: name the faults in force (default: {EVENTS_FILE} beside TRACE)")
@click.option("--json", "as_json", is_flag=True, help="print the pairs and groups as JSON")
def concurrent_command(trace: Path, what: str, same: str | None, limit: int, events_path: Path | None,
                       as_json: bool) -> None:
    """Pairs of WHAT events neither of which knew of the other: for block-mined, two blocks mined without
    knowledge of each other, the cause of every fork. Exit 0 whether or not any is found."""
    graph = _load(trace)
    found = graph.concurrent(what, same=same, max_pairs=limit)
    faults = _faults(trace, events_path)
    if as_json:
        emit_json({"what": found.what, "same": same, "events": found.events, "pair_count": found.pair_count,
                   "truncated": found.truncated,
                   "pairs": [[graph.event_json(a), graph.event_json(b)] for a, b in found.pairs],
                   "faults": [_fault_text(graph, faults, pair) or None for pair in found.pairs],
                   "groups": [[graph.name(i) for i in group] for group in found.groups], "trace": graph.summary()})
        return
    _notes(graph)
    if not found.events:
        whats = sorted({e.what for e in graph.events})
        click.echo(f"no {what} events in the trace (whats: {', '.join(whats[:20])})")
        return
    same_text = f" with the same {same}" if same else ""
    click.echo(f"{found.events} {what} event(s); {found.pair_count} concurrent pair(s){same_text}")
    for a, b in found.pairs[:SHOWN_IN_TEXT]:
        click.echo(f"  {_line(graph, a)}\n  || {_line(graph, b)}")
        if during := _fault_text(graph, faults, (a, b)):
            click.echo(f"     during: {during}")
    if len(found.pairs) > SHOWN_IN_TEXT or found.truncated:
        click.echo(f"  ... {found.pair_count - min(len(found.pairs), SHOWN_IN_TEXT)} more pair(s) (--json, --limit)")
    if found.pairs:
        first, second = found.pairs[0]
        click.echo(f"why: chainlab trace hb {trace} {graph.name(first)} {graph.name(second)}")
        click.echo(f"see: chainlab trace diagram {trace} --out diagram.html")


@command.command(name="diagram")
@click.argument("trace", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the file to write: .html (default format), .svg, or any name with --format shiviz")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="html, svg or shiviz (default: from --out's "
                                                                   "suffix, else html)")
@click.option("--nodes", help="only these nodes, comma-separated (node0,node2)")
@click.option("--from", "from_s", type=float, help="only events at or after this many seconds from the first event")
@click.option("--to", "to_s", type=float, help="only events at or before this many seconds from the first event")
@click.option("--kinds", help="only events whose kind or what is listed, comma-separated (receive,block-mined)")
@click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
              help=f"a testnet's {EVENTS_FILE}: faults to shade (default: {EVENTS_FILE} beside TRACE, if any)")
@click.option("--title", help="the page's title (default: the trace's file name)")
@click.option("--json", "as_json", is_flag=True, help="print what was written as JSON")
def diagram_command(trace: Path, out_path: Path, fmt: str | None, nodes: str | None, from_s: float | None,
                    to_s: float | None, kinds: str | None, events_path: Path | None, title: str | None,
                    as_json: bool) -> None:
    """Draw TRACE as a space-time diagram: one line per node, events as dots, messages as arrows, faults shaded,
    forks and finals ringed; in the HTML page, clicking an event highlights its causal past and future.
    `--format shiviz` writes a log ShiViz opens instead."""
    fmt = fmt or ("svg" if out_path.suffix.lower() == ".svg" else "html")
    if from_s is not None and to_s is not None and to_s < from_s:
        fail(f"--to {to_s} is before --from {from_s}")
    graph = _load(trace)
    faults = _faults(trace, events_path) if fmt != "shiviz" else []
    filters = Filters(nodes=_names(nodes), from_s=from_s, to_s=to_s, kinds=_names(kinds))
    drawing = select(graph, filters)
    if not drawing.events:
        fail("no event passes the filters (--nodes, --from/--to, --kinds)")
    if fmt == "html":
        text = render_html(graph, drawing, faults, title=title or trace.name)
    elif fmt == "svg":
        text = render_svg(graph, drawing, faults)
    else:
        text = render_shiviz(graph, drawing)
    try:
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"{out_path}: cannot write: {exc.strerror or exc}")
    if as_json:
        emit_json({"out": str(out_path), "format": fmt, "events_drawn": len(drawing.events), "events": len(graph),
                   "faults": len(faults), "notes": list(drawing.notes)})
        return
    for note in drawing.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{out_path}: {fmt}, {len(drawing.events):,} of {len(graph):,} events"
               + (f", {len(faults)} fault period(s)" if faults else ""))


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        fail(f"empty list {text!r}")
    return names
