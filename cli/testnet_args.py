"""Option parsing shared by `chainlab testnet` commands (up, render): user-facing errors as one line, hash-rate
shares, genesis parameters and funded wallets."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from chain import crypto
from chain.genesis import GenesisError, parse_param_value
from cli.common import fail
from cli.genesis import parse_u64
from cli.keystore import KeystoreError
from cli.wallet import AccountError, open_keystore, resolve_account
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


def funds(entries: tuple[str, ...]) -> dict[bytes, int]:
    """--fund WALLET_OR_ADDRESS=AMOUNT entries (a wallet of `$CHAINLAB_WALLET_DIR` or the default directory, or an
    address) as genesis balances; one line for a bad entry, before anything is made."""
    keystore = open_keystore(None)
    table: dict[bytes, int] = {}
    for entry in entries:
        who, sep, amount_text = entry.partition("=")
        if not sep or not who.strip():
            raise TestnetError(f"--fund {entry!r}: use WALLET_OR_ADDRESS=AMOUNT, e.g. --fund alice=1000000")
        try:
            address = resolve_account(who.strip(), keystore)
        except (AccountError, KeystoreError) as exc:
            raise TestnetError(f"--fund {who.strip()}: {exc}") from None
        amount = parse_u64(amount_text, f"--fund {who.strip()}: the amount")
        if address in table:
            raise TestnetError(f"--fund: {crypto.address_to_text(address)} is given twice")
        table[address] = amount
    return table
