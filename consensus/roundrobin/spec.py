"""Round-robin's registration (consensus/registry.py): the contract's reference engine."""

from __future__ import annotations

from chain.genesis import Genesis, GenesisError
from consensus.roundrobin.engine import RoundRobinEngine, RoundRobinPolicy
from consensus.signed_seal import describe_signed_seal
from consensus.spec import EngineSpec, majority_of_validators


def _check(genesis: Genesis) -> None:
    if not genesis.validators:
        raise GenesisError("a round-robin genesis needs validators")


ROUND_ROBIN = EngineSpec(
    describe_seal=describe_signed_seal,
    name="round-robin",
    summary="the contract's reference engine: rotating proposer, validate before connect, durable acknowledgements "
            "to the proposer, commit by hash at a majority (no view change: a stopped proposer stalls)",
    parameters={},
    build=RoundRobinEngine,
    policy=RoundRobinPolicy,
    check=_check,
    has_quorum=majority_of_validators,
)
