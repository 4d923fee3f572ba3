"""Small SVG pictures for the tour (pure): lines over time with shaded periods, bars, panels of bars, a block tree,
a table and lanes.

Plain SVG text with no dependency, so a demonstration draws its picture itself and the simulated ones stay pure;
the bench plots (cli/plots.py) use matplotlib, which the tour does not need. SVG cannot measure text, so every
picture sizes itself from an estimate of its labels' widths (`text_width`, on the generous side): a label is
never clipped by the picture's edge, and labels that would write over each other go to another row.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from html import escape

FONT = 11  # px, every label but the title
TITLE_FONT = 13
MARGIN = 48  # left edge of the titles and notes, and the room a plain chart keeps on each side
TOP = 40  # the plot's top: below the title and above the labels of shaded periods
PLOT_W, PLOT_H = 540, 170
COLOURS = ("#2f6db5", "#d9822b", "#3a9a5b", "#b53f3f", "#7b52ab", "#8c6d31", "#4b9ca5", "#c25fa0")
ALERT = "#b53f3f"  # red: a marker, a refused write, a highlighted bar
SHADES = ("#f3d9d9", "#dfe3f3")  # shaded periods, alternating so two of them are told apart
MAX_WIDTH = 1280  # bar_panels starts a new row of panels rather than pass this
OFFSET_PX = 1.5  # how far apart lines_chart draws its series, so that equal ones stay visible


def text_width(text: str, size: float = FONT) -> float:
    """A label's width in px, estimated: 0.62 em for a Latin character (a little more than sans-serif's average),
    1 em for a wide one (Chinese)."""
    return sum(size * (1.0 if unicodedata.east_asian_width(ch) in "WF" else 0.62) for ch in text)


def number(value: float) -> str:
    """A value as a label: whole numbers as they are, others to three significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}"


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten apart) from `low` to `high`."""
    if high <= low:
        return [low]
    rough = (high - low) / count
    power = 10.0 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= rough)
    first = math.ceil(low / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _frame(title: str, width: float, height: float, body: Sequence[str]) -> str:
    width = max(width, MARGIN + text_width(title, TITLE_FONT) + 12)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="{FONT}">'
            f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>'
            f'<text x="{MARGIN}" y="18" font-size="{TITLE_FONT}">{escape(title)}</text>' + "".join(body) + "</svg>\n")


class _Rows:
    """Labels along one line, each pushed to the first row where it writes over no other (a row is 13 px)."""

    def __init__(self) -> None:
        self.taken: list[list[tuple[float, float]]] = []

    def place(self, x: float, width: float) -> int:
        for row, spans in enumerate(self.taken):
            if all(x + width + 4 <= a or x >= b + 4 for a, b in spans):
                spans.append((x, x + width))
                return row
        self.taken.append([(x, x + width)])
        return len(self.taken) - 1


def lines_chart(title: str, *, times: Sequence[float], series: Mapping[str, Sequence[float]],
                shaded: Sequence[tuple[float, float, str]] = (), x_label: str = "virtual seconds",
                y_label: str = "", note: str = "", y_max: float | None = None) -> str:
    """One line per series over `times`, with round-valued ticks on both axes and a legend on the right; each
    `shaded` (start, end, label) period drawn behind the lines, its label above the plot. Where series coincide,
    each is drawn OFFSET_PX from the next, so all of them show (a note under the chart says so)."""
    x0, x1 = (min(times), max(times)) if times else (0.0, 1.0)
    values = [v for vs in series.values() for v in vs] or [0.0]
    clipped = y_max is not None and max(values) > y_max
    if y_max is not None:  # a line that runs away (a crashed peer's silence) would flatten the others
        series = {name: [min(v, y_max) for v in vs] for name, vs in series.items()}
        values = [min(v, y_max) for v in values]
    y0, y1 = min(0.0, min(values)), max(values) or 1.0
    y_ticks = ticks(y0, y1, 4)
    y1 = max(y1, y_ticks[-1])
    left = 22 + max((text_width(number(t)) for t in y_ticks), default=10) + 8
    label_rows = _Rows()
    placed: list[tuple[str, float, int]] = []  # label, x, row
    right = left + PLOT_W

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * PLOT_W

    for start, _, label in shaded:
        w = text_width(label)
        x = max(left, min(px(start) + 3, right - w))  # from the period's start, inside the plot if it fits
        placed.append((label, x, label_rows.place(x, w)))
    top = TOP + 13 * max(0, len(label_rows.taken) - 1)
    bottom = top + PLOT_H

    def py(y: float) -> float:
        return bottom - (y - y0) / ((y1 - y0) or 1.0) * PLOT_H

    body = []
    for k, (start, end, _) in enumerate(shaded):
        body.append(f'<rect x="{px(start):.1f}" y="{top}" width="{max(0.0, px(end) - px(start)):.1f}" '
                    f'height="{PLOT_H}" fill="{SHADES[k % len(SHADES)]}"/>')
    for label, x, row in placed:
        body.append(f'<text x="{x:.1f}" y="{top - 4 - 13 * (len(label_rows.taken) - 1 - row)}" fill="{ALERT}">'
                    f'{escape(label)}</text>')
    for t in y_ticks:
        body.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{right}" y2="{py(t):.1f}" stroke="#e4e4e4"/>'
                    f'<text x="{left - 5}" y="{py(t) + 4:.1f}" text-anchor="end">{number(t)}</text>')
    for t in ticks(x0, x1):
        body.append(f'<line x1="{px(t):.1f}" y1="{bottom}" x2="{px(t):.1f}" y2="{bottom + 4}" stroke="black"/>'
                    f'<text x="{px(t):.1f}" y="{bottom + 16}" text-anchor="middle">{number(t)}</text>')
    body.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>'
                f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>')
    body.append(f'<text x="{left + PLOT_W / 2:.0f}" y="{bottom + 32}" text-anchor="middle">{escape(x_label)}</text>')
    middle = top + PLOT_H / 2
    body.append(f'<text x="14" y="{middle:.0f}" transform="rotate(-90 14 {middle:.0f})" text-anchor="middle">'
                f'{escape(y_label)}</text>')
    legend_w = 0.0
    for i, (name, ys) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        # Each series a pixel and a half from the next: lines that coincide (nodes on one chain) show side by side as
        # a band of their colours instead of the last one hiding the others.
        shift = (i - (len(series) - 1) / 2) * OFFSET_PX
        points = " ".join(f"{px(x):.1f},{py(y) + shift:.1f}" for x, y in zip(times, ys, strict=False))
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{points}" '
                    f'stroke-linejoin="round"><title>{escape(name)}</title></polyline>')
        y = top + 14 * i + 6
        body.append(f'<line x1="{right + 10}" y1="{y}" x2="{right + 26}" y2="{y}" stroke="{colour}" '
                    f'stroke-width="2"/><text x="{right + 30}" y="{y + 4}" fill="{colour}">{escape(name)}</text>')
        legend_w = max(legend_w, 30 + text_width(name))
    height = bottom + 44
    if clipped:
        note = (note + " " if note else "") + f"(values above {number(y_max or 0.0)} drawn at the top)"
    if len(series) > 1:
        note = (note + " " if note else "") + f"(lines drawn {OFFSET_PX:g} px apart, so that equal ones all show)"
    if note:
        body.append(f'<text x="{MARGIN}" y="{height + 6}">{escape(note)}</text>')
        height += 16
    width = max(right + legend_w + 12, MARGIN + text_width(note) + 12,
                *(x + text_width(label) + 12 for label, x, _ in placed))
    return _frame(title, width, height, body)


def _slot(bars: Sequence[tuple[str, float]]) -> float:
    """The width of each bar's slot: as wide as the longest label needs."""
    return max(44.0, max((text_width(label) for label, _ in bars), default=0.0) + 12)


