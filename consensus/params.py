"""Reading an engine's genesis parameters through its own table (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chain.genesis import CHAIN_PARAMETERS, Genesis, GenesisError, ParamSpec, coerce_param


def positive(value: float) -> str | None:
    """A `ParamSpec.check` for parameters that must be above zero (timeouts, intervals)."""
    return None if value > 0 else "must be greater than 0"


def check_engine_params(genesis: Genesis, specs: Mapping[str, ParamSpec]) -> None:
    """GenesisError unless every parameter of `genesis` is a chain-level one or one of the engine's `specs`,
    with a value those tables accept."""
    for key, value in genesis.params.items():
        if key in CHAIN_PARAMETERS:
            continue
        if key not in specs:
            known = ", ".join(sorted([*CHAIN_PARAMETERS, *specs]))
            raise GenesisError(f"unknown genesis parameter {key!r} for consensus {genesis.consensus!r} "
                               f"(known: {known})")
        coerce_param(key, value, specs)


def engine_param(genesis: Genesis, specs: Mapping[str, ParamSpec], name: str) -> Any:
    """Parameter `name` of the engine's `specs` (its default when genesis does not set it), coerced to its type."""
    if name not in specs:
        raise KeyError(f"{name!r} is not a parameter of this engine")
    if name not in genesis.params:
        return specs[name].default
    return coerce_param(name, genesis.params[name], specs)
