"""Wallet keystore: one passphrase-encrypted JSON file per wallet in a wallet directory.

A wallet named `alice` lives in `<wallet dir>/alice.json`:

```json
{"version": 1, "name": "alice", "address": "cl...", "public_key": "<33 bytes hex>",
 "crypto": {"kdf": "scrypt", "kdfparams": {"n": 32768, "r": 8, "p": 1, "salt": "<16 bytes hex>"},
            "cipher": "aes-256-gcm", "nonce": "<12 bytes hex>", "ciphertext": "<48 bytes hex>"}}
```

The 32-byte secret key is sealed with AES-256-GCM under a key that scrypt derives from the passphrase (UTF-8
of its NFC form), with the 20 raw address bytes as associated data, so a file whose address was swapped does
not open. The address and public key are stored in clear: listing wallets and funding one in a genesis need no
passphrase. The file name is the wallet's name (rename a wallet by renaming its file); the `name` field
records the name it was created with.

Files are written to a temporary file first (created with mode 0600), synced, and then published under their
final name in one step that never replaces an existing wallet. This module does file I/O, which is why it
lives in cli/ and not in the pure chain/ layer; it knows nothing about click.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from chain import crypto

_log = logging.getLogger(__name__)

KEYSTORE_VERSION = 1
WALLET_DIR_ENV = "CHAINLAB_WALLET_DIR"
# For tests only: a small scrypt cost makes creating a wallet take milliseconds instead of ~0.1 s. Opening a
# wallet always uses the parameters stored in its file.
SCRYPT_N_ENV = "CHAINLAB_SCRYPT_N"
DEFAULT_SCRYPT_N = 2**15
DEFAULT_SCRYPT_R = 8
DEFAULT_SCRYPT_P = 1
KDF_NAME = "scrypt"
CIPHER_NAME = "aes-256-gcm"
WALLET_SUFFIX = ".json"

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SECRET_BYTES = 32
_SALT_BYTES = 16
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_FILE_BYTES = 64 * 1024
# Bounds on the scrypt cost a file may ask for, so a hostile or damaged file cannot make us allocate lots.
_MAX_SCRYPT_MEMORY_BYTES = 1 << 30
_MAX_SCRYPT_P = 16


class KeystoreError(Exception):
    """A wallet operation that cannot be done; the message is one line meant for the user."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not open the wallet (or its sealed key was altered)."""


class WalletNotFound(KeystoreError):
    """No wallet of that name in the wallet directory."""


class CorruptKeystore(KeystoreError):
    """A keystore file that is not a well-formed, self-consistent version-1 keystore."""


class WalletExists(KeystoreError):
    """A wallet of that name already exists; keystores are never overwritten."""


class InvalidWalletName(KeystoreError):
    """A wallet name outside [A-Za-z0-9_.-]{1,64}."""


def check_wallet_name(name: str) -> str:
    """Return `name` if it is a valid wallet name, else raise InvalidWalletName."""
    if not _NAME_PATTERN.fullmatch(name):
        raise InvalidWalletName(
            f"invalid wallet name {name!r}: use 1 to 64 letters, digits, '_', '.' or '-'"
        )
    return name


def is_wallet_name(text: str) -> bool:
    """True when `text` is a syntactically valid wallet name."""
    return _NAME_PATTERN.fullmatch(text) is not None


