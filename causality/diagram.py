"""Space-time diagrams of a trace (pure: the caller reads the files and writes the output).

One vertical line per process (a node, or a later incarnation of one, `node1#2`), time going down, each event a
dot coloured by its kind and `what`, each matched message an arrow from its send to its receive; a send never
received is a short dashed stub, a receive whose send is absent a stub coming in. Rows are the events' Lamport
times (ranked densely over what is drawn), so every arrow of a well-formed trace points down and events at one
logical time line up. Blocks mined concurrently (`block-mined` events no other one knew of: forks) have a red
ring; `block-final` and `committed` events a green one. The faults of a testnet's `events.jsonl` (partitions,
kills and stops, pauses) are shaded on the lines of the nodes they affected, from the node's event nearest their
start to the one nearest their end.

The HTML page is self-contained (inline CSS, SVG and script, nothing fetched, a Content-Security-Policy that
forbids fetching anything) and escapes every text taken from the trace. Clicking a dot highlights the event's
causal past (blue) and future (orange), computed in the page from the vector clocks embedded in it; clicking the
background clears. `render_svg` gives the bare drawing without the script; `render_shiviz` a log ShiViz reads.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from causality.graph import TraceGraph

MAX_EVENTS = 20_000  # a diagram of more is slow to open and unreadable anyway; the first ones are drawn
FINAL_WHATS = frozenset({"block-final", "committed"})
FORK_WHAT = "block-mined"
LABEL_HEIGHT_PX = 40
TIME_LABEL_WIDTH_PX = 70
COLUMN_WIDTH_PX = 120
ROW_HEIGHT_PX = 14
DOT_RADIUS_PX = 4
STUB_PX = 30  # the length of a lost message's stub
TIME_LABEL_EVERY_ROWS = 10
SHIVIZ_REGEX = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})"  # ShiViz's default parser


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """What to draw: nodes (by node name: every incarnation of it), a time window in seconds from the trace's
    first event, and kinds (an event is kept when its `kind` or its `what` is listed). None keeps everything."""

    nodes: Collection[str] | None = None
    from_s: float | None = None
    to_s: float | None = None
    kinds: Collection[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """A period during which a node was cut off by a partition, down (killed or stopped) or paused."""

    node: str
    kind: str  # "partition", "down" or "paused"
    start_ns: int
    end_ns: int | None  # None: until the end of the record
    label: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Drawing:
    """The events a diagram draws (indices into the graph, in trace order) and what was left out."""

    events: tuple[int, ...]
    notes: tuple[str, ...]


def select(graph: TraceGraph, filters: Filters) -> Drawing:
    """The events that pass the filters, at most `MAX_EVENTS` of them (the first in trace order)."""
    origin = min((e.time_ns for e in graph.events), default=0)
    low = None if filters.from_s is None else origin + int(filters.from_s * 1e9)
    high = None if filters.to_s is None else origin + int(filters.to_s * 1e9)
    nodes = None if filters.nodes is None else set(filters.nodes)
    kinds = None if filters.kinds is None else set(filters.kinds)
    chosen = [i for i, e in enumerate(graph.events)
              if (nodes is None or e.node in nodes or graph.process_of[i] in nodes)
              and (low is None or e.time_ns >= low) and (high is None or e.time_ns <= high)
              and (kinds is None or e.kind in kinds or e.what in kinds)]
    notes = list(graph.notes)
    if nodes is not None and (unknown := nodes - {e.node for e in graph.events} - set(graph.processes)):
        notes.append(f"no events of {', '.join(sorted(unknown))} in the trace")
    if len(chosen) > MAX_EVENTS:
        notes.append(f"{len(chosen) - MAX_EVENTS:,} of {len(chosen):,} events left out: only the first "
                     f"{MAX_EVENTS:,} are drawn (narrow the time window or the nodes)")
        chosen = chosen[:MAX_EVENTS]
    return Drawing(events=tuple(chosen), notes=tuple(notes))


def fault_periods(records: Iterable[Mapping[str, Any]]) -> list[Fault]:
    """The per-node fault periods of a testnet's events.jsonl records (docs/TESTNET.md): the `network` state after
    each action says who is blocked from someone (`blocked`), `down` and `paused`; a record without it falls back
    to its action and `nodes` (kill/stop ... start/restart, pause ... resume, partition ... heal)."""
    open_since: dict[tuple[str, str], tuple[int, str]] = {}
    faults: list[Fault] = []
    timed = sorted((r for r in records if isinstance(r.get("time_ns"), int)), key=lambda r: int(r["time_ns"]))
    for record in timed:
        time_ns = int(record["time_ns"])
        state = _fault_state(record, {key for key in open_since})
        for key in sorted(set(open_since) - state):
            start, label = open_since.pop(key)
            faults.append(Fault(node=key[0], kind=key[1], start_ns=start, end_ns=time_ns, label=label))
        for key in sorted(state - set(open_since)):
            open_since[key] = (time_ns, _fault_label(key[1], record))
    for (node, kind), (start, label) in sorted(open_since.items()):
        faults.append(Fault(node=node, kind=kind, start_ns=start, end_ns=None, label=label))
    return sorted(faults, key=lambda f: (f.start_ns, f.node, f.kind))


def faults_during(faults: Iterable[Fault], node: str, time_ns: int) -> list[Fault]:
    """The faults in force on `node` at `time_ns` (e.g. the partition a block was mined in)."""
    return [f for f in faults if f.node == node and f.start_ns <= time_ns and (f.end_ns is None or time_ns < f.end_ns)]


def _fault_state(record: Mapping[str, Any], before: set[tuple[str, str]]) -> set[tuple[str, str]]:
    network = record.get("network")
    if isinstance(network, Mapping):
        state: set[tuple[str, str]] = set()
        blocked = network.get("blocked")
        if isinstance(blocked, Mapping):
            state |= {(str(node), "partition") for node, others in blocked.items() if others}
        for field, kind in (("down", "down"), ("paused", "paused")):
            listed = network.get(field)
            if isinstance(listed, list):
                state |= {(str(node), kind) for node in listed}
        return state
    action = str(record.get("action", ""))
    nodes = [str(n) for n in record.get("nodes") or [] if isinstance(n, str | int)]
    changes = {"kill": ("down", True), "stop": ("down", True), "start": ("down", False),
               "restart": ("down", False), "pause": ("paused", True), "resume": ("paused", False),
               "partition": ("partition", True), "heal": ("partition", False)}
    if action not in changes:
        return set(before)
    kind, on = changes[action]
    if kind == "partition" and not on:
        return {key for key in before if key[1] != "partition"}
    if on:
        return set(before) | {(node, kind) for node in nodes}
    return set(before) - {(node, kind) for node in nodes}


def _fault_label(kind: str, record: Mapping[str, Any]) -> str:
    detail = record.get("detail")
    groups = detail.get("groups") if isinstance(detail, Mapping) else None
    if kind == "partition" and isinstance(groups, list):
        return "partition " + " | ".join(",".join(str(n) for n in g) if isinstance(g, list) else str(g)
                                         for g in groups)
    return kind


# -- layout ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Layout:
    columns: dict[str, int]  # process -> column
    rows: dict[int, int]  # event -> row
    width: int
    height: int

    def x(self, process: str) -> float:
        return TIME_LABEL_WIDTH_PX + (self.columns[process] + 0.5) * COLUMN_WIDTH_PX

    def y(self, row: float) -> float:
        return LABEL_HEIGHT_PX + (row + 0.5) * ROW_HEIGHT_PX


def _layout(graph: TraceGraph, drawn: Sequence[int]) -> _Layout:
    processes = sorted({graph.process_of[i] for i in drawn}, key=_process_key)
    lamports = sorted({graph.events[i].lamport for i in drawn})
    rank = {lamport: row for row, lamport in enumerate(lamports)}
    rows = {i: rank[graph.events[i].lamport] for i in drawn}
    width = TIME_LABEL_WIDTH_PX + COLUMN_WIDTH_PX * max(len(processes), 1) + 10
    height = LABEL_HEIGHT_PX + ROW_HEIGHT_PX * (len(lamports) + 1) + 10
    return _Layout(columns={p: c for c, p in enumerate(processes)}, rows=rows, width=width, height=height)


def _process_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """node2 before node10, node1 before node1#2."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"([0-9]+)", name) if part)


