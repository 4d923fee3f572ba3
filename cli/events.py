"""`chainlab events`: follow a node's event stream (/v1/events), one line per event, as `etcdctl watch`."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from cli.common import fail
from cli.wallet import node_client, node_option
from node.client import RpcError, RpcUnavailable


def event_line(event: dict[str, Any]) -> str:
    """One human line for an event: its type, then its fields as key=value (hash fields kept whole)."""
    kind = event.get("type", "?")
    fields = " ".join(f"{key}={value}" for key, value in event.items() if key != "type")
    return f"{kind} {fields}".rstrip()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (e.g. under a test runner): nothing to flush there
        pass


@click.command(name="events")
@node_option
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON line.")
@click.option("--idle-timeout-s", type=click.FloatRange(min=1), default=60.0, show_default=True,
              metavar="SECONDS", help="Give up when the node sends nothing, not even a keepalive, for this long.")
def command(node_url: str | None, as_json: bool, idle_timeout_s: float) -> None:
    """Follow the node's events (new blocks, finality, reorgs) until Ctrl-C, printing one line per event: `block
    height=... hash=...`, `final height=...`, ... With --json each line is the event's JSON. When the node goes
    away the command says so on stderr and exits 1."""
    client = node_client(node_url)
    stream = client.events(timeout_s=idle_timeout_s)
    try:
        for event in stream:
            click.echo(json.dumps(event, sort_keys=True) if as_json else event_line(event))
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # `chainlab events | head`: the reader is done, so are we
        _silence_stdout()
        return
    except RpcUnavailable as exc:
        fail(f"cannot reach the node at {exc.url} (or it went away): {exc.reason}")
    except RpcError as exc:
        fail(f"the event stream failed [{exc.code}]: {exc.message}")
    finally:
        stream.close()
    fail(f"the node at {client.base_url} ended the event stream (it is stopping?)")