def default_wallet_dir() -> Path:
    """`$CHAINLAB_WALLET_DIR` if set, else `~/.chainlab/wallets`."""
    configured = os.environ.get(WALLET_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".chainlab" / "wallets"


def scrypt_n_from_env() -> int:
    """The scrypt cost for new wallets: `$CHAINLAB_SCRYPT_N` (tests only) or DEFAULT_SCRYPT_N."""
    text = os.environ.get(SCRYPT_N_ENV)
    if not text:
        return DEFAULT_SCRYPT_N
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 2 or n & (n - 1):
        raise KeystoreError(f"{SCRYPT_N_ENV} must be a power of two of at least 2, got {text!r}")
    return n


@dataclass(frozen=True, slots=True, kw_only=True)
class ScryptParams:
    """Scrypt cost parameters and salt of one keystore."""

    n: int
    r: int
    p: int
    salt: bytes

    def __post_init__(self) -> None:
        for label in ("n", "r", "p"):
            value = getattr(self, label)
            if type(value) is not int or value < 1:
                raise ValueError(f"scrypt {label} must be a positive integer")
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError("scrypt n must be a power of two of at least 2")
        if 128 * self.n * self.r > _MAX_SCRYPT_MEMORY_BYTES or self.p > _MAX_SCRYPT_P:
            raise ValueError("scrypt parameters exceed the supported cost")
        if len(self.salt) < _SALT_BYTES:
            raise ValueError(f"scrypt salt must be at least {_SALT_BYTES} bytes")

    def derive_key(self, passphrase: str) -> bytes:
        """The 32-byte AES key for `passphrase`."""
        kdf = Scrypt(salt=self.salt, length=32, n=self.n, r=self.r, p=self.p)
        return kdf.derive(unicodedata.normalize("NFC", passphrase).encode("utf-8"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Wallet:
    """One keystore file: the public identity of a wallet and its sealed secret key."""

    name: str
    path: Path
    address: bytes
    public_key: bytes
    scrypt: ScryptParams
    nonce: bytes
    ciphertext: bytes

    @property
    def address_text(self) -> str:
        """The address in its checksummed text form."""
        return crypto.address_to_text(self.address)

    def to_json(self) -> dict[str, Any]:
        """The keystore file's JSON document."""
        return {
            "version": KEYSTORE_VERSION,
            "name": self.name,
            "address": self.address_text,
            "public_key": self.public_key.hex(),
            "crypto": {
                "kdf": KDF_NAME,
                "kdfparams": {
                    "n": self.scrypt.n,
                    "r": self.scrypt.r,
                    "p": self.scrypt.p,
                    "salt": self.scrypt.salt.hex(),
                },
                "cipher": CIPHER_NAME,
                "nonce": self.nonce.hex(),
                "ciphertext": self.ciphertext.hex(),
            },
        }

    def unlock(self, passphrase: str) -> crypto.PrivateKey:
        """Decrypt the secret key; raise WrongPassphrase or CorruptKeystore."""
        aes_key = self.scrypt.derive_key(passphrase)
        try:
            secret = AESGCM(aes_key).decrypt(self.nonce, self.ciphertext, self.address)
        except InvalidTag:
            raise WrongPassphrase(
                f"wrong passphrase for wallet {self.name!r} (or its keystore file {self.path} was altered)"
            ) from None
        try:
            key = crypto.PrivateKey(secret)
        except ValueError as exc:
            raise CorruptKeystore(f"{self.path}: the sealed secret is not a valid key") from exc
        if key.public_key != self.public_key:
            raise CorruptKeystore(f"{self.path}: the sealed secret does not match the stored public key")
        return key


def seal(key: crypto.PrivateKey, *, name: str, path: Path, passphrase: str, scrypt_n: int) -> Wallet:
    """Encrypt `key` under `passphrase` into a Wallet (fresh salt and nonce)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    params = ScryptParams(n=scrypt_n, r=DEFAULT_SCRYPT_R, p=DEFAULT_SCRYPT_P, salt=salt)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ciphertext = AESGCM(params.derive_key(passphrase)).encrypt(nonce, key.secret, key.address)
    return Wallet(
        name=name, path=path, address=key.address, public_key=key.public_key, scrypt=params, nonce=nonce,
        ciphertext=ciphertext,
    )


def parse_wallet(doc: object, *, name: str, path: Path) -> Wallet:
    """Check a keystore JSON document; raise CorruptKeystore naming what is wrong."""
    try:
        return _parse_wallet(doc, name=name, path=path)
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CorruptKeystore(f"{path}: not a valid keystore: {detail}") from exc


def _parse_wallet(doc: object, *, name: str, path: Path) -> Wallet:
    top = _mapping(doc, "the document")
    version = top["version"]
    if version != KEYSTORE_VERSION or type(version) is not int:
        raise ValueError(f"unsupported keystore version {version!r}")
    if not isinstance(top["name"], str):
        raise ValueError("name must be text")
    address = crypto.address_from_text(_text(top, "address"))  # AddressError is a ValueError
    public_key = _hex(top, "public_key")
    if not crypto.is_valid_public_key(public_key):
        raise ValueError("public_key is not a compressed secp256k1 point")
    if crypto.address_of(public_key) != address:
        raise ValueError("address does not belong to public_key")
    sealed = _mapping(top["crypto"], "crypto")
    if sealed["kdf"] != KDF_NAME or sealed["cipher"] != CIPHER_NAME:
        raise ValueError(f"unsupported kdf/cipher {sealed['kdf']!r}/{sealed['cipher']!r}")
    kdfparams = _mapping(sealed["kdfparams"], "kdfparams")
    scrypt = ScryptParams(n=kdfparams["n"], r=kdfparams["r"], p=kdfparams["p"], salt=_hex(kdfparams, "salt"))
    nonce = _hex(sealed, "nonce")
    ciphertext = _hex(sealed, "ciphertext")
    if len(nonce) != _NONCE_BYTES:
        raise ValueError(f"nonce must be {_NONCE_BYTES} bytes")
    if len(ciphertext) != _SECRET_BYTES + _TAG_BYTES:
        raise ValueError(f"ciphertext must be {_SECRET_BYTES + _TAG_BYTES} bytes")
    return Wallet(
        name=name, path=path, address=address, public_key=public_key, scrypt=scrypt, nonce=nonce,
        ciphertext=ciphertext,
    )


def _mapping(value: object, label: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{label} must be a JSON object")
    return value


def _text(doc: Mapping[str, Any], field: str) -> str:
    value = doc[field]
    if not isinstance(value, str):
        raise TypeError(f"{field} must be text")
    return value


def _hex(doc: Mapping[str, Any], field: str) -> bytes:
    try:
        return bytes.fromhex(_text(doc, field))
    except ValueError:
        raise ValueError(f"{field} is not hex") from None


class Keystore:
    """The wallets of one directory (created with mode 0700 on first write)."""

    def __init__(self, directory: Path, *, scrypt_n: int | None = None) -> None:
        self.directory = directory
        self._scrypt_n = scrypt_n

    def path_of(self, name: str) -> Path:
        """The keystore file of wallet `name` (the name is checked first)."""
        return self.directory / (check_wallet_name(name) + WALLET_SUFFIX)

    def exists(self, name: str) -> bool:
        """True when a wallet `name` exists (False for an invalid name)."""
        return is_wallet_name(name) and self.path_of(name).exists()

    def check_new(self, name: str) -> Path:
        """The file of a wallet `name` to create; raise InvalidWalletName or WalletExists."""
        path = self.path_of(name)
        if path.exists():
            raise WalletExists(f"wallet {name!r} already exists ({path}); refusing to overwrite it")
        return path

    def create(self, name: str, passphrase: str, *, key: crypto.PrivateKey | None = None) -> Wallet:
        """Seal `key` (a fresh random key by default) as wallet `name`; raise WalletExists if it exists."""
        path = self.check_new(name)
        scrypt_n = self._scrypt_n if self._scrypt_n is not None else scrypt_n_from_env()
        wallet = seal(key or _random_key(), name=name, path=path, passphrase=passphrase, scrypt_n=scrypt_n)
        text = json.dumps(wallet.to_json(), indent=2) + "\n"
        try:
            self._ensure_directory()
            _write_new_file(path, text.encode("utf-8"))
        except FileExistsError:
            raise WalletExists(f"wallet {name!r} already exists ({path}); refusing to overwrite it") from None
        except OSError as exc:
            raise KeystoreError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return wallet

    def load(self, name: str) -> Wallet:
        """Read and check wallet `name`; raise WalletNotFound or CorruptKeystore."""
        return self._load_path(self.path_of(name), name)

    def unlock(self, name: str, passphrase: str) -> crypto.PrivateKey:
        """The secret key of wallet `name`; raise WalletNotFound, CorruptKeystore or WrongPassphrase."""
        return self.load(name).unlock(passphrase)

    def scan(self) -> tuple[list[Wallet], list[KeystoreError]]:
        """Every wallet of the directory sorted by name, and the problems of files that could not be read."""
        wallets: list[Wallet] = []
        problems: list[KeystoreError] = []
        try:
            entries = sorted(self.directory.iterdir())
        except FileNotFoundError:
            return wallets, problems
        except OSError as exc:
            raise KeystoreError(f"cannot list {self.directory}: {exc.strerror or exc}") from exc
        for path in entries:
            name = path.name[: -len(WALLET_SUFFIX)]
            if not path.name.endswith(WALLET_SUFFIX) or not is_wallet_name(name) or path.is_dir():
                continue
            try:
                wallets.append(self._load_path(path, name))
            except KeystoreError as exc:
                problems.append(exc)
        return wallets, problems

    def _load_path(self, path: Path, name: str) -> Wallet:
        try:
            with path.open("rb") as handle:
                raw = handle.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise WalletNotFound(f"no wallet named {name!r} in {self.directory}") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if len(raw) > _MAX_FILE_BYTES:
            raise CorruptKeystore(f"{path}: not a keystore (larger than {_MAX_FILE_BYTES} bytes)")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptKeystore(f"{path}: not a keystore (not JSON: {exc})") from exc
        return parse_wallet(doc, name=name, path=path)

    def _ensure_directory(self) -> None:
        if not self.directory.is_dir():
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process made it first: fine
                self.directory.mkdir(mode=0o700)


def _random_key() -> crypto.PrivateKey:
    while True:
        try:
            return crypto.PrivateKey(secrets.token_bytes(_SECRET_BYTES))
        except ValueError:  # astronomically unlikely: outside [1, n-1]
            continue


def _write_new_file(path: Path, data: bytes) -> None:
    """Write `data` to a new file at `path` (mode 0600), atomically; FileExistsError if `path` exists."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _publish(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    _fsync_directory(path.parent)


def _publish(temp: Path, path: Path) -> None:
    # A hard link publishes the complete file under its name and fails if the name is taken, so two
    # concurrent `wallet new` of one name cannot overwrite each other. Where links are unsupported, fall back
    # to a checked os.replace (atomic, with a small race window on the existence check).
    try:
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        _log.debug("hard link %s -> %s failed (%s); publishing with os.replace", temp, path, exc)
        if path.exists():
            raise FileExistsError(path) from None
        os.replace(temp, path)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:  # platforms that cannot open a directory: the rename is still atomic
        _log.debug("cannot open directory %s to fsync it: %s", directory, exc)
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on a directory; durability is best effort there
        _log.debug("fsync of directory %s failed: %s", directory, exc)
    finally:
        os.close(fd)