# -- SVG -------------------------------------------------------------------------------------------------------


def render_svg(graph: TraceGraph, drawing: Drawing, faults: Sequence[Fault] = (), *, standalone: bool = True) -> str:
    """The diagram as one SVG element; `standalone` adds the namespace and the styles (a file of its own)."""
    drawn = drawing.events
    layout = _layout(graph, drawn)
    position = {index: number for number, index in enumerate(drawn)}
    forks = _forks(graph, drawn)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="spacetime" width="{layout.width}" '
           f'height="{layout.height}" viewBox="0 0 {layout.width} {layout.height}">']
    if standalone:
        out.append(f"<style>{_SVG_STYLE}</style>")
    out.append('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
               'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>')
    out.append(f'<rect class="background" x="0" y="0" width="{layout.width}" height="{layout.height}"/>')
    out.extend(_fault_rects(graph, drawn, faults, layout))
    out.extend(_time_labels(graph, drawn, layout))
    bottom = layout.height - 10
    for process, column in layout.columns.items():
        x = layout.x(process)
        out.append(f'<g class="process" data-process="{escape(process)}" data-column="{column}">'
                   f'<line class="lifeline" x1="{x:.1f}" y1="{LABEL_HEIGHT_PX - 6}" x2="{x:.1f}" y2="{bottom}"/>'
                   f'<text class="process-label" x="{x:.1f}" y="{LABEL_HEIGHT_PX - 12}">{escape(process)}</text></g>')
    out.extend(_arrows(graph, drawn, position, layout))
    for number, index in enumerate(drawn):
        out.append(_dot(graph, index, number, layout, index in forks))
    out.append("</svg>")
    return "".join(out)


