"""Helpers the simulated demonstrations share (pure): a scripted nemesis, and a sampler of every node's chain.

The simulator's nemesis draws its faults from the seed (testnet/sim/faults.py); a demonstration wants one fault
at a known time instead, so `ScriptedNemesis` is a `Nemesis` whose `next_delay` and `next_action` follow a
script; it replaces the drawn one on a `Simulator` before it runs. The simulator then does what it always does
with a partition: traces it, cuts the links, heals it after its duration.

`ChainEvents` reads what every core reports (reorgs with their depth, blocks that came before their parent) by
wrapping the core factory: the simulator drives the same cores, seen through `TappedCore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random

from chain.block import Block
from chain.blocktree import BlockTree
from chain.mempool import Mempool
from chain.tx import Transaction
from consensus.engine import Engine
from consensus.envelope import EnvelopeRouter
from testnet.sim.core import CoreFactory, CoreSpec, OutputView, SimCore
from testnet.sim.faults import Nemesis, NemesisAction, StartPartition
from testnet.sim.shapes import groups_topology
from testnet.sim.simulator import Simulator

NEVER_S = 1e12


class ScriptedNemesis(Nemesis):
    """Starts one partition into `sides` at `at_s` for `duration_s`, and nothing else."""

    def __init__(self, *, nodes: int, sides: Sequence[Sequence[int]], at_s: float, duration_s: float) -> None:
        super().__init__(nodes=nodes, partition=True, crash=False, interval_s=NEVER_S, block_interval_s=1.0,
                         finality_threshold=1)
        self.action: NemesisAction | None = StartPartition(
            topology=groups_topology("scripted", nodes, sides), duration_s=duration_s)
        self.at_s = at_s
        self._first = True

    def next_delay(self, rng: Random) -> float:
        """The first step comes at `at_s`; the one after it never."""
        if self._first:
            self._first = False
            return self.at_s
        return NEVER_S

    def next_action(self, rng: Random, *, partitioned: bool, down: list[int]) -> NemesisAction | None:
        """The partition, once."""
        action, self.action = self.action, None
        return action


@dataclass(slots=True)
class Samples:
    """Every node's tip height and final height, sampled at virtual times."""

    times: list[float] = field(default_factory=list)
    heights: list[list[int]] = field(default_factory=list)
    finals: list[list[int]] = field(default_factory=list)

    def observe(self, t: float, simulator: Simulator) -> None:
        """The simulator's observer hook."""
        self.times.append(t)
        self.heights.append([n.core.tree.height if n.core is not None else -1 for n in simulator.nodes])
        self.finals.append([n.core.tree.final_height if n.core is not None else -1 for n in simulator.nodes])

    def at(self, t: float) -> int:
        """Index of the last sample taken at or before `t`."""
        index = 0
        for i, when in enumerate(self.times):
            if when <= t:
                index = i
        return index


@dataclass(slots=True)
class ChainEvents:
    """What the cores reported about their block trees: each reorg's depth (blocks disconnected) and each block
    that arrived before its parent (an orphan)."""

    reorg_depths: list[int] = field(default_factory=list)
    orphans: int = 0

    def factory(self, inner: CoreFactory) -> CoreFactory:
        """`inner`, with every core's outputs read on their way to the simulator."""
        def build(spec: CoreSpec) -> SimCore:
            return TappedCore(inner(spec), self)
        return build

    def saw(self, out: OutputView) -> OutputView:
        """Note what `out` reports; hand it on unchanged."""
        for event in out.events:
            depth = event.get("depth")
            if event.get("type") == "reorg" and isinstance(depth, int):
                self.reorg_depths.append(depth)
        self.orphans += sum(1 for result in out.results if result.status == "orphan")
        return out


class TappedCore:
    """A core whose outputs `ChainEvents` reads: the same object the simulator would drive, seen through."""

    def __init__(self, core: SimCore, events: ChainEvents) -> None:
        self._core, self._events = core, events

    @property
    def tree(self) -> BlockTree:
        """The node's block tree."""
        return self._core.tree

    @property
    def mempool(self) -> Mempool:
        """The node's mempool."""
        return self._core.mempool

    @property
    def engine(self) -> Engine:
        """The node's engine."""
        return self._core.engine

    @property
    def envelopes(self) -> EnvelopeRouter:
        """What seals the node's engine messages."""
        return self._core.envelopes

    def envelope_seen(self, ident: tuple[bytes, int]) -> bool:
        """SimCore.envelope_seen."""
        return self._core.envelope_seen(ident)

    def start(self, *, now: float, now_ms: int) -> OutputView:
        """SimCore.start."""
        return self._events.saw(self._core.start(now=now, now_ms=now_ms))

    def tick(self, *, now: float, now_ms: int) -> OutputView:
        """SimCore.tick."""
        return self._events.saw(self._core.tick(now=now, now_ms=now_ms))

    def peers_changed(self, peers: set[str], previous: set[str], *, now: float, now_ms: int) -> OutputView:
        """SimCore.peers_changed."""
        return self._events.saw(self._core.peers_changed(peers, previous, now=now, now_ms=now_ms))

    def sync_gap(self, peers_best_height: int, *, now: float, now_ms: int) -> OutputView:
        """SimCore.sync_gap."""
        return self._events.saw(self._core.sync_gap(peers_best_height, now=now, now_ms=now_ms))

    def receive_engine_message(self, peer: str, kind: str, payload: bytes, *, now: float, now_ms: int,
                               ) -> OutputView:
        """SimCore.receive_engine_message."""
        return self._events.saw(self._core.receive_engine_message(peer, kind, payload, now=now, now_ms=now_ms))

    def precheck_block(self, block: Block, *, now_ms: int) -> bool:
        """SimCore.precheck_block."""
        return self._core.precheck_block(block, now_ms=now_ms)

    def receive_block(self, block: Block, *, source: str, now: float, now_ms: int, prechecked: bool = False,
                      ) -> OutputView:
        """SimCore.receive_block."""
        return self._events.saw(self._core.receive_block(block, source=source, now=now, now_ms=now_ms,
                                                         prechecked=prechecked))

    def receive_tx(self, tx: Transaction, *, source: str | None, now: float, now_ms: int) -> OutputView:
        """SimCore.receive_tx."""
        return self._events.saw(self._core.receive_tx(tx, source=source, now=now, now_ms=now_ms))

    def read_index(self, request_id: int, *, now: float, now_ms: int) -> OutputView:
        """SimCore.read_index."""
        return self._events.saw(self._core.read_index(request_id, now=now, now_ms=now_ms))

    def mined(self, job_id: int, nonce: int, *, now: float, now_ms: int) -> OutputView:
        """SimCore.mined."""
        return self._events.saw(self._core.mined(job_id, nonce, now=now, now_ms=now_ms))

    def housekeeping(self, *, now: float, now_ms: int) -> OutputView:
        """SimCore.housekeeping."""
        return self._events.saw(self._core.housekeeping(now=now, now_ms=now_ms))

    def admin(self, action: str, value: object, *, now: float, now_ms: int) -> tuple[OutputView, dict[str, object]]:
        """SimCore.admin."""
        out, answer = self._core.admin(action, value, now=now, now_ms=now_ms)
        return self._events.saw(out), answer
