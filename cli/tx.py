"""`chainlab tx`: build and sign a transfer from a wallet, send one through a node, and decode a transaction's
hex."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from chain import crypto
from chain.encoding import U64_MAX
from chain.errors import DecodeError
from chain.tx import MAX_MEMO_BYTES, Transaction, decode_tx, make_transfer
from cli.common import emit_json, fail
from cli.genesis import load_genesis_file
from cli.wallet import (
    answer_field,
    node_client,
    node_errors,
    node_option,
    open_keystore,
    password_file_option,
    read_passphrase,
    resolve_account,
    user_errors,
    wallet_dir_option,
)
from node.client import RpcClient, RpcError, RpcUnavailable

_U64 = click.IntRange(0, U64_MAX)


@click.group(name="tx")
def command() -> None:
    """Build signed transfers offline, send them through a node, and decode transaction hex.

    `tx build` prints the hex a node accepts at POST /v1/transactions ({"tx": "<hex>"}); `tx send` asks the node
    for the chain id and nonce, signs, submits and can wait until the transfer is included or final.
    """


@command.command(name="build")
@click.option("--from", "sender", required=True, metavar="WALLET", help="Wallet that signs and pays.")
@click.option("--to", "recipient", required=True, metavar="ADDRESS",
              help="Recipient: a cl... address (its checksum is checked) or a wallet name.")
@click.option("--amount", required=True, type=_U64, metavar="N", help="Amount to transfer (u64).")
@click.option("--fee", required=True, type=_U64, metavar="N", help="Fee for the block proposer (u64).")
@click.option("--nonce", required=True, type=_U64, metavar="N",
              help="The sender account's next nonce (0 for its first transaction).")
@click.option("--genesis", "genesis_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Genesis file of the target network (gives the chain id).")
@click.option("--memo", default="", help=f"Optional memo, at most {MAX_MEMO_BYTES} bytes of UTF-8.")
@password_file_option
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the transaction as JSON, with its hex.")
def build_tx(
    sender: str, recipient: str, amount: int, fee: int, nonce: int, genesis_file: Path, memo: str,
    password_file: Path | None, wallet_dir: Path | None, as_json: bool,
) -> None:
    """Sign a transfer with wallet --from and print its hex encoding.

    Nothing is sent: submit the hex to a node. Replay protection is the genesis chain id plus --nonce.
    """
    memo_bytes = _memo_bytes(memo)
    _check_total(amount, fee)
    genesis = load_genesis_file(genesis_file)
    min_fee = genesis.param("min_fee")
    if fee < min_fee:
        click.echo(f"warning: --fee {fee} is below the network's min_fee {min_fee}; nodes will not relay it",
                   err=True)
    keystore = open_keystore(wallet_dir)
    with user_errors():
        to_address = resolve_account(recipient, keystore)
        wallet = keystore.load(sender)
        passphrase = read_passphrase(password_file, prompt=f"Passphrase for wallet {sender!r}")
        key = wallet.unlock(passphrase)
    tx = make_transfer(
        key, chain_id=genesis.chain_id, recipient=to_address, amount=amount, fee=fee, nonce=nonce,
        memo=memo_bytes,
    )
    if as_json:
        emit_json({**tx.to_json(), "hex": tx.encoded.hex()})
        return
    click.echo(tx.encoded.hex())


def _memo_bytes(memo: str) -> bytes:
    memo_bytes = memo.encode("utf-8")
    if len(memo_bytes) > MAX_MEMO_BYTES:
        fail(f"--memo is {len(memo_bytes)} bytes of UTF-8; the limit is {MAX_MEMO_BYTES}")
    return memo_bytes


def _check_total(amount: int, fee: int) -> None:
    if amount + fee > U64_MAX:
        fail("--amount plus --fee exceeds u64; no account can pay that")


_WAIT_STATES = {"included": ("included", "final"), "final": ("final",)}


@command.command(name="send")
@click.option("--from", "sender", required=True, metavar="WALLET", help="Wallet that signs and pays.")
@click.option("--to", "recipient", required=True, metavar="ADDRESS",
              help="Recipient: a cl... address (its checksum is checked) or a wallet name.")
@click.option("--amount", required=True, type=_U64, metavar="N", help="Amount to transfer (u64).")
@click.option("--fee", type=_U64, default=None, metavar="N",
              help="Fee for the block proposer [default: the node's min_fee, else 1].")
@click.option("--memo", default="", help=f"Optional memo, at most {MAX_MEMO_BYTES} bytes of UTF-8.")
@node_option
@click.option("--nonce", type=_U64, default=None, metavar="N",
              help="Nonce to use [default: the node's pending nonce for the sender].")
@click.option("--wait", type=click.Choice(["included", "final"]), default=None,
              help="Wait until the transfer is in a block of the best chain (included) or in a final block.")
@click.option("--timeout-s", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              metavar="SECONDS", help="How long --wait waits.")
@click.option("--poll-interval-s", type=click.FloatRange(min=0.01), default=0.5, hidden=True)
@password_file_option
@wallet_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON: hash, status, height, block, index, ...")
def send_tx(
    sender: str, recipient: str, amount: int, fee: int | None, memo: str, node_url: str | None, nonce: int | None,
    wait: str | None, timeout_s: float, poll_interval_s: float, password_file: Path | None,
    wallet_dir: Path | None, as_json: bool,
) -> None:
    """Sign a transfer with wallet --from and submit it to the node at --node.

    The chain id comes from the node's status, so the transfer cannot be replayed on another network. With --wait
    the command polls the node (progress dots on stderr) until the transfer reaches that status, and fails if it
    times out or the node forgets the transfer (e.g. it was replaced or evicted from the mempool).
    """
    memo_bytes = _memo_bytes(memo)
    keystore = open_keystore(wallet_dir)
    with user_errors():
        to_address = resolve_account(recipient, keystore)
        wallet = keystore.load(sender)
    client = node_client(node_url)
    with node_errors("reading the node's status failed"):
        status = client.status()
    chain_id = answer_field(status, "chain_id", str)
    if fee is None:
        min_fee = status.get("min_fee")
        fee = min_fee if type(min_fee) is int and 0 <= min_fee <= U64_MAX else 1
    _check_total(amount, fee)
    if nonce is None:
        with node_errors("reading the sender's account failed"):
            account = client.account(wallet.address_text, "latest")
        nonce = answer_field(account, "pending_nonce", int)
    with user_errors():
        passphrase = read_passphrase(password_file, prompt=f"Passphrase for wallet {sender!r}")
        key = wallet.unlock(passphrase)
    try:
        tx = make_transfer(key, chain_id=chain_id, recipient=to_address, amount=amount, fee=fee, nonce=nonce,
                           memo=memo_bytes)
    except ValueError as exc:  # a chain id no transaction can carry
        fail(f"cannot build the transaction for the node's chain id {chain_id!r}: {exc}")
    with node_errors("the node refused the transaction"):
        client.submit_tx(tx.encoded)
    result: dict[str, Any] = {
        "hash": tx.hash.hex(), "status": "pending", "height": None, "block": None, "index": None,
        "from": wallet.address_text, "to": crypto.address_to_text(to_address), "amount": amount, "fee": fee,
        "nonce": nonce,
    }
    if wait is not None:
        view = _wait_for(client, tx.hash.hex(), wait, timeout_s, poll_interval_s)
        result.update({name: view.get(name) for name in ("status", "height", "block", "index")})
    if as_json:
        emit_json(result)
        return
    click.echo(f"hash:   {result['hash']}")
    click.echo(f"status: {result['status']}")
    if result["block"] is not None:
        click.echo(f"block:  {result['block']} (height {result['height']}, index {result['index']})")


def _wait_for(client: RpcClient, tx_hash: str, wanted: str, timeout_s: float, poll_interval_s: float) -> dict[str, Any]:
    """Poll the transaction's status until it is one of `wanted`'s states; one-line errors otherwise."""
    deadline = time.monotonic() + timeout_s
    dots = 0

    def stop(message: str) -> NoReturn:
        if dots:
            click.echo("", err=True)  # end the line of progress dots before the error line
        fail(message)

    while True:
        try:
            view = client.tx_status(tx_hash)
        except RpcUnavailable as exc:
            stop(f"cannot reach the node at {exc.url} while waiting for {tx_hash}: {exc.reason}")
        except RpcError as exc:
            stop(f"asking for the status of {tx_hash} failed [{exc.code}]: {exc.message}")
        status = answer_field(view, "status", str)
        if status in _WAIT_STATES[wanted]:
            if dots:
                click.echo("", err=True)
            return view
        if status == "unknown":
            stop(f"the node no longer knows transaction {tx_hash} (replaced or dropped from its mempool?)")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            stop(f"timed out after {timeout_s:g} s waiting for transaction {tx_hash} to be {wanted} "
                 f"(last status: {status})")
        click.echo(".", err=True, nl=False)
        dots += 1
        time.sleep(min(poll_interval_s, remaining))


def _read_hex(text: str) -> bytes:
    if text == "-":
        text = sys.stdin.read()
    cleaned = "".join(text.split()).lower().removeprefix("0x")
    if not cleaned:
        fail("no transaction hex given")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        fail("the transaction is not hex (expected the output of `chainlab tx build`)")


def _memo_text(tx: Transaction) -> str:
    try:
        return repr(tx.memo.decode("utf-8")) if tx.memo else "(none)"
    except UnicodeDecodeError:
        return f"0x{tx.memo.hex()} (not UTF-8)"


@command.command(name="decode")
@click.argument("hex_text", metavar="HEX")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with signature_valid).")
def decode_command(hex_text: str, as_json: bool) -> None:
    """Decode a signed transaction from HEX ('-' reads it from stdin) and check its signature.

    Bytes that are not a canonical signed transaction are an error naming the reject code (e.g. malformed,
    oversize). A transaction that decodes but whose signature does not verify prints signature INVALID.
    """
    try:
        tx = decode_tx(_read_hex(hex_text))
    except DecodeError as exc:
        fail(f"cannot decode transaction [{exc.code}]: {exc.message}")
    signature_valid = crypto.verify(tx.sender, tx.signature, tx.signing_hash)
    if as_json:
        emit_json({**tx.to_json(), "hex": tx.encoded.hex(), "signature_valid": signature_valid})
        return
    view = tx.to_json()
    fields = [
        ("hash", view["hash"]), ("chain id", view["chain_id"]), ("from", view["from"]), ("to", view["to"]),
        ("amount", view["amount"]), ("fee", view["fee"]), ("nonce", view["nonce"]), ("memo", _memo_text(tx)),
        ("size", f"{tx.size} bytes"), ("signature", "valid" if signature_valid else "INVALID"),
    ]
    for label, value in fields:
        click.echo(f"{label + ':':<10} {value}")


def _confirmations(view: dict[str, Any], tip_height: object) -> int:
    height = view.get("height")
    if view.get("status") not in ("included", "final") or type(height) is not int or type(tip_height) is not int:
        return 0
    return max(0, tip_height - height + 1)


@command.command(name="show")
@click.argument("tx_hash", metavar="HASH")
@node_option
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: hash, status, confirmations, height, block, from, to, amount, fee, nonce.")
def show_tx(tx_hash: str, node_url: str | None, as_json: bool) -> None:
    """Show transaction HASH as the node at --node sees it: status (pending, included, final), confirmations
    (blocks from its block to the tip, 1 in the tip), block hash and height, sender, recipient, amount, fee, nonce.

    A hash the node does not know (never seen, or dropped from its mempool) is a one-line error.
    """
    cleaned = tx_hash.strip().lower().removeprefix("0x")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        fail(f"not a transaction hash: {tx_hash!r} (expected 64 hex digits)")
    client = node_client(node_url)
    with node_errors("asking for the transaction failed"):
        view = client.tx_status(cleaned)
        status = answer_field(view, "status", str)
        tip_height = client.status().get("height") if status in ("included", "final") else None
    if status == "unknown":
        fail(f"the node at {client.base_url} does not know transaction {cleaned}")
    tx = view.get("tx") if isinstance(view.get("tx"), dict) else {}
    assert isinstance(tx, dict)
    result: dict[str, Any] = {
        "hash": cleaned, "status": status, "confirmations": _confirmations(view, tip_height),
        "height": view.get("height"), "block": view.get("block"), "index": view.get("index"),
        **{name: tx.get(name) for name in ("from", "to", "amount", "fee", "nonce")},
    }
    if as_json:
        emit_json(result)
        return
    for label in ("hash", "status", "confirmations", "block", "height", "from", "to", "amount", "fee", "nonce"):
        if result[label] is not None:
            click.echo(f"{label + ':':<15}{result[label]}")
