"""`chainlab genesis`: write a network's genesis TOML from options, and summarise an existing one."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
from pathlib import Path
from typing import Any

import click

from chain import crypto
from chain.encoding import U64_MAX
from chain.genesis import (
    TOP_LEVEL,
    Genesis,
    GenesisError,
    parse_genesis,
    parse_param_value,
)
from cli.common import emit_json, fail
from cli.keystore import Keystore
from cli.wallet import open_keystore, resolve_account, user_errors, wallet_dir_option
from consensus.registry import all_parameters, check_genesis, engine_names, spec_of
from consensus.spec import EngineSpec

DEFAULT_CHAIN_ID = "chainlab-dev"
_MAX_GENESIS_BYTES = 16 * 1024 * 1024
_INTEGER = re.compile(r"[0-9]+(_[0-9]+)*")
# Top-level fields that --param may set; `consensus` has its own required option.
_TOP_LEVEL_PARAMS = tuple(name for name in TOP_LEVEL if name != "consensus")


def parse_u64(text: str, what: str) -> int:
    """A non-negative decimal integer (underscores allowed between digits) that fits in u64."""
    cleaned = text.strip()
    if not _INTEGER.fullmatch(cleaned):
        raise GenesisError(f"{what} must be a non-negative integer, got {text!r}")
    value = int(cleaned)
    if value > U64_MAX:
        raise GenesisError(f"{what} {value} does not fit in u64")
    return value


def _split(text: str, option: str, form: str, *, value_required: bool = True) -> tuple[str, str | None]:
    key, sep, value = text.partition("=")
    if not key.strip() or (value_required and not sep):
        raise GenesisError(f"{option} {text!r}: expected {form}")
    return key.strip(), (value if sep else None)


def _accounts(
    entries: tuple[str, ...], option: str, keystore: Keystore, *, default: int | None
) -> dict[bytes, int]:
    """Parse repeated `WALLET_OR_ADDRESS=AMOUNT` options; a repeated account is an error."""
    table: dict[bytes, int] = {}
    for entry in entries:
        form = "WALLET_OR_ADDRESS=AMOUNT" if default is None else "WALLET_OR_ADDRESS[=WEIGHT]"
        who, amount_text = _split(entry, option, form, value_required=default is None)
        address = resolve_account(who, keystore)
        what = f"{option} {who}: {'amount' if default is None else 'weight'}"
        amount = default if amount_text is None else parse_u64(amount_text, what)
        assert amount is not None  # value_required guarantees a text when there is no default
        if address in table:
            raise GenesisError(f"{option}: {crypto.address_to_text(address)} is given twice")
        table[address] = amount
    return table


def _params(entries: tuple[str, ...], chain_id: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split `--param KEY=VALUE` options into top-level fields and engine parameters, typed."""
    top: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for entry in entries:
        key, value_text = _split(entry, "--param", "KEY=VALUE")
        assert value_text is not None
        if key == "consensus":
            raise GenesisError("--param consensus: choose the engine with --consensus")
        target = top if key in _TOP_LEVEL_PARAMS else params
        if key in target:
            raise GenesisError(f"--param {key} is given twice")
        # GenesisError names an unknown key or a bad value; the engine's own table judges its keys later.
        target[key] = parse_param_value(key, value_text, all_parameters())
    if chain_id is not None:
        if top.get("chain_id", chain_id) != chain_id:
            raise GenesisError("--chain-id and --param chain_id disagree")
        top["chain_id"] = chain_id
    top.setdefault("chain_id", DEFAULT_CHAIN_ID)
    return top, params


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def load_genesis_file(path: Path) -> Genesis:
    """Read and parse a genesis file; on any problem print a one-line error and exit 1."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_GENESIS_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read genesis file {path}: {exc.strerror or exc}")
    if len(raw) > _MAX_GENESIS_BYTES:
        fail(f"{path}: larger than {_MAX_GENESIS_BYTES} bytes; not a genesis file")
    try:
        genesis = parse_genesis(raw.decode("utf-8"))
        check_genesis(genesis)
        return genesis
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text")
    except GenesisError as exc:
        fail(f"{path}: invalid genesis: {exc}")
    except TypeError as exc:
        # parse_genesis sums [balances] before checking their types, so a text balance ends as a TypeError
        # (reported to chain/ owners); still the file's fault, so still one line.
        fail(f"{path}: invalid genesis: {exc}")


_TOP_LEVEL_MEANINGS = {
    "chain_id": "network name, signed into every transaction (same as --chain-id)",
    "timestamp_ms": "genesis block time, ms since the Unix epoch",
    "finality_threshold": "PoW confirmations that make a block final",
    "block_reward": "coins minted for the proposer of each block",
}


def _top_level_default(name: str) -> object:
    if name == "chain_id":
        return DEFAULT_CHAIN_ID
    return next(f.default for f in dataclasses.fields(Genesis) if f.name == name)


class _GenesisNewCommand(click.Command):
    """`genesis new` lists every --param key after its options, from the chain's and every engine's tables."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(f"{name} ({spec.kind.__name__})", f"{spec.meaning} [default: {spec.default}]")
                for name, spec in sorted(all_parameters().items())]
        rows += [(f"{name} ({TOP_LEVEL[name].__name__})",
                  f"{_TOP_LEVEL_MEANINGS.get(name, 'top-level field')} [default: {_top_level_default(name)}]")
                 for name in _TOP_LEVEL_PARAMS]
        with formatter.section("Parameters (--param KEY=VALUE)"):
            formatter.write_dl(rows)


