"""A simulated run read from its causal trace (pure): who sent what to whom, which copies arrived, and in what order
each node connected and finalised blocks.

The simulator's `CausalTracer` (testnet/sim/causal.py) takes a `sink` for its records; `TracedRun` is that sink, so a
demonstration reads the run as a network tap would, with no hook inside the simulator: a send names the message's
kind and what it carries (`block` and a block hash, `block-get`, `getblocks`, `engine` and a payload digest), a
receive names the send it is a copy of (a duplicated message has two receives, a lost one none), and the nodes'
decisions say when each block was connected (`block-connected`) and when a node's final height moved
(`block-final`, naming the new final block). Blocks are named as the tracer names them, by an 8-byte prefix.
Copies of an engine envelope the receiver already holds are neither scheduled nor traced (the simulator counts them
in `stats["suppressed"]`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from causality.formatter import Record

IDENT_HEX = 16  # a traced send names what it carries by the first 8 bytes of its hash


@dataclass(frozen=True, slots=True)
class Sent:
    """One message handed to the network: by `node` to `peer` at `t`, of `kind`, carrying `ident` (the first 8
    bytes of the hash it names, in hex, as the tracer labels it)."""

    node: str
    peer: str
    t: float
    kind: str
    ident: str


@dataclass(slots=True)
class TracedRun:
    """The records of one run, indexed as they arrive (`sink` is the tracer's sink)."""

    sends: dict[tuple[str, int], Sent] = field(default_factory=dict)
    receives: list[tuple[str, float, Sent]] = field(default_factory=list)  # (node, t, the send it is a copy of)
    connected: list[tuple[str, float, str]] = field(default_factory=list)  # (node, t, block ident)
    finals: dict[str, list[tuple[float, int, str]]] = field(default_factory=dict)  # node -> (t, height, hash)

    def sink(self, records: list[Record]) -> None:
        """Take a batch of the tracer's records."""
        for record in records:
            if record[0] == "s":
                _, node, seq, t, peer, kind, ident = record
                self.sends[(str(node), int(seq))] = Sent(str(node), str(peer), float(t), str(kind), str(ident))
            elif record[0] == "r":
                _, node, _, t, _, src, src_seq = record
                self.receives.append((str(node), float(t), self.sends[(str(src), int(src_seq))]))
            elif record[0] == "i":
                _, node, _, t, what, detail_json = record
                if what not in ("block-connected", "block-final"):
                    continue
                detail = json.loads(str(detail_json))
                if what == "block-connected":
                    self.connected.append((str(node), float(t), str(detail["block"])[:IDENT_HEX]))
                else:
                    self.finals.setdefault(str(node), []).append((float(t), int(detail["height"]),
                                                                 str(detail["block"])[:IDENT_HEX]))

    def connect_counts(self) -> Counter[tuple[str, str]]:
        """(node, block hash) -> how many times the node connected the block."""
        return Counter((node, block) for node, _, block in self.connected)

    def final_steps(self, node: str, until_s: float | None = None) -> list[tuple[int, str]]:
        """The (height, block ident) of each step of `node`'s finality, in the order it took them (up to
        `until_s`): a step may jump several heights (the core reports the new final height only)."""
        return [(height, block) for t, height, block in self.finals.get(node, [])
                if until_s is None or t <= until_s]
