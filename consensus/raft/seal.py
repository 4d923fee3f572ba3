"""Raft's block seal (pure): the term the leader proposed the block in, an optional new membership (a
configuration entry), and the leader's signature.

Seal: `[20, 1, term, members, public_key, signature]`, `members` an empty list for an ordinary entry and the full
sorted list of member addresses for a configuration entry (one server added or removed). The signature covers
`sha256("chainlab/raft-seal" || seal_hash || term || members...)`, so neither the term nor the membership can be
changed without the leader's key.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain import crypto
from chain.block import BlockHeader
from chain.encoding import check_bytes, check_uint, pack, unpack
from chain.errors import DecodeError, RejectError

TAG_SEAL = 20
MAX_MEMBERS = 64
_MAX_SEAL_BYTES = 200 + MAX_MEMBERS * 24


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftSeal:
    """A decoded seal."""

    term: int
    members: tuple[bytes, ...]  # () unless this block is a configuration entry
    public_key: bytes
    signature: bytes


def _signed_digest(header: BlockHeader, term: int, members: tuple[bytes, ...]) -> bytes:
    return crypto.sha256(b"chainlab/raft-seal" + header.seal_hash + term.to_bytes(8, "big") + b"".join(members))


def make_raft_seal(key: crypto.PrivateKey, header: BlockHeader, term: int, members: tuple[bytes, ...] = ()) -> bytes:
    """The leader's seal of `header` proposed in `term` (with `members` for a configuration entry)."""
    members = tuple(sorted(members))
    signature = key.sign(_signed_digest(header, term, members))
    return pack(TAG_SEAL, 1, [term, list(members), key.public_key, signature])


def decode_raft_seal(seal: bytes) -> RaftSeal:
    """The seal's fields; DecodeError for a malformed one (the signature is not checked here)."""
    fields = unpack(seal, TAG_SEAL, 1, 4, _MAX_SEAL_BYTES)
    try:
        term = check_uint(fields[0], "term")
        if type(fields[1]) is not list or len(fields[1]) > MAX_MEMBERS:
            raise ValueError(f"members must be a list of at most {MAX_MEMBERS} addresses")
        members = tuple(check_bytes(m, "member", size=crypto.ADDRESS_BYTES) for m in fields[1])
        if list(members) != sorted(set(members)):
            raise ValueError("members must be sorted and distinct")
        public_key = check_bytes(fields[2], "public_key", size=crypto.PUBKEY_BYTES)
        signature = check_bytes(fields[3], "signature", size=crypto.SIGNATURE_BYTES)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"raft seal: {exc}") from exc
    return RaftSeal(term=term, members=members, public_key=public_key, signature=signature)


def describe_raft_seal(header: BlockHeader) -> dict[str, object]:
    """A Raft seal as fields: the term, the leader that sealed it and, for a configuration entry, its members."""
    seal = decode_raft_seal(header.seal)
    view: dict[str, object] = {"term": seal.term,
                               "leader": crypto.address_to_text(crypto.address_of(seal.public_key))}
    if seal.members:
        view["members"] = [crypto.address_to_text(member) for member in seal.members]
    return view


def seal_term(header: BlockHeader) -> int:
    """The term of a block (0 for genesis and for a header whose seal does not decode)."""
    if header.height == 0:
        return 0
    try:
        return decode_raft_seal(header.seal).term
    except DecodeError:
        return 0


def check_raft_seal(header: BlockHeader) -> RaftSeal:
    """RejectError unless the seal is well formed and signed by the block's proposer."""
    try:
        seal = decode_raft_seal(header.seal)
    except DecodeError as exc:
        raise RejectError("bad-seal", str(exc)) from None
    if crypto.address_of(seal.public_key) != header.proposer:
        raise RejectError("bad-seal", "block not sealed by its proposer")
    if seal.term == 0:
        raise RejectError("bad-seal", "term 0 is genesis's")
    if not crypto.verify(seal.public_key, seal.signature, _signed_digest(header, seal.term, seal.members)):
        raise RejectError("bad-signature", "the leader's seal signature does not verify")
    return seal