@click.group(name="genesis")
def command() -> None:
    """Define a network: write its genesis file, or summarise one.

    The genesis (TOML) fixes the chain id, the consensus engine and its parameters, the initial balances and
    the validator or miner set; its hash is the network's identity.
    """


@command.command(name="new", cls=_GenesisNewCommand)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Genesis file to write.")
@click.option("--consensus", required=True, type=click.Choice(engine_names()),
              help="Consensus engine of the network.")
@click.option("--chain-id", default=None, metavar="ID", help=f"Chain id [default: {DEFAULT_CHAIN_ID}].")
@click.option("--fund", multiple=True, metavar="WALLET_OR_ADDRESS=AMOUNT",
              help="Initial balance of an account (a wallet name or a cl... address). Repeatable.")
@click.option("--validator", multiple=True, metavar="WALLET_OR_ADDRESS[=WEIGHT]",
              help="Validator or miner with its weight (default 1): PoW declared hash rate, primary-backup "
                   "primary. Repeatable.")
@click.option("--param", multiple=True, metavar="KEY=VALUE",
              help="An engine parameter or chain_id, timestamp_ms, finality_threshold, block_reward "
                   "(all listed below). Repeatable.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {path, hash, chain_id, consensus}.")
def new_genesis(
    out: Path, consensus: str, chain_id: str | None, fund: tuple[str, ...], validator: tuple[str, ...],
    param: tuple[str, ...], force: bool, wallet_dir: Path | None, as_json: bool,
) -> None:
    """Write a genesis file and print its hash.

    \b
    Example:
      chainlab genesis new --out genesis.toml --consensus pow \\
          --fund alice=1000000 --fund cl0123...=500 --validator alice \\
          --param block_interval_s=2 --param finality_threshold=3
    """
    keystore = open_keystore(wallet_dir)
    if out.exists() and not force:
        fail(f"{out} already exists; pass --force to overwrite it")
    try:
        with user_errors():
            top, params = _params(param, chain_id)
            genesis = Genesis(
                consensus=consensus, params=params,
                balances=_accounts(fund, "--fund", keystore, default=None),
                validators=_accounts(validator, "--validator", keystore, default=1),
                **top,
            )
            spec = check_genesis(genesis)
            genesis, measured = _with_machine_defaults(genesis, spec)
    except GenesisError as exc:
        fail(str(exc))
    warnings = spec.warnings(genesis)  # before writing: nothing after the write may fail
    text = genesis.to_toml()
    assert parse_genesis(text).hash == genesis.hash, "genesis TOML does not round-trip"
    try:
        _write_atomically(out, text)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    if as_json:
        emit_json({"path": str(out), "hash": genesis.hash.hex(), "chain_id": genesis.chain_id,
                   "consensus": genesis.consensus, "warnings": warnings, "measured": measured})
        return
    click.echo(f"wrote {out} (chain {genesis.chain_id}, consensus {genesis.consensus})", err=True)
    if measured:
        click.echo(f"note: {measured}", err=True)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(genesis.hash.hex())




