"""Runs with exact clocks (pure): traces for tests, benchmarks and the docs' examples.

`Run` applies the rules of causality/clocks.py to events a caller scripts one by one (an internal event, a send,
the receive of a sent message); `random_run` scripts one at random: each step one process does an internal event,
a send to another process, or the receive of a message in flight to it (delivery order random, so messages
overtake each other). Every trace made here is a ground truth: its happens-before relation is the transitive
closure of its program order and messages. `with_gaps` and `with_restart` then damage one the way real runs do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from random import Random
from typing import Any

from causality.clocks import VectorClock
from causality.events import TraceEvent

STEP_NS = 1_000_000  # virtual time between two steps of random_run


@dataclass(frozen=True, slots=True)
class _Sent:
    receiver: str
    what: str
    clock: VectorClock
    lamport: int
    detail: dict[str, Any]


class Run:
    """A run scripted event by event; `events` is its trace so far, in the order the events happened."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []
        self._clocks: dict[str, VectorClock] = {}
        self._lamports: dict[str, int] = {}
        self._seqs: dict[str, int] = {}
        self._sent: dict[str, _Sent] = {}

    def internal(self, node: str, what: str, time_ns: int, **detail: Any) -> TraceEvent:
        """A decision of `node` (block-mined, block-final, ...)."""
        return self._record(node, "internal", what, time_ns, None, None, detail)

    def send(self, node: str, peer: str, what: str, time_ns: int, **detail: Any) -> str:
        """`node` sends a `what` message to `peer`; the message's id, for `receive`."""
        event = self._record(node, "send", what, time_ns, "", peer, detail)
        self._sent[event.msg_id or ""] = _Sent(peer, what, event.vc, event.lamport, detail)
        return event.msg_id or ""

    def receive(self, msg_id: str, time_ns: int) -> TraceEvent:
        """The receiver of message `msg_id` receives it (a message can be received more than once: a duplicate)."""
        sent = self._sent[msg_id]
        node = sent.receiver
        self._clocks[node] = self._clocks.get(node, VectorClock()).merge(sent.clock)
        self._lamports[node] = max(self._lamports.get(node, 0), sent.lamport)
        return self._record(node, "receive", sent.what, time_ns, msg_id, msg_id.rsplit(":", 1)[0],
                            sent.detail)

    def _record(self, node: str, kind: str, what: str, time_ns: int, msg_id: str | None, peer: str | None,
                detail: dict[str, Any]) -> TraceEvent:
        seq = self._seqs[node] = self._seqs.get(node, 0) + 1
        clock = self._clocks[node] = self._clocks.get(node, VectorClock()).tick(node)
        lamport = self._lamports[node] = self._lamports.get(node, 0) + 1
        event = TraceEvent(node=node, seq=seq, kind=kind, what=what, vc=clock, lamport=lamport, time_ns=time_ns,
                           msg_id=f"{node}:{seq}" if msg_id == "" else msg_id, peer=peer, detail=dict(detail))
        self.events.append(event)
        return event


def random_run(rng: Random, *, processes: int = 4, steps: int = 200, send_ratio: float = 0.4,
               receive_ratio: float = 0.4, internal_whats: Sequence[str] = ("block-mined", "tx-accepted")
               ) -> list[TraceEvent]:
    """A run of `steps` events over `processes` processes named node0, node1, ...: each step a send with
    probability `send_ratio`, a receive (when one is in flight) with `receive_ratio`, else an internal event whose
    `what` is drawn from `internal_whats` (a block-mined has a made-up `hash` and the `height` of its chain)."""
    names = [f"node{i}" for i in range(processes)]
    heights = dict.fromkeys(names, 0)
    waiting: dict[str, list[str]] = {name: [] for name in names}  # messages in flight, by receiver
    run = Run()
    for step in range(steps):
        name = rng.choice(names)
        time_ns = (step + 1) * STEP_NS
        draw = rng.random()
        if draw < receive_ratio and waiting[name]:
            msg_id = waiting[name].pop(rng.randrange(len(waiting[name])))
            event = run.receive(msg_id, time_ns)
            heights[name] = max(heights[name], int(event.detail["height"]))
        elif draw < receive_ratio + send_ratio and processes > 1:
            peer = rng.choice([other for other in names if other != name])
            waiting[peer].append(run.send(name, peer, "block", time_ns, height=heights[name]))
        else:
            what = rng.choice(list(internal_whats))
            if what == "block-mined":
                heights[name] += 1
                run.internal(name, what, time_ns, height=heights[name], hash=f"{rng.getrandbits(64):016x}")
            else:
                run.internal(name, what, time_ns)
    return run.events


def with_gaps(rng: Random, events: Sequence[TraceEvent], *, drop_ratio: float = 0.1) -> list[TraceEvent]:
    """The trace with about `drop_ratio` of its events left out at random (seq gaps, receives whose send is
    gone, sends never received), the clocks of the rest untouched."""
    return [event for event in events if rng.random() >= drop_ratio]


def with_restart(events: Sequence[TraceEvent], node: str, after: int) -> list[TraceEvent]:
    """The trace of a node that lost its trace file after its first `after` events: its later events are
    renumbered from seq 1 (their clocks untouched), as a node started afresh would write them."""
    out: list[TraceEvent] = []
    seen = 0
    for event in events:
        if event.node == node:
            seen += 1
            if seen > after:
                event = TraceEvent(node=event.node, seq=seen - after, kind=event.kind, what=event.what, vc=event.vc,
                                   lamport=event.lamport, time_ns=event.time_ns, msg_id=event.msg_id,
                                   peer=event.peer, detail=event.detail)
        out.append(event)
    return out
