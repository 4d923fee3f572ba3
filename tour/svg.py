"""Small SVG pictures for the tour (pure): lines over time with shaded periods, bars, and a block tree.

Plain SVG text with no dependency, so a demonstration draws its picture itself and the simulated ones stay pure;
the bench plots (cli/plots.py) use matplotlib, which the tour does not need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

WIDTH, HEIGHT, MARGIN = 640, 260, 48
COLOURS = ("#2f6db5", "#d9822b", "#3a9a5b", "#b53f3f", "#7b52ab", "#8c6d31", "#4b9ca5", "#c25fa0")


def _frame(title: str, width: int, height: int, body: Sequence[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
            f'<rect width="{width}" height="{height}" fill="white"/>'
            f'<text x="{MARGIN}" y="18" font-size="13">{escape(title)}</text>' + "".join(body) + "</svg>\n")


def lines_chart(title: str, *, times: Sequence[float], series: Mapping[str, Sequence[float]],
                shaded: Sequence[tuple[float, float, str]] = (), x_label: str = "virtual seconds",
                y_label: str = "") -> str:
    """One line per series over `times`; each `shaded` (start, end, label) period drawn behind them."""
    x0, x1 = (min(times), max(times)) if times else (0.0, 1.0)
    values = [v for vs in series.values() for v in vs] or [0.0]
    y0, y1 = min(0.0, min(values)), max(values) or 1.0
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

    def px(x: float) -> float:
        return MARGIN + (x - x0) / ((x1 - x0) or 1.0) * plot_w

    def py(y: float) -> float:
        return HEIGHT - MARGIN - (y - y0) / ((y1 - y0) or 1.0) * plot_h

    body = []
    for start, end, label in shaded:
        body.append(f'<rect x="{px(start):.1f}" y="{MARGIN}" width="{max(0.0, px(end) - px(start)):.1f}" '
                    f'height="{plot_h}" fill="#f3d9d9"/><text x="{px(start) + 3:.1f}" y="{MARGIN + 12}" '
                    f'fill="#b53f3f">{escape(label)}</text>')
    body.append(f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" '
                f'stroke="black"/><line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" '
                f'stroke="black"/>')
    body.append(f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT - 12}" text-anchor="middle">{escape(x_label)} '
                f'({x0:g}..{x1:g})</text>')
    body.append(f'<text x="12" y="{HEIGHT / 2:.0f}" transform="rotate(-90 12 {HEIGHT / 2:.0f})" '
                f'text-anchor="middle">{escape(y_label)} ({y0:g}..{y1:g})</text>')
    for i, (name, ys) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(times, ys, strict=False))
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        body.append(f'<text x="{WIDTH - MARGIN + 4}" y="{MARGIN + 14 * i + 10}" fill="{colour}">'
                    f'{escape(name)}</text>')
    return _frame(title, WIDTH + 40, HEIGHT, body)


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, y_label: str = "",
              marker: tuple[int, str] | None = None) -> str:
    """Vertical bars with their values written on them; `marker` (bar index, label) draws a dashed line before
    that bar (the finality threshold on a depth histogram)."""
    plot_w, plot_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    top = max((value for _, value in bars), default=1.0) or 1.0
    slot = plot_w / max(1, len(bars))
    body = [f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" '
            f'stroke="black"/>',
            f'<text x="12" y="{HEIGHT / 2:.0f}" transform="rotate(-90 12 {HEIGHT / 2:.0f})" '
            f'text-anchor="middle">{escape(y_label)}</text>']
    for i, (label, value) in enumerate(bars):
        h = value / top * plot_h
        x = MARGIN + i * slot + slot * 0.15
        body.append(f'<rect x="{x:.1f}" y="{HEIGHT - MARGIN - h:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                    f'fill="{COLOURS[0]}"/>')
        body.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - MARGIN - h - 3:.1f}" '
                    f'text-anchor="middle">{value:g}</text>')
        body.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - MARGIN + 14}" '
                    f'text-anchor="middle">{escape(label)}</text>')
    if marker is not None:
        x = MARGIN + marker[0] * slot
        body.append(f'<line x1="{x:.1f}" y1="{MARGIN}" x2="{x:.1f}" y2="{HEIGHT - MARGIN}" stroke="#b53f3f" '
                    f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{MARGIN + 10}" fill="#b53f3f">'
                    f'{escape(marker[1])}</text>')
    return _frame(title, WIDTH, HEIGHT, body)


def block_tree(title: str, blocks: Sequence[tuple[str, int, str, bool]], *, final_height: int,
               note: str = "", marked: Mapping[str, str] | None = None) -> str:
    """A block tree: `blocks` are (hash, height, parent hash, on the best chain); the best chain runs along the
    top row, each other block below it at its height, linked to its parent; a dashed line marks the final
    height (everything left of it is final). `marked` maps block hashes to a label: those blocks are outlined in
    red with the label beside them (above on the best row, below elsewhere)."""
    if not blocks:
        return _frame(title, WIDTH, 80, ['<text x="48" y="50">no blocks</text>'])
    low = min(height for _, height, _, _ in blocks)
    high = max(height for _, height, _, _ in blocks)
    rows: dict[int, int] = {}
    position: dict[str, tuple[float, float]] = {}
    step = max(18.0, (WIDTH - 2 * MARGIN) / max(1, high - low))
    ordered = sorted(blocks, key=lambda b: (b[1], not b[3], b[0]))
    for block_hash, height, _, best in ordered:
        row = 0 if best else rows.get(height, 0) + 1
        if not best:
            rows[height] = row
        position[block_hash] = (MARGIN + (height - low) * step, MARGIN + 20 + row * 28)
    width = int(MARGIN * 2 + (high - low) * step + 40)
    marked = {h: label for h, label in (marked or {}).items() if h in position}
    height_px = int(max(y for _, y in position.values()) + MARGIN + (16 if marked else 0))
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
            label_y = y - 11 if best else y + 20
            body.append(f'<rect x="{x - 9:.1f}" y="{y - 9:.1f}" width="18" height="18" fill="none" '
                        f'stroke="#b53f3f" stroke-width="2"/><text x="{x - 7:.1f}" y="{label_y:.1f}" '
                        f'fill="#b53f3f">{escape(marked[block_hash])}</text>')
    if low <= final_height <= high:
        x = MARGIN + (final_height - low) * step + step / 2
        body.append(f'<line x1="{x:.1f}" y1="{MARGIN}" x2="{x:.1f}" y2="{height_px - 10}" stroke="#b53f3f" '
                    f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{MARGIN + 4}" fill="#b53f3f">final up to '
                    f'{final_height}</text>')
    body.append(f'<text x="{MARGIN}" y="{height_px - 8}">heights {low}..{high}; blue: best chain, grey: stale '
                f'blocks. {escape(note)}</text>')
    return _frame(title, max(width, WIDTH), height_px, body)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, note: str = "",
          shaded: Mapping[str, str] | None = None) -> str:
    """A table of short texts: `header` above, one line per row; a cell whose text is a key of `shaded` gets that
    fill (the caller colours equal values alike), every other cell stays white."""
    col_w, row_h, left = 120, 20, MARGIN
    fills = shaded or {}
    body = []
    for c, text in enumerate(header):
        body.append(f'<text x="{left + c * col_w + 4}" y="{MARGIN + 10}" font-weight="bold">{escape(text)}</text>')
    for r, row in enumerate(rows):
        y = MARGIN + 16 + r * row_h
        for c, text in enumerate(row):
            x = left + c * col_w
            body.append(f'<rect x="{x}" y="{y}" width="{col_w - 2}" height="{row_h - 2}" '
                        f'fill="{fills.get(text, "white")}" stroke="#ccc"/><text x="{x + 4}" y="{y + 13}" '
                        f'font-family="monospace">{escape(text)}</text>')
    height = MARGIN + 16 + len(rows) * row_h + 30
    body.append(f'<text x="{left}" y="{height - 10}">{escape(note)}</text>')
    return _frame(title, max(WIDTH, left * 2 + len(header) * col_w), height, body)


def lanes(title: str, spans: Mapping[str, Sequence[tuple[float, float]]], *,
          marks: Sequence[tuple[str, float, str, bool]] = (), x_label: str = "block height", note: str = "") -> str:
    """One lane per name, each (start, end) span a bar along the x axis; each mark (lane, x, label, bad) a dot on
    its lane (green, or a red cross with its label when `bad`)."""
    names = list(dict.fromkeys([*spans, *(lane for lane, _, _, _ in marks)]))
    xs = [x for bars in spans.values() for span in bars for x in span] + [x for _, x, _, _ in marks]
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    left, lane_h = 120, 30
    plot_w = WIDTH - left - MARGIN

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * plot_w

    body = []
    for row, name in enumerate(names):
        y = MARGIN + row * lane_h
        body.append(f'<text x="8" y="{y + 18}">{escape(name)}</text>')
        for start, end in spans.get(name, ()):
            body.append(f'<rect x="{px(start):.1f}" y="{y + 6}" width="{max(2.0, px(end) - px(start)):.1f}" '
                        f'height="{lane_h - 12}" fill="{COLOURS[row % len(COLOURS)]}" opacity="0.6"/>')
    for lane, x, label, bad in marks:
        mid = MARGIN + names.index(lane) * lane_h + lane_h / 2
        if bad:
            body.append(f'<path d="M{px(x) - 5:.1f},{mid - 5:.1f} l10,10 m0,-10 l-10,10" stroke="#b53f3f" '
                        f'stroke-width="2.5"/><text x="{px(x) + 6:.1f}" y="{mid - 6:.1f}" fill="#b53f3f">'
                        f'{escape(label)}</text>')
        else:
            body.append(f'<circle cx="{px(x):.1f}" cy="{mid:.1f}" r="2.5" fill="#1d6b33"><title>{escape(label)}'
                        f'</title></circle>')
    bottom = MARGIN + len(names) * lane_h
    body.append(f'<line x1="{left}" y1="{bottom}" x2="{left + plot_w}" y2="{bottom}" stroke="black"/>'
                f'<text x="{left}" y="{bottom + 16}">{escape(x_label)} {x0:g}..{x1:g}. {escape(note)}</text>')
    return _frame(title, WIDTH, bottom + 30, body)
