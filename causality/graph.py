"""The happens-before graph of a trace (pure): an index of events that tolerates gaps, and the queries on it.

A trace (causality/events.py) is read as a graph: each event has a program-order edge to the next event of the
same process, and each matched message an edge from its send to its receive. The vector clocks say whether one
event happened before another; the graph says *why*: the chain of program-order steps and messages (the fewest
messages) from one to the other. Traces have gaps, and every query accepts them:

- a seq that jumps (events lost or not written) is counted and named in `notes`;
- a seq that goes backwards on a node (the node lost its trace file and started again at 1) starts a new
  *incarnation*, a process of its own named `node1#2`, `node1#3`, ...; the first one keeps the node's name;
- a receive whose send is absent, and a send never received, are counted; they are not errors.

Where the clocks and the graph disagree (the clocks say before but no chain exists in the trace, because the
events that carried the knowledge are missing), the answer says the chain is incomplete instead of inventing one.
"""

from __future__ import annotations

import heapq
import itertools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from causality.clocks import Order
from causality.events import TraceEvent

DEFAULT_MAX_PAIRS = 1_000  # concurrent() lists at most this many pairs (it counts them all)
HASH_KEYS = ("hash", "block_hash", "block")  # detail fields a `WHAT@PREFIX` reference matches
_SEQ_REF = re.compile(r"^(?P<process>[^:@\s]+):(?P<seq>[0-9]+)$")
_NTH_REF = re.compile(r"^(?P<process>[^:@\s]+):(?P<what>[^:@\s]+):(?P<nth>-?[0-9]+)$")
_HASH_REF = re.compile(r"^(?:(?P<process>[^:@\s]+):)?(?P<what>[^:@\s]+)@(?P<prefix>[0-9A-Za-z]+)$")


class RefError(ValueError):
    """An event reference that is malformed or names no event (or several)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One link of a causal chain: program order on one process (`count` consecutive steps folded into one) or a
    message from its send to its receive."""

    kind: str  # "program-order" or "message"
    source: int  # event indices in the TraceGraph
    target: int
    count: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Relation:
    """How two events relate by their vector clocks, and the chain of the trace that proves it.

    `chain` runs from the earlier event to the later one; it is empty for `equal` and `concurrent`, and None when
    the clocks say one is before the other but the trace holds no chain between them (`complete` is then False and
    `note` says why)."""

    first: int
    second: int
    order: Order
    chain: tuple[Step, ...] | None
    complete: bool
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cone:
    """A causal past or future: the events (indices in trace order) and the matched messages (send, receive)
    whose two ends are both inside."""

    origin: int
    direction: str  # "past" or "future"
    events: tuple[int, ...]
    messages: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Concurrency:
    """The events of one `what` that no other event of that `what` knew of: the pairs (earlier index first), the
    groups (greedy sets of pairwise concurrent events, at least two each) and how many pairs there were in all."""

    what: str
    events: int
    pairs: tuple[tuple[int, int], ...]
    pair_count: int
    groups: tuple[tuple[int, ...], ...]
    truncated: bool


@dataclass(slots=True)
class _Process:
    name: str
    node: str
    events: list[int] = field(default_factory=list)


