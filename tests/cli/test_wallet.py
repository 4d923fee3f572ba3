"""`chainlab wallet`: new, list, show, address; passphrase sources; one-line errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from chain import crypto
from cli.keystore import Keystore
from tests.cli.helpers import PASSPHRASE, Invoke, assert_ok, assert_one_line_error, assert_usage_error, ok_json


def _new(invoke: Invoke, name: str, *extra: str, password: str | None = PASSPHRASE) -> dict[str, str]:
    view: dict[str, str] = ok_json(invoke("wallet", "new", name, "--json", *extra, password=password))
    return view


def test_new_prints_name_and_address_and_writes_a_private_file(invoke: Invoke, wallet_dir: Path) -> None:
    result = invoke("wallet", "new", "alice")
    assert_ok(result)
    path = wallet_dir / "alice.json"
    address = json.loads(path.read_text())["address"]
    assert "alice" in result.stdout and address in result.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(wallet_dir.stat().st_mode) == 0o700
    assert Keystore(wallet_dir).unlock("alice", PASSPHRASE).address == crypto.address_from_text(address)


def test_new_json(invoke: Invoke, wallet_dir: Path) -> None:
    view = _new(invoke, "alice")
    assert view["name"] == "alice"
    assert view["path"] == str(wallet_dir / "alice.json")
    assert crypto.address_of(bytes.fromhex(view["public_key"])) == crypto.address_from_text(view["address"])


def test_password_file_first_line_wins_over_env(invoke: Invoke, wallet_dir: Path, tmp_path: Path) -> None:
    password_file = tmp_path / "pw.txt"
    password_file.write_text("from-file\r\nsecond line\n")
    _new(invoke, "alice", "--password-file", str(password_file), password="from-env")
    Keystore(wallet_dir).unlock("alice", "from-file")


def test_prompt_asks_twice(invoke: Invoke, wallet_dir: Path) -> None:
    result = invoke("wallet", "new", "alice", input="typed\ntyped\n", password=None)
    assert_ok(result)
    assert "passphrase" in result.stderr.lower()
    assert "typed" not in result.output  # hidden input
    Keystore(wallet_dir).unlock("alice", "typed")


def test_prompt_mismatch_then_eof_aborts_cleanly(invoke: Invoke, wallet_dir: Path) -> None:
    result = invoke("wallet", "new", "alice", input="one\ntwo\n", password=None)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not (wallet_dir / "alice.json").exists()


def test_empty_passphrase_is_allowed_with_a_warning(invoke: Invoke, wallet_dir: Path) -> None:
    result = invoke("wallet", "new", "alice", password="")
    assert_ok(result)
    assert "warning:" in result.stderr and "empty passphrase" in result.stderr
    Keystore(wallet_dir).unlock("alice", "")


def test_wallet_dir_option_on_group_and_command(invoke: Invoke, tmp_path: Path) -> None:
    group_dir, command_dir = tmp_path / "g", tmp_path / "c"
    assert_ok(invoke("wallet", "--wallet-dir", str(group_dir), "new", "a"))
    assert_ok(invoke("wallet", "--wallet-dir", str(group_dir), "new", "b", "--wallet-dir", str(command_dir)))
    assert (group_dir / "a.json").exists() and (command_dir / "b.json").exists()
    assert not (group_dir / "b.json").exists()
    listed = ok_json(invoke("wallet", "list", "--json", "--wallet-dir", str(group_dir)))
    assert [w["name"] for w in listed] == ["a"]


def test_list(invoke: Invoke, wallet_dir: Path) -> None:
    bob, alice = _new(invoke, "bob"), _new(invoke, "alice")
    listed = ok_json(invoke("wallet", "list", "--json", password=None))
    assert listed == [{"name": "alice", "address": alice["address"]}, {"name": "bob", "address": bob["address"]}]
    result = invoke("wallet", "list", password=None)
    assert_ok(result)
    assert result.stdout.splitlines() == [f"alice  {alice['address']}", f"bob    {bob['address']}"]


def test_list_empty_and_missing_directory(invoke: Invoke) -> None:
    result = invoke("wallet", "list")
    assert_ok(result)
    assert result.stdout == "" and "no wallets" in result.stderr
    assert ok_json(invoke("wallet", "list", "--json")) == []


def test_list_skips_a_corrupt_file_with_a_warning(invoke: Invoke, wallet_dir: Path) -> None:
    _new(invoke, "alice")
    (wallet_dir / "broken.json").write_text("{")
    result = invoke("wallet", "list", "--json")
    assert [w["name"] for w in ok_json(result)] == ["alice"]
    assert "warning: skipped" in result.stderr and "broken.json" in result.stderr


def test_show_and_address(invoke: Invoke) -> None:
    alice = _new(invoke, "alice")
    shown = ok_json(invoke("wallet", "show", "alice", "--json", password=None))
    assert shown == alice  # no secret without --show-secret, and no passphrase needed
    result = invoke("wallet", "show", "alice", password=None)
    assert_ok(result)
    assert alice["address"] in result.stdout and alice["public_key"] in result.stdout
    result = invoke("wallet", "address", "alice", password=None)
    assert_ok(result)
    assert result.stdout == alice["address"] + "\n"


def test_show_secret(invoke: Invoke, wallet_dir: Path) -> None:
    _new(invoke, "alice")
    secret = Keystore(wallet_dir).unlock("alice", PASSPHRASE).secret.hex()
    shown = ok_json(invoke("wallet", "show", "alice", "--show-secret", "--json"))
    assert shown["secret"] == secret
    result = invoke("wallet", "show", "alice", "--show-secret")
    assert_ok(result)
    assert secret in result.stdout


def test_show_secret_prompts(invoke: Invoke) -> None:
    _new(invoke, "alice")
    result = invoke("wallet", "show", "alice", "--show-secret", input=PASSPHRASE + "\n", password=None)
    assert_ok(result)
    assert "secret:" in result.stdout


# --- errors: exit 1, one line, no traceback ------------------------------------------------------------------


def test_wrong_passphrase(invoke: Invoke) -> None:
    _new(invoke, "alice")
    assert_one_line_error(invoke("wallet", "show", "alice", "--show-secret", password="nope"), "wrong passphrase")


@pytest.mark.parametrize("command", ["show", "address"])
def test_missing_wallet(invoke: Invoke, command: str) -> None:
    assert_one_line_error(invoke("wallet", command, "carol"), "no wallet named 'carol'")


def test_existing_wallet_is_refused_before_asking_for_a_passphrase(invoke: Invoke) -> None:
    alice = _new(invoke, "alice")
    assert_one_line_error(invoke("wallet", "new", "alice", password=None), "already exists")
    assert ok_json(invoke("wallet", "show", "alice", "--json")) == alice


@pytest.mark.parametrize("name", ["a/b", "../escape", "x" * 65, "with space", "caf\u00e9"])
def test_bad_name(invoke: Invoke, name: str) -> None:
    assert_one_line_error(invoke("wallet", "new", name), "invalid wallet name")


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"version": 1, "name": "alice"', b"\x00\xffbinary", b'"a string"', b'{"version": 9}'],
    ids=["empty", "brace", "truncated", "binary", "string", "wrong-version"],
)
def test_corrupt_keystore(invoke: Invoke, wallet_dir: Path, content: bytes) -> None:
    _new(invoke, "alice")
    (wallet_dir / "alice.json").write_bytes(content)
    assert_one_line_error(invoke("wallet", "show", "alice"), "alice.json")
    assert_one_line_error(invoke("wallet", "address", "alice"), "alice.json")


def test_tampered_ciphertext(invoke: Invoke, wallet_dir: Path) -> None:
    _new(invoke, "alice")
    path = wallet_dir / "alice.json"
    doc = json.loads(path.read_text())
    ciphertext = bytearray.fromhex(doc["crypto"]["ciphertext"])
    ciphertext[-1] ^= 0x80
    doc["crypto"]["ciphertext"] = ciphertext.hex()
    path.write_text(json.dumps(doc))
    assert_one_line_error(invoke("wallet", "show", "alice", "--show-secret"), "altered")


def test_unreadable_password_file(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("wallet", "new", "alice", "--password-file", str(tmp_path / "none.txt"))
    assert_one_line_error(result, "cannot read password file")


def test_bad_scrypt_env(invoke: Invoke) -> None:
    result = invoke("wallet", "new", "alice", env={"CHAINLAB_SCRYPT_N": "1000"})
    assert_one_line_error(result, "CHAINLAB_SCRYPT_N")


def test_unknown_option_is_a_usage_error(invoke: Invoke) -> None:
    assert_usage_error(invoke("wallet", "new"), "Missing argument 'NAME'")


@pytest.mark.parametrize("args", [[], ["new"], ["list"], ["show"], ["address"]])
def test_help_reads(invoke: Invoke, args: list[str]) -> None:
    result = invoke("wallet", *args, "--help")
    assert_ok(result)
    assert "Usage: chainlab wallet" in result.stdout
