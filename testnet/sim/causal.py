"""Causal tracing of a simulated run (`chainlab sim --trace FILE`): every message put on the wire, every delivery
and the nodes' decisions become trace events with vector and Lamport clocks, in the format of causality/events.py
(docs/CAUSALITY.md), so `chainlab trace hb|past|concurrent|diagram` read a simulated run as they read a testnet's.

The tracer sits in the simulator, beside the node cores, as a network tap would: a send is stamped when the node
hands the message to the network (a lost message is a send without a receive), the stamp travels with the
`Deliver` event, and each copy delivered is a receive (a duplicated message has two). The clocks are the
simulator's, not carried in the messages, so tracing changes nothing the nodes see: the run's trace_hash is the
same with and without it. A crashed node keeps its clock (as a node whose trace file survives the crash). The
faults go to a second file in the testnet's events.jsonl form (`network`: who is blocked from whom, who is down), which
`chainlab trace diagram --events` shades. Time is virtual: `time_ns` counts virtual nanoseconds from the run's start.

Two halves, so that the simulator pays little for a trace: `CausalTracer`, on the simulator's hot path, only numbers
the events (seq, Lamport time) and appends one small tuple per event; `TraceFormatter` turns those records into
lines: it keeps the vector clocks (a receive merges the clock its send had) and writes the JSON. By default the
formatter runs inline at each `flush`; `chainlab sim --trace` runs it in a second process on the other core
(cli/simtrace.py), fed the records in batches, so the run itself goes on while the lines are made. Either way the
file is the same, line for line (tests/sim/test_causal.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import IO, Any

from causality.formatter import Record, TraceFormatter

# The core's event kinds (SimNode.note_event) as trace decisions (causality.events.WHATS).
DECISIONS = {"block": "block-connected", "final": "block-final", "reorg": "reorg"}
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

# What a traced message carries on the simulated wire: the send's (node, seq). A plain tuple: one is made per message
# sent. The formatter keeps the clocks, Lamport's too.
Stamp = tuple[str, int]


class _Counter:
    __slots__ = ("seq",)

    def __init__(self) -> None:
        self.seq = 0


class CausalTracer:
    """Numbers a run's events and hands their records to `sink` in batches (at each `flush`); with `out` and no
    `sink`, a `TraceFormatter` writing to `out` is the sink. Faults go to `faults_out`, when given."""

    def __init__(self, out: IO[str] | None = None, faults_out: IO[str] | None = None, *,
                 sink: Callable[[list[Record]], None] | None = None) -> None:
        if sink is None:
            if out is None:
                raise ValueError("give the tracer an output or a sink")
            sink = TraceFormatter(out.write).feed
        self._sink = sink
        self._records: list[Record] = []
        self._record = self._records.append
        self._faults_out = faults_out
        self._counters: dict[str, _Counter] = {}
        self.finals: dict[tuple[str, int], str] = {}  # (node, height) -> the id of its block-final event

    def flush(self) -> None:
        """Hand the records made since the last flush to the sink (the simulator flushes at each housekeeping
        round and at the end of the run)."""
        if self._records:
            self._sink(self._records)
            self._records = []
            self._record = self._records.append

    @property
    def events(self) -> int:
        """Events traced so far."""
        return sum(counter.seq for counter in self._counters.values())

    def last_event(self, node: str) -> str | None:
        """The id of `node`'s latest event, if it has one."""
        counter = self._counters.get(node)
        return f"{node}:{counter.seq}" if counter is not None and counter.seq else None

    def _counter(self, node: str) -> _Counter:
        counter = self._counters.get(node)
        if counter is None:
            if not _PLAIN_NAME.fullmatch(node):  # names go into the lines unescaped (TraceFormatter)
                raise ValueError(f"a traced node's name must match {_PLAIN_NAME.pattern}: {node!r}")
            counter = self._counters[node] = _Counter()
        return counter

    def send(self, node: str, peer: str, what: str, t: float, ident: str) -> Stamp:
        """`node` hands a message to the network; `ident` (hex) names what it carries."""
        counter = self._counters.get(node) or self._counter(node)
        if peer not in self._counters:
            self._counter(peer)
        counter.seq = seq = counter.seq + 1
        self._record(("s", node, seq, t, peer, what, ident))
        return node, seq

    def receive(self, node: str, peer: str, stamp: Stamp, t: float) -> None:
        """A copy of the message stamped `stamp` reaches `node`."""
        counter = self._counters.get(node) or self._counter(node)
        counter.seq = seq = counter.seq + 1
        self._record(("r", node, seq, t, peer, stamp[0], stamp[1]))

    def internal(self, node: str, what: str, t: float, detail: Mapping[str, Any]) -> None:
        """A decision of `node` (or a fault that happened to it)."""
        counter = self._counter(node)
        counter.seq = seq = counter.seq + 1
        self._record(("i", node, seq, t, what, json.dumps(detail)))
        height = detail.get("height")
        if what == "block-final" and isinstance(height, int):
            self.finals.setdefault((node, height), f"{node}:{seq}")

    def network(self, record: Mapping[str, Any]) -> None:
        """The network after a nemesis action, as a testnet's events.jsonl record (the simulator builds it)."""
        if self._faults_out is None:
            return
        self._faults_out.write(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
