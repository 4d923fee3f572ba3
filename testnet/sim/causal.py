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
import re
from collections.abc import Mapping
from typing import IO, Any, NamedTuple

# The core's event kinds (SimNode.note_event) as trace decisions (causality.events.WHATS).
DECISIONS = {"block": "block-connected", "final": "block-final", "reorg": "reorg"}


class Stamp(NamedTuple):
    """What a traced message carries on the simulated wire: its id and the sender's clocks at the send (its own
    entry, `seq`, and a snapshot of its other entries, shared by every message it sends until they change). A
    named tuple: one is made per message sent, and a tuple is the cheapest immutable value to make."""

    msg_id: str
    sender: str
    seq: int
    others: tuple[tuple[str, int], ...]  # a snapshot; tuples, which the garbage collector stops tracking
    lamport: int
    what: str  # the message kind (as JSON) and the hash it names (hex): each receive repeats them
    ident: str

    @property
    def vc(self) -> dict[str, int]:
        """The sender's vector clock at the send."""
        return {**dict(self.others), self.sender: self.seq}


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class _Process:
    """One node's clocks. Its own vector-clock entry is its seq (one per event); the others' entries change only on
    a receive that brings news, so their JSON and their tuple are kept and remade only then."""

    __slots__ = ("fragments", "head", "lamport", "last_merged", "name", "others", "others_json", "others_pairs",
                 "pairs_stale", "seq", "vc_head")

    def __init__(self, name: str) -> None:
        if not _PLAIN_NAME.fullmatch(name):  # names go into the lines unescaped (CausalTracer._write)
            raise ValueError(f"a traced node's name must match {_PLAIN_NAME.pattern}: {name!r}")
        self.name = name
        self.head = f'{{"node":"{name}","seq":'  # the constant parts of its lines
        self.vc_head = f'"vc":{{"{name}":'
        self.seq = 0
        self.lamport = 0
        self.others: dict[str, int] = {}
        self.fragments: dict[str, str] = {}  # name -> ',"name":counter'
        self.others_json = ""  # ',"node1":4,"node2":7'
        self.others_pairs: tuple[tuple[str, int], ...] = ()
        self.pairs_stale = False  # others_pairs is made again at the next send after a change
        self.last_merged: dict[str, tuple[tuple[str, int], ...]] = {}  # sender -> the snapshot merged last

    def pairs(self) -> tuple[tuple[str, int], ...]:
        if self.pairs_stale:
            self.others_pairs = tuple(self.others.items())
            self.pairs_stale = False
        return self.others_pairs


class CausalTracer:
    """Writes one trace of a run to `out` (and its faults to `faults_out`, when given).

    Lines are formatted here rather than through `TraceEvent.to_line` (the same fields, not sorted, node names
    unescaped since they are plain): tracing is on the simulator's hot path, one line per message sent and per
    copy delivered. tests/sim/test_causal.py parses every line back with `causality.events.parse_trace`.
    """

    def __init__(self, out: IO[str], faults_out: IO[str] | None = None) -> None:
        self._out = out
        self._lines: list[str] = []
        self._write = self._lines.append  # lines wait here until `flush` (one write per batch, not per line)
        self._faults_out = faults_out
        self._processes: dict[str, _Process] = {}
        self._json_of: dict[str, str] = {}  # JSON strings of the message kinds and decisions, made once
        self.finals: dict[tuple[str, int], str] = {}  # (node, height) -> the id of its block-final event

    def flush(self) -> None:
        """Write the lines traced since the last flush (the simulator flushes at each housekeeping round and at
        the end of the run)."""
        if self._lines:
            self._out.write("".join(self._lines))
            self._lines.clear()

    @property
    def events(self) -> int:
        """Events written so far."""
        return sum(process.seq for process in self._processes.values())

    def last_event(self, node: str) -> str | None:
        """The id of `node`'s latest event, if it has one."""
        process = self._processes.get(node)
        return f"{node}:{process.seq}" if process is not None and process.seq else None

    def _process(self, node: str) -> _Process:
        process = self._processes.get(node)
        if process is None:
            process = self._processes[node] = _Process(node)
        return process

    def _what(self, what: str) -> str:
        quoted = self._json_of.get(what)
        if quoted is None:
            quoted = self._json_of[what] = json.dumps(what)
        return quoted

    def send(self, node: str, peer: str, what: str, t: float, ident: str) -> Stamp:
        """`node` hands a message to the network; `ident` (hex) names what it carries."""
        process = self._processes.get(node) or self._process(node)
        if peer not in self._processes:
            self._process(peer)  # checks the name, which goes into the line unescaped
        process.seq = seq = process.seq + 1
        process.lamport = lamport = process.lamport + 1
        text = str(seq)
        msg_id = f"{node}:{text}"
        quoted = self._json_of.get(what) or self._what(what)
        self._write(f'{process.head}{text},"kind":"send","what":{quoted},"msg_id":"{msg_id}","peer":"{peer}",'
                    f'{process.vc_head}{text}{process.others_json}}},"lamport":{lamport},"time_ns":{round(t * 1e9)},'
                    f'"detail":{{"id":"{ident}"}}}}\n')
        return Stamp(msg_id, node, seq, process.pairs() if process.pairs_stale else process.others_pairs, lamport,
                     quoted, ident)

    def receive(self, node: str, peer: str, stamp: Stamp, t: float) -> None:
        """A copy of the message stamped `stamp` reaches `node`: merge, then tick (the sender's entry for `node` is
        never above ours, so it is skipped)."""
        process = self._processes.get(node) or self._process(node)
        others = process.others
        fragments = process.fragments
        news = False
        sender = stamp.sender
        if stamp.seq > others.get(sender, 0):
            others[sender] = stamp.seq
            fragments[sender] = f',"{sender}":{stamp.seq}'
            news = True
        snapshot = stamp.others
        if process.last_merged.get(sender) is not snapshot:  # the sender's other entries changed since
            process.last_merged[sender] = snapshot
            for name, counter in snapshot:
                if counter > others.get(name, 0) and name != node:
                    others[name] = counter
                    fragments[name] = f',"{name}":{counter}'
                    news = True
        if news:
            process.others_json = "".join(fragments.values())
            process.pairs_stale = True
        process.seq = seq = process.seq + 1
        lamport = process.lamport if process.lamport > stamp.lamport else stamp.lamport
        process.lamport = lamport = lamport + 1
        text = str(seq)
        self._write(f'{process.head}{text},"kind":"receive","what":{stamp.what},"msg_id":"{stamp.msg_id}",'
                    f'"peer":"{peer}",{process.vc_head}{text}{process.others_json}}},"lamport":{lamport},'
                    f'"time_ns":{round(t * 1e9)},"detail":{{"id":"{stamp.ident}"}}}}\n')

    def internal(self, node: str, what: str, t: float, detail: Mapping[str, Any]) -> None:
        """A decision of `node` (or a fault that happened to it)."""
        process = self._process(node)
        process.seq = seq = process.seq + 1
        process.lamport += 1
        self._write(f'{{"node":"{node}","seq":{seq},"kind":"internal","what":{self._what(what)},"msg_id":null,'
                    f'"peer":null,"vc":{{"{node}":{seq}{process.others_json}}},"lamport":{process.lamport},'
                    f'"time_ns":{round(t * 1e9)},"detail":{json.dumps(detail)}}}\n')
        height = detail.get("height")
        if what == "block-final" and isinstance(height, int):
            self.finals.setdefault((node, height), f"{node}:{seq}")

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
