"""tour/svg.py: every label fits inside its picture (by the same width estimate the pictures size themselves with),
labels of shaded periods do not write over each other, ticks are round, and bars carry their label and value."""

from __future__ import annotations

import re

from tour import svg


def _width(picture: str) -> float:
    return float(re.search(r'<svg [^>]*width="([0-9.]+)"', picture).group(1))  # type: ignore[union-attr]


def _label_extents(picture: str) -> list[tuple[float, float, str]]:
    """Every left-anchored label: its x, its estimated right edge and its text (HTML escapes left in)."""
    out = []
    for attrs, text in re.findall(r"<text ([^>]*)>([^<]*)</text>", picture):
        if "text-anchor" in attrs or "rotate" in attrs:
            continue
        x = float(re.search(r'x="(-?[0-9.]+)"', attrs).group(1))  # type: ignore[union-attr]
        size = svg.TITLE_FONT if 'font-size="13"' in attrs else svg.FONT
        out.append((x, x + svg.text_width(text, size), text))
    return out


def _fits(picture: str) -> None:
    width = _width(picture)
    for x, right, text in _label_extents(picture):
        assert x >= 0 and right <= width, (text, right, width)


def test_long_labels_widen_the_picture_instead_of_being_cut() -> None:
    long = "since heard from a peer with a rather long name, twice over, 故障检测器"
    _fits(svg.lines_chart("title", times=[0, 1, 2], series={long: [0, 1, 2], "b": [1, 1, 1]},
                          shaded=[(1.8, 2.0, "a period that starts near the right edge")]))
    _fits(svg.lanes("lock", {"cl8600517e": [(1, 5)]}, marks=[("cl8600517e", 5.0, "late write " + long, True)]))
    _fits(svg.block_tree("tree", [("a", 0, "", True), ("b", 1, "a", True), ("c", 1, "a", False)], final_height=0,
                         marked={"b": "tx " + long, "c": "tx " + long + " lost"}, note=long))
    _fits(svg.bar_chart("a title longer than the bars themselves, " + long, [("x", 1.0)], marker=(0, long)))
    _fits(svg.bar_panels("panels", [("first " + long, [("a", 1.0)]), ("second", [(long, 2.0)])], note=long))
    _fits(svg.table("table", ["step", "replica 0"], [["0", "3629dc2d"], ["1", "refused insufficient-funds"]]))


def test_a_label_that_did_not_fit_is_found() -> None:
    """The check above is not vacuous: a picture drawn with its old fixed width fails it."""
    picture = svg.lanes("lock", {"a": [(1, 5)]}, marks=[("a", 5.0, "late write stale-fencing-token (token 19.0)",
                                                                 True)])
    clipped = re.sub(r'width="[0-9.]+" height', 'width="640" height', picture, count=1)
    try:
        _fits(clipped)
    except AssertionError:
        return
    raise AssertionError("a label past the edge was not found")


def test_labels_of_close_periods_go_to_separate_rows() -> None:
    picture = svg.lines_chart("t", times=[0, 10], series={"s": [0, 1]},
                              shaded=[(1, 2, "the first period's label"), (1.5, 3, "the second period's label")])
    rows = {y for attrs, text in re.findall(r'<text ([^>]*)fill="#b53f3f">([^<]*)</text>', picture)
            for y in re.findall(r'y="([0-9.-]+)"', attrs)}
    assert len(rows) == 2


def test_ticks_are_round_and_cover_the_range() -> None:
    assert svg.ticks(0, 14, 4) == [0, 5, 10]
    assert svg.ticks(0, 70) == [0, 20, 40, 60]
    assert svg.ticks(0.05, 30) == [10, 20, 30]
    assert svg.ticks(3, 3) == [3]
    assert svg.number(8.01531) == "8.02" and svg.number(14.0) == "14" and svg.number(1e12) == "1000000000000"


def test_bars_carry_their_label_and_value_and_highlighted_ones_are_red() -> None:
    picture = svg.bar_panels("p", [("sent", [("node0 sent", 40.0), ("node1 sent", 30.0)])],
                             highlight={"node0 sent"})
    bars = re.findall(r'<rect [^>]*fill="([^"]+)" data-label="([^"]*)" data-value="([^"]*)"', picture)
    assert bars == [(svg.ALERT, "node0 sent", "40"), (svg.COLOURS[0], "node1 sent", "30")]
