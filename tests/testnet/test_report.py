"""The HTML report of a history (testnet/report.py): lanes, highlights, nemesis events, escaping, the bar cap."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from random import Random
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from testnet.history import Op
from testnet.linearizability import Operation, generate_register_history, pair_operations
from testnet.report import MAX_BARS, natural_key, render_history_report

SECOND = 1_000_000_000
T0 = 1_795_680_900 * SECOND  # wall-clock nanoseconds, as a testnet's history and events.jsonl carry them
DATA = Path(__file__).resolve().parent.parent / "data" / "jepsen-etcd" / "histories"


class Element:
    """One start tag of the page: its name, attributes and classes."""

    def __init__(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tag = tag
        self.attrs = {name: value or "" for name, value in attrs}
        self.classes = set(self.attrs.get("class", "").split())
        self.text = ""  # the text of its first <title> child (the tooltip), or its own text


class Page(HTMLParser):
    """The page's elements in document order, parsed as a browser's tokenizer would see them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, attrs)
        self.elements.append(element)
        if tag not in ("line", "meta", "br"):
            self.open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self.open:
            owner = self.open[-2] if self.open[-1].tag == "title" and len(self.open) > 1 else self.open[-1]
            owner.text += data

    def having(self, *classes: str) -> list[Element]:
        return [e for e in self.elements if set(classes) <= e.classes]


def op(id: int, process: str, call_s: float, ret_s: float | None, *, name: str = "read", key: str = "r",
       input: Any = None, output: Any = None, outcome: str = "ok") -> Operation:
    return Operation(id=id, process=process, node="node0", key=key, op=name, input=input, output=output,
                     outcome=outcome, call=id * 2, ret=id * 2 + 1 if ret_s is not None else float("inf"),  # type: ignore[arg-type]
                     call_ns=T0 + int(call_s * SECOND), ret_ns=None if ret_s is None else T0 + int(ret_s * SECOND))


def event(action: str, at_s: float, *, blocked: dict[str, list[str]] | None = None, **detail: Any) -> dict[str, Any]:
    return {"time_ns": T0 + int(at_s * SECOND), "action": action, "nodes": ["node0", "node1"], "detail": detail,
            "network": {"blocked": blocked or {}, "running": ["node0", "node1"], "paused": [], "down": [],
                        "netem": {}}}


HISTORY = [
    op(0, "client-10", 0.0, 1.0, name="write", input=1),
    op(1, "client-2", 0.5, 1.5, output=1),
    op(2, "client-2", 2.0, 3.0, output=0),  # stale
    op(3, "observer", 0.2, 3.5, name="final", key="tx1"),
    op(4, "client-10", 2.5, None, name="write", input=2, outcome="info"),
    op(5, "client-1", 1.0, 1.2, name="cas", input=[1, 2], outcome="fail"),
]
CUT = {"node0": ["node1"], "node1": ["node0"]}
EVENTS = [
    event("partition", 1.2, blocked=CUT, groups=[[0], [1]]),
    event("pause", 1.8, blocked=CUT),  # the cut is still in force
    event("heal", 2.6, partition=True, netem=True),
    event("kill", 3.1, pid=313),
]


def render(**overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "title": "history.jsonl", "operations": HISTORY, "highlighted": {2: "stale read: saw 0 after 1 was read"},
        "events": EVENTS, "summary": [("linearizable (final reads)", "violated", "client-2 read r 0")]}
    return render_history_report(**{**arguments, **overrides})


def test_one_lane_per_process_in_natural_order_each_operation_a_bar_with_a_tooltip() -> None:
    page = Page(render())
    lanes = [e.attrs["data-process"] for e in page.having("lane")]
    assert lanes == ["client-1", "client-2", "client-10", "observer"]
    bars = {e.attrs["data-op-id"]: e for e in page.having("op") if "data-op-id" in e.attrs}
    assert sorted(bars) == ["0", "1", "2", "3", "4", "5"]
    assert {"write", "ok"} <= bars["0"].classes and {"cas", "fail"} <= bars["5"].classes
    assert "input=[1, 2]" in bars["5"].text and "process client-1, node node0" in bars["5"].text
    assert {"info", "open"} <= bars["4"].classes and "never completed" in bars["4"].text
    assert natural_key("client-2") < natural_key("client-10") < natural_key("observer")


def test_an_operation_never_completed_reaches_the_right_edge() -> None:
    page = Page(render())
    bars = {e.attrs["data-op-id"]: e for e in page.having("op") if "data-op-id" in e.attrs}
    right_edge = max(float(b.attrs["x"]) + float(b.attrs["width"]) for b in bars.values() if b is not bars["4"])
    assert float(bars["4"].attrs["x"]) + float(bars["4"].attrs["width"]) > right_edge