MEASURE_S = 0.3  # how long `genesis new` grinds to learn this machine's sealing rate


def _with_machine_defaults(genesis: Genesis, spec: EngineSpec) -> tuple[Genesis, str]:
    """The genesis with the parameters its engine derives from this machine (unless given), and a note saying
    what was measured ("" when nothing was)."""
    if spec.machine_defaults is None:
        return genesis, ""
    from node.mining import measure_hashes

    process_hps = measure_hashes(MEASURE_S) / MEASURE_S
    derived = spec.machine_defaults(genesis.params, len(genesis.validators), process_hps)
    if not derived:
        return genesis, ""
    updated = dataclasses.replace(genesis, params={**genesis.params, **derived})
    check_genesis(updated)
    settings = ", ".join(f"{key}={value}" for key, value in sorted(derived.items()))
    return updated, (f"one mining process here does {process_hps:,.0f} H/s; set {settings} for "
                     f"{max(1, len(genesis.validators))} miner(s) (give --param to choose yourself)")


def summary(genesis: Genesis, path: Path) -> dict[str, Any]:
    """JSON view of a genesis with every parameter of its engine (defaults filled in)."""
    spec = spec_of(genesis)
    names = sorted(spec.all_parameters())
    return {
        "path": str(path),
        "hash": genesis.hash.hex(),
        "block_hash": genesis.block().hash.hex(),
        "chain_id": genesis.chain_id,
        "consensus": genesis.consensus,
        "timestamp_ms": genesis.timestamp_ms,
        "finality_threshold": genesis.finality_threshold,
        "block_reward": genesis.block_reward,
        "params": {name: genesis.params.get(name, spec.all_parameters()[name].default) for name in names},
        "defaults": [name for name in names if name not in genesis.params],
        "balances": {crypto.address_to_text(a): v for a, v in sorted(genesis.balances.items())},
        "total_supply": sum(genesis.balances.values()),
        "validators": {crypto.address_to_text(a): v for a, v in sorted(genesis.validators.items())},
        "partition_finality_risk": None,
        **spec.facts(genesis),
        "warnings": spec.warnings(genesis),
    }


@command.command(name="show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_genesis(file: Path, as_json: bool) -> None:
    """Check genesis FILE and summarise it.

    Prints the genesis hash, the hash of block 0, the engine, every parameter (defaults filled in and marked),
    the initial balances and the validators; for PoW, the chance per partition that a minority finalizes its own
    branch before its heartbeats time out, with a warning above one in a million.
    """
    view = summary(load_genesis_file(file), file)
    if as_json:
        emit_json(view)
        return
    click.echo(f"genesis:            {view['path']}")
    click.echo(f"hash:               {view['hash']}")
    click.echo(f"block 0:            {view['block_hash']}")
    for name in ("chain_id", "consensus", "timestamp_ms", "finality_threshold", "block_reward"):
        click.echo(f"{name + ':':<19} {view[name]}")
    click.echo("params:")
    for name, value in view["params"].items():
        click.echo(f"  {name:<28} {value!r}{'  (default)' if name in view['defaults'] else ''}")
    click.echo(f"balances: {len(view['balances'])} accounts, total {view['total_supply']}")
    for address, amount in view["balances"].items():
        click.echo(f"  {address}  {amount}")
    click.echo(f"validators: {len(view['validators'])}")
    for address, weight in view["validators"].items():
        click.echo(f"  {address}  {weight}")
    if view["partition_finality_risk"] is not None:
        click.echo(f"partition finality risk: {view['partition_finality_risk']:g} per partition (docs/ENGINES.md)")
    for warning in view["warnings"]:
        click.echo(f"warning: {warning}", err=True)