class TraceGraph:
    """The events of one trace, indexed by process and message; built once, then queried."""

    def __init__(self, events: Iterable[TraceEvent]) -> None:
        self.events: list[TraceEvent] = []
        self.process_of: list[str] = []  # the incarnation each event belongs to
        self.processes: dict[str, _Process] = {}
        self.notes: list[str] = []
        self._current: dict[str, _Process] = {}  # node -> its latest incarnation
        self._incarnations: dict[str, int] = {}
        self._sends: dict[str, int] = {}  # msg_id -> the send
        self._receives: dict[str, list[int]] = {}  # msg_id -> its receives
        self._position: list[int] = []  # the event's index within its process
        self.seq_gaps = 0
        for event in events:
            self._add(event)
        self.unmatched_receives = sum(len(r) for m, r in self._receives.items() if m not in self._sends)
        self.lost_sends = sum(1 for m in self._sends if m not in self._receives)
        if self.seq_gaps:
            self.notes.append(f"{self.seq_gaps} gap(s) in the seqs of a node: events missing from the trace")
        if self.unmatched_receives:
            self.notes.append(f"{self.unmatched_receives} receive(s) whose send is not in the trace")
        if self.lost_sends:
            self.notes.append(f"{self.lost_sends} send(s) never received in the trace (lost, or the receiver does "
                              "not trace)")
        self._restarted = {p.node for p in self.processes.values() if p.name != p.node}

    def _add(self, event: TraceEvent) -> None:
        index = len(self.events)
        process = self._current.get(event.node)
        if process is not None and process.events:
            last_seq = self.events[process.events[-1]].seq
            if event.seq <= last_seq:
                number = self._incarnations[event.node] + 1
                self._incarnations[event.node] = number
                process = None
                self.notes.append(f"{event.node} went back from seq {last_seq} to {event.seq} (trace event "
                                  f"{index + 1}): a restart that lost its trace; its events from there are "
                                  f"{event.node}#{number}")
            elif event.seq > last_seq + 1:
                self.seq_gaps += 1
        if process is None:
            number = self._incarnations.setdefault(event.node, 1)
            name = event.node if number == 1 else f"{event.node}#{number}"
            process = self._current[event.node] = self.processes[name] = _Process(name=name, node=event.node)
        self._position.append(len(process.events))
        process.events.append(index)
        self.events.append(event)
        self.process_of.append(process.name)
        if event.msg_id is not None:
            if event.kind == "send":
                if event.msg_id in self._sends:
                    self.notes.append(f"message {event.msg_id} sent twice; the first send is kept")
                else:
                    self._sends[event.msg_id] = index
            elif event.kind == "receive":
                self._receives.setdefault(event.msg_id, []).append(index)

    # -- naming events ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.events)

    def name(self, index: int) -> str:
        """The event's name in answers: `process:seq` (`node1:17`, `node1#2:3`)."""
        return f"{self.process_of[index]}:{self.events[index].seq}"

    def resolve(self, ref: str) -> int:
        """The event a reference names (docs/CAUSALITY.md "Naming events"):

        - `node1:17`: the event of seq 17 on node1 (its first incarnation; `node1#2:3` for a later one);
        - `node1:block-mined:3`: node1's third block-mined event (all its incarnations, in trace order; -1 is the
          last);
        - `block-mined@ab12` or `node3:block-final@ab12`: the event of that `what` (on that node) whose detail
          `hash` (or `block_hash`, `block`) starts with `ab12`; it must be the only one.

        RefError when the reference is malformed or names no event or several."""
        text = ref.strip()
        if match := _SEQ_REF.match(text):
            process = self._process(match["process"])
            seq = int(match["seq"])
            for index in process.events:
                if self.events[index].seq == seq:
                    return index
            raise RefError(f"{ref}: {process.name} has no event of seq {seq} (its seqs run "
                           f"{self.events[process.events[0]].seq}..{self.events[process.events[-1]].seq})")
        if match := _NTH_REF.match(text):
            node = match["process"]
            if not any(p.node == node for p in self.processes.values()):
                raise RefError(f"{ref}: no node {node!r} in the trace ({self._known_nodes()})")
            nth = int(match["nth"])
            found = [i for i in self._indices_of_node(node) if self.events[i].what == match["what"]]
            if nth == 0 or abs(nth) > len(found):
                raise RefError(f"{ref}: {node} has {len(found)} {match['what']} event(s); count from 1 (or -1 "
                               "for the last)")
            return found[nth - 1 if nth > 0 else nth]
        if match := _HASH_REF.match(text):
            candidates: Iterable[int] = range(len(self.events))
            if match["process"] is not None:
                process = self._process(match["process"])
                candidates = self._indices_of_node(process.node) if process.name == process.node else process.events
            prefix = match["prefix"].lower()
            found = [i for i in candidates if self.events[i].what == match["what"]
                     and any(str(self.events[i].detail.get(key, "")).lower().startswith(prefix) for key in HASH_KEYS)]
            if not found:
                raise RefError(f"{ref}: no {match['what']} event whose detail hash starts with {prefix}")
            if len(found) > 1:
                shown = ", ".join(self.name(i) for i in found[:5])
                raise RefError(f"{ref}: {len(found)} events match ({shown}{', ...' if len(found) > 5 else ''}); "
                               "give a longer prefix or a node (node1:block-final@PREFIX)")
            return found[0]
        raise RefError(f"{ref}: not an event reference; use NODE:SEQ (node1:17), NODE:WHAT:N (node1:block-mined:3) "
                       "or [NODE:]WHAT@HASHPREFIX (block-mined@ab12)")

    def _process(self, name: str) -> _Process:
        process = self.processes.get(name)
        if process is None:
            raise RefError(f"{name}: no such node in the trace ({self._known_nodes()})")
        return process

    def _known_nodes(self) -> str:
        names = sorted(self.processes)
        return "nodes: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") if names else "it is empty"

    def _indices_of_node(self, node: str) -> list[int]:
        return sorted(i for p in self.processes.values() if p.node == node for i in p.events)

    # -- the graph -------------------------------------------------------------------------------------------------

    def successors(self, index: int) -> Iterator[tuple[str, int]]:
        """The events one step after `index`: the next on its process, and the receives of the message it sent."""
        process = self.processes[self.process_of[index]]
        position = self._position[index]
        if position + 1 < len(process.events):
            yield "program-order", process.events[position + 1]
        event = self.events[index]
        if event.kind == "send" and event.msg_id is not None and self._sends.get(event.msg_id) == index:
            for receive in self._receives.get(event.msg_id, ()):
                yield "message", receive

    def send_of(self, index: int) -> int | None:
        """The send a receive matches, or None (not a receive, or its send is not in the trace)."""
        event = self.events[index]
        if event.kind != "receive" or event.msg_id is None:
            return None
        return self._sends.get(event.msg_id)

    def messages(self) -> Iterator[tuple[int, int]]:
        """Every matched message as (send, receive), in the order of the receives in the trace."""
        for index, event in enumerate(self.events):
            send = self.send_of(index)
            if send is not None and event.kind == "receive":
                yield send, index

    def lost_sends_list(self) -> list[int]:
        """The sends no receive in the trace matches."""
        return [index for msg_id, index in self._sends.items() if msg_id not in self._receives]

    def orphan_receives(self) -> list[int]:
        """The receives whose send is not in the trace."""
        return [i for msg_id, found in self._receives.items() if msg_id not in self._sends for i in found]

    def chain(self, source: int, target: int) -> tuple[Step, ...] | None:
        """A chain from `source` to `target` with the fewest messages and, among those, the fewest program-order
        steps (Dijkstra on the cost pair), program-order runs folded; None when the trace holds none."""
        if source == target:
            return ()
        best: dict[int, tuple[int, int]] = {source: (0, 0)}
        parent: dict[int, tuple[int, str]] = {source: (source, "")}
        heap = [(0, 0, source)]
        target_time = self.events[target].lamport
        while heap:
            messages, steps, current = heapq.heappop(heap)
            if current == target:
                return _folded(parent, source, target)
            if (messages, steps) > best[current]:
                continue  # a better way here was found after this entry was queued
            for kind, following in self.successors(current):
                cost = (messages + 1, steps) if kind == "message" else (messages, steps + 1)
                if cost >= best.get(following, (len(self.events) + 1, 0)):
                    continue
                # Lamport times only grow along edges of a well-formed trace; beyond the target's, no path returns
                # (a trace whose clocks break that rule is still searched, only less narrowly).
                lamport = self.events[following].lamport
                if lamport > target_time and lamport >= self.events[current].lamport:
                    continue
                best[following] = cost
                parent[following] = (current, kind)
                heapq.heappush(heap, (*cost, following))
        return None

    # -- queries ---------------------------------------------------------------------------------------------------

    def order(self, first: int, second: int) -> Order:
        """How `first` relates to `second` by their vector clocks."""
        if first == second:
            return Order.EQUAL
        return self.events[first].vc.compare(self.events[second].vc)

    def relation(self, first: int, second: int) -> Relation:
        """The relation of two events by their clocks, with the chain that proves it (docs/CAUSALITY.md)."""
        order = self.order(first, second)
        if order is Order.EQUAL:
            note = "" if first == second else "two events with the same clock: a clock that did not tick"
            return Relation(first=first, second=second, order=order, chain=(), complete=first == second, note=note)
        if order is Order.CONCURRENT:
            found = self.chain(first, second) or self.chain(second, first)
            note = "" if found is None else "the clocks say concurrent but the trace links them: the clocks are wrong"
            return Relation(first=first, second=second, order=order, chain=(), complete=found is None, note=note)
        earlier, later = (first, second) if order is Order.BEFORE else (second, first)
        steps = self.chain(earlier, later)
        if steps is None:
            return Relation(first=first, second=second, order=order, chain=None, complete=False,
                            note=f"the clocks say {self.name(earlier)} happened before {self.name(later)}, but the "
                                 "trace holds no chain of messages between them: the events that carried the "
                                 "knowledge are missing (a gap), so the chain is incomplete")
        return Relation(first=first, second=second, order=order, chain=steps, complete=True)

    def past(self, index: int) -> Cone:
        """Every event that happened before `index` by the vector clocks, and the messages among them."""
        clock = self.events[index].vc
        inside = [i for i, e in enumerate(self.events) if i != index and e.vc.compare(clock) is Order.BEFORE]
        return self._cone(index, "past", inside)

    def future(self, index: int) -> Cone:
        """Every event that `index` happened before, and the messages among them."""
        clock = self.events[index].vc
        inside = [i for i, e in enumerate(self.events) if i != index and clock.compare(e.vc) is Order.BEFORE]
        return self._cone(index, "future", inside)

    def _cone(self, origin: int, direction: str, inside: Sequence[int]) -> Cone:
        members = set(inside) | {origin}
        messages = tuple((send, receive) for send, receive in self.messages()
                         if send in members and receive in members)
        return Cone(origin=origin, direction=direction, events=tuple(inside), messages=messages)

    def happened_before(self, first: int, second: int) -> bool:
        """first -> second by the vector clocks."""
        return first != second and self.events[first].vc.compare(self.events[second].vc) is Order.BEFORE

    def concurrent(self, what: str, *, same: str | None = None,
                   max_pairs: int = DEFAULT_MAX_PAIRS) -> Concurrency:
        """The pairs of `what` events neither of which happened before the other; with `same`, only pairs whose
        detail[same] is equal (`same="height"`: two blocks at one height). Every pair is counted, at most
        `max_pairs` are listed (the first in trace order).

        Cost: for the m events of that `what` on nodes whose own clock entry grows with every event (every node
        of a well-formed trace), O(m * nodes * log m): on one node, the events that happened before a given event
        form a prefix of that node's events and those after it a suffix (Fidge and Mattern), so two binary
        searches find the concurrent ones. Events of a node that restarted are compared with every other: O(m)
        clock comparisons each."""
        chosen = [i for i, e in enumerate(self.events) if e.what == what]
        buckets: dict[str, list[int]] = {}
        for index in chosen:
            key = "" if same is None else repr(self.events[index].detail.get(same))
            buckets.setdefault(key, []).append(index)
        found: list[tuple[int, int]] = []
        count = 0
        for members in buckets.values():
            bucket_count, bucket_pairs = self._concurrent_in(members, max_pairs - len(found))
            count += bucket_count
            found.extend(bucket_pairs)
        found.sort()
        partners: dict[int, set[int]] = {}
        for first, second in found:
            partners.setdefault(first, set()).add(second)
            partners.setdefault(second, set()).add(first)
        return Concurrency(what=what, events=len(chosen), pairs=tuple(found), pair_count=count,
                           groups=_groups(partners), truncated=count > len(found))

    def _concurrent_in(self, members: Sequence[int], room: int) -> tuple[int, list[tuple[int, int]]]:
        """The number of concurrent pairs among `members` and up to `room` of them."""
        by_node: dict[str, list[int]] = {}
        for index in members:
            by_node.setdefault(self.events[index].node, []).append(index)
        exact = {node: indices for node, indices in by_node.items() if self._ordered_by_own_entry(node, indices)}
        pairs: list[tuple[int, int]] = []
        count = 0
        # Nodes with well-behaved clocks: for each event, one range per other node, found by bisection.
        owns = {node: [self.events[i].vc.get(node) for i in indices] for node, indices in exact.items()}
        for node, indices in exact.items():
            for index in indices:
                event = self.events[index]
                own = event.vc.get(node)
                for other, other_indices in exact.items():
                    if other <= node:  # each unordered pair once; one node's events are ordered anyway
                        continue
                    low = bisect_right(owns[other], event.vc.get(other))  # these happened before `index`
                    high = bisect_left(_KeyView(self.events, other_indices, node), own, lo=low)  # these after
                    count += high - low
                    for position in range(low, min(high, low + room - len(pairs))):
                        pairs.append(_ordered(index, other_indices[position]))
        # The rest (a node that restarted, or clocks not growing): every pair, whole clocks compared.
        rest = [i for i in members if self.events[i].node not in exact]
        for position, index in enumerate(rest):
            for partner in [*rest[position + 1:], *(i for indices in exact.values() for i in indices)]:
                if self.process_of[partner] == self.process_of[index]:
                    continue
                if self.order(index, partner) is Order.CONCURRENT:
                    count += 1
                    if len(pairs) < room:
                        pairs.append(_ordered(index, partner))
        return count, pairs

    def _ordered_by_own_entry(self, node: str, indices: Sequence[int]) -> bool:
        if node in self._restarted:
            return False
        owns = [self.events[i].vc.get(node) for i in indices]
        return all(owns) and all(a < b for a, b in itertools.pairwise(owns))

    # -- JSON ------------------------------------------------------------------------------------------------------

    def event_json(self, index: int) -> dict[str, Any]:
        """The event as in the trace, plus its name and process."""
        return {"name": self.name(index), "process": self.process_of[index], **self.events[index].to_json()}

    def step_json(self, step: Step) -> dict[str, Any]:
        """A chain step for --json output."""
        return {"kind": step.kind, "from": self.name(step.source), "to": self.name(step.target), "count": step.count}

    def summary(self) -> dict[str, Any]:
        """Counts and notes: what a reader must know about the trace before trusting an answer."""
        return {"events": len(self.events), "processes": sorted(self.processes), "seq_gaps": self.seq_gaps,
                "unmatched_receives": self.unmatched_receives, "lost_sends": self.lost_sends, "notes": self.notes}


