"""`chainlab mine N`: the node mines N blocks now, as bitcoin-cli's generatetoaddress (PoW nodes; admin API)."""

from __future__ import annotations

from pathlib import Path

import click

from chain.crypto import address_to_text
from cli.common import emit_json
from cli.peers import admin_token_from, admin_token_option
from cli.wallet import node_client, node_errors, node_option, open_keystore, resolve_account, user_errors

MAX_BLOCKS = 1000


@click.command(name="mine")
@click.argument("blocks", type=click.IntRange(1, MAX_BLOCKS), metavar="N")
@click.option("--to", "recipient", default=None, metavar="ADDRESS",
              help="Pay the block rewards to this address or wallet [default: the node's own address].")
@node_option
@admin_token_option
@click.option("--wallet-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Wallet directory for a wallet name in --to.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"blocks\": [hash, ...]}.")
def command(blocks: int, recipient: str | None, node_url: str | None, admin_token: str | None,
            datadir: Path | None, wallet_dir: Path | None, as_json: bool) -> None:
    """Have the node mine N blocks now (1..1000) and print their hashes, oldest first, as bitcoin-cli's
    generatetoaddress: for tests and teaching on `chainlab devnet --mine-on-demand`, whose node mines nothing by
    itself. The blocks go through the node's normal validation and store. PoW nodes only (other engines answer
    `mining-unsupported`); needs the admin token."""
    address = None
    if recipient is not None:
        with user_errors():
            address = address_to_text(resolve_account(recipient, open_keystore(wallet_dir)))
    client = node_client(node_url, admin_token_from(admin_token, datadir), want_token=True)
    with node_errors("mining failed"):
        hashes = client.mine(blocks, address)
    if as_json:
        emit_json({"blocks": hashes})
        return
    for block_hash in hashes:
        click.echo(block_hash)
