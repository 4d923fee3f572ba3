"""PBFT's registration (consensus/registry.py)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from chain import crypto
from chain.block import BlockHeader
from chain.errors import DecodeError, RejectError
from chain.genesis import Genesis
from consensus.params import engine_param
from consensus.pbft.byzantine import BANNED, BEHAVIOURS
from consensus.pbft.engine import (
    PBFT_PARAMETERS,
    PbftEngine,
    PbftPolicy,
    check_pbft_genesis,
    pbft_warnings,
    validator_set,
)
from consensus.pbft.quorum import check_commit_cert
from consensus.pbft.seal import decode_pbft_seal, describe_pbft_seal
from consensus.spec import EngineSpec, FinalityProof, StatusMetric


def _has_quorum(genesis: Genesis, group: Collection[bytes]) -> bool:
    """A quorum (2f+1 of 3f+1) of the validators can commit; fewer cannot."""
    validators = validator_set(genesis)
    return len(set(group) & set(validators.addresses)) >= validators.quorum


def _detection_delay(genesis: Genesis) -> float:
    """A silent primary is noticed after the view-change timeout, and the new view needs a round on top."""
    return 2 * float(engine_param(genesis, PBFT_PARAMETERS, "view_change_timeout_s"))


def _testnet_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    # A block a second, a view change after 3 s without a commit: faults show within seconds.
    interval = float(params.get("block_interval_s", 1.0))
    return {"block_interval_s": interval, "view_change_timeout_s": max(3.0, 3 * interval)}


def _cell(engine: Mapping[str, Any]) -> str:
    role = str(engine.get("role", "?"))
    cell = f"{role} v{engine.get('view', '?')}" + (" vc" if engine.get("view_changing") else "")
    return cell + (f" byz:{engine['byzantine']}" if engine.get("byzantine") else "")


def _parent_certificate(genesis: Genesis, header: BlockHeader) -> FinalityProof | None:
    """The commit certificate of the block's parent that its seal carries, checked against genesis."""
    try:
        cert = decode_pbft_seal(header.seal).cert()
    except DecodeError as exc:
        return FinalityProof(height=header.height - 1, block_hash=header.parent, view=0, signers=(),
                             error=f"unreadable seal: {exc}")
    if cert is None:
        return None
    error = None
    try:
        check_commit_cert(cert, validator_set(genesis), genesis.hash)
        if cert.digest != header.parent or cert.seq != header.height - 1:
            error = "the certificate names another block than the parent"
    except RejectError as exc:
        error = f"{exc.code}: {exc.message}"
    return FinalityProof(height=cert.seq, block_hash=cert.digest, view=cert.view,
                         signers=tuple(sorted(crypto.address_of(signer) for signer, _ in cert.signatures)),
                         error=error)


PBFT = EngineSpec(
    describe_seal=describe_pbft_seal,
    name="pbft",
    summary="PBFT (Castro-Liskov): n = 3f+1 validators commit a block with 2f+1 signed commits, whatever f of "
            "them do; checkpoints, watermarks and view changes; each block carries its parent's finality proof",
    parameters=PBFT_PARAMETERS,
    build=PbftEngine,
    policy=PbftPolicy,
    check=check_pbft_genesis,
    warnings=pbft_warnings,
    has_quorum=_has_quorum,
    detection_delay_s=_detection_delay,
    testnet_defaults=_testnet_defaults,
    status_column="PBFT",
    status_cell=_cell,
    block_term=None,
    admin_actions=("byzantine",),
    byzantine_behaviours=BEHAVIOURS,
    byzantine_banned=BANNED,
    parent_certificate=_parent_certificate,
    # One height is in flight at a time and the primary proposes at most once per interval after the last commit,
    # so the interval is idle time added to every round (pre-prepare, prepare, commit: three message delays and
    # two synced vote writes, ~25-35 ms on two cores), and it sets how many of the closed-loop clients' transfers
    # each block gathers. Measured on 4 nodes and 64 clients (docs/PERFORMANCE.md, "PBFT"): 0.1 s caps the rate
    # near 500/s; 10 ms gives ~1,000/s in blocks of ~30 transfers; 20 ms gives 1,100-1,300/s in blocks of ~60 at
    # a lower p50 (fewer rounds, each carrying more); 50 ms is back under 1,000/s.
    bench_block_interval_s=0.02,
    metrics=(
        StatusMetric(name="chainlab_pbft_view", help="PBFT view this node is in (or moving to)", status_field="view"),
        StatusMetric(name="chainlab_pbft_view_changes", help="Views this node has moved to since it started",
                     status_field="view_changes", kind="counter"),
        StatusMetric(name="chainlab_pbft_stable_checkpoint", help="Height of the last stable checkpoint (the low "
                     "watermark)", status_field="stable_checkpoint"),
    ),
)


