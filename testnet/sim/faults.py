"""The nemesis (pure): which faults a run suffers and when, every choice drawn from the run's `Random`.

Per run, drawn once at the start (in this order): the miners' hash-rate shares, the clocks (with `drift`: a
monotonic clock rate within +-2% and a constant wall-clock error within +-2 s per node, see clock.py), the
message loss probability (with `loss`: 1..25%), the duplication probability (with `dup`: 1..25%) and, for the
partial-sync model, the global stabilisation time (within the safety phase).

During the safety phase the nemesis acts at exponentially distributed intervals (mean `interval_s`), picking one
of the enabled actions that is possible at that moment:

- `partition`: cut the network into a shape (shapes.py) for 0.5..3 times the time k blocks take, then heal it;
- `crash`: kill a running node (at most half of them down at once) and restart it 1..10 block intervals later,
  over its old store.

When the safety phase ends everything heals at once: partitions end, loss and duplication stop, crashed nodes
restart, and the network model becomes its bounded regime. Clock drift stays (clocks do not heal).
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from testnet.sim.clock import NodeClock
from testnet.sim.network import LinkFaults
from testnet.sim.shapes import Topology, make_topology, shapes_for

MAX_RATE_DRIFT = 0.02
MAX_OFFSET_MS = 2_000
MAX_LOSS = 0.25
MAX_DUPLICATE = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class StartPartition:
    """Cut the network into `topology` for `duration_s`."""

    topology: Topology
    duration_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CrashNode:
    """Kill `node`; restart it after `downtime_s`."""

    node: int
    downtime_s: float


NemesisAction = StartPartition | CrashNode


def draw_shares(rng: Random, nodes: int) -> list[float]:
    """Hash-rate shares (summing to 1): each miner's weight uniform in [1, 3]."""
    weights = [rng.uniform(1.0, 3.0) for _ in range(nodes)]
    total = sum(weights)
    return [w / total for w in weights]


def draw_clocks(rng: Random, nodes: int, drift: bool) -> list[NodeClock]:
    """One clock per node: exact without drift, else a rate and wall-clock error of its own."""
    clocks = []
    for _ in range(nodes):
        origin = rng.uniform(100.0, 10_000.0)  # monotonic clocks start anywhere, with or without drift
        if drift:
            rate = 1.0 + rng.uniform(-MAX_RATE_DRIFT, MAX_RATE_DRIFT)
            offset = rng.randint(-MAX_OFFSET_MS, MAX_OFFSET_MS)
            clocks.append(NodeClock(rate=rate, origin_s=origin, offset_ms=offset))
        else:
            clocks.append(NodeClock(origin_s=origin))
    return clocks


def draw_link_faults(rng: Random, *, loss: bool, duplicate: bool) -> LinkFaults:
    """The safety phase's loss and duplication probabilities."""
    loss_p = rng.uniform(0.01, MAX_LOSS) if loss else 0.0
    dup_p = rng.uniform(0.01, MAX_DUPLICATE) if duplicate else 0.0
    return LinkFaults(loss=loss_p, duplicate=dup_p)


class Nemesis:
    """Draws the next fault action of the safety phase."""

    def __init__(self, *, nodes: int, partition: bool, crash: bool, interval_s: float, block_interval_s: float,
                 finality_threshold: int) -> None:
        self.nodes = nodes
        self.partition = partition and nodes >= 2
        self.crash = crash and nodes >= 2
        self.interval_s = interval_s
        self.block_interval_s = block_interval_s
        self.finality_threshold = finality_threshold

    @property
    def enabled(self) -> bool:
        """True when the nemesis has any action at all."""
        return self.partition or self.crash

    def next_delay(self, rng: Random) -> float:
        """Virtual seconds until the next action."""
        return rng.expovariate(1.0 / self.interval_s)

    def next_action(self, rng: Random, *, partitioned: bool, down: list[int]) -> NemesisAction | None:
        """An action possible now (no second partition on top of one; at most half the nodes down), or None."""
        choices = []
        if self.partition and not partitioned:
            choices.append("partition")
        if self.crash and len(down) < self.nodes // 2:
            choices.append("crash")
        if not choices:
            return None
        if rng.choice(choices) == "partition":
            shape = rng.choice(shapes_for(self.nodes))  # only shapes that really cut n nodes
            topology = make_topology(shape, self.nodes, rng)
            burial_s = self.finality_threshold * self.block_interval_s
            return StartPartition(topology=topology, duration_s=rng.uniform(0.5, 3.0) * burial_s)
        running = [n for n in range(self.nodes) if n not in down]
        return CrashNode(node=rng.choice(running), downtime_s=rng.uniform(1.0, 10.0) * self.block_interval_s)
