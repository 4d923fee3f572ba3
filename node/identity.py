"""The node key (`node.key` in the data directory): P2P node id, miner address and validator identity.

A data directory may also hold `p2p.key`: the node then proves that key, not `node.key`, at the P2P handshake.
The testnet's twins (docs/TESTNET.md, "Byzantine nodes") use it: two processes that hold one validator key are two
peers to the network, not one node that keeps replacing its own connection.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from chain.crypto import PrivateKey

KEY_FILE = "node.key"
P2P_KEY_FILE = "p2p.key"


class IdentityError(ValueError):
    """A node key file that is unreadable or malformed (the message names the file)."""


def load_or_create_key(datadir: str | os.PathLike[str], secret_hex: str | None = None) -> PrivateKey:
    """Read `node.key` (hex of 32 secret bytes, mode 0600), creating it (from `secret_hex` or fresh randomness)."""
    path = Path(datadir) / KEY_FILE
    if path.exists():
        try:
            return PrivateKey(bytes.fromhex(path.read_text(encoding="ascii").strip()))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise IdentityError(f"{path}: not a valid node key ({exc})") from exc
    secret = bytes.fromhex(secret_hex) if secret_hex else secrets.token_bytes(32)
    key = PrivateKey(secret)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(secret.hex() + "\n")
    return key


def load_p2p_key(datadir: str | os.PathLike[str]) -> PrivateKey | None:
    """The P2P identity of `p2p.key` when the data directory has one (None: the node key serves)."""
    path = Path(datadir) / P2P_KEY_FILE
    if not path.exists():
        return None
    try:
        return PrivateKey(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IdentityError(f"{path}: not a valid P2P key ({exc})") from exc
