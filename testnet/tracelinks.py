"""Violations linked to trace events (docs/TRACING.md "Linked to the checks").

`testnet check` on a traced testnet, and `chainlab check consistency|linearizable --trace FILE`, name for each
violation the trace events around it and the commands that show them: for a check that names blocks (final-prefix
agreement, convergence), where each block was mined or proposed, connected and made final, and whether the two
blocks were mined without knowledge of each other; for an operation of a client history, its node's events while
the operation was in flight.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from causality.events import TraceEvent
from causality.links import Links, blocks_in_trace, diagram_window, events_around, hash_prefixes
from testnet.history import Op

MAX_OPS_LINKED = 3


def _event_text(event: TraceEvent) -> str:
    detail = " ".join(f"{key}={str(value)[:16]}" for key, value in event.detail.items() if key in ("block", "height"))
    return f"{event.id} {event.what} {detail}".strip()


def _commands(trace: str, links: Links, first_ns: int, nodes: Sequence[str]) -> list[str]:
    start, end = diagram_window(first_ns, links)
    commands = []
    if len(links.made) >= 2:
        commands.append(f"chainlab trace hb {trace} {links.made[0].id} {links.made[1].id}")
    commands.append(f"chainlab trace diagram {trace} --from {start} --to {end} --nodes {','.join(nodes)} "
                    f"--out violation.html")
    return commands


def link_blocks(events: Sequence[TraceEvent], detail: str, trace: str) -> dict[str, Any] | None:
    """The events of the blocks a check's `detail` names, and the commands that show them; None when none."""
    links = blocks_in_trace(events, hash_prefixes(detail))
    if links is None:
        return None
    out: dict[str, Any] = {"events": [_event_text(e) for e in links.events], "commands": []}
    if len(links.made) >= 2:
        first, second = links.made[:2]
        out["made"] = f"{first.id} and {second.id}: {first.vc.compare(second.vc).value}"
    nodes = sorted({e.node for e in links.events})
    out["commands"] = _commands(trace, links, events[0].time_ns, nodes)
    return out


def link_ops(events: Sequence[TraceEvent], ops: Sequence[Op], indices: Sequence[int], trace: str,
             ) -> dict[str, Any] | None:
    """The events of the nodes that served the history entries at `indices` (a violation's operations), while
    they were in flight; None when the trace has none."""
    by_index = {op.index: op for op in ops}
    chosen = [by_index[i] for i in indices if i in by_index][:MAX_OPS_LINKED * 2]
    if not chosen or not events:
        return None
    start, end = min(op.time_ns for op in chosen), max(op.time_ns for op in chosen)
    shown: list[TraceEvent] = []
    nodes = sorted({op.node for op in chosen if op.node})
    for node in nodes:
        links = events_around(events, node, start, end)
        if links is not None:
            shown.extend(links.events)
    if not shown:
        return None
    window = Links(events=tuple(shown), made=(), start_ns=start, end_ns=end)
    return {"events": [_event_text(e) for e in sorted(shown, key=lambda e: e.time_ns)],
            "commands": _commands(trace, window, events[0].time_ns, nodes)}


def link_failed_checks(checks: Sequence[dict[str, Any]], events: Sequence[TraceEvent], directory: Path,
                       ops: Sequence[Op] = ()) -> dict[str, Any]:
    """For each failed check of `testnet check` (its JSON), the trace events that explain it, named in the
    collected trace `DIR/trace.jsonl` (the first command collects it)."""
    trace = str(directory / "trace.jsonl")
    linked: dict[str, Any] = {}
    for check in checks:
        if check["ok"]:
            continue
        found = link_blocks(events, check["detail"], trace)
        if found is None and check["name"] == "consistency" and ops:
            found = link_ops(events, ops, _indices_named(check["detail"], ops), trace)
        if found is not None:
            found["commands"].insert(0, f"chainlab testnet trace --dir {directory}")
            linked[check["name"]] = found
    return linked


def _indices_named(detail: str, ops: Sequence[Op]) -> list[int]:
    """History indices named in a consistency finding's text (`(index 123)`, `(sent at index 123)`)."""
    known = {op.index for op in ops}
    return [int(m) for m in re.findall(r"\bindex (\d+)", detail) if int(m) in known]
