"""PoW's registration (consensus/registry.py): parameters, policy, factory and what the toolkit needs to know."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from chain.genesis import CHAIN_PARAMETERS, Genesis
from consensus.pow.engine import PowEngine
from consensus.pow.params import POW_PARAMETERS, PowParams
from consensus.pow.policy import PowPolicy
from consensus.pow.seal import describe_seal
from consensus.pow.shares import partition_finality_risk, partition_risk_warning
from consensus.spec import EngineSpec


def _miners(genesis: Genesis) -> int:
    return sum(1 for weight in genesis.validators.values() if weight > 0)


def _warnings(genesis: Genesis) -> list[str]:
    """The partition-risk warning, for networks where a partition can split the miners (more than one)."""
    warning = partition_risk_warning(genesis) if _miners(genesis) > 1 else None
    return [warning] if warning else []


def _node_warnings(genesis: Genesis, address: bytes, mining: bool) -> list[str]:
    """The partition handler concerns a node that mines: a relay or wallet node has nothing to pause."""
    return _warnings(genesis) if mining and genesis.validators.get(address, 0) > 0 else []


def _has_quorum(genesis: Genesis, group: Collection[bytes]) -> bool:
    """A group mines (makes progress) while its declared hash share is above the partition threshold."""
    total = sum(genesis.validators.values()) or 1
    share = sum(genesis.validators.get(address, 0) for address in group) / total
    return share > PowParams.of(genesis).partition_threshold


def initial_target_for(total_hashrate_hps: float, block_interval_s: float) -> str:
    """Initial PoW target (64 hex digits) that yields `block_interval_s` at `total_hashrate_hps`."""
    expected_hashes = max(1.0, total_hashrate_hps * block_interval_s)
    target = min((1 << 256) - 1, int((1 << 256) / expected_hashes))
    return f"{target:064x}"


def _testnet_network(addresses: Sequence[bytes], shares: Sequence[float], total_hps: float,
                     params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[bytes, int]]:
    out = dict(params)
    interval = float(out.get("block_interval_s", 10.0))
    out.setdefault("initial_target", initial_target_for(total_hps, interval))
    total_share = sum(shares) or 1.0
    validators = {a: max(1, round(1000 * s / total_share)) for a, s in zip(addresses, shares, strict=True) if s > 0}
    return out, validators


def _machine_defaults(params: Mapping[str, Any], miners: int, process_hps: float) -> dict[str, Any]:
    # One mining process per declared miner (the node's default), each as fast as the one measured here.
    if "initial_target" in params:
        return {}
    interval = float(params.get("block_interval_s", CHAIN_PARAMETERS["block_interval_s"].default))
    return {"initial_target": initial_target_for(process_hps * max(1, miners), interval)}


MAX_TARGET_HEX = "f" * 64  # every nonce meets it: the simulator draws block times, never grinds
NEVER_RETARGET = 10**12  # blocks per retarget window: the target never moves


def _simulation_network(addresses: Sequence[bytes], shares: Sequence[float], knobs: Mapping[str, Any],
                        ) -> tuple[dict[str, Any], dict[bytes, int]]:
    params = {"block_interval_s": float(knobs["block_interval_s"]), "initial_target": MAX_TARGET_HEX,
              "retarget_window": NEVER_RETARGET, "heartbeat_interval_s": float(knobs["heartbeat_interval_s"])}
    total = sum(shares) or 1.0
    return params, {a: max(1, round(1000 * s / total)) for a, s in zip(addresses, shares, strict=True)}


def _testnet_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    # Heartbeats at a tenth of the block interval (between 0.1 s and the 1 s default): the partition handler's
    # detection window then stays far below k intervals (docs/ENGINES.md); the genesis default would make a
    # 2 s-block testnet's minority finalize its own branch about once in 1,700 partitions.
    return {"heartbeat_interval_s": min(1.0, max(0.1, float(params.get("block_interval_s", 10.0)) / 10))}


def _status_cell(engine: Mapping[str, Any]) -> str:
    share = engine.get("reachable_share")
    state = "on" if engine.get("mining") else "off"
    return f"{state} {share:.2f}" if isinstance(share, int | float) else state


POW = EngineSpec(
    describe_seal=describe_seal,
    name="pow",
    summary="proof of work: most-work fork choice, k-confirmation finality, the hash-power partition handler",
    parameters=POW_PARAMETERS,
    build=PowEngine,
    policy=PowPolicy,
    seals_with_workers=True,
    warnings=_warnings,
    node_warnings=_node_warnings,
    facts=lambda genesis: {"partition_finality_risk": float(f"{partition_finality_risk(genesis):.2g}")},
    detection_delay_s=lambda genesis: PowParams.of(genesis).detection_window_s,
    has_quorum=_has_quorum,
    testnet_network=_testnet_network,
    testnet_defaults=_testnet_defaults,
    machine_defaults=_machine_defaults,
    simulation_network=_simulation_network,
    confirmation_finality=True,
    status_column="MINING",
    status_cell=_status_cell,
    admin_actions=("mining",),
)
