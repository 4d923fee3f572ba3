"""`chainlab tx`: build and sign a transfer from a wallet, and decode a transaction's hex."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from chain import crypto
from chain.encoding import U64_MAX
from chain.errors import DecodeError
from chain.tx import MAX_MEMO_BYTES, Transaction, decode_tx, make_transfer
from cli.common import emit_json, fail
from cli.genesis import load_genesis_file
from cli.wallet import (
    open_keystore,
    password_file_option,
    read_passphrase,
    resolve_account,
    user_errors,
    wallet_dir_option,
)

_U64 = click.IntRange(0, U64_MAX)


@click.group(name="tx")
def command() -> None:
    """Build signed transfers offline and decode transaction hex.

    `tx build` prints the hex a node accepts at POST /v1/transactions ({"tx": "<hex>"}).
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
    memo_bytes = memo.encode("utf-8")
    if len(memo_bytes) > MAX_MEMO_BYTES:
        fail(f"--memo is {len(memo_bytes)} bytes of UTF-8; the limit is {MAX_MEMO_BYTES}")
    if amount + fee > U64_MAX:
        fail("--amount plus --fee exceeds u64; no account can pay that")
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