def _bars(bars: Sequence[tuple[str, float]], *, x: float, top: float, highlight: Collection[str],
          ) -> tuple[list[str], float]:
    """Bars from `x`, the plot from `top` down PLOT_H, each in a slot as wide as its label needs; the value written
    on each bar. The elements and the width they take."""
    slot = _slot(bars)
    peak = max((value for _, value in bars), default=1.0) or 1.0
    bottom = top + PLOT_H
    body = []
    for i, (label, value) in enumerate(bars):
        h = max(0.0, value) / peak * (PLOT_H - 16)  # room above the tallest bar for its value
        if label in highlight:
            h = max(h, 3.0)  # a highlighted zero still shows its colour
        left = x + i * slot
        colour = ALERT if label in highlight else COLOURS[0]
        body.append(f'<rect x="{left + slot * 0.15:.1f}" y="{bottom - h:.1f}" width="{slot * 0.7:.1f}" '
                    f'height="{h:.1f}" fill="{colour}" data-label="{escape(label)}" data-value="{value:g}"/>'
                    f'<text x="{left + slot / 2:.1f}" y="{bottom - h - 3:.1f}" text-anchor="middle">{number(value)}'
                    f'</text><text x="{left + slot / 2:.1f}" y="{bottom + 14}" text-anchor="middle">{escape(label)}'
                    f'</text>')
    width = slot * len(bars)
    body.append(f'<line x1="{x}" y1="{bottom}" x2="{x + width:.1f}" y2="{bottom}" stroke="black"/>')
    return body, width


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, y_label: str = "",
              marker: tuple[int, str] | None = None, highlight: Collection[str] = (), note: str = "") -> str:
    """Vertical bars with their values written on them (`highlight`: labels of bars drawn red); `marker` (bar
    index, label) draws a dashed line before that bar (the finality threshold on a depth histogram)."""
    left = MARGIN
    top = TOP + (13 if marker is not None else 0)
    body, width = _bars(bars, x=left, top=top, highlight=highlight)
    middle = top + PLOT_H / 2
    body.append(f'<text x="14" y="{middle:.0f}" transform="rotate(-90 14 {middle:.0f})" text-anchor="middle">'
                f'{escape(y_label)}</text>')
    right = left + width
    if marker is not None:
        x = left + marker[0] * width / max(1, len(bars))
        label_x = max(float(left), min(x + 3, right - text_width(marker[1])))
        right = max(right, label_x + text_width(marker[1]))
        body.append(f'<line x1="{x:.1f}" y1="{top - 12}" x2="{x:.1f}" y2="{top + PLOT_H}" stroke="{ALERT}" '
                    f'stroke-dasharray="4 3"/><text x="{label_x:.1f}" y="{top - 4}" fill="{ALERT}">'
                    f'{escape(marker[1])}</text>')
    height = top + PLOT_H + 30
    if note:
        body.append(f'<text x="{MARGIN}" y="{height + 8}">{escape(note)}</text>')
        height += 18
    return _frame(title, max(right + 20, MARGIN + text_width(note) + 12), height, body)


