"""The lines of a simulated run's trace from its records (pure; testnet/sim/causal.py makes the records).

Records are one tuple per event, all fields plain values so that a batch can be marshalled to another process:

    ("s", node, seq, t, peer, what, ident)             a send (t: virtual seconds; ident: hex)
    ("r", node, seq, t, peer, sender, sender_seq)       a receive of the send (sender, sender_seq)
    ("i", node, seq, t, what, detail_json)              an internal event

`TraceFormatter` keeps each node's vector and Lamport clocks (a receive merges the clocks its send had, remembered
from the send record) and writes the lines of causality/events.py's format. It imports nothing heavy, so the writer
process of `chainlab sim --trace` (cli/simtrace.py) starts in a few tens of milliseconds.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

# How many sends the formatter remembers the clocks of, for their receives: a message still in flight after this
# many later sends (hours of virtual time) is received with the sender's own entry only, and counted as `forgotten`.
REMEMBERED_SENDS = 200_000

Record = tuple[Any, ...]


class _Clock:
    """One node's vector clock as the formatter keeps it. Its own entry is its seq; the others' entries change only
    on a receive that brings news, so their JSON and their tuple are remade only then."""

    __slots__ = ("fragments", "head", "lamport", "last_merged", "others", "others_json", "others_pairs",
                 "pairs_stale", "vc_head")

    def __init__(self, name: str) -> None:
        self.head = f'{{"node":"{name}","seq":'  # the constant parts of its lines
        self.vc_head = f'"vc":{{"{name}":'
        self.lamport = 0
        self.others: dict[str, int] = {}
        self.fragments: dict[str, str] = {}  # name -> ',"name":counter'
        self.others_json = ""  # ',"node1":4,"node2":7'
        self.others_pairs: tuple[tuple[str, int], ...] = ()
        self.pairs_stale = False
        self.last_merged: dict[str, tuple[tuple[str, int], ...]] = {}  # sender -> the snapshot merged last

    def pairs(self) -> tuple[tuple[str, int], ...]:
        if self.pairs_stale:
            self.others_pairs = tuple(self.others.items())
            self.pairs_stale = False
        return self.others_pairs


class TraceFormatter:
    """Turns a tracer's records into trace lines (in the order given), keeping the vector clocks."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self._write = write
        self._clocks: dict[str, _Clock] = {}
        self._json_of: dict[str, str] = {}  # JSON strings of the message kinds and decisions, made once
        # (sender, seq) -> (the sender's other entries and Lamport time at the send, the kind as JSON, the hash)
        self._sent: OrderedDict[tuple[str, int], tuple[tuple[tuple[str, int], ...], int, str, str]] = OrderedDict()
        self.forgotten = 0

    def _clock(self, node: str) -> _Clock:
        clock = self._clocks.get(node)
        if clock is None:
            clock = self._clocks[node] = _Clock(node)
        return clock

    def _quoted(self, what: str) -> str:
        quoted = self._json_of.get(what)
        if quoted is None:
            quoted = self._json_of[what] = json.dumps(what)
        return quoted

    def feed(self, records: Sequence[Record]) -> None:
        """Write the lines of `records`."""
        lines: list[str] = []
        line = lines.append
        clocks, sent = self._clocks, self._sent
        for record in records:
            kind = record[0]
            node = record[1]
            clock = clocks.get(node) or self._clock(node)
            text = str(record[2])
            if kind == "s":
                _, _, seq, t, peer, what, ident = record
                clock.lamport = lamport = clock.lamport + 1
                quoted = self._json_of.get(what) or self._quoted(what)
                sent[(node, seq)] = (clock.pairs() if clock.pairs_stale else clock.others_pairs, lamport, quoted,
                                     ident)
                if len(sent) > REMEMBERED_SENDS:
                    sent.popitem(last=False)
                line(f'{clock.head}{text},"kind":"send","what":{quoted},"msg_id":"{node}:{text}","peer":"{peer}",'
                     f'{clock.vc_head}{text}{clock.others_json}}},"lamport":{lamport},"time_ns":{round(t * 1e9)},'
                     f'"detail":{{"id":"{ident}"}}}}\n')
            elif kind == "r":
                _, _, _, t, peer, sender, sender_seq = record
                found = sent.get((sender, sender_seq))
                if found is None:
                    self.forgotten += 1
                    found = ((), 0, self._quoted("forgotten"), "")
                snapshot, sent_lamport, quoted, ident = found
                self._merge(node, clock, sender, sender_seq, snapshot)
                lamport = clock.lamport if clock.lamport > sent_lamport else sent_lamport
                clock.lamport = lamport = lamport + 1
                line(f'{clock.head}{text},"kind":"receive","what":{quoted},"msg_id":"{sender}:{sender_seq}",'
                     f'"peer":"{peer}",{clock.vc_head}{text}{clock.others_json}}},"lamport":{lamport},'
                     f'"time_ns":{round(t * 1e9)},"detail":{{"id":"{ident}"}}}}\n')
            else:
                _, _, _, t, what, detail = record
                clock.lamport = lamport = clock.lamport + 1
                line(f'{clock.head}{text},"kind":"internal","what":{self._quoted(what)},"msg_id":null,"peer":null,'
                     f'{clock.vc_head}{text}{clock.others_json}}},"lamport":{lamport},"time_ns":{round(t * 1e9)},'
                     f'"detail":{detail}}}\n')
        self._write("".join(lines))

    @staticmethod
    def _merge(node: str, clock: _Clock, sender: str, sender_seq: int,
               snapshot: tuple[tuple[str, int], ...]) -> None:
        """Merge the send's clock into the receiver's (the sender's entry for `node` is never above ours)."""
        others, fragments = clock.others, clock.fragments
        news = False
        if sender_seq > others.get(sender, 0):
            others[sender] = sender_seq
            fragments[sender] = f',"{sender}":{sender_seq}'
            news = True
        if clock.last_merged.get(sender) is not snapshot:  # the sender's other entries changed since
            clock.last_merged[sender] = snapshot
            for name, counter in snapshot:
                if counter > others.get(name, 0) and name != node:
                    others[name] = counter
                    fragments[name] = f',"{name}":{counter}'
                    news = True
        if news:
            clock.others_json = "".join(fragments.values())
            clock.pairs_stale = True
