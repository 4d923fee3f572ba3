"""Raft's registration (consensus/registry.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chain.genesis import Genesis
from consensus.params import engine_param
from consensus.raft.engine import ADMIN_ACTIONS, RAFT_PARAMETERS, RaftEngine, RaftPolicy, check_raft_genesis
from consensus.raft.seal import describe_raft_seal, seal_term
from consensus.spec import EngineSpec, StatusMetric, majority_of_validators


def _detection_delay(genesis: Genesis) -> float:
    """A dead leader is noticed within 2T, and a new one needs a pre-vote and a vote round on top."""
    return 3 * float(engine_param(genesis, RAFT_PARAMETERS, "election_timeout_s"))


def _testnet_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    # One block a second: a Raft block is final as soon as a majority has it, so short intervals cost nothing in
    # finality and make a testnet's faults visible quickly. Empty blocks as often as blocks: a testnet without load
    # still grows, so height waits and the liveness check see the leader at work (the 5 s default would hide it).
    interval = float(params.get("block_interval_s", 1.0))
    return {"block_interval_s": interval, "max_empty_interval_s": interval}


def _cell(engine: Mapping[str, Any]) -> str:
    role = str(engine.get("role", "?"))
    return f"{role} t{engine.get('term', '?')}"


RAFT = EngineSpec(
    describe_seal=describe_raft_seal,
    name="raft",
    summary="Raft (PreVote, CheckQuorum): the leader's blocks are final once a majority has them on disk; the "
            "minority side of a partition refuses writes and linearizable reads",
    parameters=RAFT_PARAMETERS,
    build=RaftEngine,
    policy=RaftPolicy,
    check=check_raft_genesis,
    has_quorum=majority_of_validators,  # a majority of the genesis membership elects a leader and commits
    detection_delay_s=_detection_delay,
    testnet_defaults=_testnet_defaults,
    status_column="RAFT",
    status_cell=_cell,
    admin_actions=ADMIN_ACTIONS,
    volatile_commit_index=True,
    bench_block_interval_s=0.01,
    block_term=seal_term,
    linearizable_reads=True,
    metrics=(
        StatusMetric(name="chainlab_raft_term", help="Raft term this node is in", status_field="term"),
        StatusMetric(name="chainlab_raft_leader_changes", help="Leaders this node has seen take over (itself "
                     "included) since it started", status_field="leader_changes", kind="counter"),
        StatusMetric(name="chainlab_raft_commit_lag", help="Log entries (blocks) this node holds beyond the commit "
                     "index", status_field="commit_lag"),
    ),
)
