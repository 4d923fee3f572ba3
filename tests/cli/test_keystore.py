"""The wallet keystore: sealing, file format, permissions, and every way a keystore file can be bad."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from chain import crypto
from cli import keystore as ks
from cli.keystore import (
    CorruptKeystore,
    InvalidWalletName,
    Keystore,
    KeystoreError,
    WalletExists,
    WalletNotFound,
    WrongPassphrase,
)
from tests.conftest import key

FAST_N = 1024


@pytest.fixture
def store(wallet_dir: Path) -> Keystore:
    return Keystore(wallet_dir, scrypt_n=FAST_N)


def _doc(store: Keystore, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(store.path_of(name).read_text())
    return doc


def _rewrite(store: Keystore, name: str, doc: dict[str, Any]) -> None:
    store.path_of(name).write_text(json.dumps(doc))


def test_create_unlock_round_trip(store: Keystore) -> None:
    wallet = store.create("alice", "pw", key=key(0))
    assert wallet.address == key(0).address
    assert store.unlock("alice", "pw").secret == key(0).secret
    loaded = store.load("alice")
    assert (loaded.name, loaded.address, loaded.public_key) == ("alice", key(0).address, key(0).public_key)


def test_file_format(store: Keystore) -> None:
    store.create("alice", "pw", key=key(0))
    doc = _doc(store, "alice")
    assert doc["version"] == 1
    assert doc["name"] == "alice"
    assert doc["address"] == crypto.address_to_text(key(0).address)
    assert doc["public_key"] == key(0).public_key.hex()
    sealed = doc["crypto"]
    assert sealed["kdf"] == "scrypt" and sealed["cipher"] == "aes-256-gcm"
    assert sealed["kdfparams"]["n"] == FAST_N and sealed["kdfparams"]["r"] == 8 and sealed["kdfparams"]["p"] == 1
    assert len(bytes.fromhex(sealed["kdfparams"]["salt"])) == 16
    assert len(bytes.fromhex(sealed["nonce"])) == 12
    assert len(bytes.fromhex(sealed["ciphertext"])) == 48
    assert key(0).secret.hex() not in store.path_of("alice").read_text()


def test_permissions_and_no_temp_files_left(store: Keystore, wallet_dir: Path) -> None:
    store.create("alice", "pw")
    assert stat.S_IMODE(wallet_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path_of("alice").stat().st_mode) == 0o600
    assert [p.name for p in wallet_dir.iterdir()] == ["alice.json"]


def test_fresh_keys_salts_and_nonces(store: Keystore) -> None:
    first, second = store.create("a", "pw"), store.create("b", "pw")
    assert first.address != second.address
    assert first.scrypt.salt != second.scrypt.salt and first.nonce != second.nonce


def test_scrypt_cost_comes_from_env_for_new_wallets_and_from_the_file_when_opening(
    wallet_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ks.SCRYPT_N_ENV, "2048")
    Keystore(wallet_dir).create("alice", "pw")
    monkeypatch.setenv(ks.SCRYPT_N_ENV, "1024")
    wallet = Keystore(wallet_dir).load("alice")
    assert wallet.scrypt.n == 2048
    wallet.unlock("pw")
    monkeypatch.delenv(ks.SCRYPT_N_ENV)
    assert ks.scrypt_n_from_env() == ks.DEFAULT_SCRYPT_N == 2**15


@pytest.mark.parametrize("value", ["1000", "1", "0", "-4", "many"])
def test_bad_scrypt_env_is_a_keystore_error(value: str, monkeypatch: pytest.MonkeyPatch, wallet_dir: Path) -> None:
    monkeypatch.setenv(ks.SCRYPT_N_ENV, value)
    with pytest.raises(KeystoreError, match=ks.SCRYPT_N_ENV):
        Keystore(wallet_dir).create("alice", "pw")


def test_wrong_passphrase(store: Keystore) -> None:
    store.create("alice", "pw")
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        store.unlock("alice", "PW")


def test_passphrase_is_normalised(store: Keystore) -> None:
    store.create("alice", "caf\u00e9")  # precomposed
    store.unlock("alice", "cafe\u0301")  # e + combining acute: the same text


def test_empty_passphrase_works(store: Keystore) -> None:
    store.create("alice", "")
    store.unlock("alice", "")


def test_missing_wallet(store: Keystore) -> None:
    with pytest.raises(WalletNotFound, match="no wallet named 'bob'"):
        store.load("bob")


@pytest.mark.parametrize("name", ["", "a/b", "../x", "a b", "x" * 65, "caf\u00e9", "a\n"])
def test_bad_names(store: Keystore, name: str) -> None:
    with pytest.raises(InvalidWalletName):
        store.create(name, "pw")
    with pytest.raises(InvalidWalletName):
        store.load(name)
    assert not store.exists(name)


@pytest.mark.parametrize("name", ["a", "Alice_2", "node-1.miner", "x" * 64])
def test_good_names(store: Keystore, name: str) -> None:
    store.create(name, "pw")
    assert store.exists(name)


def test_never_overwrites(store: Keystore) -> None:
    original = store.create("alice", "pw")
    with pytest.raises(WalletExists, match="already exists"):
        store.create("alice", "other")
    assert store.load("alice").address == original.address


def test_publish_refuses_an_existing_name_even_after_the_check(store: Keystore, wallet_dir: Path) -> None:
    # The race: another process publishes the same name between our existence check and our write.
    store.create("alice", "pw")
    with pytest.raises(FileExistsError):
        ks._write_new_file(store.path_of("alice"), b"{}")
    store.unlock("alice", "pw")
    assert [p.name for p in wallet_dir.iterdir()] == ["alice.json"]


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"not json at all", b"\xff\xfe\x00", b"[]", b"null", b'{"version": 1}'],
    ids=["empty", "truncated-brace", "text", "binary", "array", "null", "missing-fields"],
)
def test_unreadable_files_are_corrupt(store: Keystore, content: bytes) -> None:
    store.create("alice", "pw")
    store.path_of("alice").write_bytes(content)
    with pytest.raises(CorruptKeystore, match=r"alice\.json"):
        store.load("alice")


def test_truncated_file_is_corrupt(store: Keystore) -> None:
    store.create("alice", "pw")
    path = store.path_of("alice")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CorruptKeystore, match="not JSON"):
        store.load("alice")


def test_oversized_file_is_corrupt(store: Keystore) -> None:
    store.create("alice", "pw")
    store.path_of("alice").write_bytes(b" " * (70 * 1024))
    with pytest.raises(CorruptKeystore, match="larger than"):
        store.load("alice")


def _set(doc: dict[str, Any], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc[part]
    doc[last] = value


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("version", 2, "unsupported keystore version"),
        ("version", True, "unsupported keystore version"),
        ("name", 7, "name must be text"),
        ("address", "cl00", "address"),
        ("public_key", "zz", "public_key is not hex"),
        ("public_key", "02" + "00" * 32, "not a compressed secp256k1 point"),
        ("crypto.kdf", "pbkdf2", "unsupported kdf"),
        ("crypto.cipher", "aes-128-ctr", "unsupported kdf/cipher"),
        ("crypto.kdfparams.n", 1000, "power of two"),
        ("crypto.kdfparams.n", 2**40, "exceed the supported cost"),
        ("crypto.kdfparams.r", "8", "positive integer"),
        ("crypto.kdfparams.p", 0, "positive integer"),
        ("crypto.kdfparams.salt", "00", "salt must be at least"),
        ("crypto.nonce", "00" * 11, "nonce must be 12 bytes"),
        ("crypto.ciphertext", "00" * 47, "ciphertext must be 48 bytes"),
        ("crypto.ciphertext", 5, "ciphertext must be text"),
        ("crypto.kdfparams", [], "kdfparams must be a JSON object"),
    ],
)
def test_malformed_fields_are_corrupt(store: Keystore, field: str, value: object, reason: str) -> None:
    store.create("alice", "pw")
    doc = _doc(store, "alice")
    _set(doc, field, value)
    _rewrite(store, "alice", doc)
    with pytest.raises(CorruptKeystore, match=reason):
        store.load("alice")


def test_missing_field_is_named(store: Keystore) -> None:
    store.create("alice", "pw")
    doc = _doc(store, "alice")
    del doc["crypto"]["nonce"]
    _rewrite(store, "alice", doc)
    with pytest.raises(CorruptKeystore, match="missing field 'nonce'"):
        store.load("alice")


def test_tampered_ciphertext_does_not_open(store: Keystore) -> None:
    store.create("alice", "pw")
    doc = _doc(store, "alice")
    ciphertext = bytearray.fromhex(doc["crypto"]["ciphertext"])
    ciphertext[0] ^= 1
    doc["crypto"]["ciphertext"] = ciphertext.hex()
    _rewrite(store, "alice", doc)
    with pytest.raises(WrongPassphrase, match="altered"):
        store.unlock("alice", "pw")


def test_swapped_identity_does_not_open(store: Keystore) -> None:
    # Another key's address and public key pasted in: the address is the associated data, so AES-GCM refuses.
    store.create("alice", "pw")
    doc = _doc(store, "alice")
    doc["address"] = crypto.address_to_text(key(1).address)
    doc["public_key"] = key(1).public_key.hex()
    _rewrite(store, "alice", doc)
    assert store.load("alice").address == key(1).address  # well-formed, so listing still shows it
    with pytest.raises(WrongPassphrase):
        store.unlock("alice", "pw")


def test_address_must_match_public_key(store: Keystore) -> None:
    store.create("alice", "pw")
    doc = _doc(store, "alice")
    doc["public_key"] = key(1).public_key.hex()
    _rewrite(store, "alice", doc)
    with pytest.raises(CorruptKeystore, match="does not belong"):
        store.load("alice")


def test_scan_lists_wallets_and_reports_bad_files(store: Keystore, wallet_dir: Path) -> None:
    assert store.scan() == ([], [])  # no directory yet
    store.create("bob", "pw")
    store.create("alice", "pw")
    (wallet_dir / "broken.json").write_text("{")
    (wallet_dir / "notes.txt").write_text("ignored")
    (wallet_dir / "bad name.json").write_text("ignored: not a wallet name")
    wallets, problems = store.scan()
    assert [w.name for w in wallets] == ["alice", "bob"]
    assert len(problems) == 1 and isinstance(problems[0], CorruptKeystore)
    assert "broken.json" in str(problems[0])


def test_file_name_is_the_wallet_name(store: Keystore) -> None:
    store.create("alice", "pw")
    store.path_of("alice").rename(store.path_of("carol"))
    assert store.load("carol").name == "carol"
    store.unlock("carol", "pw")


def test_default_wallet_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ks.WALLET_DIR_ENV, str(tmp_path / "w"))
    assert ks.default_wallet_dir() == tmp_path / "w"
    monkeypatch.delenv(ks.WALLET_DIR_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ks.default_wallet_dir() == tmp_path / ".chainlab" / "wallets"
