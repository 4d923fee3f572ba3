"""`chainlab lock`: acquire, renew and release a lock with a lease and a fencing token, and show one
(docs/LOCKS.md). Every change waits until its transaction is final and prints what the chain decided."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from chain.locks import MAX_LEASE_BLOCKS, MAX_NAME_CHARS
from cli.common import emit_json, fail
from cli.wallet import (
    node_client,
    node_errors,
    node_option,
    open_keystore,
    password_file_option,
    read_passphrase,
    user_errors,
    wallet_dir_option,
)
from node.client import RpcClient
from node.lockclient import Lease, LockClient, LockRefused

_LEASE = click.IntRange(1, MAX_LEASE_BLOCKS)
READ_LEVELS = click.Choice(["final", "latest", "linearizable"])


def check_name(name: str, what: str) -> str:
    """`name` if it is a valid lock name or register key; a one-line error otherwise."""
    if not 0 < len(name) <= MAX_NAME_CHARS or not name.isascii() or not name.isprintable():
        fail(f"{what} {name[:80]!r} must be 1..{MAX_NAME_CHARS} printable ASCII characters")
    return name


def lock_client(sender: str, node_url: str | None, password_file: Path | None, wallet_dir: Path | None,
                fee: int | None) -> LockClient:
    """A LockClient for wallet `sender` at `--node`; one-line errors for a bad wallet or an unreachable node."""
    keystore = open_keystore(wallet_dir)
    with user_errors():
        wallet = keystore.load(sender)
        passphrase = read_passphrase(password_file, prompt=f"Passphrase for wallet {sender!r}")
        key = wallet.unlock(passphrase)
    client = node_client(node_url)
    with node_errors("reading the node's status failed"):
        return LockClient(client, key, fee=fee)


@contextlib.contextmanager
def lock_errors(action: str) -> Iterator[None]:
    """A refusal as `<action> refused [<code>]: ...`, node failures as node_errors does."""
    try:
        with node_errors(f"{action} failed"):
            yield
    except LockRefused as exc:
        fail(f"{action} refused [{exc.code}]: {exc.message}")


def current_lease(client: RpcClient, name: str, action: str) -> dict[str, Any]:
    """The lock's latest record (for renew and release, which need no token); if it was never granted, the
    one-line refusal with the code the node would give (`<action> refused [lock-not-held]: ...`)."""
    with node_errors("reading the lock failed"):
        view = client.lock(name, "latest")
    lock = view.get("lock")
    if not isinstance(lock, dict):
        fail(f"{action} refused [lock-not-held]: lock {name!r} was never granted")
    return lock


def _print_lease(lease: Lease, holder: str, as_json: bool) -> None:
    body = {"name": lease.name, "holder": holder, "token": lease.token, "expires_at": lease.expires_at,
            "height": lease.height, "lease_blocks": lease.lease_blocks}
    if as_json:
        emit_json(body)
        return
    click.echo(f"token:      {lease.token}")
    click.echo(f"holder:     {holder}")
    click.echo(f"height:     {lease.height}")
    click.echo(f"expires at: {lease.expires_at} (held in blocks {lease.height}..{lease.expires_at - 1})")


def wallet_options(func: Any) -> Any:
    """--from, --node, --fee, --password-file, --wallet-dir, --json."""
    for option in reversed([
        click.option("--from", "sender", required=True, metavar="WALLET", help="Wallet that signs and pays."),
        node_option,
        click.option("--fee", type=click.IntRange(0), default=None, metavar="N",
                     help="Fee [default: the node's min_fee]."),
        password_file_option, wallet_dir_option,
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]):
        func = option(func)
    return func


@click.group(name="lock")
def command() -> None:
    """Locks with leases (in blocks) and fencing tokens, kept by the chain itself (docs/LOCKS.md).

    `acquire` waits until the grant is final and prints the fencing token: pass it with every write to the
    protected resource (`chainlab kv put ... --token T`), which refuses an older one.
    """


@command.command(name="acquire")
@click.argument("name")
@click.option("--lease-blocks", type=_LEASE, required=True, metavar="N",
              help=f"Lease length in blocks (1..{MAX_LEASE_BLOCKS}).")
@wallet_options
def acquire(name: str, lease_blocks: int, sender: str, node_url: str | None, fee: int | None,
            password_file: Path | None, wallet_dir: Path | None, as_json: bool) -> None:
    """Acquire lock NAME for --lease-blocks blocks; prints the fencing token once the grant is final.

    Refused (`lock-held`) while a live lease holds it, the sender's own included (renew that instead).
    """
    check_name(name, "lock name")
    client = lock_client(sender, node_url, password_file, wallet_dir, fee)
    with lock_errors("acquire"):
        lease = client.acquire(name, lease_blocks)
    _print_lease(lease, client.address, as_json)


@command.command(name="renew")
@click.argument("name")
@click.option("--lease-blocks", type=_LEASE, required=True, metavar="N",
              help="New lease length in blocks, counted from the renewal's block.")
@wallet_options
def renew(name: str, lease_blocks: int, sender: str, node_url: str | None, fee: int | None,
          password_file: Path | None, wallet_dir: Path | None, as_json: bool) -> None:
    """Renew the sender's live lease on NAME (same token, later end)."""
    check_name(name, "lock name")
    client = lock_client(sender, node_url, password_file, wallet_dir, fee)
    record = current_lease(client.rpc, name, "renew")
    lease = Lease(name=name, token=int(record["token"]), expires_at=int(record["expires_at"]),
                  lease_blocks=lease_blocks, height=int(record["granted_height"]))
    with lock_errors("renew"):
        renewed = client.renew(lease, lease_blocks)
    _print_lease(renewed, client.address, as_json)


@command.command(name="release")
@click.argument("name")
@wallet_options
def release(name: str, sender: str, node_url: str | None, fee: int | None, password_file: Path | None,
            wallet_dir: Path | None, as_json: bool) -> None:
    """Release the sender's live lease on NAME now."""
    check_name(name, "lock name")
    client = lock_client(sender, node_url, password_file, wallet_dir, fee)
    record = current_lease(client.rpc, name, "release")
    lease = Lease(name=name, token=int(record["token"]), expires_at=int(record["expires_at"]), lease_blocks=1,
                  height=int(record["granted_height"]))
    with lock_errors("release"):
        client.release(lease)
    if as_json:
        emit_json({"name": name, "released": True, "token": lease.token})
        return
    click.echo(f"released {name} (token {lease.token})")


@command.command(name="status")
@click.argument("name")
@node_option
@click.option("--at", "level", type=READ_LEVELS, default="final", show_default=True,
              help="Read level: final (a grant counts once final), latest (the tip), linearizable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(name: str, node_url: str | None, level: str, as_json: bool) -> None:
    """Show lock NAME: holder, fencing token, expiry height, and whether the lease is live."""
    check_name(name, "lock name")
    client = node_client(node_url)
    with node_errors("reading the lock failed"):
        view = client.lock(name, level)
    if as_json:
        emit_json(view)
        return
    lock = view.get("lock")
    if not isinstance(lock, dict):
        click.echo(f"{name}: never granted (as of height {view.get('height')}, {level})")
        return
    state = "held" if lock.get("held") else "free (lease over)"
    click.echo(f"{'name:':<16}{name} ({state}, as of height {view.get('height')}, {level})")
    for label in ("holder", "token", "expires_at", "granted_height"):
        click.echo(f"{label.replace('_', ' ') + ':':<16}{lock.get(label)}")
