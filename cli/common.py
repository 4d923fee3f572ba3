"""Helpers shared by the CLI commands: JSON output and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from node.runtime import Node


def emit_json(data: Any) -> None:
    """Print one JSON document to stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error to stderr and exit non-zero (never a traceback for a user's mistake)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def started_line(node: Node, datadir: object) -> str:
    """The one JSON line `node run --json` and `devnet --json` print once the node serves: its urls, chain id,
    data dir, name, node id, address and pid (what a script needs to talk to it)."""
    import os

    return json.dumps({
        "event": "started", "name": node.config.node.name, "rpc_url": node.rpc.url if node.rpc is not None else None,
        "explorer_url": f"{node.rpc.url}/explorer/" if node.rpc is not None else None,
        "p2p_url": node.p2p.url if node.p2p is not None else None, "chain_id": node.core.genesis.chain_id,
        "datadir": str(datadir), "node_id": node.key.public_key.hex(),
        "address": node.status().get("address"), "pid": os.getpid(),
    }, sort_keys=True)



def int_list(low: int, high: int) -> Callable[[click.Context, click.Parameter, str], tuple[int, ...]]:
    """A click option callback reading a comma-separated list of integers within [low, high] (`--clients
    1,2,4,8`): distinct, in the given order; a single number is a list of one. (A callback rather than a
    `click.ParamType`, which is generic only from click 8.2 on.)"""
    def parse(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
        numbers: list[int] = []
        for part in str(value).split(","):
            try:
                number = int(part.strip())
            except ValueError:
                raise click.BadParameter(f"{part.strip()!r} is not an integer (give N or N,N,...)") from None
            if not low <= number <= high:
                raise click.BadParameter(f"{number} is not in the range {low}-{high}")
            if number not in numbers:
                numbers.append(number)
        return tuple(numbers)

    return parse
