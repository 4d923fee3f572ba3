"""From a violation to the trace events that explain it (pure; docs/TRACING.md "Linked to the checks").

A check names blocks (by hash prefix) and nodes; a consistency checker names an operation (a node and a time
window). These functions find the events of a trace that belong to them, so a report can say which events to ask
about and the command that draws them: `blocks_in_trace` for a block (where it was mined or proposed, connected
and made final), `events_around` for an operation (the node's events while the operation was in flight).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from causality.events import TraceEvent

BLOCK_WHATS = ("block-mined", "block-proposed", "block-connected", "block-final")
MADE_WHATS = ("block-mined", "block-proposed")
HASH_PREFIX = re.compile(r"\b[0-9a-f]{12,64}\b")
MIN_PREFIX = 12


@dataclass(frozen=True, slots=True)
class Links:
    """The events a violation names, and the window (ns) that holds them."""

    events: tuple[TraceEvent, ...]
    made: tuple[TraceEvent, ...]  # the blocks' block-mined / block-proposed events
    start_ns: int
    end_ns: int


def hash_prefixes(text: str) -> list[str]:
    """The block-hash prefixes (12 to 64 hex digits) a check's detail text names, in order, once each."""
    return list(dict.fromkeys(HASH_PREFIX.findall(text)))


def blocks_in_trace(events: Iterable[TraceEvent], prefixes: Sequence[str], *, limit: int = 20) -> Links | None:
    """Where the blocks named by `prefixes` were made, connected and made final; None if the trace has none."""
    wanted = tuple(p for p in prefixes if len(p) >= MIN_PREFIX)
    if not wanted:
        return None
    found = []
    for event in events:
        block = event.detail.get("block")
        if event.kind == "internal" and event.what in BLOCK_WHATS and isinstance(block, str) \
                and block.startswith(wanted):
            found.append(event)
    if not found:
        return None
    made = tuple(e for e in found if e.what in MADE_WHATS)
    shown = tuple(sorted(made + tuple(e for e in found if e.what not in MADE_WHATS)[:max(0, limit - len(made))],
                         key=lambda e: e.time_ns))
    return Links(events=shown, made=made, start_ns=min(e.time_ns for e in found),
                 end_ns=max(e.time_ns for e in found))


def events_around(events: Iterable[TraceEvent], node: str, start_ns: int, end_ns: int, *,
                  limit: int = 20) -> Links | None:
    """`node`'s events between `start_ns` and `end_ns` (an operation in flight), its decisions first; None when
    the trace has no event of `node` in that window."""
    inside = [e for e in events if e.node == node and start_ns <= e.time_ns <= end_ns]
    if not inside:
        return None
    decisions = [e for e in inside if e.kind == "internal"]
    messages = [e for e in inside if e.kind != "internal"]
    shown = tuple(sorted(decisions[:limit] + messages[:max(0, limit - len(decisions))], key=lambda e: e.time_ns))
    return Links(events=shown, made=(), start_ns=start_ns, end_ns=end_ns)


def diagram_window(first_ns: int, links: Links, *, margin_s: float = 2.0) -> tuple[float, float]:
    """`--from` and `--to` (seconds from the trace's first event) that frame the linked events."""
    start = max(0.0, (links.start_ns - first_ns) / 1e9 - margin_s)
    return round(start, 1), round((links.end_ns - first_ns) / 1e9 + margin_s, 1)
