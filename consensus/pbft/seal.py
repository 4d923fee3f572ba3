"""PBFT's block seal (pure): the view the primary proposed the block in, the finality proof of its parent, and the
primary's signature.

Seal: `[72, 1, view, parent_cert, public_key, signature]`; `parent_cert` is the encoded `CommitCert` of the parent
block (2f+1 signed commits; empty when the parent is the genesis). The signature covers
`sha256(pack(72, 1, [seal_hash, view, parent_cert]))`. So every block carries the proof that its parent is final,
and a node that syncs the chain block by block verifies each block's finality from its child, without the
message history (the tip's own proof comes with the next block, or from the engine's store).
"""

from __future__ import annotations

from dataclasses import dataclass

from chain import crypto
from chain.block import MAX_SEAL_BYTES, BlockHeader
from chain.encoding import check_bytes, check_uint, pack, unpack
from chain.errors import DecodeError, RejectError
from consensus.pbft.messages import CommitCert

TAG_SEAL = 72


@dataclass(frozen=True, slots=True, kw_only=True)
class PbftSeal:
    """A decoded seal."""

    view: int
    parent_cert: bytes  # an encoded CommitCert, or b"" on top of the genesis
    public_key: bytes
    signature: bytes

    def cert(self) -> CommitCert | None:
        """The parent's commit certificate (None on top of the genesis); DecodeError when malformed."""
        return CommitCert.decode(self.parent_cert) if self.parent_cert else None


def _signed_digest(header: BlockHeader, view: int, parent_cert: bytes) -> bytes:
    return crypto.sha256(pack(TAG_SEAL, 1, [header.seal_hash, view, parent_cert]))


def make_pbft_seal(key: crypto.PrivateKey, header: BlockHeader, view: int, parent_cert: bytes) -> bytes:
    """The primary's seal of `header`, proposed in `view`, over its parent's commit certificate."""
    signature = key.sign(_signed_digest(header, view, parent_cert))
    return pack(TAG_SEAL, 1, [view, parent_cert, key.public_key, signature])


def decode_pbft_seal(seal: bytes) -> PbftSeal:
    """The seal's fields; DecodeError for a malformed one (signatures are not checked here)."""
    fields = unpack(seal, TAG_SEAL, 1, 4, MAX_SEAL_BYTES)
    try:
        return PbftSeal(view=check_uint(fields[0], "view"),
                        parent_cert=check_bytes(fields[1], "parent_cert", max_size=MAX_SEAL_BYTES),
                        public_key=check_bytes(fields[2], "public_key", size=crypto.PUBKEY_BYTES),
                        signature=check_bytes(fields[3], "signature", size=crypto.SIGNATURE_BYTES))
    except ValueError as exc:
        raise DecodeError(f"pbft seal: {exc}") from exc


def check_pbft_seal(header: BlockHeader) -> PbftSeal:
    """RejectError unless the seal is well formed and signed by the block's proposer (`bad-seal`,
    `bad-signature`); who may propose in the seal's view is the policy's check."""
    try:
        seal = decode_pbft_seal(header.seal)
    except DecodeError as exc:
        raise RejectError("bad-seal", str(exc)) from None
    if crypto.address_of(seal.public_key) != header.proposer:
        raise RejectError("bad-seal", "block not sealed by its proposer")
    if not crypto.verify(seal.public_key, seal.signature, _signed_digest(header, seal.view, seal.parent_cert)):
        raise RejectError("bad-signature", "the primary's seal signature does not verify")
    return seal


def seal_view(header: BlockHeader) -> int:
    """The view a block was proposed in (0 for genesis and for a seal that does not decode)."""
    if header.height == 0:
        return 0
    try:
        return decode_pbft_seal(header.seal).view
    except DecodeError:
        return 0


def describe_pbft_seal(header: BlockHeader) -> dict[str, object]:
    """The view, the primary that sealed it, and the parent's finality proof in brief."""
    seal = decode_pbft_seal(header.seal)
    view: dict[str, object] = {"view": seal.view,
                               "primary": crypto.address_to_text(crypto.address_of(seal.public_key))}
    cert = seal.cert()
    if cert is not None:
        view["parent_commits"] = len(cert.signatures)
        view["parent_committed_in_view"] = cert.view
    return view
