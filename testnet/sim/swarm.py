"""Swarm testing (pure): many runs, each with its own seed and options drawn at random.

One swarm seed gives a reproducible sequence of run configurations (`swarm_configs`); each run is then replayed
by its own `chainlab sim ...` command, which spells out every option the swarm drew (`SimConfig.command`). The
option space (`SwarmSpace`) keeps runs where the design promises safety: network delays well below the block
interval and finality depths of at least five blocks, so a failure is a bug, not bad luck of PoW.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from random import Random

from consensus.registry import spec_named
from testnet.sim.config import FAULTS, SimConfig
from testnet.sim.network import MODELS


@dataclass(frozen=True, slots=True, kw_only=True)
class SwarmSpace:
    """The option ranges a swarm draws from."""

    consensus: tuple[str, ...] = ("pow", "pow", "pow", "primary-backup", "round-robin", "raft")  # PoW half the time
    min_nodes: int = 3
    max_nodes: int = 7
    models: tuple[str, ...] = MODELS
    fault_probability: float = 0.6  # each fault is on with this probability
    block_intervals_s: tuple[float, ...] = (2.0, 5.0, 10.0)
    min_finality: int = 5
    max_finality: int = 8
    delay_fractions: tuple[float, ...] = (0.01, 0.03, 0.1)  # D as a fraction of the block interval
    durations_blocks: tuple[int, ...] = (20, 40, 60)  # safety phase, in block intervals
    tx_rates_per_s: tuple[float, ...] = (0.0, 0.2, 1.0)
    read_rate_per_s: float = 1.0  # client reads of the runs whose engine serves linearizable reads (Raft)
    # Byzantine runs (engines with behaviours): each run has twins for 0..f validators and, beside them, Byzantine
    # validators the run's seed draws (at most f in all: the bound PBFT promises safety within).
    byzantine: bool = False
    workload: str = "transfer"  # "lock": lock sessions on 1..max_locks locks (the lock space)
    max_locks: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.min_nodes <= self.max_nodes:
            raise ValueError("need 1 <= min_nodes <= max_nodes")
        if not 1 <= self.min_finality <= self.max_finality:
            raise ValueError("need 1 <= min_finality <= max_finality")


def draw_config(rng: Random, space: SwarmSpace) -> SimConfig:
    """One run's options and seed."""
    seed = rng.getrandbits(64)
    consensus = rng.choice(space.consensus)
    nodes = rng.randint(space.min_nodes, space.max_nodes)
    model = rng.choice(space.models)
    faults = frozenset(f for f in FAULTS if rng.random() < space.fault_probability)
    interval = rng.choice(space.block_intervals_s)
    finality = rng.randint(space.min_finality, space.max_finality)
    max_delay = round(interval * rng.choice(space.delay_fractions), 4)
    async_scale = round(max_delay * rng.choice((0.2, 0.5)), 4)
    duration = interval * rng.choice(space.durations_blocks)
    tx_rate = rng.choice(space.tx_rates_per_s)
    # Not a draw (the sequence of configurations stays the one earlier swarm seeds gave): the engine decides.
    read_rate = space.read_rate_per_s if spec_named(consensus).linearizable_reads else 0.0
    # Engines that count acknowledgements get a random quorum half the time (-1: the engine's default).
    counts_acks = "acks_required" in spec_named(consensus).parameters
    acks = rng.randint(0, nodes - 1) if counts_acks and rng.random() < 0.5 else -1
    if nodes < 2:
        faults -= {"partition"}
    # Presence heartbeats scale with the block interval: the partition handler's safety argument needs the
    # detection window (4 heartbeats) to be a small fraction of the k block intervals a minority would need to
    # finalize its own branch (docs/ENGINES.md). With 1 s heartbeats and 2 s blocks (a 4 s window, two block
    # intervals) the swarm finds final-prefix violations at k = 5..6: the engine's known limit, not bad luck.
    heartbeat = round(interval / 10, 4)
    byzantine, twins = "", 0
    if space.byzantine and spec_named(consensus).byzantine_behaviours:  # drawn only here: other spaces keep theirs
        twins = rng.randint(0, (nodes - 1) // 3)
        byzantine = "random"
    locks = rng.randint(1, space.max_locks) if space.workload == "lock" else 2  # drawn only in the lock space
    return SimConfig(seed=seed, consensus=consensus, nodes=nodes, duration_s=duration, faults=faults, model=model,
                     block_interval_s=interval, finality_threshold=finality, max_delay_s=max_delay,
                     async_scale_s=async_scale, tx_rate_per_s=tx_rate, read_rate_per_s=read_rate,
                     acks_required=acks, heartbeat_interval_s=heartbeat, byzantine=byzantine, twins=twins,
                     workload=space.workload, locks=locks)


# The Byzantine swarm: PBFT networks of 4..7 validators where up to f lie or run twins (`chainlab sim --swarm
# --space byzantine`, and CI).
BYZANTINE_SPACE = SwarmSpace(consensus=("pbft",), min_nodes=4, max_nodes=7, byzantine=True)
# The lock swarm: lock sessions (testnet/sim/lockclients.py) on the engines with their own finality and on PoW
# (a grant counts at finality depth), judged by the `locks` check (`--space lock`, and CI). Short blocks and
# safety phases, several turns per block: many grants, writes and late writes per run. No reads: lock operations'
# fees are outside the account model.
LOCK_SPACE = SwarmSpace(consensus=("raft", "raft", "pbft", "pbft", "primary-backup", "pow"), min_nodes=3,
                        max_nodes=5, block_intervals_s=(1.0, 2.0), durations_blocks=(30, 60),
                        tx_rates_per_s=(2.0, 4.0), read_rate_per_s=0.0, workload="lock")
SPACES = {"default": SwarmSpace(), "byzantine": BYZANTINE_SPACE, "lock": LOCK_SPACE}


def swarm_configs(swarm_seed: int, space: SwarmSpace | None = None) -> Iterator[SimConfig]:
    """An endless, reproducible sequence of run configurations for `swarm_seed` (take as many as wanted)."""
    rng = Random(swarm_seed)
    space = space or SwarmSpace()
    while True:
        yield draw_config(rng, space)
