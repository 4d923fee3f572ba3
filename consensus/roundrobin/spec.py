"""Round-robin's registration (consensus/registry.py): the contract's reference engine."""

from __future__ import annotations

from collections.abc import Collection

from chain.genesis import Genesis, GenesisError
from consensus.roundrobin.engine import RoundRobinEngine, RoundRobinPolicy, validators_of
from consensus.spec import EngineSpec


def _check(genesis: Genesis) -> None:
    if not genesis.validators:
        raise GenesisError("a round-robin genesis needs validators")


def _has_quorum(genesis: Genesis, group: Collection[bytes]) -> bool:
    validators = validators_of(genesis)
    return len(set(group) & set(validators)) > len(validators) // 2


ROUND_ROBIN = EngineSpec(
    name="round-robin",
    summary="the contract's reference engine: rotating proposer, validate before connect, durable acknowledgements "
            "to the proposer, commit by hash at a majority (no view change: a stopped proposer stalls)",
    parameters={},
    build=RoundRobinEngine,
    policy=RoundRobinPolicy,
    check=_check,
    has_quorum=_has_quorum,
)
