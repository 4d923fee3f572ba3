"""Primary-backup's registration (consensus/registry.py)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from chain import crypto
from chain.genesis import Genesis
from consensus.primary_backup.engine import PrimaryBackupEngine
from consensus.primary_backup.policy import (
    PB_PARAMETERS,
    PrimaryBackupPolicy,
    check_primary_backup_genesis,
    majority_of_backups,
    primary_address,
    zero_acks_warning,
)
from consensus.signed_seal import describe_signed_seal
from consensus.spec import EngineSpec


def _has_quorum(genesis: Genesis, group: Collection[bytes]) -> bool:
    """Blocks come while the primary runs (no fail-over)."""
    return primary_address(genesis) in group


def _testnet_network(addresses: Sequence[bytes], shares: Sequence[float], total_hps: float,
                     params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[bytes, int]]:
    """Every node a validator, the first the primary; unless given, a majority of the backups must acknowledge a
    block before it is final (as in the simulator), so a primary cut off alone finalizes nothing."""
    out = dict(params)
    if not out.get("primary"):
        out["primary"] = crypto.address_to_text(addresses[0])
    out.setdefault("acks_required", majority_of_backups(len(addresses) - 1))
    return out, {address: 1 for address in addresses}


def _simulation_network(addresses: Sequence[bytes], shares: Sequence[float], knobs: Mapping[str, Any],
                        ) -> tuple[dict[str, Any], dict[bytes, int]]:
    params = {"block_interval_s": float(knobs["block_interval_s"]), "primary": crypto.address_to_text(addresses[0]),
              "acks_required": int(knobs["acks_required"])}
    return params, {address: 1 for address in addresses}


PRIMARY_BACKUP = EngineSpec(
    describe_seal=describe_signed_seal,
    name="primary-backup",
    summary="one signing primary; backups acknowledge durable blocks; acknowledgements commit; no fail-over",
    parameters=PB_PARAMETERS,
    build=PrimaryBackupEngine,
    policy=PrimaryBackupPolicy,
    check=check_primary_backup_genesis,
    has_quorum=_has_quorum,
    warnings=lambda genesis: [w for w in (zero_acks_warning(genesis),) if w],
    testnet_network=_testnet_network,
    simulation_network=_simulation_network,
)
