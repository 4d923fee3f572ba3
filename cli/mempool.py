"""`chainlab mempool`: what a running node holds to mine or propose next."""

from __future__ import annotations

from typing import Any

import click

from cli.common import emit_json
from cli.wallet import answer_field, node_client, node_errors, node_option


@click.command(name="mempool")
@node_option
@click.option("--limit", type=click.IntRange(1, 10_000), default=1_000, show_default=True, metavar="N",
              help="List at most N transactions (the best-paying first).")
@click.option("--json", "as_json", is_flag=True, help="Print the node's JSON: size, bytes, txs.")
def command(node_url: str | None, limit: int, as_json: bool) -> None:
    """The node's mempool: how many transactions and bytes it holds, then one line per transaction (hash, sender,
    nonce, fee, size), best-paying first, as bitcoin-cli getrawmempool. `chainlab tx show HASH` shows one in
    full."""
    client = node_client(node_url)
    with node_errors("reading the mempool failed"):
        pool = client.mempool(limit)
    size = answer_field(pool, "size", int)
    size_bytes = answer_field(pool, "bytes", int)
    txs = pool.get("txs")
    if not isinstance(txs, list):
        txs = []
    if as_json:
        emit_json(pool)
        return
    click.echo(f"{size} transaction{'' if size == 1 else 's'}, {size_bytes} bytes")
    for entry in txs:
        row: dict[str, Any] = entry if isinstance(entry, dict) else {}
        click.echo(f"{row.get('hash')}  from {row.get('sender')}  nonce {row.get('nonce')}  fee {row.get('fee')}  "
                   f"{row.get('size')} bytes")