def bar_panels(title: str, panels: Sequence[tuple[str, Sequence[tuple[str, float]]]], *,
               highlight: Collection[str] = (), highlight_in: Mapping[int, Collection[str]] | None = None,
               note: str = "") -> str:
    """Panels of bars side by side (on more rows when they would pass MAX_WIDTH), each with its own scale and its
    title above it: for counts of different things (messages, views, checks) that one scale would flatten or mix.
    `highlight`: labels drawn red in every panel; `highlight_in`: panel index -> labels drawn red in that panel."""
    x, row, right = float(MARGIN), 0, float(MARGIN)
    body = []
    for index, (panel_title, bars) in enumerate(panels):
        width = max(_slot(bars) * len(bars), text_width(panel_title) + 8)
        if x > MARGIN and x + width > MAX_WIDTH:
            x, row = float(MARGIN), row + 1
        top = TOP + 14 + row * (PLOT_H + 62)
        red = {*highlight, *(highlight_in or {}).get(index, ())}
        bars_body, _ = _bars(bars, x=x, top=top, highlight=red)
        body.append(f'<text x="{x:.1f}" y="{top - 8}" font-weight="bold">{escape(panel_title)}</text>')
        body.extend(bars_body)
        x += width + 28
        right = max(right, x)
    height = TOP + 14 + row * (PLOT_H + 62) + PLOT_H + 30
    if note:
        body.append(f'<text x="{MARGIN}" y="{height + 8}">{escape(note)}</text>')
        height += 18
    return _frame(title, max(right, MARGIN + text_width(note) + 12), height, body)