def _folded(parent: Mapping[int, tuple[int, str]], source: int, target: int) -> tuple[Step, ...]:
    path: list[tuple[int, int, str]] = []
    current = target
    while current != source:
        before, kind = parent[current]
        path.append((before, current, kind))
        current = before
    path.reverse()
    steps: list[Step] = []
    for before, after, kind in path:
        if steps and kind == "program-order" and steps[-1].kind == "program-order":
            last = steps[-1]
            steps[-1] = Step(kind=kind, source=last.source, target=after, count=last.count + 1)
        else:
            steps.append(Step(kind=kind, source=before, target=after))
    return tuple(steps)


class _KeyView(Sequence[int]):
    """The entry for `node` of the clocks of some events, as a sequence bisect can search without a copy."""

    def __init__(self, events: Sequence[TraceEvent], indices: Sequence[int], node: str) -> None:
        self._events, self._indices, self._node = events, indices, node

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, position: int) -> int: ...

    @overload
    def __getitem__(self, position: slice) -> Sequence[int]: ...

    def __getitem__(self, position: int | slice) -> int | Sequence[int]:
        if isinstance(position, slice):
            return [self._events[i].vc.get(self._node) for i in self._indices[position]]
        return int(self._events[self._indices[position]].vc.get(self._node))


def _ordered(first: int, second: int) -> tuple[int, int]:
    return (first, second) if first < second else (second, first)


def _groups(partners: Mapping[int, set[int]]) -> tuple[tuple[int, ...], ...]:
    """Greedy sets of pairwise concurrent events: each event, in trace order, joins the first group all of whose
    members are concurrent with it, else starts one; groups of one are dropped."""
    groups: list[list[int]] = []
    for index in sorted(partners):
        for group in groups:
            if all(member in partners[index] for member in group):
                group.append(index)
                break
        else:
            groups.append([index])
    return tuple(tuple(g) for g in groups if len(g) > 1)

