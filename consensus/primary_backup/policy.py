"""Primary-backup chain policy: the seal is the primary's signature (pure).

Seal: `primary_pubkey (33) || signature (64)` over the header's seal hash. Every block weighs 1, so fork choice is
the longest chain, first seen on a tie; with one honest primary there is only one chain.
"""

from __future__ import annotations

from chain import crypto
from chain.block import BlockHeader
from chain.blocktree import HeaderView
from chain.chainstore import BlockMeta
from chain.errors import RejectError
from chain.genesis import Genesis

SEAL_BYTES = crypto.PUBKEY_BYTES + crypto.SIGNATURE_BYTES


def primary_address(genesis: Genesis) -> bytes:
    """The primary named in genesis (`primary` parameter, else the first validator by address)."""
    named = str(genesis.param("primary"))
    if named:
        return crypto.address_from_text(named)
    if not genesis.validators:
        raise ValueError("a primary-backup genesis needs a `primary` parameter or at least one validator")
    return min(genesis.validators)


def make_seal(key: crypto.PrivateKey, header: BlockHeader) -> bytes:
    """The primary's seal of `header`."""
    return key.public_key + key.sign(header.seal_hash)


class PrimaryBackupPolicy:
    """Header rules of primary-backup: signed by the primary, time moves forward."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.primary = primary_address(genesis)

    def block_work(self, header: BlockHeader) -> int:
        """Every block weighs the same: longest chain."""
        return 1

    def block_reward(self, header: BlockHeader) -> int:
        """The genesis block reward, to the primary."""
        return self.genesis.block_reward

    def check_header(self, header: BlockHeader, parent: BlockMeta, view: HeaderView, now_ms: int) -> None:
        """The seal must be the primary's signature over the seal hash; timestamps strictly increase."""
        seal = header.seal
        if len(seal) != SEAL_BYTES:
            raise RejectError("bad-seal", f"a primary-backup seal is {SEAL_BYTES} bytes, got {len(seal)}")
        public_key, signature = seal[: crypto.PUBKEY_BYTES], seal[crypto.PUBKEY_BYTES :]
        if crypto.address_of(public_key) != self.primary:
            raise RejectError("bad-seal", "block not sealed by the primary")
        if not crypto.verify(public_key, signature, header.seal_hash):
            raise RejectError("bad-signature", "primary seal signature does not verify")
        if header.timestamp_ms <= parent.header.timestamp_ms:
            raise RejectError("time-too-old", "timestamp not after the parent's")