def _forks(graph: TraceGraph, drawn: Sequence[int]) -> set[int]:
    """The drawn block-mined events concurrent with another drawn one."""
    if not any(graph.events[i].what == FORK_WHAT for i in drawn):
        return set()
    members = set(drawn)
    found = graph.concurrent(FORK_WHAT, max_pairs=MAX_EVENTS)
    return {i for pair in found.pairs for i in pair if i in members}


def _dot(graph: TraceGraph, index: int, number: int, layout: _Layout, fork: bool) -> str:
    event = graph.events[index]
    classes = ["ev", f"kind-{_css(event.kind)}", f"what-{_css(event.what)}"]
    if fork:
        classes.append("fork")
    if event.what in FINAL_WHATS:
        classes.append("final")
    x, y = layout.x(graph.process_of[index]), layout.y(layout.rows[index])
    tip = f"{graph.name(index)} {event.kind} {event.what}"
    if event.peer:
        tip += f" {'to' if event.kind == 'send' else 'from'} {event.peer}"
    if event.detail:
        tip += " " + json.dumps(dict(event.detail), sort_keys=True, default=str)
    tip += f"\nlamport {event.lamport}, vc {json.dumps(event.vc.to_json())}"
    return (f'<circle id="ev-{number}" class="{" ".join(classes)}" data-i="{number}" '
            f'data-name="{escape(graph.name(index))}" cx="{x:.1f}" cy="{y:.1f}" r="{DOT_RADIUS_PX}">'
            f"<title>{escape(tip)}</title></circle>")


def _arrows(graph: TraceGraph, drawn: Sequence[int], position: Mapping[int, int], layout: _Layout) -> list[str]:
    out = []
    for send, receive in graph.messages():
        if send in position and receive in position:
            x1, y1 = layout.x(graph.process_of[send]), layout.y(layout.rows[send])
            x2, y2 = layout.x(graph.process_of[receive]), layout.y(layout.rows[receive])
            out.append(f'<line class="msg" data-send="{position[send]}" data-receive="{position[receive]}" '
                       f'x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" marker-end="url(#arrow)">'
                       f"<title>{escape(graph.events[send].what)} {escape(graph.name(send))} -&gt; "
                       f"{escape(graph.name(receive))}</title></line>")
    for index in graph.lost_sends_list():
        if index in position:
            out.append(_stub(graph, index, position[index], layout, "lost", "sent, never received in the trace"))
    for index in graph.orphan_receives():
        if index in position:
            out.append(_stub(graph, index, position[index], layout, "orphan", "received; its send is not in the "
                                                                              "trace"))
    return out


def _stub(graph: TraceGraph, index: int, number: int, layout: _Layout, kind: str, text: str) -> str:
    event = graph.events[index]
    x, y = layout.x(graph.process_of[index]), layout.y(layout.rows[index])
    peer_column = layout.columns.get(event.peer or "")
    direction = 1 if peer_column is None or peer_column >= layout.columns[graph.process_of[index]] else -1
    if kind == "lost":
        x1, y1, x2, y2 = x, y, x + direction * STUB_PX, y + STUB_PX / 2
    else:
        x1, y1, x2, y2 = x + direction * STUB_PX, y - STUB_PX / 2, x, y
    return (f'<line class="msg {kind}" data-event="{number}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" '
            f'y2="{y2:.1f}" marker-end="url(#arrow)"><title>{escape(graph.name(index))} '
            f"{escape(event.what)}: {text}</title></line>")


