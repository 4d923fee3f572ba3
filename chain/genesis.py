"""Genesis: the TOML document that defines a network, and the genesis block derived from it.

```toml
chain_id = "chainlab-dev"
consensus = "pow"
timestamp_ms = 0
finality_threshold = 6
block_reward = 50

[params]                 # engine parameters; unknown keys are an error
block_interval_s = 10.0

[balances]               # text address -> initial balance
"cl..." = 1000000

[validators]             # text address -> weight (PoW: declared hash rate; primary-backup: the primary's key)
"cl..." = 1
```

The genesis hash (SHA-256 of the canonical encoding of every field) names the network; the genesis block has
height 0, the genesis hash as its parent, no transactions and the commitment of the initial balances, so its own
hash commits to every parameter too.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from chain import crypto
from chain.block import Block, make_block
from chain.encoding import TAG_GENESIS, U64_MAX, check_text, pack
from chain.state import State
from chain.tx import MAX_CHAIN_ID_CHARS

MAX_ENGINE_NAME_CHARS = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One genesis parameter: its type, default, meaning, and a check naming what is wrong with a value (or
    None). Chain-level parameters are below; each engine declares its own (consensus/registry.py)."""

    kind: type
    default: Any
    meaning: str
    check: Callable[[Any], str | None] | None = None


def _at_least(floor: int, why: str) -> Callable[[Any], str | None]:
    return lambda value: f"must be at least {floor} ({why})" if value < floor else None


# Parameters every network has, whatever its engine. One table, so `genesis new --param` can reject typos and
# docs/FORMATS.md can list them.
CHAIN_PARAMETERS: dict[str, ParamSpec] = {
    "block_interval_s": ParamSpec(kind=float, default=10.0, meaning="target seconds between blocks"),
    "max_future_block_ms": ParamSpec(kind=int, default=15_000, meaning="a block timestamp further ahead of local "
                                     "time is rejected (time-too-new)"),
    "max_block_txs": ParamSpec(kind=int, default=5_000, meaning="transactions per block"),
    "max_block_bytes": ParamSpec(kind=int, default=2_000_000, meaning="encoded bytes per block",
                                 check=_at_least(8192, "a header with its seal, and room for transactions")),
    "min_fee": ParamSpec(kind=int, default=1, meaning="smallest fee the mempool relays"),
}
TOP_LEVEL = {"chain_id": str, "consensus": str, "timestamp_ms": int, "finality_threshold": int, "block_reward": int}


