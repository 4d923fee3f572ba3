"""`chainlab wallet`: create, list and inspect passphrase-protected wallets.

Also the helpers shared by every command that touches wallets (`genesis new`, `tx build`, `tx send`): the
`--wallet-dir`, `--password-file` and `--node` options, passphrase reading, resolving a wallet name or an address,
and turning keystore and node errors into one-line messages.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from chain import crypto
from cli.common import emit_json, fail
from cli.endpoint import Endpoint, EndpointConfigError, resolve_endpoint
from cli.keystore import (
    WALLET_DIR_ENV,
    Keystore,
    KeystoreError,
    Wallet,
    default_wallet_dir,
)
from node.client import RpcClient, RpcError, RpcUnavailable

PASSWORD_ENV = "CHAINLAB_PASSWORD"
NODE_ENV = "CHAINLAB_NODE"
_WALLET_DIR_KEY = "chainlab.wallet_dir"
# Text this long that starts with the address prefix is meant as an address, so a typo gets the address error.
_ADDRESS_LIKE_CHARS = 40

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class AccountError(ValueError):
    """Text that is neither a valid address nor the name of a wallet."""


def wallet_dir_option(func: F) -> F:
    """The `--wallet-dir DIR` option (overrides the `wallet` group's option and $CHAINLAB_WALLET_DIR)."""
    return click.option(
        "--wallet-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        metavar="DIR",
        help=f"Directory of wallet keystore files [default: ${WALLET_DIR_ENV} or ~/.chainlab/wallets].",
    )(func)


def password_file_option(func: F) -> F:
    """The `--password-file FILE` option: the passphrase is the file's first line."""
    return click.option(
        "--password-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        metavar="FILE",
        help=f"Read the passphrase from the first line of FILE (else ${PASSWORD_ENV}, else a prompt).",
    )(func)


def node_option(func: F) -> F:
    """The `--node URL` option: the RPC address of the node to talk to (unset: $CHAINLAB_NODE, the user config
    file, the devnet's address; see cli/endpoint.py)."""
    return click.option(
        "--node",
        "node_url",
        default=None,
        metavar="URL",
        help=f"RPC URL of the node, e.g. http://127.0.0.1:8545 [default: ${NODE_ENV}, else `node` in "
        "~/.config/chainlab/config.toml, else the devnet's http://127.0.0.1:8645].",
    )(func)


def resolve_node(node_url: str | None, admin_token: str | None = None, *, want_token: bool = False) -> Endpoint:
    """The endpoint for `--node` (resolved as cli/endpoint.py says); a malformed URL or config file is a one-line
    error."""
    try:
        return resolve_endpoint(node_url, admin_token, want_token=want_token)
    except EndpointConfigError as exc:
        fail(f"user config: {exc}")
    except ValueError as exc:
        fail(f"--node: {exc}")


def node_client(node_url: str | None, admin_token: str | None = None, *, want_token: bool = False) -> RpcClient:
    """An RpcClient for `--node` (resolved as cli/endpoint.py says); a malformed URL is a one-line error."""
    endpoint = resolve_node(node_url, admin_token, want_token=want_token)
    try:
        return RpcClient(endpoint.url, admin_token=endpoint.admin_token)
    except ValueError as exc:
        fail(f"--node: {exc}")


@contextlib.contextmanager
def node_errors(action: str) -> Iterator[None]:
    """Turn RPC failures inside the block into `error: ...` and exit code 1: an unreachable node, or the node's
    error answer as `<action> [<code>]: <message>`."""
    try:
        yield
    except RpcUnavailable as exc:
        fail(f"cannot reach the node at {exc.url}: {exc.reason}")
    except RpcError as exc:
        fail(f"{action} [{exc.code}]: {exc.message}")


def answer_field(answer: object, name: str, kind: type[T]) -> T:
    """Field `name` of a node's JSON answer, checked to be a `kind`; a one-line error when it is not."""
    value = answer.get(name) if isinstance(answer, dict) else None
    if type(value) is not kind:
        fail(f"the node's answer has no valid {name!r} field: {str(answer)[:200]}")
    return value


def open_keystore(wallet_dir: Path | None) -> Keystore:
    """The keystore of `--wallet-dir`, else of the `wallet` group's option, else of the default directory."""
    if wallet_dir is None:
        ctx = click.get_current_context(silent=True)
        inherited = ctx.meta.get(_WALLET_DIR_KEY) if ctx is not None else None
        wallet_dir = inherited if isinstance(inherited, Path) else default_wallet_dir()
    return Keystore(wallet_dir.expanduser())


def read_passphrase(password_file: Path | None, *, prompt: str, confirm: bool = False) -> str:
    """The passphrase from --password-file, else $CHAINLAB_PASSWORD, else an interactive hidden prompt."""
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read password file {password_file}: {exc.strerror or exc}")
        except UnicodeDecodeError:
            fail(f"password file {password_file} is not UTF-8 text")
        return text.split("\n", 1)[0].removesuffix("\r")
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env
    passphrase: str = click.prompt(
        prompt, hide_input=True, confirmation_prompt=confirm, default="", show_default=False, err=True
    )
    return passphrase


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn keystore and account errors raised inside the block into `error: ...` and exit code 1."""
    try:
        yield
    except (KeystoreError, AccountError) as exc:
        fail(str(exc))


def resolve_account(text: str, keystore: Keystore) -> bytes:
    """The address named by `text`: a checksummed text address, or the name of a wallet in `keystore`."""
    try:
        return crypto.address_from_text(text)
    except crypto.AddressError as address_error:
        if keystore.exists(text):
            return keystore.load(text).address
        cleaned = text.strip().lower()
        if cleaned.startswith(crypto.ADDRESS_PREFIX) and len(cleaned) >= _ADDRESS_LIKE_CHARS:
            raise AccountError(f"invalid address {text!r}: {address_error}") from None
        raise AccountError(
            f"{text!r} is neither a wallet in {keystore.directory} nor a valid address ({address_error})"
        ) from None


def _wallet_view(wallet: Wallet) -> dict[str, str]:
    return {
        "name": wallet.name,
        "address": wallet.address_text,
        "public_key": wallet.public_key.hex(),
        "path": str(wallet.path),
    }


def _echo_fields(fields: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in fields) + 1
    for label, value in fields:
        click.echo(f"{label + ':':<{width}} {value}")


@click.group(name="wallet")
@click.option(
    "--wallet-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help=f"Directory of wallet keystore files [default: ${WALLET_DIR_ENV} or ~/.chainlab/wallets].",
)
@click.pass_context
def command(ctx: click.Context, wallet_dir: Path | None) -> None:
    """Create and inspect wallets: secp256k1 keys kept in passphrase-encrypted keystore files.

    Each wallet is one JSON file (scrypt + AES-256-GCM) in the wallet directory. The passphrase comes from
    --password-file, else $CHAINLAB_PASSWORD, else a hidden prompt.
    """
    if wallet_dir is not None:
        ctx.meta[_WALLET_DIR_KEY] = wallet_dir


@command.command(name="import")
@click.argument("name")
@click.option("--secret-file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="file holding the 32-byte secret key as hex (e.g. the devnet's dev account)")
@password_file_option
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def import_wallet(name: str, secret_file: Path, password_file: Path | None, wallet_dir: Path | None,
                  as_json: bool) -> None:
    """Seal an existing secret key (hex, read from a file, never from the command line) as wallet NAME."""
    keystore = open_keystore(wallet_dir)
    with user_errors():
        keystore.check_new(name)
        try:
            key = crypto.PrivateKey(bytes.fromhex(secret_file.read_text(encoding="ascii").strip()))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise KeystoreError(f"{secret_file}: not a 32-byte hex secret key ({exc})") from exc
        passphrase = read_passphrase(password_file, prompt=f"New passphrase for wallet {name!r}", confirm=True)
        wallet = keystore.create(name, passphrase, key=key)
    if as_json:
        emit_json(_wallet_view(wallet))
        return
    _echo_fields([("name", wallet.name), ("address", wallet.address_text), ("keystore", str(wallet.path))])


@command.command(name="new")
@click.argument("name")
@password_file_option
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def new_wallet(name: str, password_file: Path | None, wallet_dir: Path | None, as_json: bool) -> None:
    """Create wallet NAME with a fresh random key and print its address.

    NAME is 1 to 64 letters, digits, '_', '.' or '-'. An existing wallet is never overwritten. The new
    passphrase is asked twice when it comes from the prompt; an empty one is allowed but warned about.
    """
    keystore = open_keystore(wallet_dir)
    with user_errors():
        keystore.check_new(name)  # before asking for a passphrase
        prompt = f"New passphrase for wallet {name!r}"
        passphrase = read_passphrase(password_file, prompt=prompt, confirm=True)
        if not passphrase:
            click.echo(f"warning: wallet {name!r} has an empty passphrase; anyone who can read its file can "
                       "spend from it", err=True)
        wallet = keystore.create(name, passphrase)
    if as_json:
        emit_json(_wallet_view(wallet))
        return
    _echo_fields([("name", wallet.name), ("address", wallet.address_text), ("keystore", str(wallet.path))])


@command.command(name="list")
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {name, address}.")
def list_wallets(wallet_dir: Path | None, as_json: bool) -> None:
    """List the wallets of the wallet directory with their addresses (no passphrase needed).

    Files that are not readable keystores are skipped with a warning on stderr.
    """
    keystore = open_keystore(wallet_dir)
    with user_errors():
        wallets, problems = keystore.scan()
    for problem in problems:
        click.echo(f"warning: skipped {problem}", err=True)
    if as_json:
        emit_json([{"name": w.name, "address": w.address_text} for w in wallets])
        return
    if not wallets:
        click.echo(f"no wallets in {keystore.directory}", err=True)
        return
    width = max(len(w.name) for w in wallets)
    for wallet in wallets:
        click.echo(f"{wallet.name:<{width}}  {wallet.address_text}")


@command.command(name="show")
@click.argument("name")
@click.option("--show-secret", is_flag=True,
              help="Also print the secret key in hex (asks for the passphrase).")
@password_file_option
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_wallet(
    name: str, show_secret: bool, password_file: Path | None, wallet_dir: Path | None, as_json: bool
) -> None:
    """Show wallet NAME: address, public key and keystore file.

    With --show-secret the passphrase is required and the 32-byte secret key is printed in hex: anyone who
    sees it can spend from the wallet.
    """
    keystore = open_keystore(wallet_dir)
    with user_errors():
        wallet = keystore.load(name)
        secret = None
        if show_secret:
            passphrase = read_passphrase(password_file, prompt=f"Passphrase for wallet {name!r}")
            secret = wallet.unlock(passphrase).secret.hex()
    view = _wallet_view(wallet)
    if secret is not None:
        view["secret"] = secret
    if as_json:
        emit_json(view)
        return
    fields = [("name", wallet.name), ("address", wallet.address_text), ("public key", view["public_key"]),
              ("keystore", view["path"])]
    if secret is not None:
        fields.append(("secret", secret))
    _echo_fields(fields)


@command.command(name="address")
@click.argument("name")
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help='Print {"name": ..., "address": ...}.')
def wallet_address(name: str, wallet_dir: Path | None, as_json: bool) -> None:
    """Print only the address of wallet NAME.

    Handy in scripts: `to=$(chainlab wallet address bob)`.
    """
    keystore = open_keystore(wallet_dir)
    with user_errors():
        wallet = keystore.load(name)
    if as_json:
        emit_json({"name": name, "address": wallet.address_text})
        return
    click.echo(wallet.address_text)


@command.command(name="balance")
@click.argument("account", metavar="WALLET_OR_ADDRESS")
@node_option
@click.option("--at", "level", type=click.Choice(["latest", "final", "linearizable"]), default="latest",
              show_default=True,
              help="Read at the node's tip (latest), at its last final block (final), or at a final block the "
                   "engine confirmed is current (linearizable; Raft, with a read proof).")
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the node's JSON answer.")
def wallet_balance(account: str, node_url: str | None, level: str, wallet_dir: Path | None, as_json: bool) -> None:
    """Ask a node for the balance and nonce of WALLET_OR_ADDRESS (a wallet name or a cl... address).

    No passphrase is needed. `latest` also shows the pending nonce: the nonce the next transaction from this
    account should carry, counting the ones waiting in the node's mempool. `linearizable` also shows the read
    proof (term, read index, the final height read and its block hash); a node that cannot serve it now fails
    with its code (no-leader, no-quorum, read-timeout, unsupported-read-level).
    """
    keystore = open_keystore(wallet_dir)
    with user_errors():
        address = resolve_account(account, keystore)
    client = node_client(node_url)
    with node_errors("reading the account failed"):
        view = client.account(crypto.address_to_text(address), level)
    if as_json:
        emit_json(view)
        return
    height = answer_field(view, "height", int)
    fields = [
        ("address", crypto.address_to_text(address)),
        ("balance", str(answer_field(view, "balance", int))),
        ("nonce", str(answer_field(view, "nonce", int))),
    ]
    if level == "latest":
        fields.append(("pending nonce", str(answer_field(view, "pending_nonce", int))))
    fields.append(("height", f"{height} ({level})"))
    if level == "linearizable":
        proof = answer_field(view, "read_proof", dict)
        fields.extend([
            ("read term", str(answer_field(proof, "term", int))),
            ("read index", str(answer_field(proof, "read_index", int))),
            ("applied at", str(answer_field(proof, "applied_height", int))),
            ("block", answer_field(proof, "block_hash", str)),
        ])
    _echo_fields(fields)


@command.command(name="history")
@click.argument("account", metavar="WALLET_OR_ADDRESS")
@node_option
@click.option("--limit", type=click.IntRange(1, 100), default=25, show_default=True, metavar="N",
              help="List at most N transactions (newest first).")
@click.option("--before", metavar="CURSOR", default=None,
              help="Continue below this cursor (the `older:` line of the previous page).")
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the node's JSON answer.")
def wallet_history(account: str, node_url: str | None, limit: int, before: str | None, wallet_dir: Path | None,
                   as_json: bool) -> None:
    """List the transactions WALLET_OR_ADDRESS sent or received on the node's best chain, newest first: height,
    direction (sent, received, self), the other address, amount, fee, final or its confirmations, and the hash;
    the account's own pooled transactions first. An `older:` line gives the cursor of the next page."""
    keystore = open_keystore(wallet_dir)
    with user_errors():
        address = resolve_account(account, keystore)
    client = node_client(node_url)
    with node_errors("reading the account's transactions failed"):
        page = client.account_txs(crypto.address_to_text(address), limit=limit, before=before)
    if as_json:
        emit_json(page)
        return
    for row in _rows(page, "pending"):
        click.echo(f"pending  {row.get('direction'):<8} {row.get('counterparty')}  amount {row.get('amount')}  "
                   f"fee {row.get('fee')}  nonce {row.get('nonce')}  {row.get('hash')}")
    rows = _rows(page, "txs")
    for row in rows:
        standing = "final" if row.get("final") else f"{row.get('confirmations')} conf"
        click.echo(f"{row.get('height'):>7}  {row.get('direction'):<8} {row.get('counterparty')}  amount "
                   f"{row.get('amount')}  fee {row.get('fee')}  {standing}  {row.get('hash')}")
    if not rows and before is None:
        click.echo("no transaction on the best chain")
    cursor = page.get("next")
    if isinstance(cursor, str):
        again = [account, *(["--node", node_url] if node_url else []),
                 *(["--limit", str(limit)] if limit != 25 else []),
                 *(["--wallet-dir", str(wallet_dir)] if wallet_dir is not None else [])]
        click.echo(f"older: chainlab wallet history {shlex.join(again)} --before {cursor}")


def _rows(answer: dict[str, Any], name: str) -> list[dict[str, Any]]:
    rows = answer.get(name)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