def _fault_rects(graph: TraceGraph, drawn: Sequence[int], faults: Sequence[Fault], layout: _Layout) -> list[str]:
    by_process: dict[str, list[int]] = {}
    for index in drawn:
        by_process.setdefault(graph.process_of[index], []).append(index)
    out = []
    for process, indices in by_process.items():
        node = graph.processes[process].node
        indices.sort(key=lambda i: (graph.events[i].time_ns, layout.rows[i]))
        times = [graph.events[i].time_ns for i in indices]
        rows = [layout.rows[i] for i in indices]
        for fault in faults:
            if fault.node != node:
                continue
            top = _row_at(times, rows, fault.start_ns)
            bottom = _row_at(times, rows, fault.end_ns) if fault.end_ns is not None else max(rows) + 0.5
            if top is None or bottom is None or bottom < top:
                continue
            x = layout.x(process) - COLUMN_WIDTH_PX * 0.3
            y0, y1 = layout.y(top), layout.y(bottom)
            out.append(f'<rect class="fault {fault.kind}" data-node="{escape(node)}" data-process="{escape(process)}" '
                       f'x="{x:.1f}" y="{y0:.1f}" width="{COLUMN_WIDTH_PX * 0.6:.1f}" height="{max(y1 - y0, 3):.1f}">'
                       f"<title>{escape(fault.label)} ({escape(node)})</title></rect>")
    return out


def _row_at(times: Sequence[int], rows: Sequence[int], time_ns: int) -> float | None:
    """The row where `time_ns` falls on a process's line (`times` sorted, `rows` alongside): between the rows of
    its events just before and after, in proportion; half a row beyond its first or last event outside them."""
    if not times:
        return None
    at = bisect.bisect_left(times, time_ns)
    if at == 0:
        return rows[0] - 0.5 if time_ns < times[0] else float(rows[0])
    if at == len(times):
        return rows[-1] + 0.5
    span = times[at] - times[at - 1]
    share = (time_ns - times[at - 1]) / span if span else 0.0
    return rows[at - 1] + share * (rows[at] - rows[at - 1])


def _time_labels(graph: TraceGraph, drawn: Sequence[int], layout: _Layout) -> list[str]:
    if not drawn:
        return []
    origin = min(e.time_ns for e in graph.events)
    first_at_row: dict[int, int] = {}
    for index in drawn:
        row = layout.rows[index]
        first_at_row[row] = min(first_at_row.get(row, graph.events[index].time_ns), graph.events[index].time_ns)
    out = []
    for row in sorted(first_at_row)[::TIME_LABEL_EVERY_ROWS]:
        seconds = (first_at_row[row] - origin) / 1e9
        out.append(f'<text class="time-label" x="4" y="{layout.y(row) + 3:.1f}">{seconds:.3f} s</text>')
    return out


def _css(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "", text.lower()) or "other"


# -- HTML ------------------------------------------------------------------------------------------------------