def test_the_highlighted_operation_is_marked_and_listed_in_the_findings_with_a_link() -> None:
    html = render()
    page = Page(html)
    [violation] = page.having("op", "violation")
    assert violation.attrs["data-op-id"] == "2" and violation.attrs["id"] == "op-2"
    assert "stale read: saw 0 after 1 was read" in violation.text
    [finding] = page.having("finding")
    assert finding.attrs["href"] == "#op-2" and finding.text == "client-2: read r 0 -> ok"
    assert html.index("Findings") < html.index('class="lane"')  # the findings come before the lanes
    [verdict] = page.having("verdict")
    assert verdict.text == "violated" and "bad" in verdict.classes


def test_window_operations_get_the_lighter_mark() -> None:
    page = Page(render(window=[1, 0]))
    assert sorted(e.attrs["data-op-id"] for e in page.having("op", "window")) == ["0", "1"]


def test_nemesis_events_are_lines_and_a_partition_a_band_until_the_heal() -> None:
    page = Page(render())
    actions = [e.attrs["data-action"] for e in page.having("nemesis", "event")]
    assert actions == ["partition", "pause", "heal", "kill"]
    [band] = page.having("nemesis", "band")
    assert band.text == "partition 0 | 1"
    lines = {e.attrs["data-action"]: i for i, e in enumerate(page.elements) if "data-action" in e.attrs}
    partition_x = float(page.elements[lines["partition"] + 1].attrs["x1"])
    heal_x = float(page.elements[lines["heal"] + 1].attrs["x1"])
    assert float(band.attrs["x"]) == pytest.approx(partition_x, abs=0.2)
    assert float(band.attrs["x"]) + float(band.attrs["width"]) == pytest.approx(heal_x, abs=0.2)


def test_a_partition_never_healed_lasts_to_the_end_and_events_without_a_network_fall_back_to_actions() -> None:
    bare = [{"time_ns": T0 + SECOND, "action": "partition", "detail": {"groups": [[0], [1]]}}]
    page = Page(render(events=bare))
    [band] = page.having("nemesis", "band")
    assert float(band.attrs["x"]) + float(band.attrs["width"]) > max(
        float(b.attrs["x"]) + float(b.attrs["width"]) for b in page.having("op", "ok") if "data-op-id" in b.attrs)


