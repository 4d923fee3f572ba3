"""The HTML report a person reads for one client history (pure: the caller reads the files and writes the page).

One lane per client process, each operation a bar from its invoke to its completion, the operations a check
found wrong highlighted and listed at the top, and the nemesis events of events.jsonl (partitions, kills,
pauses...) drawn on the same time axis. The page is one self-contained file (inline CSS, SVG and a few lines of
script, nothing fetched), so it opens from a file:// URL and can be attached to a bug. Every text that comes from
the history or the events is escaped: a history is input from clients, not trusted markup.

A large history draws at most `MAX_BARS` bars: those nearest in time to the highlighted operations, with a note
saying how many were left out, so the page stays quick to open and to render.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from testnet.consistency import PROMISES, Report
from testnet.history import Op
from testnet.linearizability import Operation, pair_operations

MAX_BARS = 5_000  # more bars than this make a page slow to open and unreadable anyway
LABEL_WIDTH_PX = 150
PLOT_WIDTH_PX = 1200
LANE_HEIGHT_PX = 22
AXIS_HEIGHT_PX = 58  # the event labels (three staggered rows) and the tick labels above the lanes
MIN_BAR_WIDTH_PX = 2.0
MIN_HIGHLIGHT_WIDTH_PX = 6.0  # a violation must be findable at a glance even when it lasted a microsecond
GOOD_VERDICTS = {"ok", "linearizable", "holds", "passed", "pass"}
BAD_VERDICTS = {"violated", "not-linearizable", "failed", "fail"}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Axis:
    """Maps nanosecond timestamps to x pixels; times are shown in seconds from `origin_ns`."""

    origin_ns: int
    start_ns: int
    end_ns: int

    def x(self, time_ns: float) -> float:
        clipped = min(max(time_ns, self.start_ns), self.end_ns)
        return LABEL_WIDTH_PX + (clipped - self.start_ns) / (self.end_ns - self.start_ns) * PLOT_WIDTH_PX

    def seconds(self, time_ns: float) -> float:
        return (time_ns - self.origin_ns) / 1e9


@dataclass(frozen=True, slots=True, kw_only=True)
class _Band:
    """A period drawn across every lane: a partition from its start until the heal (or the end)."""

    start_ns: int
    end_ns: int | None
    label: str


KINDS = {"read": "read", "write": "write", "cas": "cas", "transfer": "write"}
"""How each operation is drawn: a transfer (the consistency lab's write) as a write; anything else as `other`."""
READ_LEVELS = ("latest", "final", "linearizable")  # the consistency lab's read levels, weakest first, drawn apart


def render_history_report(*, title: str, operations: Sequence[Operation], highlighted: Mapping[int, str],
                          events: Sequence[Mapping[str, Any]], summary: Sequence[tuple[str, str, str]],
                          notes: Sequence[str] = (), window: Collection[int] = ()) -> str:
    """The whole HTML page for one history: `summary` rows (check, verdict, detail) and the findings on top, then
    the lanes. `highlighted` maps operation ids to the reason they are wrong (drawn as `op violation`);
    `window` names operations that help explain them (drawn as `op window`); `events` are events.jsonl records
    (`time_ns`, `action`, `nodes`, `detail`, `network`). ValueError when a highlighted id is not an operation."""
    by_id = {op.id: op for op in operations}
    missing = sorted(set(highlighted) - set(by_id))
    if missing:
        raise ValueError(f"highlighted operation(s) {missing} are not among the {len(operations)} operations")
    drawn, left_out = _select(operations, highlighted)
    all_notes = list(notes)
    if left_out:
        all_notes.append(f"{left_out:,} of {len(operations):,} operations are left out: only the {len(drawn):,} "
                         f"nearest in time to the highlighted ones are drawn (at most {MAX_BARS:,} bars).")
    timed = [e for e in events if isinstance(e.get("time_ns"), int)]
    if len(timed) < len(events):
        all_notes.append(f"{len(events) - len(timed)} event(s) without a time_ns are not drawn.")
    origin_ns = min((op.call_ns for op in operations), default=0)
    axis = _axis_for(drawn, origin_ns)
    outside = [e for e in timed if not axis.start_ns <= e["time_ns"] <= axis.end_ns]
    if outside:
        all_notes.append(f"{len(outside)} nemesis event(s) fall outside the drawn time span; they are listed "
                         "under Nemesis events but not drawn.")
    parts = [
        _HEAD.format(title=escape(title)),
        f"<h1>{escape(title)}</h1>",
        _summary_html(summary),
        _findings_html(highlighted, by_id, origin_ns),
        "".join(f'<p class="note">{escape(note)}</p>' for note in all_notes),
        _legend_html(operations),
        '<div class="chart">', _svg(drawn, highlighted, set(window), timed, axis), "</div>",
        _events_html(timed, axis),
        _SCRIPT,
        "</body></html>\n",
    ]
    return "\n".join(parts)


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders `client-2` before `client-10`."""
    return tuple((0, int(part)) if part.isascii() and part.isdigit() else (1, part)
                 for part in re.split(r"([0-9]+)", text) if part)


# -- what to draw ----------------------------------------------------------------------------------------------


def _select(operations: Sequence[Operation], highlighted: Mapping[int, str]) -> tuple[list[Operation], int]:
    """All operations when they fit; otherwise the `MAX_BARS` nearest in time to the highlighted ones (the first
    ones when nothing is highlighted), in call order, and how many were left out."""
    if len(operations) <= MAX_BARS:
        return list(operations), 0
    spans = _merged([(op.call_ns, _end_ns(op)) for op in operations if op.id in highlighted])
    if not spans:
        chosen = sorted(operations, key=lambda op: (op.call_ns, op.id))[:MAX_BARS]
    else:
        starts = [start for start, _ in spans]

        def distance(op: Operation) -> float:
            if op.id in highlighted:
                return -1.0
            end = _end_ns(op)
            at = bisect.bisect_right(starts, end)  # spans starting at or before the op ends
            gap = math.inf
            if at > 0:
                span_end = spans[at - 1][1]
                gap = 0.0 if op.call_ns <= span_end else float(op.call_ns - span_end)
            if at < len(spans):
                gap = min(gap, float(spans[at][0] - end))
            return gap

        chosen = sorted(operations, key=lambda op: (distance(op), op.call_ns, op.id))[:MAX_BARS]
    chosen.sort(key=lambda op: (op.call_ns, op.id))
    return chosen, len(operations) - len(chosen)


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _end_ns(op: Operation) -> int:
    return op.ret_ns if op.ret_ns is not None else op.call_ns


def _axis_for(drawn: Sequence[Operation], origin_ns: int) -> _Axis:
    start = min((op.call_ns for op in drawn), default=origin_ns)
    end = max((_end_ns(op) for op in drawn), default=start)
    if end <= start:
        end = start + 1
    margin = (end - start) // 50  # open-ended bars reach past the last completion
    return _Axis(origin_ns=origin_ns, start_ns=start, end_ns=end + max(margin, 1))


def _bands(events: Sequence[Mapping[str, Any]]) -> list[_Band]:
    """Partition periods. The event's `network.blocked` (the state after it) says whether a cut is in force; a
    record without it falls back to its action (a `heal` ends the partition unless its detail says otherwise)."""
    bands: list[_Band] = []
    current: tuple[int, str] | None = None
    for event in sorted(events, key=lambda e: int(e["time_ns"])):
        action = str(event.get("action", ""))
        network = event.get("network")
        if isinstance(network, Mapping) and "blocked" in network:
            cut = bool(network["blocked"])
        elif action == "partition":
            cut = True
        elif action == "heal":
            detail = event.get("detail")
            cut = current is not None and isinstance(detail, Mapping) and detail.get("partition") is False
        else:
            cut = current is not None
        starts_new = action == "partition" and cut  # a partition replaces the one before it
        if current is not None and (not cut or starts_new):
            bands.append(_Band(start_ns=current[0], end_ns=int(event["time_ns"]), label=current[1]))
            current = None
        if cut and current is None:
            current = (int(event["time_ns"]), "partition " + _groups_text(event))
    if current is not None:
        bands.append(_Band(start_ns=current[0], end_ns=None, label=current[1]))
    return bands


def _groups_text(event: Mapping[str, Any]) -> str:
    detail = event.get("detail")
    groups = detail.get("groups") if isinstance(detail, Mapping) else None
    if isinstance(groups, list):
        return " | ".join(",".join(str(n) for n in g) if isinstance(g, list) else str(g) for g in groups)
    return ""


# -- HTML ------------------------------------------------------------------------------------------------------


def _summary_html(summary: Sequence[tuple[str, str, str]]) -> str:
    if not summary:
        return ""
    rows = "".join(
        f'<tr><td>{escape(check)}</td><td class="verdict {_verdict_class(verdict)}">{escape(verdict)}</td>'
        f"<td>{escape(detail)}</td></tr>" for check, verdict, detail in summary)
    return f'<table class="summary"><tr><th>check</th><th>verdict</th><th>detail</th></tr>{rows}</table>'


def _verdict_class(verdict: str) -> str:
    word = verdict.strip().lower()
    return "good" if word in GOOD_VERDICTS else "bad" if word in BAD_VERDICTS else "neutral"


def _findings_html(highlighted: Mapping[int, str], by_id: Mapping[int, Operation], origin_ns: int) -> str:
    if not highlighted:
        return '<section class="findings"><h2>Findings</h2><p>Nothing highlighted.</p></section>'
    items = []
    for op_id in sorted(highlighted, key=lambda i: (by_id[i].call_ns, i)):
        op = by_id[op_id]
        at = (op.call_ns - origin_ns) / 1e9
        items.append(f'<li><a class="finding" href="#op-{op_id}" data-op-id="{op_id}">{escape(_op_text(op))}</a> '
                     f"at {at:.6f} s: {escape(highlighted[op_id])}</li>")
    return f'<section class="findings"><h2>Findings</h2><ol>{"".join(items)}</ol></section>'


def _legend_html(operations: Sequence[Operation]) -> str:
    # Swatches have class `key`, not `op`: a query for the drawn operations must not find the legend.
    levels = [level for level in READ_LEVELS if any(
        op.op == "read" and isinstance(op.input, Mapping) and op.input.get("level") == level for op in operations)]
    reads = [(f"read level-{level}", f"read ({level})") for level in levels] or [("read", "read")]
    swatches = [*reads, ("write", "write (transfer)" if any(op.op == "transfer" for op in operations) else "write"),
                ("cas", "cas"), ("other", "other"), ("fail", "fail"),
                ("info", "info (unknown)"), ("read window", "around a finding"), ("violation", "finding")]
    cells = "".join(f'<span class="swatch"><svg width="22" height="12"><rect class="key {cls}" width="22" '
                    f'height="12"/></svg> {text}</span>' for cls, text in swatches)
    return f'<div class="legend">{cells}<span class="swatch"><span class="nemesis-key"></span> nemesis event' \
           '</span><span class="swatch"><span class="band-key"></span> partition</span></div>'


def _svg(drawn: Sequence[Operation], highlighted: Mapping[int, str], window: set[int],
         events: Sequence[Mapping[str, Any]], axis: _Axis) -> str:
    lanes: dict[str, list[Operation]] = {}
    for op in drawn:
        lanes.setdefault(op.process, []).append(op)
    order = sorted(lanes, key=natural_key)
    height = AXIS_HEIGHT_PX + LANE_HEIGHT_PX * max(len(order), 1) + 10
    width = LABEL_WIDTH_PX + PLOT_WIDTH_PX + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">',
           '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="6" height="6" fill="#d9d9d9"/>'
           '<line x1="0" y1="0" x2="0" y2="6" stroke="#8c8c8c" stroke-width="3"/></pattern></defs>']
    bottom = height - 10
    # Lane backgrounds first, then the partition bands over them, then the bars over both.
    out.extend(f'<rect class="lane-bg{" odd" if row % 2 else ""}" x="0" y="{AXIS_HEIGHT_PX + row * LANE_HEIGHT_PX}" '
               f'width="{width}" height="{LANE_HEIGHT_PX}"/>' for row in range(len(order)))
    for band in _bands(events):
        if (band.end_ns is not None and band.end_ns < axis.start_ns) or band.start_ns > axis.end_ns:
            continue
        x0, x1 = axis.x(band.start_ns), axis.x(band.end_ns if band.end_ns is not None else axis.end_ns)
        out.append(f'<rect class="nemesis band partition" x="{x0:.1f}" y="{AXIS_HEIGHT_PX}" '
                   f'width="{max(x1 - x0, 1):.1f}" height="{bottom - AXIS_HEIGHT_PX}">'
                   f"<title>{escape(band.label)}</title></rect>")
    out.append(_ticks(axis, bottom))
    for row, process in enumerate(order):
        y = AXIS_HEIGHT_PX + row * LANE_HEIGHT_PX
        out.append(f'<g class="lane" data-process="{escape(process)}">'
                   f'<text class="lane-label" x="6" y="{y + 15}">{escape(_shorten(process, 20))}'
                   f"<title>{escape(process)}</title></text>")
        out.extend(_bar(op, y, axis, highlighted.get(op.id), op.id in window) for op in lanes[process])
        out.append("</g>")
    for index, event in enumerate(e for e in events if axis.start_ns <= e["time_ns"] <= axis.end_ns):
        out.append(_event_line(event, index, axis, bottom))
    out.append("</svg>")
    return "".join(out)


def _ticks(axis: _Axis, bottom: int) -> str:
    first, last = axis.seconds(axis.start_ns), axis.seconds(axis.end_ns)
    step = _nice_step((last - first) / 8)
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    out = ['<g class="axis">']
    value = math.ceil(first / step) * step
    while value <= last + step * 1e-9:
        x = axis.x(axis.origin_ns + value * 1e9)
        out.append(f'<line class="tick" x1="{x:.1f}" y1="{AXIS_HEIGHT_PX - 4}" x2="{x:.1f}" y2="{bottom}"/>'
                   f'<text class="tick-label" x="{x:.1f}" y="{AXIS_HEIGHT_PX - 7}">{value:.{decimals}f} s</text>')
        value += step
    out.append("</g>")
    return "".join(out)


def _nice_step(rough: float) -> float:
    """1, 2 or 5 times a power of ten, at least `rough`."""
    if rough <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def _bar(op: Operation, lane_y: int, axis: _Axis, reason: str | None, in_window: bool) -> str:
    open_ended = op.ret_ns is None
    x0 = axis.x(op.call_ns)
    x1 = axis.x(axis.end_ns if open_ended else _end_ns(op))
    width = max(x1 - x0, MIN_HIGHLIGHT_WIDTH_PX if reason is not None else MIN_BAR_WIDTH_PX)
    kind = KINDS.get(op.op, "other")
    classes = ["op", op.outcome, escape(kind)]
    level = op.input.get("level") if isinstance(op.input, Mapping) else None
    if kind == "read" and level in READ_LEVELS:
        classes.append(f"level-{level}")
    if open_ended:
        classes.append("open")
    if reason is not None:
        classes.append("violation")
    elif in_window:
        classes.append("window")
    ret = "never completed" if open_ended else f"{axis.seconds(_end_ns(op)):.6f} s"
    tip = (f"{op.op} {op.key} input={_value(op.input)} output={_value(op.output)} -> {op.outcome}\n"
           f"process {op.process}, node {op.node}\ninvoked {axis.seconds(op.call_ns):.6f} s, completed {ret}"
           + (f"\n{reason}" if reason is not None else ""))
    label = ""
    if open_ended and width > 30:
        label = f'<text class="bar-label" x="{x0 + 3:.1f}" y="{lane_y + 15}">info</text>'
    return (f'<rect id="op-{op.id}" class="{" ".join(classes)}" data-op-id="{op.id}" x="{x0:.1f}" '
            f'y="{lane_y + 4}" width="{width:.1f}" height="{LANE_HEIGHT_PX - 8}"><title>{escape(tip)}</title>'
            f"</rect>{label}")


def _event_line(event: Mapping[str, Any], index: int, axis: _Axis, bottom: int) -> str:
    action = str(event.get("action", "?"))
    x = axis.x(event["time_ns"])
    label_y = 12 + (index % 3) * 12  # staggered so events close in time do not write over each other
    kind = "action-" + (re.sub(r"[^a-z-]", "", action.lower()) or "other")  # prefixed: never an op class
    return (f'<g class="nemesis event {kind}" data-action="{escape(action)}">'
            f'<line x1="{x:.1f}" y1="{label_y + 2}" x2="{x:.1f}" y2="{bottom}"/>'
            f'<text x="{x + 2:.1f}" y="{label_y}">{escape(_shorten(action, 12))}</text>'
            f"<title>{escape(_event_text(event, axis))}</title></g>")


def _event_text(event: Mapping[str, Any], axis: _Axis) -> str:
    nodes = event.get("nodes")
    detail = event.get("detail")
    return (f"{axis.seconds(event['time_ns']):.6f} s {event.get('action', '?')} "
            f"{' '.join(str(n) for n in nodes) if isinstance(nodes, list) else ''} "
            f"{_value(detail) if detail else ''}").strip()


def _events_html(events: Sequence[Mapping[str, Any]], axis: _Axis) -> str:
    if not events:
        return ""
    rows = "".join(
        f'<tr class="{"drawn" if axis.start_ns <= e["time_ns"] <= axis.end_ns else "outside"}">'
        f"<td>{axis.seconds(e['time_ns']):.6f} s</td><td>{escape(str(e.get('action', '?')))}</td>"
        f"<td>{escape(' '.join(str(n) for n in e.get('nodes') or []))}</td>"
        f"<td>{escape(_value(e.get('detail') or {}))}</td></tr>" for e in sorted(events, key=lambda e: e["time_ns"]))
    return ('<h2>Nemesis events</h2><table class="events"><tr><th>time</th><th>action</th><th>nodes</th>'
            f"<th>detail</th></tr>{rows}</table>")


def _op_text(op: Operation) -> str:
    shown = op.output if op.op == "read" and op.output is not None else op.input
    return f"{op.process}: {op.op} {op.key} {_value(shown)} -> {op.outcome}"


def _value(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except ValueError:  # a circular structure: show Python's own text rather than fail the whole report
        return repr(value)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; \
script-src 'unsafe-inline'; img-src data:">
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
.verdict.good {{ background: #dff3df; }} .verdict.bad {{ background: #f9d6d5; font-weight: bold; }}
.findings li {{ margin: 2px 0; }} .note {{ color: #7a4b00; background: #fff4dc; padding: 4px 8px; }}
.legend {{ margin: 8px 0; }} .swatch {{ margin-right: 14px; white-space: nowrap; }}
.nemesis-key {{ display: inline-block; width: 2px; height: 12px; background: #b0003a; }}
.band-key {{ display: inline-block; width: 22px; height: 12px; background: rgba(220, 60, 60, .15); }}
.chart {{ overflow-x: auto; border: 1px solid #ddd; }}
.lane-bg {{ fill: #fff; }} .lane-bg.odd {{ fill: #f6f7f9; }}
.lane-label {{ font: 12px monospace; fill: #333; }}
.tick {{ stroke: #e3e3e3; }} .tick-label {{ font: 10px sans-serif; fill: #666; text-anchor: middle; }}
.op, .key {{ stroke: #0003; stroke-width: .5; }}
.read {{ fill: #4c8bd6; }}
.read.level-latest:not(.fail):not(.info) {{ fill: #a9c9ee; }}
.read.level-linearizable:not(.fail):not(.info) {{ fill: #1d4f91; }}
.write {{ fill: #3da35d; }} .cas {{ fill: #8e5ccf; }} .other {{ fill: #888; }}
.fail {{ fill: #fff; stroke: #c0392b; stroke-width: 1; stroke-dasharray: 3 2; }}
.info {{ fill: url(#hatch); opacity: .75; }} .bar-label {{ font: 10px sans-serif; fill: #444; }}
.window {{ stroke: #e0a800; stroke-width: 2; }}
.violation {{ fill: #ff3b1f; stroke: #000; stroke-width: 2; opacity: 1; }}
.op.flash {{ stroke: #ffd400; stroke-width: 5; }}
.band {{ fill: rgba(220, 60, 60, .13); }}
.event line {{ stroke: #b0003a; stroke-width: 1.2; stroke-dasharray: 4 2; }}
.event text {{ font: 10px sans-serif; fill: #b0003a; }}
.event.action-pause line, .event.action-resume line {{ stroke: #c27c00; }}
.event.action-pause text, .event.action-resume text {{ fill: #c27c00; }}
.event.action-netem line {{ stroke: #1f5fbf; }} .event.action-netem text {{ fill: #1f5fbf; }}
.event.action-kill line, .event.action-stop line {{ stroke: #333; }}
.event.action-start line, .event.action-restart line {{ stroke: #333; }}
.event.action-kill text, .event.action-stop text {{ fill: #333; }}
.event.action-start text, .event.action-restart text {{ fill: #333; }}
tr.outside {{ color: #888; }}
</style></head><body>"""

# Finding links scroll the bar into view (SVG fragment targets scroll unreliably) and flash it.
_SCRIPT = """<script>
document.querySelectorAll("a.finding").forEach(function (link) {
  link.addEventListener("click", function (event) {
    var bar = document.getElementById("op-" + link.dataset.opId);
    if (!bar) { return; }
    event.preventDefault();
    bar.scrollIntoView({block: "center", inline: "center"});
    bar.classList.add("flash");
    setTimeout(function () { bar.classList.remove("flash"); }, 1500);
  });
});
</script>"""


def render_consistency_report(*, title: str, ops: Sequence[Op], report: Report,
                              events: Sequence[Mapping[str, Any]], engine: str | None = None) -> str:
    """The page for `check consistency --html`: every client operation of the load history (transfer sends, reads,
    the observer's sightings), the operations a guarantee found wrong highlighted with the guarantee, and one
    summary row per guarantee and read level."""
    operations = pair_operations(ops, keep=lambda invoke, done: True)
    by_call = {op.call: op for op in operations}
    highlighted = {by_call[index].id: reason for index, reason in report.violating_indices.items() if index in by_call}
    summary: list[tuple[str, str, str]] = []
    for level, level_report in report.levels.items():
        for name, guarantee in level_report.guarantees.items():
            promised = " (promised)" if name in PROMISES.get(level, ()) else ""
            detail = guarantee.examples[0]["text"] if guarantee.examples else guarantee.detail or (
                f"{guarantee.checked} checked")
            summary.append((f"{name}, {level} reads{promised}", guarantee.verdict, detail))
        summary.append((f"stale reads, {level}", f"{level_report.stale_reads}",
                        f"{level_report.reads_ok} answered, {level_report.reads_failed} refused, at most "
                        f"{level_report.max_staleness} final transfer(s) behind"))
    convergence = report.convergence
    summary.append(("eventual convergence", convergence.verdict,
                    convergence.examples[0]["text"] if convergence.examples else f"{convergence.checked} compared"))
    notes = [f"{report.writes} transfers ({report.writes_final} final) by {report.sessions} sessions; engine "
             f"{engine or 'unknown'}"]
    return render_history_report(title=title, operations=operations, highlighted=highlighted, events=events,
                                 summary=summary, notes=notes)
