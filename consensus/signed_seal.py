"""A seal that is one validator's signature (pure): `public_key (33) || signature (64)` over the header's seal
hash. Primary-backup (the primary signs) and round-robin (the height's proposer signs) both seal this way."""

from __future__ import annotations

from chain import crypto
from chain.block import BlockHeader
from chain.errors import RejectError

SEAL_BYTES = crypto.PUBKEY_BYTES + crypto.SIGNATURE_BYTES


def make_signed_seal(key: crypto.PrivateKey, header: BlockHeader) -> bytes:
    """`key`'s seal of `header`."""
    return key.public_key + key.sign(header.seal_hash)


def describe_signed_seal(header: BlockHeader) -> dict[str, object]:
    """The signer of a signed seal (its address, as text); ValueError for a malformed one."""
    if len(header.seal) != SEAL_BYTES:
        raise ValueError(f"a signed seal is {SEAL_BYTES} bytes, got {len(header.seal)}")
    return {"signer": crypto.address_to_text(crypto.address_of(header.seal[:crypto.PUBKEY_BYTES]))}


def check_signed_seal(header: BlockHeader, signer: bytes, who: str) -> None:
    """RejectError unless `header` is sealed by address `signer` (`who` names it in the message): `bad-seal` for
    a malformed seal or another signer, `bad-signature` for a signature that does not verify."""
    seal = header.seal
    if len(seal) != SEAL_BYTES:
        raise RejectError("bad-seal", f"a signed seal is {SEAL_BYTES} bytes, got {len(seal)}")
    public_key, signature = seal[:crypto.PUBKEY_BYTES], seal[crypto.PUBKEY_BYTES:]
    if crypto.address_of(public_key) != signer:
        raise RejectError("bad-seal", f"block not sealed by {who}")
    if not crypto.verify(public_key, signature, header.seal_hash):
        raise RejectError("bad-signature", f"{who}'s seal signature does not verify")
