"""The trace event format (pure): one JSON object per line, written by every node that traces (docs/CAUSALITY.md).

```
{"node": "node1", "seq": 17, "kind": "send", "what": "block", "msg_id": "node1:17", "peer": "node2",
 "vc": {"node1": 17, "node2": 9}, "lamport": 40, "time_ns": 1733412345000000000, "detail": {"height": 12}}
```

- `node`, `seq`: who and the event's number on that node (1, 2, ...; an event's id is `node:seq`). A node that
  restarts goes on from its last seq in its trace file; a node that lost its file starts again at 1, after the
  others' clocks already named it higher, which the tools accept as a gap.
- `kind`: `send`, `receive` or `internal`; `what`: the message kind (`block`, `tx`, `raft-append`, ...) or the
  decision (`block-mined`, `block-final`, `leader-elected`, `mining-paused`, ... : WHATS lists the usual ones).
- `msg_id`: on a send, the id of the message (`node:seq` of the send); on a receive, the id the message carried.
  A send with no receive is a lost message (or the receiver does not trace); a receive whose send is absent is a
  gap in the sender's trace. Neither is an error.
- `peer`: the other end of a send or receive; `vc`: the vector clock after the event; `lamport`: the Lamport time
  after the event; `time_ns`: the node's wall clock (or the simulator's virtual time); `detail`: what the event
  is about (a block hash and height, a term, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from causality.clocks import ClockError, VectorClock

KINDS = ("send", "receive", "internal")
# The decisions nodes trace (internal events); messages use their own kind as `what`.
WHATS = ("node-start", "block-mined", "block-proposed", "block-validated", "block-connected", "block-final",
         "reorg", "vote-cast", "leader-elected", "committed", "mining-paused", "mining-resumed", "tx-accepted")
MAX_LINE_BYTES = 64 * 1024


class TraceError(ValueError):
    """A trace line that is not a valid event; the message names the source and line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceEvent:
    """One event of a trace."""

    node: str
    seq: int
    kind: str
    what: str
    vc: VectorClock
    lamport: int
    time_ns: int
    msg_id: str | None = None
    peer: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """`node:seq`, the event's name in queries."""
        return f"{self.node}:{self.seq}"

    def to_json(self) -> dict[str, Any]:
        """The line's object."""
        return {"node": self.node, "seq": self.seq, "kind": self.kind, "what": self.what, "msg_id": self.msg_id,
                "peer": self.peer, "vc": self.vc.to_json(), "lamport": self.lamport, "time_ns": self.time_ns,
                "detail": dict(self.detail)}

    def to_line(self) -> str:
        """The JSON line (compact, newline-terminated)."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, value: Any, where: str = "event") -> TraceEvent:
        """Parse and check one event object; TraceError naming `where` and the field."""
        if not isinstance(value, dict):
            raise TraceError(f"{where}: an event is a JSON object")
        try:
            node, seq, kind, what = value["node"], value["seq"], value["kind"], value["what"]
            lamport, time_ns = value["lamport"], value["time_ns"]
            raw_vc = value["vc"]
        except KeyError as exc:
            raise TraceError(f"{where}: missing field {exc.args[0]!r}") from None
        if not isinstance(node, str) or not node:
            raise TraceError(f"{where}: node must be a non-empty string")
        for name, number in (("seq", seq), ("lamport", lamport), ("time_ns", time_ns)):
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise TraceError(f"{where}: {name} must be a non-negative integer")
        if kind not in KINDS:
            raise TraceError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r:.40}")
        if not isinstance(what, str) or not what:
            raise TraceError(f"{where}: what must be a non-empty string")
        msg_id, peer = value.get("msg_id"), value.get("peer")
        if kind != "internal" and not isinstance(msg_id, str):
            raise TraceError(f"{where}: a {kind} needs a msg_id")
        if msg_id is not None and not isinstance(msg_id, str):
            raise TraceError(f"{where}: msg_id must be a string or null")
        if peer is not None and not isinstance(peer, str):
            raise TraceError(f"{where}: peer must be a string or null")
        detail = value.get("detail") or {}
        if not isinstance(detail, dict):
            raise TraceError(f"{where}: detail must be an object")
        try:
            vc = VectorClock.from_json(raw_vc)
        except ClockError as exc:
            raise TraceError(f"{where}: vc: {exc}") from None
        return cls(node=node, seq=seq, kind=kind, what=what, vc=vc, lamport=lamport, time_ns=time_ns,
                   msg_id=msg_id, peer=peer, detail=detail)


def parse_trace(lines: Iterable[str], source: str = "trace") -> Iterator[TraceEvent]:
    """Every event of a trace's lines (blank lines skipped; a torn last line, from a crash mid-write, skipped);
    TraceError naming `source:line` on anything else."""
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_BYTES:
            raise TraceError(f"{source}:{number}: line longer than {MAX_LINE_BYTES} bytes")
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            if not line.endswith("\n"):  # only a file's last line lacks its newline: torn by a crash mid-write
                return
            raise TraceError(f"{source}:{number}: not JSON") from None
        yield TraceEvent.from_json(value, f"{source}:{number}")
