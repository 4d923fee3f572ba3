"""`chainlab node peers list|add|remove`: a running node's P2P peers over the RPC (add and remove need the
admin token)."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import emit_json, fail
from cli.wallet import node_client, node_errors, node_option
from node.config import ConfigError, load_config

_PEER_COLUMNS = ("node_id", "url", "direction", "rtt_ms", "best_height", "score")


def admin_token_option(func: click.decorators.FC) -> click.decorators.FC:
    """--admin-token and --datadir (read the token from that node's config.toml)."""
    func = click.option("--datadir", "-d", type=click.Path(file_okay=False, path_type=Path),
                        help="read the admin token from this node's config.toml")(func)
    return click.option("--admin-token", default=None, metavar="TOKEN",
                        help="bearer token [default: $CHAINLAB_ADMIN_TOKEN, else `admin_token` in the user "
                        "config file, else the devnet's]")(func)


def admin_token_from(admin_token: str | None, datadir: Path | None) -> str | None:
    """--admin-token, else the token in --datadir's config.toml, else None (the endpoint resolution decides)."""
    if admin_token is None and datadir is not None:
        try:
            return load_config(datadir).rpc.admin_token
        except ConfigError as exc:
            fail(str(exc))
    return admin_token


@click.group(name="peers")
def command() -> None:
    """A running node's P2P peers: `list` them, `add` one (the node dials it) or `remove` one (add and remove need
    the admin token)."""


@command.command(name="list")
@node_option
@click.option("--json", "as_json", is_flag=True, help="Print the node's JSON rows.")
def list_peers(node_url: str | None, as_json: bool) -> None:
    """The node's connected peers: node id, url, direction, round-trip ms, best height, score."""
    client = node_client(node_url)
    with node_errors("reading the peers failed"):
        rows = client.peers()
    if as_json:
        emit_json({"peers": rows})
        return
    if not rows:
        click.echo("no connected peers")
        return
    click.echo("  ".join(_PEER_COLUMNS))
    for row in rows:
        click.echo("  ".join(str(row.get(column, "-")) for column in _PEER_COLUMNS))


@command.command(name="add")
@click.argument("url")
@node_option
@admin_token_option
def add_peer(url: str, node_url: str | None, admin_token: str | None, datadir: Path | None) -> None:
    """Ask the node to dial the peer at URL (its P2P address, ws://HOST:PORT/p2p), as bitcoin-cli addnode; the
    connection is made in the background: `peers list` shows it once it is up."""
    client = node_client(node_url, admin_token_from(admin_token, datadir), want_token=True)
    with node_errors(f"adding peer {url} failed"):
        client.connect_peer(url)
    click.echo(f"connecting to {url}")


@command.command(name="remove")
@click.argument("peer")
@node_option
@admin_token_option
def remove_peer(peer: str, node_url: str | None, admin_token: str | None, datadir: Path | None) -> None:
    """Forget PEER (a peer URL or a node id from `peers list`) and disconnect it, as bitcoin-cli's `addnode ...
    remove`. The other node may still connect again on its own (it may have this one as its bootstrap peer)."""
    client = node_client(node_url, admin_token_from(admin_token, datadir), want_token=True)
    with node_errors(f"removing peer {peer} failed"):
        disconnected = client.remove_peer(peer)
    click.echo(f"removed {peer}" + (f" (disconnected {', '.join(d[:16] for d in disconnected)})"
                                    if disconnected else ""))
