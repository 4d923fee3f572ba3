"""`chainlab tx build` and `tx decode`: signed output that decodes and verifies, and clean failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result

from chain import crypto
from chain.encoding import U64_MAX
from chain.tx import decode_tx, make_transfer
from cli.keystore import Keystore
from tests.cli.helpers import PASSPHRASE, Invoke, assert_ok, assert_one_line_error, assert_usage_error, ok_json
from tests.conftest import key

BOB = crypto.address_to_text(key(7).address)


@pytest.fixture
def alice(invoke: Invoke) -> str:
    """Address of a wallet named alice."""
    address: str = ok_json(invoke("wallet", "new", "alice", "--json"))["address"]
    return address


@pytest.fixture
def genesis_file(invoke: Invoke, alice: str, tmp_path: Path) -> Path:
    out = tmp_path / "genesis.toml"
    assert_ok(invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--chain-id", "lab-1",
                     "--fund", "alice=1000", "--param", "min_fee=2"))
    return out


def _build(
    invoke: Invoke, genesis_file: Path, *extra: str, to: str = BOB, amount: str = "250", fee: str = "2",
    nonce: str = "0", sender: str = "alice", password: str | None = PASSPHRASE,
) -> Result:
    return invoke("tx", "build", "--from", sender, "--to", to, "--amount", amount, "--fee", fee, "--nonce", nonce,
                  "--genesis", str(genesis_file), *extra, password=password)


def test_build_decodes_and_verifies(invoke: Invoke, alice: str, genesis_file: Path) -> None:
    result = _build(invoke, genesis_file, "--memo", "rent \u2603")
    assert_ok(result)
    tx = decode_tx(bytes.fromhex(result.stdout.strip()))
    assert crypto.verify(tx.sender, tx.signature, tx.signing_hash)
    assert tx.sender_address == crypto.address_from_text(alice)
    assert (tx.chain_id, tx.recipient, tx.amount, tx.fee, tx.nonce) == ("lab-1", key(7).address, 250, 2, 0)
    assert tx.memo == "rent \u2603".encode()


def test_build_json(invoke: Invoke, alice: str, genesis_file: Path) -> None:
    view = ok_json(_build(invoke, genesis_file, "--json", nonce="4"))
    tx = decode_tx(bytes.fromhex(view.pop("hex")))
    assert view == json.loads(json.dumps(tx.to_json()))
    assert view["from"] == alice and view["nonce"] == 4


def test_build_signs_with_the_wallet_key(invoke: Invoke, genesis_file: Path, wallet_dir: Path) -> None:
    signer = Keystore(wallet_dir).unlock("alice", PASSPHRASE)
    expected = make_transfer(signer, chain_id="lab-1", recipient=key(7).address, amount=250, fee=2, nonce=0)
    assert _build(invoke, genesis_file).stdout.strip() == expected.encoded.hex()


def test_to_accepts_a_wallet_name(invoke: Invoke, genesis_file: Path) -> None:
    carol = ok_json(invoke("wallet", "new", "carol", "--json"))["address"]
    tx = decode_tx(bytes.fromhex(_build(invoke, genesis_file, to="carol").stdout))
    assert tx.recipient == crypto.address_from_text(carol)


def test_password_file_and_prompt(invoke: Invoke, genesis_file: Path, tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text(PASSPHRASE + "\n")
    assert_ok(_build(invoke, genesis_file, "--password-file", str(password_file), password="wrong"))
    result = invoke("tx", "build", "--from", "alice", "--to", BOB, "--amount", "1", "--fee", "2", "--nonce", "0",
                    "--genesis", str(genesis_file), password=None, input=PASSPHRASE + "\n")
    assert_ok(result)
    decode_tx(bytes.fromhex(result.stdout.strip()))


def test_fee_below_min_fee_warns(invoke: Invoke, genesis_file: Path) -> None:
    result = _build(invoke, genesis_file, fee="1")
    assert_ok(result)
    assert "warning:" in result.stderr and "min_fee 2" in result.stderr


def test_limits_are_accepted(invoke: Invoke, genesis_file: Path) -> None:
    result = _build(invoke, genesis_file, "--memo", "x" * 256, amount=str(U64_MAX - 2), nonce=str(U64_MAX))
    tx = decode_tx(bytes.fromhex(result.stdout.strip()))
    assert (tx.amount, tx.nonce, len(tx.memo)) == (U64_MAX - 2, U64_MAX, 256)


# --- errors ------------------------------------------------------------------------------------------------------


def test_mistyped_address(invoke: Invoke, genesis_file: Path) -> None:
    typo = BOB[:10] + ("a" if BOB[10] != "a" else "b") + BOB[11:]
    assert_one_line_error(_build(invoke, genesis_file, to=typo), "checksum mismatch")
    assert_one_line_error(_build(invoke, genesis_file, to=BOB + "0"), "invalid address")
    assert_one_line_error(_build(invoke, genesis_file, to="nobody"), "neither a wallet")


def test_memo_too_long(invoke: Invoke, genesis_file: Path) -> None:
    assert_one_line_error(_build(invoke, genesis_file, "--memo", "\u00e9" * 129), "258 bytes")


def test_amount_plus_fee_overflows(invoke: Invoke, genesis_file: Path) -> None:
    assert_one_line_error(_build(invoke, genesis_file, amount=str(U64_MAX)), "exceeds u64")


@pytest.mark.parametrize(
    ("field", "value"), [("amount", "-1"), ("fee", str(2**64)), ("nonce", "1.5"), ("amount", "ten")]
)
def test_out_of_range_numbers_are_usage_errors(invoke: Invoke, genesis_file: Path, field: str, value: str) -> None:
    assert_usage_error(_build(invoke, genesis_file, **{field: value}), f"--{field}")


def test_wrong_passphrase(invoke: Invoke, genesis_file: Path) -> None:
    assert_one_line_error(_build(invoke, genesis_file, password="nope"), "wrong passphrase")


def test_missing_wallet(invoke: Invoke, genesis_file: Path) -> None:
    assert_one_line_error(_build(invoke, genesis_file, sender="zed"), "no wallet named 'zed'")


def test_corrupt_wallet(invoke: Invoke, genesis_file: Path, wallet_dir: Path) -> None:
    path = wallet_dir / "alice.json"
    path.write_text(path.read_text()[:100])
    assert_one_line_error(_build(invoke, genesis_file), "alice.json")


def test_bad_genesis(invoke: Invoke, genesis_file: Path, tmp_path: Path) -> None:
    assert_one_line_error(_build(invoke, tmp_path / "none.toml"), "cannot read genesis file")
    genesis_file.write_text("consensus = 'pow'\n")
    assert_one_line_error(_build(invoke, genesis_file), "invalid genesis")


def test_decode(invoke: Invoke, alice: str, genesis_file: Path) -> None:
    hex_text = _build(invoke, genesis_file, "--memo", "hi").stdout.strip()
    view = ok_json(invoke("tx", "decode", hex_text, "--json"))
    assert view["signature_valid"] is True and view["hex"] == hex_text and view["from"] == alice
    result = invoke("tx", "decode", "0x" + hex_text.upper())
    assert_ok(result)
    assert "signature: valid" in result.stdout and "'hi'" in result.stdout and BOB in result.stdout
    piped = invoke("tx", "decode", "-", input=hex_text + "\n")
    assert_ok(piped)
    assert piped.stdout == result.stdout


def test_decode_reports_a_bad_signature(invoke: Invoke, genesis_file: Path) -> None:
    raw = bytearray.fromhex(_build(invoke, genesis_file).stdout.strip())
    raw[-1] ^= 1  # the last byte belongs to the signature
    view = ok_json(invoke("tx", "decode", raw.hex(), "--json"))
    assert view["signature_valid"] is False
    assert "signature: INVALID" in invoke("tx", "decode", raw.hex()).stdout


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("zz", "not hex"),
        ("abc", "not hex"),
        ("", "no transaction hex"),
        ("abcd", "[malformed]"),
        ("00" * 600, "[oversize]"),
    ],
)
def test_decode_errors(invoke: Invoke, text: str, needle: str) -> None:
    assert_one_line_error(invoke("tx", "decode", text), needle)


def test_decode_trailing_bytes(invoke: Invoke, genesis_file: Path) -> None:
    hex_text = _build(invoke, genesis_file).stdout.strip()
    assert_one_line_error(invoke("tx", "decode", hex_text + "00"), "cannot decode transaction [malformed]")


@pytest.mark.parametrize("args", [[], ["build"], ["decode"]])
def test_help_reads(invoke: Invoke, args: list[str]) -> None:
    result = invoke("tx", *args, "--help")
    assert_ok(result)
    assert "Usage: chainlab tx" in result.stdout
