"""`chainlab node ...`: create a data directory and run a node."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import click

from chain import crypto
from cli.common import emit_json, fail, started_line
from node import eventloop
from node.config import MAX_PROCESSES, ConfigError, NodeConfig, load_config, write_config
from node.datadir import DatadirError, init_datadir, read_genesis_file
from node.identity import IdentityError, load_or_create_key


@click.group(name="node")
def command() -> None:
    """Create a node's data directory and run the node (P2P, RPC, mining)."""


def _overrides(p2p_port: int | None, rpc_port: int | None, peers: tuple[str, ...], name: str | None,
               admin_token: str | None, mining: bool | None, mining_processes: int | None,
               hashrate_hps: float | None, workers: int | None, log_format: str | None) -> dict[str, Any]:
    return {
        "p2p.port": p2p_port, "rpc.port": rpc_port, "p2p.bootstrap": list(peers) if peers else None,
        "node.name": name, "rpc.admin_token": admin_token, "mining.enabled": mining,
        "mining.processes": mining_processes, "mining.hashrate_hps": hashrate_hps,
        "validation.workers": workers, "node.log_format": log_format,
    }


def _shared_options(function: Any) -> Any:
    options = [
        click.option("--p2p-port", type=click.IntRange(0, 65535), help="P2P port (0: any free port)"),
        click.option("--rpc-port", type=click.IntRange(0, 65535), help="RPC port (0: any free port)"),
        click.option("--peer", "peers", multiple=True, metavar="ADDRESS",
                     help="bootstrap peer: host:port or ws://host:port[/path] (path /p2p by default)"),
        click.option("--name", help="node name shown in logs and status"),
        click.option("--admin-token", help="bearer token for /v1/admin (empty: admin API off)"),
        click.option("--mining/--no-mining", default=None, help="mine (PoW)"),
        click.option("--mining-processes", type=click.IntRange(1, MAX_PROCESSES), help="mining worker processes"),
        click.option("--hashrate-hps", type=click.FloatRange(0), help="cap on hashes per second (0: none)"),
        click.option("--workers", type=click.IntRange(1, MAX_PROCESSES), help="signature-checking processes"),
        click.option("--log-format", type=click.Choice(["text", "json"]), help="log lines as text or JSON"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@command.command(name="init")
@click.option("--datadir", required=True, type=click.Path(file_okay=False), help="data directory to create")
@click.option("--genesis", "genesis_path", required=True, type=click.Path(dir_okay=False), help="genesis TOML")
@click.option("--key-hex", help="node secret key as hex (default: a fresh random key)")
@_shared_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def init_command(datadir: str, genesis_path: str, key_hex: str | None, as_json: bool, **options: Any) -> None:
    """Create a data directory: genesis, config.toml and node.key."""
    try:
        genesis = read_genesis_file(genesis_path)
        init_datadir(datadir, genesis)
        config = load_config(datadir).with_overrides(_overrides(**options))
        if not config.rpc.admin_token and options.get("admin_token") is None:
            config = config.with_overrides({"rpc.admin_token": secrets.token_hex(16)})
        write_config(datadir, config)
        key = load_or_create_key(datadir, key_hex)
    except (DatadirError, ConfigError, IdentityError, ValueError) as exc:
        fail(str(exc))
    info = {"datadir": datadir, "chain_id": genesis.chain_id, "genesis": genesis.hash.hex(),
            "node_id": key.public_key.hex(), "address": crypto.address_to_text(key.address)}
    if as_json:
        emit_json(info)
    else:
        click.echo(f"initialized {datadir} for {genesis.chain_id} (genesis {genesis.hash.hex()[:16]}...)")
        click.echo(f"node id {key.public_key.hex()}\naddress {info['address']}")


@command.command(name="run")
@click.option("--datadir", required=True, type=click.Path(file_okay=False, exists=True), help="data directory")
@_shared_options
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="write a causal trace (JSON lines, docs/TRACING.md); appends to FILE and resumes its clocks")
@click.option("--json", "as_json", is_flag=True,
              help="print one JSON line (urls, chain id, data dir, node id) on stdout once the node serves")
def run_command(datadir: str, as_json: bool, trace_file: str | None, **options: Any) -> None:
    """Run the node until SIGTERM or Ctrl-C (then stop mining, finish the current import, close the store)."""
    from node.logs import setup_logging
    from node.runtime import Node

    try:
        config = load_config(datadir).with_overrides(_overrides(**options))
        if trace_file is not None:
            config = config.with_overrides({"node.trace_file": str(Path(trace_file).resolve())})
        factory = eventloop.loop_factory()
    except (ConfigError, ValueError) as exc:
        fail(str(exc))
    setup_logging(config.node.log_format, config.node.log_level, config.node.name)

    async def main(node_config: NodeConfig) -> None:
        node = Node(datadir, node_config)
        node.install_signal_handlers()
        try:
            await node.start()
        except BaseException:
            await node.stop()
            raise
        if as_json:
            click.echo(started_line(node, datadir))
        await node.wait_stopped()

    try:
        eventloop.run(main(config), factory)
    except (DatadirError, IdentityError, ConfigError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start the node: {exc}")


_ADMIN_VALUES = {"transfer-leader": "--to", "add-member": "--member", "remove-member": "--member"}


@command.command(name="admin", short_help="An engine admin action on a running node (Raft: transfer-leader, ...).")
@click.argument("action")
@click.option("--to", "target", metavar="ADDRESS", help="transfer-leader: the member to hand leadership to")
@click.option("--member", metavar="ADDRESS", help="add-member / remove-member: the member's address")
@click.option("--value", metavar="TEXT", help="the action's value, for other engine actions")
@click.option("--node", "node_url", metavar="URL",
              help="the node's RPC URL (default $CHAINLAB_NODE, the user config file, else the devnet's)")
@click.option("--admin-token", help="bearer token (default $CHAINLAB_ADMIN_TOKEN, the user config file, else the "
              "devnet's; or [rpc] admin_token of --datadir's config.toml)")
@click.option("--datadir", "-d", type=click.Path(file_okay=False), help="read the admin token from this node's "
              "config.toml")
@click.option("--json", "as_json", is_flag=True, help="print the node's JSON answer")
def admin_command(action: str, target: str | None, member: str | None, value: str | None, node_url: str | None,
                  admin_token: str | None, datadir: str | None, as_json: bool) -> None:
    """Ask the node's engine to do ACTION: `transfer-leader --to ADDRESS` (Raft: hand leadership to a member, as
    etcd's move-leader), `add-member --member ADDRESS` / `remove-member --member ADDRESS` (Raft: one
    membership change at a time, at the leader). Errors are one line with the node's code (not-leader,
    config-change-pending, unsupported, ...)."""
    from node.client import RpcError, RpcUnavailable

    given = [v for v in (target, member, value) if v is not None]
    if len(given) != 1:
        flag = _ADMIN_VALUES.get(action, "--value")
        fail(f"{action} takes one value: {flag} ...")
    if admin_token is None and datadir is not None:
        try:
            admin_token = load_config(datadir).rpc.admin_token
        except ConfigError as exc:
            fail(str(exc))
    from cli.wallet import node_client

    client = node_client(node_url, admin_token, want_token=True)
    try:
        answer = client.engine_admin(action, given[0])
    except RpcUnavailable as exc:
        fail(f"node at {client.base_url} is not reachable: {exc.reason}")
    except RpcError as exc:
        fail(f"{action}: [{exc.code}] {exc.message}")
    if as_json:
        emit_json(answer)
    else:
        click.echo(" ".join(f"{key}={val}" for key, val in answer.items()))


def _add_peers_group() -> None:
    from cli.peers import command as peers_group

    command.add_command(peers_group)


_add_peers_group()
