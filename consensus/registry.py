"""Every engine registers here, once: name, parameters, chain policy, factory, typed status and the few facts
the toolkit needs about it (consensus/spec.py). Nothing outside consensus/ compares an engine's name; it asks the
engine's `EngineSpec`.
"""

from __future__ import annotations

from typing import Any

from chain import crypto
from chain.blocktree import ChainPolicy
from chain.genesis import CHAIN_PARAMETERS, Genesis, GenesisError, ParamSpec
from consensus.engine import Engine, EngineContext
from consensus.params import check_engine_params
from consensus.pbft.spec import PBFT
from consensus.pow.spec import POW
from consensus.primary_backup.spec import PRIMARY_BACKUP
from consensus.raft.spec import RAFT
from consensus.roundrobin.spec import ROUND_ROBIN
from consensus.spec import EngineSpec

__all__ = ["EngineSpec", "UnknownEngineError", "all_parameters", "chain_policy", "check_genesis", "engine_for",
           "engine_names", "spec_named", "spec_of"]


class UnknownEngineError(GenesisError):
    """Genesis names an engine this build does not have."""


# The one list of engines of this build (a new engine adds its spec here).
_SPECS: dict[str, EngineSpec] = {spec.name: spec for spec in (POW, PRIMARY_BACKUP, ROUND_ROBIN, RAFT, PBFT)}


def register(spec: EngineSpec) -> EngineSpec:
    """Add an engine at run time (tests plug in engines of their own); a different engine of a taken name is a
    bug."""
    if spec.name in _SPECS and _SPECS[spec.name] is not spec:
        raise AssertionError(f"engine {spec.name!r} registered twice")
    _SPECS[spec.name] = spec
    return spec


def engine_names() -> list[str]:
    """Every engine this build has, in registration order."""
    return list(_SPECS)


def spec_named(name: str) -> EngineSpec:
    """The engine called `name`; UnknownEngineError otherwise."""
    spec = _SPECS.get(name)
    if spec is None:
        raise UnknownEngineError(f"consensus must be one of {', '.join(_SPECS)}, got {name!r}")
    return spec


def spec_of(genesis: Genesis) -> EngineSpec:
    """The engine `genesis` names."""
    return spec_named(genesis.consensus)


def check_genesis(genesis: Genesis) -> EngineSpec:
    """GenesisError unless `genesis` names an engine of this build with parameters it accepts; its spec."""
    spec = spec_of(genesis)
    check_engine_params(genesis, spec.parameters)
    spec.check(genesis)
    return spec


def all_parameters() -> dict[str, ParamSpec]:
    """Chain-level parameters and every engine's (what `genesis new --help` lists)."""
    merged = dict(CHAIN_PARAMETERS)
    for name in engine_names():
        merged.update(_SPECS[name].parameters)
    return merged


def chain_policy(genesis: Genesis) -> ChainPolicy:
    """The header rules, fork choice and finality of `genesis`'s engine."""
    return check_genesis(genesis).policy(genesis)


def engine_for(genesis: Genesis, key: crypto.PrivateKey | None, *, rng: Any, proposing_allowed: bool = True,
               ) -> Engine:
    """The engine of `genesis` for a node holding `key`, with its injected `random.Random`."""
    spec = check_genesis(genesis)
    return spec.build(EngineContext(genesis=genesis, key=key, rng=rng, proposing_allowed=proposing_allowed))
