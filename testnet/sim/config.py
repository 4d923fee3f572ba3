"""Options of one simulated run, the network they describe, and the command line that replays them (pure).

A `SimConfig` plus its seed determine a run completely: the genesis, keys and hash rates come from the options,
and every random choice (delays, losses, partitions, crashes, drift, block times, load) from `Random(seed)`.
`SimConfig.command()` prints the exact `chainlab sim` invocation that replays it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chain.crypto import PrivateKey
from chain.devtools import dev_keys
from chain.genesis import Genesis
from consensus.registry import engine_names, spec_named
from testnet.sim.latency import LatencyMatrix
from testnet.sim.network import MODELS

FAULTS = ("partition", "crash", "loss", "dup", "drift")
CONSENSUS = tuple(engine_names())
SEED_MAX = (1 << 64) - 1
MAX_NODES = 1_000
MAX_FULL_MESH_NODES = 64  # beyond this a run needs an overlay degree: a full mesh has n (n - 1) / 2 links
LOAD_ACCOUNTS = 4
LOAD_BALANCE = 10**12
SINK_ACCOUNTS = 4
WORKLOADS = ("transfer", "lock")  # what the load accounts send: transfers, or lock sessions (lockclients.py)
MAX_LOCKS = 64


class ConfigError(ValueError):
    """Options that do not describe a valid run; the message names the option."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """Everything that, with the seed, decides a run."""

    seed: int
    consensus: str = "pow"
    nodes: int = 5
    duration_s: float = 600.0  # the safety phase (faults on); the liveness phase follows
    faults: frozenset[str] = field(default_factory=lambda: frozenset(FAULTS))
    model: str = "partial-sync"
    block_interval_s: float = 10.0
    finality_threshold: int = 6
    max_delay_s: float = 0.5  # D: the bound of the synchronous regime
    async_scale_s: float = 0.1  # scale of the asynchronous regime's Pareto tail
    tx_rate_per_s: float = 0.2  # client transfers per virtual second, over all nodes
    read_rate_per_s: float = 0.0  # client account reads per virtual second (0: none; clients.py)
    heartbeat_interval_s: float = 1.0  # PoW presence heartbeats (the genesis default)
    acks_required: int = -1  # primary-backup: acknowledgements for finality (-1: a majority of the backups)
    liveness_budget_s: float = 0.0  # 0: derived from the block interval and finality depth
    # Byzantine validators (engines with behaviours, PBFT): "" none, "random" (the seed draws 1..f of them and
    # their behaviours), or "1:equivocate,3:silent" (node index: behaviour).
    byzantine: str = ""
    # Twins (arXiv 2004.10617): the first `twins` validators run a second node with the same key. The safety phase
    # splits the network in two sides, each with one of every twin pair; with twins <= f no side reaches a quorum
    # the other does not overlap in an honest validator; with f+1 both sides commit, and the oracle must say so.
    twins: int = 0
    # Scale (docs/SCALE.md): the overlay's degree (0: a full mesh; else a random regular graph, overlay.py), a
    # latency matrix of regions (latency.py; None: the model's delays alone), how many nodes mine (PoW; 0: all of
    # them; the others relay and validate), and a scripted split of the network into two sides, the first holding
    # `split_share` of the hash power, from `split_at_s` for `split_for_s` (0: none).
    degree: int = 0
    latency: LatencyMatrix | None = None
    miners: int = 0
    split_share: float = 0.0
    split_at_s: float = 0.0
    split_for_s: float = 0.0
    # The clients' workload: transfers, or lock sessions competing for `locks` locks (lockclients.py); with
    # "lock", `tx_rate_per_s` is the rate of the sessions' turns.
    workload: str = "transfer"
    locks: int = 2

    def __post_init__(self) -> None:
        if type(self.seed) is not int or not 0 <= self.seed <= SEED_MAX:
            raise ConfigError("seed must be an integer in [0, 2^64)")
        if self.consensus not in CONSENSUS:
            raise ConfigError(f"consensus must be one of {', '.join(CONSENSUS)}")
        if not 1 <= self.nodes <= MAX_NODES:
            raise ConfigError(f"nodes must be within 1..{MAX_NODES}")
        if self.degree < 0:
            raise ConfigError("degree must not be negative (0: a full mesh)")
        if self.nodes > MAX_FULL_MESH_NODES and (self.degree == 0 or self.degree >= self.nodes - 1):
            raise ConfigError(f"a full mesh of {self.nodes} nodes has {self.nodes * (self.nodes - 1) // 2} links: "
                              "give an overlay degree (e.g. --degree 8)")
        if self.degree and self.degree < self.nodes - 1 and (self.nodes * self.degree % 2 or self.degree < 2):
            raise ConfigError(f"no connected {self.degree}-regular graph has {self.nodes} nodes (the degree must be "
                              "at least 2 and nodes x degree even)")
        if self.miners:
            if not spec_named(self.consensus).seals_with_workers:
                raise ConfigError(f"miners: the {self.consensus} engine does not mine")
            if not 1 <= self.miners <= self.nodes:
                raise ConfigError("miners must be within 1..nodes (0: every node mines)")
        if self.split_share:
            self._check_split()
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ConfigError(f"unknown fault(s) {', '.join(sorted(unknown))} (known: {', '.join(FAULTS)})")
        if "partition" in self.faults and self.nodes < 2:
            raise ConfigError("a partition needs at least two nodes")
        if self.model not in MODELS:
            raise ConfigError(f"model must be one of {', '.join(MODELS)}")
        for name in ("duration_s", "block_interval_s", "max_delay_s", "async_scale_s", "heartbeat_interval_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive")
        if self.tx_rate_per_s < 0 or self.read_rate_per_s < 0 or self.liveness_budget_s < 0:
            raise ConfigError("tx_rate_per_s, read_rate_per_s and liveness_budget_s must not be negative")
        if self.finality_threshold < 1:
            raise ConfigError("finality_threshold must be at least 1")
        if self.acks_required >= self.nodes:
            raise ConfigError("acks_required must be below the number of nodes (the backups)")
        behaviours = spec_named(self.consensus).byzantine_behaviours
        if (self.byzantine or self.twins) and not behaviours:
            raise ConfigError(f"the {self.consensus} engine has no Byzantine behaviours (--byzantine, --twins)")
        if self.byzantine and self.byzantine != "random":
            self.byzantine_nodes()  # raises ConfigError when malformed
        if not 0 <= self.twins < self.nodes or (self.twins and self.nodes < 2):
            raise ConfigError("twins must be within 0..nodes-1")
        if self.workload not in WORKLOADS:
            raise ConfigError(f"workload must be one of {', '.join(WORKLOADS)}")
        if not 1 <= self.locks <= MAX_LOCKS:
            raise ConfigError(f"locks must be within 1..{MAX_LOCKS}")
        if self.workload == "lock" and self.read_rate_per_s:
            raise ConfigError("read_rate_per_s goes with the transfer workload: lock operations pay fees the "
                              "account model's history does not show")

    def _check_split(self) -> None:
        if not spec_named(self.consensus).seals_with_workers:
            raise ConfigError("split: a hash-power split needs an engine that mines (pow)")
        if not 0 < self.split_share < 1:
            raise ConfigError("split share must be within (0, 1): the first side's share of the hash power")
        if "partition" in self.faults or self.twins:
            raise ConfigError("split is the run's partition: it cannot go with the partition fault or twins")
        if self.mining_nodes < 2 or self.nodes < 2:
            raise ConfigError("split needs at least two miners")
        start, length = self.split_at_s, self.split_for_s
        if not (start >= 0 and length > 0 and start + length <= self.duration_s):
            raise ConfigError("split must start at or after 0, last a positive time and end within the safety phase "
                              "(split_at + split_for <= duration)")

    # -- derived -------------------------------------------------------------------------------------------------

    @property
    def effective_acks(self) -> int:
        """Primary-backup acknowledgements that make a block final."""
        backups = self.nodes - 1
        return backups // 2 + 1 if self.acks_required < 0 and backups else max(0, self.acks_required)

    @property
    def effective_liveness_budget_s(self) -> float:
        """Virtual seconds the healed network gets to converge and progress."""
        if self.liveness_budget_s:
            return self.liveness_budget_s
        depth = self.min_progress_blocks
        return max(120.0, 8.0 * depth * self.block_interval_s)

    @property
    def min_progress_blocks(self) -> int:
        """Blocks every node must gain in the liveness phase: PoW needs k+1 so a post-heal block goes final."""
        return self.finality_threshold + 1 if spec_named(self.consensus).confirmation_finality else 3

    @property
    def mining_nodes(self) -> int:
        """How many nodes mine (PoW): `miners`, or every node."""
        return self.miners or self.nodes

    @property
    def size(self) -> int:
        """Node processes in the run: the validators and their twins."""
        return self.nodes + self.twins

    def byzantine_nodes(self) -> dict[int, str]:
        """The explicit `byzantine` option as {node index: behaviour} (empty for "" and "random")."""
        if self.byzantine in ("", "random"):
            return {}
        behaviours = spec_named(self.consensus).byzantine_behaviours
        chosen: dict[int, str] = {}
        for part in self.byzantine.split(","):
            index, sep, behaviour = part.strip().partition(":")
            if not sep or not index.isdigit() or int(index) >= self.nodes or int(index) in chosen:
                raise ConfigError(f"byzantine: {part.strip()!r} is not NODE:BEHAVIOUR with a distinct node index "
                                  f"below {self.nodes}")
            if behaviour not in behaviours:
                raise ConfigError(f"byzantine: unknown behaviour {behaviour!r} (known: {', '.join(behaviours)})")
            chosen[int(index)] = behaviour
        return chosen

    def node_keys(self) -> list[PrivateKey]:
        """Deterministic node keys (the same for every run of this size)."""
        return dev_keys(self.nodes, seed=b"chainlab-sim-node")

    def load_keys(self) -> list[PrivateKey]:
        """The funded client accounts that send the load."""
        return dev_keys(LOAD_ACCOUNTS, seed=b"chainlab-sim-load")

    def sink_addresses(self) -> list[bytes]:
        """Addresses no client owns, which transfers go to when clients read: each load account then changes only
        by its own transfers, and the account model can compare balances (docs/CONSISTENCY.md)."""
        return [key.address for key in dev_keys(SINK_ACCOUNTS, seed=b"chainlab-sim-sink")]

    def genesis(self, hashrate_shares: list[float]) -> Genesis:
        """The network, as the engine's spec sets up a simulation (PoW at the maximum target with no retarget;
        primary-backup with node 0 as primary). The first len(hashrate_shares) nodes are the validators (miners)."""
        keys = self.node_keys()[:len(hashrate_shares)]
        params, validators = spec_named(self.consensus).simulation_network(
            [k.address for k in keys], hashrate_shares,
            {"block_interval_s": self.block_interval_s, "heartbeat_interval_s": self.heartbeat_interval_s,
             "acks_required": self.effective_acks})
        return Genesis(chain_id="chainlab-sim", consensus=self.consensus, params=params,
                       balances={k.address: LOAD_BALANCE for k in self.load_keys()}, validators=validators,
                       finality_threshold=self.finality_threshold)

    def command(self) -> str:
        """The `chainlab sim` command line that replays this run exactly."""
        parts = [
            "chainlab sim", f"--consensus {self.consensus}", f"--nodes {self.nodes}", f"--seed {self.seed}",
            f"--duration {self.duration_s:g}", f"--faults {','.join(sorted(self.faults)) or 'none'}",
            f"--model {self.model}", f"--block-interval {self.block_interval_s:g}",
            f"--finality {self.finality_threshold}", f"--max-delay {self.max_delay_s:g}",
            f"--async-scale {self.async_scale_s:g}", f"--tx-rate {self.tx_rate_per_s:g}",
        ]
        if self.read_rate_per_s:
            parts.append(f"--read-rate {self.read_rate_per_s:g}")
        if self.heartbeat_interval_s != 1.0:
            parts.append(f"--heartbeat {self.heartbeat_interval_s:g}")
        if self.acks_required >= 0:
            parts.append(f"--acks {self.acks_required}")
        if self.liveness_budget_s:
            parts.append(f"--liveness-budget {self.liveness_budget_s:g}")
        if self.byzantine:
            parts.append(f"--byzantine {self.byzantine}")
        if self.twins:
            parts.append(f"--twins {self.twins}")
        if self.degree:
            parts.append(f"--degree {self.degree}")
        if self.latency is not None:
            parts.append(f"--latency {self.latency.name}")
        if self.miners:
            parts.append(f"--miners {self.miners}")
        if self.split_share:
            parts.append(f"--split {self.split_share:g}@{self.split_at_s:g}+{self.split_for_s:g}")
        if self.workload != "transfer":
            parts.append(f"--workload {self.workload} --locks {self.locks}")
        return " ".join(parts)

    def to_json(self) -> dict[str, object]:
        """The options as JSON values."""
        return {
            "seed": self.seed, "consensus": self.consensus, "nodes": self.nodes, "duration_s": self.duration_s,
            "faults": sorted(self.faults), "model": self.model, "block_interval_s": self.block_interval_s,
            "finality_threshold": self.finality_threshold, "max_delay_s": self.max_delay_s,
            "async_scale_s": self.async_scale_s, "tx_rate_per_s": self.tx_rate_per_s,
            "read_rate_per_s": self.read_rate_per_s,
            "heartbeat_interval_s": self.heartbeat_interval_s, "acks_required": self.effective_acks,
            "liveness_budget_s": self.effective_liveness_budget_s, "byzantine": self.byzantine or None,
            "twins": self.twins, "degree": self.degree, "workload": self.workload,
            "locks": self.locks if self.workload == "lock" else None,
            "latency": self.latency.to_json() if self.latency is not None else None, "miners": self.mining_nodes,
            "split": {"share": self.split_share, "at_s": self.split_at_s, "for_s": self.split_for_s}
            if self.split_share else None,
        }


def parse_split(text: str) -> tuple[float, float, float]:
    """`SHARE@START+DURATION` (e.g. `0.7@1200+600`) -> (share, start s, duration s); ConfigError otherwise."""
    share, at, rest = text.strip().partition("@")
    start, plus, duration = rest.partition("+")
    try:
        if not (at and plus):
            raise ValueError
        return float(share), float(start), float(duration)
    except ValueError:
        raise ConfigError(f"split {text.strip()!r} is not SHARE@START+DURATION (e.g. 0.7@1200+600)") from None


def parse_faults(text: str) -> frozenset[str]:
    """`partition,crash,loss` -> the fault set; `none` or empty -> no faults; `all` -> every fault."""
    text = text.strip()
    if text in ("", "none"):
        return frozenset()
    if text == "all":
        return frozenset(FAULTS)
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = names - set(FAULTS)
    if unknown:
        raise ConfigError(f"unknown fault(s) {', '.join(sorted(unknown))} (known: {', '.join(FAULTS)})")
    return names
