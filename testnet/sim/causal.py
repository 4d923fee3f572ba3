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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

# The core's event kinds (SimNode.note_event) as trace decisions (causality.events.WHATS).
DECISIONS = {"block": "block-connected", "final": "block-final", "reorg": "reorg"}


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a traced message carries on the simulated wire: its id and the sender's clocks at the send."""

    msg_id: str
    vc: dict[str, int]  # a snapshot, never changed after the send
    lamport: int


class _Process:
    __slots__ = ("lamport", "name", "name_json", "seq", "vc")

    def __init__(self, name: str) -> None:
        self.name = name
        self.name_json = json.dumps(name)
        self.seq = 0
        self.vc: dict[str, int] = {}
        self.lamport = 0


class CausalTracer:
    """Writes one trace of a run to `out` (and its faults to `faults_out`, when given).

    Lines are formatted here rather than through `TraceEvent.to_line` (the same fields, not sorted): tracing is
    on the simulator's hot path, one line per message sent and per copy delivered. tests/sim/test_causal.py
    parses every line back with `causality.events.parse_trace`.
    """

    def __init__(self, out: IO[str], faults_out: IO[str] | None = None) -> None:
        self._out = out
        self._faults_out = faults_out
        self._processes: dict[str, _Process] = {}
        self._json_of: dict[str, str] = {}  # JSON strings of the node names and message kinds, made once
        self.events = 0
        self.last_id: dict[str, str] = {}  # node -> its latest event's id
        self.finals: dict[tuple[str, int], str] = {}  # (node, height) -> the id of its block-final event

    def _step(self, node: str) -> _Process:
        process = self._processes.get(node)
        if process is None:
            process = self._processes[node] = _Process(node)
            self._json_of[node] = process.name_json
        process.seq += 1
        process.vc[node] = process.vc.get(node, 0) + 1
        self.events += 1
        self.last_id[node] = f"{node}:{process.seq}"
        return process

    def _write(self, process: _Process, kind: str, what: str, t: float, msg_id: str | None, peer: str | None,
               detail_json: str) -> None:
        what_json = self._json_of.get(what)
        if what_json is None:
            what_json = self._json_of[what] = json.dumps(what)
        self._out.write(
            f'{{"node":{process.name_json},"seq":{process.seq},"kind":"{kind}","what":{what_json},'
            f'"msg_id":{self._quoted(msg_id)},"peer":{self._quoted(peer)},"vc":{json.dumps(process.vc)},'
            f'"lamport":{process.lamport},"time_ns":{round(t * 1e9)},"detail":{detail_json}}}\n')

    def _quoted(self, value: str | None) -> str:
        if value is None:
            return "null"
        quoted = self._json_of.get(value)
        return quoted if quoted is not None else json.dumps(value)

    def send(self, node: str, peer: str, what: str, t: float, ident: str) -> Stamp:
        """`node` hands a message to the network; `ident` (hex) names what it carries."""
        process = self._step(node)
        process.lamport += 1
        msg_id = f"{node}:{process.seq}"
        self._write(process, "send", what, t, msg_id, peer, f'{{"id":"{ident}"}}')
        return Stamp(msg_id, dict(process.vc), process.lamport)

    def receive(self, node: str, peer: str, what: str, stamp: Stamp, t: float, ident: str) -> None:
        """A copy of the message stamped `stamp` reaches `node`: merge, then tick (the tick came first here; the
        sender's entry for `node` is never above ours, so the order does not change the result)."""
        process = self._step(node)
        vc = process.vc
        for name, counter in stamp.vc.items():
            if counter > vc.get(name, 0):
                vc[name] = counter
        process.lamport = max(process.lamport, stamp.lamport) + 1
        self._write(process, "receive", what, t, stamp.msg_id, peer, f'{{"id":"{ident}"}}')

    def internal(self, node: str, what: str, t: float, detail: Mapping[str, Any]) -> None:
        """A decision of `node` (or a fault that happened to it)."""
        process = self._step(node)
        process.lamport += 1
        self._write(process, "internal", what, t, None, None, json.dumps(detail))
        height = detail.get("height")
        if what == "block-final" and isinstance(height, int):
            self.finals.setdefault((node, height), f"{node}:{process.seq}")

    def network(self, action: str, t: float, *, blocked: Mapping[str, list[str]], down: list[str],
                nodes: list[str] | None = None, detail: Mapping[str, Any] | None = None) -> None:
        """The network after a nemesis action, as a testnet's events.jsonl record."""
        if self._faults_out is None:
            return
        record: dict[str, Any] = {"time_ns": round(t * 1e9), "action": action, "nodes": nodes or [],
                                  "network": {"blocked": dict(blocked), "down": down, "paused": []}}
        if detail:
            record["detail"] = dict(detail)
        self._faults_out.write(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