def render_html(graph: TraceGraph, drawing: Drawing, faults: Sequence[Fault] = (), *, title: str = "trace") -> str:
    """The self-contained page: a summary, the legend, the diagram and the clocks its script highlights with."""
    drawn = drawing.events
    nodes = sorted({name for i in drawn for name in graph.events[i].vc}, key=_process_key)
    column = {name: k for k, name in enumerate(nodes)}
    clocks = []
    for index in drawn:
        row = [0] * len(nodes)
        for name, count in graph.events[index].vc.items():
            row[column[name]] = count
        clocks.append(row)
    data = {"clock_names": nodes, "clocks": clocks,
            "names": [graph.name(i) for i in drawn], "whats": [graph.events[i].what for i in drawn],
            "details": [json.dumps(dict(graph.events[i].detail), sort_keys=True, default=str) for i in drawn]}
    counts = (f"{len(drawn):,} of {len(graph):,} events drawn, {len(graph.processes)} processes, "
              f"{sum(1 for _ in graph.messages()):,} messages matched, {graph.lost_sends} sent and never received, "
              f"{graph.unmatched_receives} received without their send")
    parts = [
        _HEAD.format(title=escape(title), style=_SVG_STYLE),
        f"<h1>{escape(title)}</h1>",
        f'<p class="counts">{escape(counts)}</p>',
        "".join(f'<p class="note">{escape(note)}</p>' for note in drawing.notes),
        _LEGEND,
        '<p id="selection" class="selection">Click an event to see its causal past and future.</p>',
        '<div class="chart">', render_svg(graph, drawing, faults, standalone=False), "</div>",
        f'<script type="application/json" id="trace-data">{_script_json(data)}</script>',
        _SCRIPT,
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no `<` (so no `</script>` or `<!--`) can end it early."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


_SVG_STYLE = """
.background { fill: #fff; }
.lifeline { stroke: #888; stroke-width: 1.5; }
.process-label { font: 12px monospace; fill: #222; text-anchor: middle; }
.time-label { font: 10px sans-serif; fill: #777; }
.ev { stroke: #333; stroke-width: .6; cursor: pointer; }
.kind-send { fill: #4c8bd6; } .kind-receive { fill: #3da35d; } .kind-internal { fill: #999; }
.what-block-mined { fill: #e0a800; } .what-block-final, .what-committed { fill: #1b7f3b; }
.what-reorg { fill: #c0392b; } .what-leader-elected, .what-vote-cast { fill: #8e5ccf; }
.ev.fork { stroke: #e0221b; stroke-width: 3; }
.ev.final { stroke: #16a34a; stroke-width: 3; }
.msg { stroke: #555; stroke-width: 1; }
.msg.lost { stroke: #c0392b; stroke-dasharray: 3 2; }
.msg.orphan { stroke: #a0a0a0; stroke-dasharray: 3 2; }
.fault { opacity: .25; }
.fault.partition { fill: #dc3c3c; } .fault.down { fill: #333; } .fault.paused { fill: #c27c00; }
.ev.past { fill: #1f5fbf; stroke: #0b2f66; stroke-width: 2; }
.ev.future { fill: #f08c00; stroke: #7a4700; stroke-width: 2; }
.ev.selected { fill: #000; stroke: #ffd400; stroke-width: 4; }
.msg.past { stroke: #1f5fbf; stroke-width: 2; } .msg.future { stroke: #f08c00; stroke-width: 2; }
.dim { opacity: .18; }
"""

_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; img-src data:">
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }}
.note {{ color: #7a4b00; background: #fff4dc; padding: 4px 8px; }}
.legend span {{ margin-right: 14px; white-space: nowrap; }}
.legend i {{ display: inline-block; width: 11px; height: 11px; border-radius: 6px; vertical-align: middle; }}
.chart {{ overflow: auto; border: 1px solid #ddd; max-height: 85vh; }}
.selection {{ font-family: monospace; white-space: pre-wrap; }}
{style}
</style></head><body>"""

_LEGEND = ('<div class="legend">'
           '<span><i style="background:#4c8bd6"></i> send</span><span><i style="background:#3da35d"></i> receive</span>'
           '<span><i style="background:#999"></i> internal</span>'
           '<span><i style="background:#e0a800"></i> block mined</span>'
           '<span><i style="background:#1b7f3b"></i> final / committed</span>'
           '<span><i style="border:3px solid #e0221b"></i> fork (mined concurrently)</span>'
           '<span><i style="background:#c0392b"></i> reorg</span>'
           '<span><i style="background:#8e5ccf"></i> vote / election</span>'
           '<span><i style="background:#dc3c3c;opacity:.4;border-radius:0"></i> partition</span>'
           '<span><i style="background:#333;opacity:.4;border-radius:0"></i> down</span>'
           '<span><i style="background:#c27c00;opacity:.4;border-radius:0"></i> paused</span>'
           '<span><i style="background:#1f5fbf"></i> causal past</span>'
           '<span><i style="background:#f08c00"></i> causal future</span></div>')

# The highlight compares whole vector clocks (a <= b entry-wise), so it is right on traces with gaps too.
_SCRIPT = """<script>
(function () {
  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var clocks = data.clocks, n = clocks.length;
  var dots = new Array(n);
  document.querySelectorAll("circle.ev").forEach(function (dot) { dots[+dot.dataset.i] = dot; });
  var messages = Array.prototype.slice.call(document.querySelectorAll("line.msg"));
  var selection = document.getElementById("selection");
  function leq(a, b) {
    for (var k = 0; k < a.length; k++) { if (a[k] > b[k]) { return false; } }
    return true;
  }
  function clear() {
    dots.forEach(function (dot) { dot.classList.remove("past", "future", "selected", "dim"); });
    messages.forEach(function (line) { line.classList.remove("past", "future", "dim"); });
    selection.textContent = "Click an event to see its causal past and future.";
  }
  function select(i) {
    var mine = clocks[i], side = new Array(n), past = 0, future = 0;
    for (var j = 0; j < n; j++) {
      var state = "dim";
      if (j === i) { state = "selected"; }
      else if (leq(clocks[j], mine)) { state = "past"; past++; }
      else if (leq(mine, clocks[j])) { state = "future"; future++; }
      side[j] = state;
      dots[j].classList.remove("past", "future", "selected", "dim");
      dots[j].classList.add(state);
    }
    messages.forEach(function (line) {
      line.classList.remove("past", "future", "dim");
      var send = line.dataset.send, receive = line.dataset.receive, state = "dim";
      if (send !== undefined) {
        var a = side[+send], b = side[+receive];
        if ((a === "past" || a === "selected") && (b === "past" || b === "selected")) { state = "past"; }
        else if ((a === "future" || a === "selected") && (b === "future" || b === "selected")) { state = "future"; }
      }
      line.classList.add(state);
    });
    selection.textContent = data.names[i] + " " + data.whats[i] + " " + data.details[i] + "\\n" + past +
      " event(s) in its causal past, " + future + " in its future";
  }
  document.querySelector("svg.spacetime").addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("circle.ev") : null;
    if (target) { select(+target.dataset.i); } else { clear(); }
  });
})();
</script>"""


# -- ShiViz ----------------------------------------------------------------------------------------------------


def render_shiviz(graph: TraceGraph, drawing: Drawing) -> str:
    """A log ShiViz opens (https://bestchai.bitbucket.io/shiviz/, "upload a file"): the parser regex on the first
    line, an empty multiple-executions delimiter on the second, then two lines per event, the event's text and
    `host {clock}` (ShiViz's default format, GoVector's too).

    ShiViz rejects a host whose own clock entry does not grow by exactly one per event, which a trace with gaps or
    restarts breaks; so the clocks written here are recomputed from the drawn events' graph (program order and
    matched messages, one host per process), and events come in a topological order of that graph. A gap then
    shows as a missing arrow, not as a file ShiViz refuses."""
    order = _topological(graph, drawing.events)
    clocks: dict[int, dict[str, int]] = {}
    last_of: dict[str, dict[str, int]] = {}
    lines = [SHIVIZ_REGEX, ""]
    for index in order:
        process = graph.process_of[index]
        clock = dict(last_of.get(process, {}))
        send = graph.send_of(index)
        if send is not None and send in clocks:
            for name, count in clocks[send].items():
                clock[name] = max(clock.get(name, 0), count)
        clock[process] = clock.get(process, 0) + 1
        clocks[index] = last_of[process] = clock
        event = graph.events[index]
        text = f"{graph.name(index)} {event.kind} {event.what}"
        if event.peer:
            text += f" {'to' if event.kind == 'send' else 'from'} {event.peer}"
        if event.detail:
            text += " " + json.dumps(dict(event.detail), sort_keys=True, default=str)
        lines.append(" ".join(text.split()))  # one line, whatever the detail held
        lines.append(f"{process} {json.dumps(clock, sort_keys=True)}")
    return "\n".join(lines) + "\n"


def _topological(graph: TraceGraph, drawn: Sequence[int]) -> list[int]:
    """The drawn events in an order where every event follows its predecessor on its process and the send of the
    message it received (Kahn's algorithm, ties broken by Lamport time then trace order); a cycle, which only
    broken clocks or ids make, is broken by taking the earliest remaining event."""
    members = set(drawn)
    waiting = dict.fromkeys(drawn, 0)
    following: dict[int, list[int]] = {}
    previous: dict[str, int] = {}
    for index in drawn:  # program order among the drawn events (a filter may leave events out between them)
        process = graph.process_of[index]
        if process in previous:
            following.setdefault(previous[process], []).append(index)
            waiting[index] += 1
        previous[process] = index
    for send, receive in graph.messages():
        if send in members and receive in members:
            following.setdefault(send, []).append(receive)
            waiting[receive] += 1
    ready = deque(sorted((i for i, n in waiting.items() if n == 0), key=lambda i: (graph.events[i].lamport, i)))
    order: list[int] = []
    done: set[int] = set()
    while len(order) < len(drawn):
        if not ready:
            ready.append(min((i for i in drawn if i not in done), key=lambda i: (graph.events[i].lamport, i)))
        index = ready.popleft()
        if index in done:
            continue
        done.add(index)
        order.append(index)
        for successor in following.get(index, ()):
            waiting[successor] -= 1
            if waiting[successor] == 0 and successor not in done:
                ready.append(successor)
    return order
