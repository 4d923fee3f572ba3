"""Option parsing shared by `chainlab testnet` commands (up, render): user-facing errors as one line, hash-rate
shares and genesis parameters."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from chain.genesis import GenesisError, parse_param_value
from cli.common import fail
from consensus.registry import all_parameters
from testnet.scenario import ManifestError
from testnet.state import TestnetError
from testnet.topology import TopologyError

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn the toolkit's user-facing errors into one `error: ...` line and exit 1."""
    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except (TestnetError, ManifestError, TopologyError, GenesisError) as exc:
            fail(str(exc))

    return wrapper


def shares(text: str | None) -> list[float]:
    """--hashrate-shares S0,S1,...: the numbers (none when not given)."""
    if not text:
        return []
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise TestnetError(f"--hashrate-shares {text!r}: give numbers separated by commas, e.g. 3,1,1") from None


def genesis_params(entries: tuple[str, ...]) -> dict[str, Any]:
    """--genesis-param KEY=VALUE entries, each value typed as its parameter."""
    params: dict[str, Any] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise TestnetError(f"--genesis-param {entry!r}: use KEY=VALUE")
        params[key.strip()] = parse_param_value(key.strip(), value.strip(), all_parameters())
    return params
