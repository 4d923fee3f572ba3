"""Random message-passing runs with exact clocks (pure): traces for tests, benchmarks and the docs' examples.

Each step one process does one thing: an internal event, a send to another process, or the receive of a message
in flight to it (delivery order is random, so messages overtake each other). Clocks follow the rules of
causality/clocks.py exactly, so every trace made here is a ground truth: its happens-before relation is the
transitive closure of its program order and messages. `with_gaps` then damages one the way real runs do.
"""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

from causality.clocks import VectorClock
from causality.events import TraceEvent

STEP_NS = 1_000_000  # virtual time between two steps


def random_run(rng: Random, *, processes: int = 4, steps: int = 200, send_ratio: float = 0.4,
               receive_ratio: float = 0.4, internal_whats: Sequence[str] = ("block-mined", "tx-accepted")
               ) -> list[TraceEvent]:
    """A run of `steps` events over `processes` processes named node0, node1, ...: each step a send with
    probability `send_ratio`, a receive (when one is in flight) with `receive_ratio`, else an internal event whose
    `what` is drawn from `internal_whats` (its detail a made-up `hash` and the `height` of the process's chain)."""
    names = [f"node{i}" for i in range(processes)]
    clocks = {name: VectorClock() for name in names}
    lamports = dict.fromkeys(names, 0)
    seqs = dict.fromkeys(names, 0)
    heights = dict.fromkeys(names, 0)
    in_flight: list[tuple[str, str, VectorClock, int, int]] = []  # (to, msg_id, clock, lamport, height)
    events: list[TraceEvent] = []
    for step in range(steps):
        name = rng.choice(names)
        seqs[name] += 1
        seq = seqs[name]
        time_ns = (step + 1) * STEP_NS
        draw = rng.random()
        waiting = [i for i, message in enumerate(in_flight) if message[0] == name]
        if draw < receive_ratio and waiting:
            _, msg_id, carried, carried_lamport, height = in_flight.pop(rng.choice(waiting))
            clocks[name] = clocks[name].receive(name, carried)
            lamports[name] = max(lamports[name], carried_lamport) + 1
            heights[name] = max(heights[name], height)
            events.append(TraceEvent(node=name, seq=seq, kind="receive", what="block", msg_id=msg_id,
                                     peer=msg_id.split(":")[0], vc=clocks[name], lamport=lamports[name],
                                     time_ns=time_ns, detail={"height": height}))
            continue
        clocks[name] = clocks[name].tick(name)
        lamports[name] += 1
        if draw < receive_ratio + send_ratio and processes > 1:
            peer = rng.choice([other for other in names if other != name])
            msg_id = f"{name}:{seq}"
            in_flight.append((peer, msg_id, clocks[name], lamports[name], heights[name]))
            events.append(TraceEvent(node=name, seq=seq, kind="send", what="block", msg_id=msg_id, peer=peer,
                                     vc=clocks[name], lamport=lamports[name], time_ns=time_ns,
                                     detail={"height": heights[name]}))
            continue
        what = rng.choice(list(internal_whats))
        detail: dict[str, object] = {}
        if what == "block-mined":
            heights[name] += 1
            detail = {"height": heights[name], "hash": f"{rng.getrandbits(64):016x}"}
        events.append(TraceEvent(node=name, seq=seq, kind="internal", what=what, vc=clocks[name],
                                 lamport=lamports[name], time_ns=time_ns, detail=detail))
    return events


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
