"""A node's own trace (`node run --trace FILE`, docs/TRACING.md), pure: its sends, receives and decisions as events
of causality/events.py, with the vector and Lamport clocks that travel in its stamped P2P frames.

The recorder keeps the clocks and formats the lines; where they go (`write`) and what time it is (`clock`) are
inputs, so tests drive it with a list and a fake clock, and node/tracefile.py gives it a file. A node that
restarts on the same file resumes from its last event (`resume_point`): same seq, same clocks. A node that lost
its file starts again at 1, and its seq jumps past the highest the others name it as soon as a stamp of theirs
arrives (a gap, which the tools accept).

Peers are named by what they call themselves in their stamps (`node1`); a peer whose name is not known yet (it
has not sent us a stamped frame) is named by its node id, which `chainlab testnet trace` rewrites to its name
from that node's `node-start` event.

A peer's clocks are merged, not trusted: a counter or Lamport time above `MAX_MERGED` (2^53) is skipped, so that
no peer can push our own numbers to where our stamps would fail the `bad-clock` check of honest receivers, and the
clock names at most `MAX_CLOCK_ENTRIES - 1` other nodes, so that our stamps stay within the entries a stamp may
carry (a peer inventing names fills the clock up to that bound and no further).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from causality.clocks import MAX_ENTRIES as MAX_CLOCK_ENTRIES
from causality.events import TraceError, parse_trace

MAX_NAME_CHARS = 64
MAX_MERGED = 1 << 53  # counters and Lamport times above this, from a peer, are not merged
MAX_QUOTED = 4096  # names and kinds whose JSON is remembered (a peer chooses some: the cache must not grow with it)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a node's trace left off: its last event's seq, Lamport time and the others' clock entries."""

    seq: int = 0
    lamport: int = 0
    others: Mapping[str, int] = field(default_factory=dict)


def resume_point(lines: Iterable[str], name: str) -> ResumePoint:
    """The last event of `name` among `lines` (a file's tail, oldest first; lines that do not parse are skipped)."""
    last = None
    for line in lines:
        try:
            events = list(parse_trace([line if line.endswith("\n") else line + "\n"]))
        except TraceError:
            continue
        if events and events[0].node == name:
            last = events[0]
    if last is None:
        return ResumePoint()
    return ResumePoint(last.seq, last.lamport, {n: c for n, c in last.vc.items() if n != name})


class NodeTracer:
    """One node's tracer: its clocks and its peers' names; each event is one call of `write` with one line.

    Lines are formatted here rather than through `TraceEvent.to_line` (the same fields; names and kinds quoted
    once and remembered, the others' clock entries kept as JSON and remade only when a receive brings news): a
    node under load traces a few events per transaction. tests/causality/test_recorder.py parses them back."""

    def __init__(self, name: str, *, write: Callable[[str], None], clock: Callable[[], int], node_id: str = "",
                 resume: ResumePoint | None = None) -> None:
        if not 1 <= len(name) <= MAX_NAME_CHARS or not name.isascii() or not name.isprintable():
            raise ValueError(f"a traced node's name must be 1..{MAX_NAME_CHARS} printable ASCII characters: {name!r}")
        resume = resume or ResumePoint()
        self.name = name
        self._write_line = write
        self._clock = clock
        self.seq = resume.seq
        self.lamport = resume.lamport
        self._others: dict[str, int] = {n: c for n, c in resume.others.items() if n != name and c > 0}
        self._names: dict[str, str] = {}  # peer node id -> the name it traces under
        self._quoted: dict[str, str] = {}  # JSON of names and kinds, made once
        self._quoted_name = self._quote(name)
        self._head = f'{{"node":{self._quoted_name},"seq":'
        self._own = f'"vc":{{{self._quoted_name}:'
        self._others_json = ""
        self._others_pairs: tuple[tuple[str, int], ...] = ()
        self._remake()
        self.events = 0  # written since this tracer started
        self.resumed_from = resume.seq
        self.internal("node-start", {"node_id": node_id, "resumed_from": resume.seq})

    def _quote(self, text: str) -> str:
        quoted = self._quoted.get(text)
        if quoted is None:
            quoted = json.dumps(text)
            if len(self._quoted) < MAX_QUOTED:
                self._quoted[text] = quoted
        return quoted

    def _remake(self) -> None:
        self._others_pairs = tuple(sorted(self._others.items()))
        self._others_json = "".join(f",{self._quote(n)}:{c}" for n, c in self._others_pairs)

    def peer_name(self, peer: str) -> str:
        """The name a peer (node id) traces under, or its id until a stamp of its told us."""
        return self._names.get(peer, peer)

    def _write(self, kind: str, what: str, msg_id: str, peer: str, detail: str) -> None:
        self._write_line(f'{self._head}{self.seq},"kind":"{kind}","what":{self._quote(what)},"msg_id":{msg_id},'
                         f'"peer":{peer},{self._own}{self.seq}{self._others_json}}},"lamport":{self.lamport},'
                         f'"time_ns":{self._clock()},"detail":{detail}}}\n')
        self.events += 1

    def internal(self, what: str, detail: Mapping[str, Any] | None = None) -> None:
        """A decision of this node."""
        self.seq += 1
        self.lamport += 1
        self._write("internal", what, "null", "null", json.dumps(detail or {}, separators=(",", ":")))

    def send(self, peer: str, what: str, ident: str) -> tuple[str, tuple[tuple[str, int], ...], int]:
        """A message to `peer` (node id); its stamp: (msg_id, vector clock as sorted pairs, Lamport time).
        `ident` is hex (the hash the message names)."""
        self.seq += 1
        self.lamport += 1
        msg_id = f"{self.name}:{self.seq}"
        self._write("send", what, f'{self._quoted_name[:-1]}:{self.seq}"', self._quote(self.peer_name(peer)),
                    f'{{"id":"{ident}"}}')
        vc = tuple(sorted((*self._others_pairs, (self.name, self.seq))))
        return msg_id, vc, self.lamport

    def receive(self, peer: str, what: str, ident: str, *, msg_id: str,
                vc: tuple[tuple[str, int], ...], lamport: int) -> None:
        """A stamped message from `peer` (node id): merge its clocks, then tick."""
        sender = msg_id.rpartition(":")[0]
        if sender and sender != self.name:
            self._names[peer] = sender
        others = self._others
        news = False
        for name, counter in vc:
            if counter > MAX_MERGED:
                continue
            if name == self.name:
                # Only a node that lost its trace file is named higher than it counts: its seq jumps past what
                # the others saw, so ids stay unique and clocks ordered (a gap, which the tools accept).
                if counter > self.seq:
                    self.seq = counter
            elif counter > others.get(name, 0) and (name in others or len(others) < MAX_CLOCK_ENTRIES - 1):
                others[name] = counter
                news = True
        if news:
            self._remake()
        self.seq += 1
        self.lamport = (self.lamport if lamport > MAX_MERGED else max(self.lamport, lamport)) + 1
        self._write("receive", what, json.dumps(msg_id), self._quote(self.peer_name(peer)), f'{{"id":"{ident}"}}')
