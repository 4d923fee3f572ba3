"""Space-time diagrams (causality/diagram.py) without a browser: what is drawn, the faults of events.jsonl, the
filters, escaping, and a ShiViz log whose clocks ShiViz accepts and that orders events as the trace does."""

from __future__ import annotations

import json
import re
from random import Random

import pytest

from causality import diagram
from causality.clocks import VectorClock
from causality.diagram import Filters, fault_periods, render_html, render_shiviz, render_svg, select
from causality.generate import Run, random_run, with_gaps, with_restart
from causality.graph import TraceGraph
from tests.causality.test_graph import PARTITION_EVENTS, S, fork_through_a_partition


def test_the_svg_has_a_line_per_node_a_dot_per_event_an_arrow_per_message() -> None:
    graph = TraceGraph(fork_through_a_partition())
    svg = render_svg(graph, select(graph, Filters()), fault_periods(PARTITION_EVENTS))
    assert re.findall(r'class="process" data-process="([^"]+)"', svg) == ["node0", "node1", "node2"]
    assert svg.count("<circle ") == len(graph) == 17
    assert svg.count('<line class="msg" ') == len(list(graph.messages())) == 5
    assert svg.count('<line class="msg lost" ') == 1
    forks = re.findall(r'data-name="([^"]+)"', "".join(re.findall(r'<circle [^>]*class="[^"]*fork[^"]*"[^>]*>', svg)))
    assert sorted(forks) == ["node0:4", "node2:2"]
    assert re.findall(r'<circle [^>]*class="[^"]*final[^"]*"[^>]*data-name="([^"]+)"', svg) == ["node2:6"]
    assert sorted(re.findall(r'<rect class="fault partition" data-node="([^"]+)"', svg)) == ["node0", "node1",
                                                                                              "node2"]


def test_fault_periods_from_the_network_state_or_from_the_actions() -> None:
    faults = fault_periods(PARTITION_EVENTS)
    assert [(f.node, f.kind, f.start_ns, f.end_ns) for f in faults] == [
        ("node0", "partition", 2 * S, 5 * S), ("node1", "partition", 2 * S, 5 * S),
        ("node2", "partition", 2 * S, 5 * S)]
    assert faults[0].label == "partition 0,1 | 2"
    bare = [{"action": "kill", "time_ns": 1, "nodes": ["node1"]}, {"action": "pause", "time_ns": 2, "nodes": ["node2"]},
            {"action": "start", "time_ns": 3, "nodes": ["node1"]}, {"action": "oops"}]
    assert [(f.node, f.kind, f.start_ns, f.end_ns) for f in fault_periods(bare)] == [
        ("node1", "down", 1, 3), ("node2", "paused", 2, None)]


def test_filters_keep_nodes_a_time_window_and_kinds() -> None:
    graph = TraceGraph(fork_through_a_partition())
    assert {graph.events[i].node for i in select(graph, Filters(nodes=["node2"])).events} == {"node2"}
    window = select(graph, Filters(from_s=2.0, to_s=5.0)).events  # seconds from the first event (at 1 s)
    assert {graph.events[i].time_ns // S for i in window} == {3, 5, 6}  # 3 s .. 6 s, not the final at 7 s
    kinds = select(graph, Filters(kinds=["block-mined", "receive"])).events
    assert {(graph.events[i].kind, graph.events[i].what) for i in kinds} == {("internal", "block-mined"),
                                                                              ("receive", "block")}
    assert any("node9" in note for note in select(graph, Filters(nodes=["node9"])).notes)


def test_a_diagram_past_its_cap_draws_the_first_events_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagram, "MAX_EVENTS", 50)
    graph = TraceGraph(random_run(Random(4), processes=3, steps=120))
    drawing = select(graph, Filters())
    assert drawing.events == tuple(range(50))
    assert any("70 of 120 events left out" in note for note in drawing.notes)
    svg = render_svg(graph, drawing)
    assert svg.count("<circle ") == 50


def test_every_text_from_the_trace_is_escaped() -> None:
    run = Run()
    run.internal("n<b>1", "block-mined", 1, hash="</script><script>alert(1)</script>")
    run.internal("n<b>1", "x\"onload=\"alert(2)", 2)
    graph = TraceGraph(run.events)
    page = render_html(graph, select(graph, Filters()), title="<i>t</i>")
    assert "<script>alert" not in page and "<b>" not in page and "<i>t</i>" not in page
    assert 'onload="' not in page
    data = re.search(r'<script type="application/json" id="trace-data">(.*?)</script>', page, re.S)
    assert data is not None and json.loads(data.group(1))["names"] == ["n<b>1:1", "n<b>1:2"]


SHIVIZ_EVENT = re.compile(r"(?P<event>.*)\n(?P<host>\S*) (?P<clock>{.*})")


def _shiviz_events(text: str) -> list[tuple[str, str, dict[str, int]]]:
    lines = text.split("\n")
    assert lines[0] == r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})" and lines[1] == ""
    body = "\n".join(lines[2:])
    return [(m["event"], m["host"], json.loads(m["clock"])) for m in SHIVIZ_EVENT.finditer(body)]


def test_the_shiviz_log_has_clocks_shiviz_accepts_and_the_trace_s_order() -> None:
    events = random_run(Random(11), processes=4, steps=200)
    graph = TraceGraph(events)
    parsed = _shiviz_events(render_shiviz(graph, select(graph, Filters())))
    assert len(parsed) == len(graph)
    seen: dict[str, int] = {}
    for _, host, clock in parsed:  # ShiViz's rule: a host's own entry grows by exactly one per event
        assert clock[host] == seen.get(host, 0) + 1
        seen[host] = clock[host]
    by_name = {text.split()[0]: VectorClock(clock) for text, _, clock in parsed}
    for a in range(0, len(graph), 7):
        for b in range(0, len(graph), 5):
            if a != b:
                shiviz_order = by_name[graph.name(a)].compare(by_name[graph.name(b)])
                assert shiviz_order is graph.order(a, b)


def test_a_damaged_trace_still_makes_a_shiviz_log_shiviz_accepts() -> None:
    events = with_restart(with_gaps(Random(2), random_run(Random(2), processes=3, steps=150)), "node0", 20)
    graph = TraceGraph(events)
    parsed = _shiviz_events(render_shiviz(graph, select(graph, Filters(kinds=["send", "receive"]))))
    seen: dict[str, int] = {}
    for _, host, clock in parsed:
        assert clock[host] == seen.get(host, 0) + 1
        seen[host] = clock[host]
    assert "node0#2" in seen
    for _, _, clock in parsed:  # no clock knows more of a host than the host itself wrote
        assert all(count <= seen[name] for name, count in clock.items())
