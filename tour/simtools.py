"""Helpers the simulated demonstrations share (pure): a scripted nemesis, and a sampler of every node's chain.

The simulator's nemesis draws its faults from the seed (testnet/sim/faults.py); a demonstration wants one fault
at a known time instead, so `ScriptedNemesis` offers the same three calls (`enabled`, `next_delay`,
`next_action`) and replaces the drawn one on a `Simulator` before it runs. The simulator then does what it
always does with a partition: traces it, cuts the links, heals it after its duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random

from testnet.sim.faults import NemesisAction, StartPartition
from testnet.sim.shapes import groups_topology
from testnet.sim.simulator import Simulator

NEVER_S = 1e12


class ScriptedNemesis:
    """Starts one partition into `sides` at `at_s` for `duration_s`, and nothing else."""

    def __init__(self, *, nodes: int, sides: Sequence[Sequence[int]], at_s: float, duration_s: float) -> None:
        self.action: NemesisAction | None = StartPartition(
            topology=groups_topology("scripted", nodes, sides), duration_s=duration_s)
        self.at_s = at_s
        self._first = True

    @property
    def enabled(self) -> bool:
        """The simulator schedules a step only when this is True."""
        return True

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