class GenesisError(ValueError):
    """A genesis document that is malformed or inconsistent; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Genesis:
    """A parsed, checked genesis."""

    chain_id: str
    consensus: str
    timestamp_ms: int = 0
    finality_threshold: int = 6
    block_reward: int = 50
    params: Mapping[str, Any] = field(default_factory=dict)
    balances: Mapping[bytes, int] = field(default_factory=dict)
    validators: Mapping[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            check_text(self.chain_id, "chain_id", min_size=1, max_size=MAX_CHAIN_ID_CHARS)
        except ValueError as exc:
            raise GenesisError(str(exc)) from exc
        if type(self.consensus) is not str or not 0 < len(self.consensus) <= MAX_ENGINE_NAME_CHARS:
            raise GenesisError(f"consensus must name an engine (1..{MAX_ENGINE_NAME_CHARS} characters)")
        for name in ("timestamp_ms", "finality_threshold", "block_reward"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= U64_MAX:
                raise GenesisError(f"{name} must be a non-negative integer")
        if self.finality_threshold < 1:
            raise GenesisError("finality_threshold must be at least 1")
        params = dict(self.params)
        for key, value in params.items():
            if key in CHAIN_PARAMETERS:
                params[key] = coerce_param(key, value, CHAIN_PARAMETERS)
            elif type(key) is not str or type(value) not in (bool, int, float, str):
                raise GenesisError(f"parameter {key!r} must be a name with a boolean, number or string value")
        object.__setattr__(self, "params", MappingProxyType(params))
        for label, table in (("balances", self.balances), ("validators", self.validators)):
            for address, amount in table.items():
                if type(address) is not bytes or len(address) != crypto.ADDRESS_BYTES:
                    raise GenesisError(f"{label}: addresses are 20 bytes")
                if type(amount) is not int or not 0 <= amount <= U64_MAX:
                    raise GenesisError(f"{label}: amounts are u64 integers")
        if sum(self.balances.values()) > U64_MAX:
            raise GenesisError("initial balances sum beyond u64")
        object.__setattr__(self, "balances", MappingProxyType(dict(self.balances)))
        object.__setattr__(self, "validators", MappingProxyType(dict(self.validators)))

    def param(self, name: str) -> Any:
        """A chain-level parameter (or its default), or an engine parameter this genesis sets. Engine parameters
        with their defaults are read through the engine's own table (consensus.registry: `EngineSpec.param`)."""
        if name in CHAIN_PARAMETERS:
            return self.params.get(name, CHAIN_PARAMETERS[name].default)
        if name in self.params:
            return self.params[name]
        raise KeyError(f"{name!r} is not a chain-level genesis parameter, and this genesis does not set it")

    def encode(self) -> bytes:
        """Canonical encoding of every field (sorted maps), the preimage of the genesis hash."""
        return pack(TAG_GENESIS, 1, [
            self.chain_id, self.consensus, self.timestamp_ms, self.finality_threshold, self.block_reward,
            sorted([k, v] for k, v in self.params.items()),
            sorted([a, v] for a, v in self.balances.items()),
            sorted([a, v] for a, v in self.validators.items()),
        ])

    @property
    def hash(self) -> bytes:
        """The network's identity."""
        return crypto.sha256(self.encode())

    def initial_state(self) -> State:
        """The state before block 1."""
        return State.from_balances(self.balances)

    def block(self) -> Block:
        """The genesis block (height 0)."""
        return make_block(
            parent=None, parent_hash=self.hash, height=0, timestamp_ms=self.timestamp_ms, txs=(),
            state_root=self.initial_state().commitment, proposer=bytes(crypto.ADDRESS_BYTES),
        )

    def to_toml(self) -> str:
        """The TOML text of this genesis (parses back to an equal Genesis)."""
        lines = [
            f"chain_id = {_toml_value(self.chain_id)}",
            f"consensus = {_toml_value(self.consensus)}",
            f"timestamp_ms = {self.timestamp_ms}",
            f"finality_threshold = {self.finality_threshold}",
            f"block_reward = {self.block_reward}",
            "",
            "[params]",
            *(f"{key} = {_toml_value(value)}" for key, value in sorted(self.params.items())),
            "",
            "[balances]",
            *(f'"{crypto.address_to_text(a)}" = {v}' for a, v in sorted(self.balances.items())),
            "",
            "[validators]",
            *(f'"{crypto.address_to_text(a)}" = {v}' for a, v in sorted(self.validators.items())),
        ]
        return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def coerce_param(key: str, value: object, specs: Mapping[str, ParamSpec]) -> Any:
    """`value` as parameter `key` of `specs` demands (an int where a float is due becomes a float); GenesisError
    naming the problem otherwise."""
    if key not in specs:
        raise GenesisError(f"unknown genesis parameter {key!r} (known: {', '.join(sorted(specs))})")
    spec = specs[key]
    kind = spec.kind
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise GenesisError(f"parameter {key} must be {kind.__name__}, got {value!r}")
    if kind is float and (not math.isfinite(value) or value < 0):  # type: ignore[arg-type,operator]
        raise GenesisError(f"parameter {key} must be a finite non-negative number")
    if kind is int and not 0 <= value <= U64_MAX:  # type: ignore[operator,unused-ignore]
        raise GenesisError(f"parameter {key} must be a u64 integer")
    problem = spec.check(value) if spec.check is not None else None
    if problem is not None:
        raise GenesisError(f"parameter {key} {problem}")
    return value


def parse_param_value(key: str, text: str, specs: Mapping[str, ParamSpec]) -> Any:
    """Parse a `--param KEY=VALUE` value by the parameter's (from `specs`) or top-level field's type."""
    kind = specs[key].kind if key in specs else TOP_LEVEL.get(key)
    if kind is None:
        raise GenesisError(
            f"unknown genesis parameter {key!r} (known: {', '.join(sorted([*TOP_LEVEL, *specs]))})"
        )
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise GenesisError(f"parameter {key} must be true or false, got {text!r}")
        return text.lower() == "true"
    try:
        return kind(text) if kind is not str else text
    except ValueError as exc:
        raise GenesisError(f"parameter {key} must be {kind.__name__}, got {text!r}") from exc


def parse_genesis(text: str) -> Genesis:
    """Parse and check genesis TOML; raise GenesisError naming what is wrong."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GenesisError(f"not valid TOML: {exc}") from exc
    known = {*TOP_LEVEL, "params", "balances", "validators"}
    unknown = set(doc) - known
    if unknown:
        raise GenesisError(f"unknown genesis field(s): {', '.join(sorted(unknown))}")
    for key in ("chain_id", "consensus"):
        if key not in doc:
            raise GenesisError(f"missing required field {key!r}")
    for name, kind in TOP_LEVEL.items():
        if name in doc and type(doc[name]) is not kind:
            raise GenesisError(f"{name} must be {kind.__name__}")
    tables = {}
    for name in ("params", "balances", "validators"):
        table = doc.get(name, {})
        if not isinstance(table, dict):
            raise GenesisError(f"{name} must be a table")
        tables[name] = table

    def addresses(name: str) -> dict[bytes, int]:
        out = {}
        for text_address, amount in tables[name].items():
            try:
                address = crypto.address_from_text(text_address)
            except crypto.AddressError as exc:
                raise GenesisError(f"{name}: {text_address!r}: {exc}") from exc
            out[address] = amount
        return out

    return Genesis(
        chain_id=doc["chain_id"], consensus=doc["consensus"],
        timestamp_ms=doc.get("timestamp_ms", 0), finality_threshold=doc.get("finality_threshold", 6),
        block_reward=doc.get("block_reward", 50), params=tables["params"],
        balances=addresses("balances"), validators=addresses("validators"),
    )