def test_hostile_text_in_the_history_and_events_is_rendered_inert() -> None:
    hostile = "<script>alert(1)</script>"
    operations = [op(0, '"><script>alert(2)</script>', 0.0, 1.0, key=hostile, output=hostile),
                  op(1, "p", 0.5, 1.5, name="<img src=x onerror=alert(3)>", input=hostile)]
    events = [{"time_ns": T0 + SECOND // 2, "action": hostile, "nodes": [hostile], "detail": {"x": hostile}}]
    html = render(title=hostile, operations=operations, highlighted={0: hostile}, events=events,
                  summary=[(hostile, hostile, hostile)], notes=[hostile])
    page = Page(html)
    assert [e.tag for e in page.elements if e.tag in ("script", "img")] == ["script"]  # the page's own script
    assert html.count("<script") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "onerror=alert(3)>" not in html
    assert [e.attrs["data-process"] for e in page.having("lane")] == ['"><script>alert(2)</script>', "p"]


def test_a_highlighted_id_that_is_not_an_operation_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[99\]"):
        render(highlighted={99: "?"})


def test_a_large_history_draws_at_most_the_cap_around_the_highlight_and_says_how_many_were_left_out() -> None:
    ops = pair_operations(generate_register_history(Random(7), operations=20_000, processes=32, keys=10),
                          keep=lambda invoke, done: True)
    target = ops[12_345]
    page = Page(render(operations=ops, highlighted={target.id: "cannot be linearized"}, events=[]))
    bars = [e for e in page.having("op") if "data-op-id" in e.attrs]
    assert len(bars) == MAX_BARS
    assert [e.attrs["data-op-id"] for e in page.having("op", "violation")] == [str(target.id)]
    drawn = {int(e.attrs["data-op-id"]) for e in bars}
    assert min(drawn) < target.id < max(drawn)  # a window around it, not the first 5,000
    [note] = [e for e in page.having("note") if "left out" in e.text]
    assert f"{len(ops) - MAX_BARS:,} of {len(ops):,} operations are left out" in note.text


def test_rendering_a_history_of_100000_operations_takes_under_a_few_seconds() -> None:
    ops = pair_operations(generate_register_history(Random(3), operations=100_000, processes=64, keys=100),
                          keep=lambda invoke, done: True)
    started = time.perf_counter()
    html = render(operations=ops, highlighted={ops[60_000].id: "cannot be linearized"}, events=[])
    assert time.perf_counter() - started < 5.0
    assert len(html) < 5_000_000


# -- the command ---------------------------------------------------------------------------------------------------


def test_check_linearizable_html_highlights_the_operation_that_cannot_be_placed(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text((DATA / "etcd_000.jsonl").read_text())
    pause = {**event("pause", 0), "time_ns": 40_000}  # the converted Jepsen history's clock starts at 1,000 ns
    (tmp_path / "events.jsonl").write_text(json.dumps(pause) + "\n" + "{torn\n")
    report = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["check", "linearizable", str(history), "--html", str(report)])
    assert result.exit_code == 1 and f"report: {report}" in result.stdout
    page = Page(report.read_text())
    [violation] = page.having("op", "violation")
    assert "cannot be linearized" in violation.text and "output=2" in violation.text
    assert page.having("op", "window") and [e.attrs["data-action"] for e in page.having("event")] == ["pause"]
    [verdict] = page.having("verdict")
    assert verdict.text == "not-linearizable"
    as_json = CliRunner().invoke(main, ["check", "linearizable", str(history), "--html", str(report), "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["report"] == str(report)


def test_check_linearizable_html_of_a_linearizable_history(tmp_path: Path) -> None:
    report = tmp_path / "ok.html"
    result = CliRunner().invoke(main, ["check", "linearizable", str(DATA / "etcd_002.jsonl"), "--html", str(report)])
    assert result.exit_code == 0 and result.stdout.endswith(f"report: {report}\n")
    page = Page(report.read_text())
    assert not page.having("op", "violation") and page.having("verdict")[0].text == "linearizable"
    assert "Nothing highlighted." in report.read_text()


def test_check_linearizable_html_bad_paths_are_one_line_errors(tmp_path: Path) -> None:
    history = str(DATA / "etcd_002.jsonl")
    runner = CliRunner()
    unwritable = runner.invoke(main, ["check", "linearizable", history, "--html", str(tmp_path / "no" / "r.html")])
    no_events = runner.invoke(main, ["check", "linearizable", history, "--html", str(tmp_path / "r.html"),
                                     "--events", str(tmp_path / "missing.jsonl")])
    for result in (unwritable, no_events):
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")


def test_check_linearizable_html_draws_the_events_file_it_is_given(tmp_path: Path) -> None:
    events = tmp_path / "nemesis-run-3.jsonl"
    kill = {**event("kill", 0), "time_ns": 30_000}
    events.write_text(json.dumps(kill) + "\n")
    report = tmp_path / "r.html"
    history = str(DATA / "etcd_000.jsonl")
    result = CliRunner().invoke(main, ["check", "linearizable", history, "--html", str(report), "--events",
                                       str(events)])
    assert result.exit_code == 1
    assert [e.attrs["data-action"] for e in Page(report.read_text()).having("nemesis", "event")] == ["kill"]
    alone = CliRunner().invoke(main, ["check", "linearizable", history, "--events", str(events)])
    assert alone.exit_code == 1 and alone.stderr.startswith("error: --events only says what the --html report")


def test_transfers_are_drawn_as_writes_and_reads_by_their_level() -> None:
    """The consistency lab's histories: a transfer is its write, and its reads carry a level that the lanes tell
    apart (a failed read stays drawn as a failure whatever its level)."""
    ops = [Op(index=0, time_ns=0, type="invoke", process="client-0", node="node0", op="transfer", key="a",
              value={"nonce": 0}),
           Op(index=1, time_ns=10, type="ok", process="client-0", node="node0", op="transfer", key="a",
              value={"nonce": 0}),
           Op(index=2, time_ns=20, type="invoke", process="client-1", node="node0", op="read", key="a",
              value={"level": "latest"}),
           Op(index=3, time_ns=30, type="ok", process="client-1", node="node0", op="read", key="a",
              value={"nonce": 1}),
           Op(index=4, time_ns=40, type="invoke", process="client-1", node="node0", op="read", key="a",
              value={"level": "linearizable"}),
           Op(index=5, time_ns=50, type="fail", process="client-1", node="node0", op="read", key="a",
              value={"level": "linearizable"}, error="no-quorum")]
    page = render_history_report(title="t", operations=pair_operations(ops, keep=lambda i, d: True),
                                 highlighted={}, events=[], summary=[])
    assert re.search(r'class="op ok write"', page)
    assert re.search(r'class="op ok read level-latest"', page)
    assert re.search(r'class="op fail read level-linearizable"', page)
    assert "read (latest)" in page and "read (linearizable)" in page and "write (transfer)" in page
