"""`chainlab kv`: the fenced register on the ledger (docs/LOCKS.md): a write carries a lock's fencing token and is
refused (`stale-fencing-token`) when a newer grant of that lock exists."""

from __future__ import annotations

from pathlib import Path

import click

from chain.encoding import U64_MAX
from chain.locks import MAX_VALUE_BYTES, token_position
from cli.common import emit_json, fail
from cli.lock import READ_LEVELS, check_name, lock_client, lock_errors, wallet_options
from cli.wallet import node_client, node_errors, node_option
from node.lockclient import Lease


@click.group(name="kv")
def command() -> None:
    """Write and read the fenced key-value register (each write names a lock and its fencing token)."""


def _value_bytes(value: str, as_hex: bool) -> bytes:
    if as_hex:
        try:
            data = bytes.fromhex(value)
        except ValueError:
            fail("VALUE is not hex (drop --hex to write text)")
    else:
        data = value.encode("utf-8")
    if len(data) > MAX_VALUE_BYTES:
        fail(f"VALUE is {len(data)} bytes; the limit is {MAX_VALUE_BYTES}")
    return data


@command.command(name="put")
@click.argument("key")
@click.argument("value")
@click.option("--lock", "lock_name", required=True, metavar="NAME", help="The lock that fences KEY.")
@click.option("--token", type=click.IntRange(0, U64_MAX), required=True, metavar="T",
              help="The fencing token `chainlab lock acquire` printed.")
@click.option("--hex", "as_hex", is_flag=True, help="VALUE is hex, not text.")
@wallet_options
def put(key: str, value: str, lock_name: str, token: int, as_hex: bool, sender: str, node_url: str | None,
        fee: int | None, password_file: Path | None, wallet_dir: Path | None, as_json: bool) -> None:
    """Write VALUE under KEY with lock --lock's fencing --token; waits until the write is final.

    Refused unless the sender holds a live lease on the lock with exactly that token: an older token is
    `stale-fencing-token` (someone was granted the lock since), an expired lease `lock-not-held`.
    """
    check_name(key, "key")
    check_name(lock_name, "lock name")
    data = _value_bytes(value, as_hex)
    client = lock_client(sender, node_url, password_file, wallet_dir, fee)
    height, _ = token_position(token)
    lease = Lease(name=lock_name, token=token, expires_at=0, lease_blocks=1, height=height)
    with lock_errors("write"):
        written = client.put(key, data, lease)
    if as_json:
        emit_json({"key": key, "value": data.hex(), "lock": lock_name, "token": token, "height": written})
        return
    click.echo(f"wrote {key} at height {written} (lock {lock_name}, token {token})")


@command.command(name="get")
@click.argument("key")
@node_option
@click.option("--at", "level", type=READ_LEVELS, default="final",
              show_default=True, help="Read level.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def get(key: str, node_url: str | None, level: str, as_json: bool) -> None:
    """Read KEY: its value (text when it is UTF-8, else hex), lock, token and the height of the write."""
    check_name(key, "key")
    client = node_client(node_url)
    with node_errors("reading the key failed"):
        view = client.kv(key, level)
    if as_json:
        emit_json(view)
        return
    raw = view.get("value")
    if not isinstance(raw, str):
        click.echo(f"{key}: not set (as of height {view.get('height')}, {level})")
        return
    data = bytes.fromhex(raw)
    try:
        shown = repr(data.decode("utf-8"))
    except UnicodeDecodeError:
        shown = f"0x{raw}"
    click.echo(f"{key} = {shown} (lock {view.get('lock')}, token {view.get('token')}, "
               f"written at height {view.get('written_height')})")
