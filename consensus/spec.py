"""An engine's registration record (pure): what the node, the toolkit and the CLI may know about it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chain.block import BlockHeader
from chain.blocktree import ChainPolicy
from chain.errors import RejectError
from chain.genesis import CHAIN_PARAMETERS, Genesis, ParamSpec
from consensus.engine import Engine, EngineContext
from consensus.params import engine_param


def _no_warnings(genesis: Genesis) -> list[str]:
    return []


def _no_check(genesis: Genesis) -> None:
    return None


def majority_of_validators(genesis: Genesis, group: Collection[bytes]) -> bool:
    """`has_quorum` for engines that need a majority of the genesis validators (round-robin, Raft)."""
    return len(set(group) & set(genesis.validators)) > len(genesis.validators) // 2


def _sim_equal_validators(addresses: Sequence[bytes], shares: Sequence[float], knobs: Mapping[str, Any],
                          ) -> tuple[dict[str, Any], dict[bytes, int]]:
    return {"block_interval_s": float(knobs["block_interval_s"])}, {address: 1 for address in addresses}


def _equal_validators(addresses: Sequence[bytes], shares: Sequence[float], total_hps: float,
                      params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[bytes, int]]:
    return dict(params), {address: 1 for address in addresses}


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusMetric:
    """A Prometheus metric the node exports from one numeric field of the engine's status document: a gauge is set
    to the field, a counter advances by the field's growth (the field itself counts since the node started)."""

    name: str  # chainlab_...; a counter is exported with the `_total` suffix
    help: str
    status_field: str
    kind: Literal["gauge", "counter"] = "gauge"

    def __post_init__(self) -> None:
        if not self.name.startswith("chainlab_") or self.name.endswith("_total"):
            raise AssertionError(f"metric {self.name!r}: chainlab_ prefix, and no _total (the exporter adds it)")


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalityProof:
    """What a block's seal proves about its parent (engines whose seals carry finality proofs, PBFT): the parent
    it names, the view it was committed in, the validators that signed it, and whether it verifies."""

    height: int
    block_hash: bytes
    view: int
    signers: tuple[bytes, ...]  # validator addresses, in order
    error: str | None = None  # why it does not verify (None: it does)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSpec:
    """What the node, the toolkit and the CLI may know about an engine."""

    name: str
    summary: str
    parameters: Mapping[str, ParamSpec]
    build: Callable[[EngineContext], Engine]
    policy: Callable[[Genesis], ChainPolicy]
    # Sealing needs the node's worker processes (PoW puzzles): the node starts them, the testnet gives hash rates.
    seals_with_workers: bool = False
    # Extra genesis checks beyond each parameter's own (e.g. primary-backup needs a primary).
    check: Callable[[Genesis], None] = _no_check
    # Warnings about a valid but risky genesis (PoW: the partition handler's detection window).
    warnings: Callable[[Genesis], list[str]] = _no_warnings
    # The warnings a node logs at start, from the genesis, its own address and whether it mines (None: `warnings`).
    node_warnings: Callable[[Genesis, bytes, bool], list[str]] | None = None
    # Computed facts about a genesis that `genesis show` prints (PoW: the partition finality risk).
    facts: Callable[[Genesis], dict[str, Any]] = lambda genesis: {}
    # Seconds a fault can go unnoticed by the engine (liveness checks wait this long on top of their grace).
    detection_delay_s: Callable[[Genesis], float] = lambda genesis: 0.0
    # Whether a group of validators (addresses) that can talk to each other can make progress.
    has_quorum: Callable[[Genesis, Collection[bytes]], bool] = lambda genesis, group: bool(group)
    # A local testnet's genesis: (params, validators) from the node addresses, their hash-rate shares (fractions
    # summing to 1), the total hash rate, and the params given (block_interval_s among them).
    testnet_network: Callable[[Sequence[bytes], Sequence[float], float, Mapping[str, Any]],
                              tuple[dict[str, Any], dict[bytes, int]]] = field(default=_equal_validators)
    # The simulator's genesis: (params, validators) from the node addresses, their hash-rate shares, and its knobs
    # (block_interval_s, heartbeat_interval_s, acks_required, ...; each engine takes what applies to it).
    simulation_network: Callable[[Sequence[bytes], Sequence[float], Mapping[str, Any]],
                                 tuple[dict[str, Any], dict[bytes, int]]] = field(default=_sim_equal_validators)
    # Finality by confirmations (PoW): a liveness phase needs k+1 blocks for a post-heal block to go final.
    confirmation_finality: bool = False
    # Genesis parameters `testnet up` sets unless given (from the params given; block_interval_s among them when
    # given, else the engine may choose it here, 2 s otherwise).
    testnet_defaults: Callable[[Mapping[str, Any]], dict[str, Any]] = lambda params: {}
    # The live table's engine column: its title and a cell from /v1/status's `engine` document.
    status_column: str = "ROLE"
    status_cell: Callable[[Mapping[str, Any]], str] = field(
        default=lambda engine: str(engine.get("role", "?")) + (" stalled" if engine.get("stalled") else ""))
    # The term a block was proposed in, for engines with one leader per term (Raft): the simulator checks that no
    # two proposers sealed blocks of the same term (None: the engine has no terms).
    block_term: Callable[[BlockHeader], int] | None = None
    # The engine answers `read_index` (linearizable reads); the simulator's swarm has the clients of its runs read.
    linearizable_reads: bool = False
    # The commit index is volatile state the engine derives again after a restart (Raft: from the leader, the
    # entries being on a majority's disks): the final height is then written without a sync of its own.
    volatile_commit_index: bool = False
    # The block interval `chainlab bench consensus` runs at unless told: a closed loop is paced by it (each client
    # has one transfer in flight, waiting for a block), so an engine whose leader proposes whenever transactions
    # wait is measured at a short one, where the pacing no longer hides what the engine can commit.
    bench_block_interval_s: float = 0.1
    # Parameters `genesis new` derives from this machine unless given, from the params given, the number of
    # validators and one worker process's measured sealing rate (PoW: an initial target that makes the first blocks
    # come about every block_interval_s, not as a burst). None: nothing to measure.
    machine_defaults: Callable[[Mapping[str, Any], int, float], dict[str, Any]] | None = None
    # Admin actions the engine answers (`POST /v1/admin/<action>`).
    admin_actions: tuple[str, ...] = ()
    # Metrics the node exports from the engine's status document (docs/RPC.md lists them).
    metrics: tuple[StatusMetric, ...] = ()
    # A block's seal as fields a person reads (the explorer, GET /v1/blocks/{ref}): PoW target and nonce, the signer
    # of a signed seal, Raft's term and leader. Raises on a malformed seal; `seal_view` turns that into a note.
    describe_seal: Callable[[BlockHeader], dict[str, Any]] = lambda header: {}
    # Byzantine behaviours the engine's admin action `byzantine` switches on (consensus/pbft/byzantine.py).
    byzantine_behaviours: tuple[str, ...] = ()
    # Those of them whose messages honest peers ban the sender for (p2p/protocol/limits.py, ENGINE_PENALTIES): a
    # validator switched back to honest stays cut off from those peers until the bans expire.
    byzantine_banned: tuple[str, ...] = ()
    # The finality proof of a block's parent that its seal carries, verified against genesis (None: the seal
    # carries none); the safety oracle of the simulator and `testnet check` names conflicting certificates with it.
    parent_certificate: Callable[[Genesis, BlockHeader], FinalityProof | None] | None = None

    def param(self, genesis: Genesis, name: str) -> Any:
        """Engine parameter `name` of `genesis` (its default when unset)."""
        return engine_param(genesis, self.parameters, name)

    def start_warnings(self, genesis: Genesis, address: bytes, mining: bool) -> list[str]:
        """The genesis warnings that concern a node with this address starting (mining or not)."""
        if self.node_warnings is not None:
            return self.node_warnings(genesis, address, mining)
        return self.warnings(genesis)

    def seal_view(self, header: BlockHeader) -> dict[str, Any]:
        """`describe_seal`, with the engine's name; a seal it cannot read gives `{"engine", "error"}`."""
        try:
            return {"engine": self.name, **self.describe_seal(header)}
        except (RejectError, ValueError, KeyError) as exc:
            return {"engine": self.name, "error": str(exc)}

    def all_parameters(self) -> dict[str, ParamSpec]:
        """Chain-level parameters and the engine's own."""
        return {**CHAIN_PARAMETERS, **self.parameters}