def block_tree(title: str, blocks: Sequence[tuple[str, int, str, bool]], *, final_height: int,
               note: str = "", marked: Mapping[str, str] | None = None) -> str:
    """A block tree: `blocks` are (hash, height, parent hash, on the best chain); the best chain runs along the
    top row, each other block below it at its height, linked to its parent; a dashed line marks the final
    height (everything left of it is final). `marked` maps block hashes to a label: those blocks are outlined in
    red with the label beside them (above on the best row, below elsewhere)."""
    if not blocks:
        return _frame(title, 400, 80, [f'<text x="{MARGIN}" y="50">no blocks</text>'])
    low = min(height for _, height, _, _ in blocks)
    high = max(height for _, height, _, _ in blocks)
    rows: dict[int, int] = {}
    position: dict[str, tuple[float, float]] = {}
    step = max(18.0, PLOT_W / max(1, high - low))
    top = TOP + 14
    ordered = sorted(blocks, key=lambda b: (b[1], not b[3], b[0]))
    for block_hash, height, _, best in ordered:
        row = 0 if best else rows.get(height, 0) + 1
        if not best:
            rows[height] = row
        position[block_hash] = (MARGIN + (height - low) * step, top + row * 28)
    marked = {h: label for h, label in (marked or {}).items() if h in position}
    lowest = max(y for _, y in position.values())
    labels_y = lowest + 24 + (16 if marked else 0)  # the heights, under every row (and the labels below them)
    height_px = labels_y + 30
    right = max(x for x, _ in position.values()) + 20
    body = []
    for block_hash, _, parent, _ in ordered:
        if parent in position:
            (x1, y1), (x2, y2) = position[parent], position[block_hash]
            body.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#999"/>')
    for block_hash, height, _, best in ordered:
        x, y = position[block_hash]
        colour = COLOURS[0] if best else "#bbbbbb"
        body.append(f'<rect x="{x - 7:.1f}" y="{y - 7:.1f}" width="14" height="14" fill="{colour}">'
                    f'<title>{escape(block_hash[:16])} height {height}{"" if best else " (stale)"}</title></rect>')
        if block_hash in marked:
            label = marked[block_hash]
            label_x = max(float(MARGIN) - 7, x - 7)
            label_y = y - 11 if best else y + 20
            right = max(right, label_x + text_width(label) + 12)
            body.append(f'<rect x="{x - 9:.1f}" y="{y - 9:.1f}" width="18" height="18" fill="none" '
                        f'stroke="{ALERT}" stroke-width="2"/><text x="{label_x:.1f}" y="{label_y:.1f}" '
                        f'fill="{ALERT}">{escape(label)}</text>')
    if low <= final_height <= high:
        x = MARGIN + (final_height - low) * step + step / 2
        label = f"final up to {final_height}"
        right = max(right, x + 3 + text_width(label) + 8)
        body.append(f'<line x1="{x:.1f}" y1="{top - 22}" x2="{x:.1f}" y2="{lowest + 14}" stroke="{ALERT}" '
                    f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{top - 14}" fill="{ALERT}">{label}</text>')
    for t in ticks(low, high, max(2, min(10, (high - low) // 4))):
        if float(t).is_integer():
            x = MARGIN + (t - low) * step
            body.append(f'<text x="{x:.1f}" y="{labels_y}" text-anchor="middle" fill="#555">{number(t)}</text>')
    legend = f"heights {low}..{high} (numbered below); blue: best chain, grey: stale blocks. {note}".strip()
    body.append(f'<text x="{MARGIN}" y="{height_px - 8}">{escape(legend)}</text>')
    return _frame(title, max(right, MARGIN + text_width(legend) + 12), height_px, body)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, note: str = "",
          shaded: Mapping[str, str] | None = None) -> str:
    """A table of short texts: `header` above, one line per row, each column as wide as its longest text; a cell
    whose text is a key of `shaded` gets that fill (the caller colours equal values alike), every other cell stays
    white."""
    row_h, left = 20, MARGIN
    fills = shaded or {}
    columns = max([len(header), *(len(row) for row in rows)])
    widths = [max([text_width(header[c]) if c < len(header) else 0.0,
                   *(text_width(row[c]) for row in rows if c < len(row))]) + 12 for c in range(columns)]
    starts = [left + sum(widths[:c]) for c in range(columns)]
    body = []
    for c, text in enumerate(header):
        body.append(f'<text x="{starts[c] + 4:.1f}" y="{TOP + 6}" font-weight="bold">{escape(text)}</text>')
    for r, row in enumerate(rows):
        y = TOP + 12 + r * row_h
        for c, text in enumerate(row):
            body.append(f'<rect x="{starts[c]:.1f}" y="{y}" width="{widths[c] - 2:.1f}" height="{row_h - 2}" '
                        f'fill="{fills.get(text, "white")}" stroke="#ccc"/><text x="{starts[c] + 4:.1f}" '
                        f'y="{y + 13}">{escape(text)}</text>')
    height = TOP + 12 + len(rows) * row_h + 30
    body.append(f'<text x="{left}" y="{height - 10}">{escape(note)}</text>')
    return _frame(title, max(left + sum(widths) + 20, left + text_width(note) + 12), height, body)


def lanes(title: str, spans: Mapping[str, Sequence[tuple[float, float]]], *,
          marks: Sequence[tuple[str, float, str, bool]] = (), x_label: str = "block height", note: str = "") -> str:
    """One lane per name, each (start, end) span a bar along the x axis; each mark (lane, x, label, bad) a dot on
    its lane (green, or a red cross with its label when `bad`)."""
    names = list(dict.fromkeys([*spans, *(lane for lane, _, _, _ in marks)]))
    xs = [x for bars in spans.values() for span in bars for x in span] + [x for _, x, _, _ in marks]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    left, lane_h = 8 + max((text_width(name) for name in names), default=40.0) + 12, 30
    right = left + PLOT_W

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * PLOT_W

    body = []
    for row, name in enumerate(names):
        y = TOP + row * lane_h
        body.append(f'<text x="8" y="{y + 18}">{escape(name)}</text>')
        for start, end in spans.get(name, ()):
            body.append(f'<rect x="{px(start):.1f}" y="{y + 6}" width="{max(2.0, px(end) - px(start)):.1f}" '
                        f'height="{lane_h - 12}" fill="{COLOURS[row % len(COLOURS)]}" opacity="0.6"/>')
    width = right + 20
    for lane, x, label, bad in marks:
        mid = TOP + names.index(lane) * lane_h + lane_h / 2
        if bad:
            width = max(width, px(x) + 6 + text_width(label) + 12)
            body.append(f'<path d="M{px(x) - 5:.1f},{mid - 5:.1f} l10,10 m0,-10 l-10,10" stroke="{ALERT}" '
                        f'stroke-width="2.5"/><text x="{px(x) + 6:.1f}" y="{mid - 6:.1f}" fill="{ALERT}">'
                        f'{escape(label)}</text>')
        else:
            body.append(f'<circle cx="{px(x):.1f}" cy="{mid:.1f}" r="2.5" fill="#1d6b33"><title>{escape(label)}'
                        f'</title></circle>')
    bottom = TOP + len(names) * lane_h
    for t in ticks(x0, x1):
        body.append(f'<line x1="{px(t):.1f}" y1="{bottom}" x2="{px(t):.1f}" y2="{bottom + 4}" stroke="black"/>'
                    f'<text x="{px(t):.1f}" y="{bottom + 16}" text-anchor="middle">{number(t)}</text>')
    legend = f"{x_label}. {note}" if note else x_label
    body.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>'
                f'<text x="{left}" y="{bottom + 32}">{escape(legend)}</text>')
    return _frame(title, max(width, left + text_width(legend) + 12), bottom + 42, body)
