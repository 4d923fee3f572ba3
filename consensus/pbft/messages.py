"""PBFT's signed statements (pure): pre-prepare, prepare, commit, checkpoint, view-change and new-view, and the
certificates built from them (Castro and Liskov, OSDI 1999, section 4; TOCS 2002).

Each statement is signed by the validator that makes it, over the genesis hash and its own fields, and carries
the signer's public key. The envelope (consensus/envelope.py) already authenticates whoever *sends* a message;
these signatures are what lets a statement be *forwarded* as evidence: 2f+1 commits become the finality proof a
syncing node checks without the message history, 2f+1 checkpoints prove a stable checkpoint inside a view-change,
and 2f+1 view-changes prove a new view. Blocks travel by the block path; statements name them by hash
(`digest`), and a sequence number is a block height. `NULL_DIGEST` is the null request a new primary orders where
no prepared certificate covers a sequence number.

Encodings are canonical msgpack arrays (docs/FORMATS.md, tags 64..71); every decoder bounds sizes and counts and
raises DecodeError (`malformed`, `oversize`) for anything else. Decoding checks form only: whether a signature
verifies and whether its signer is a validator is for consensus/pbft/quorum.py, which knows the validator set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chain import crypto
from chain.encoding import check_bytes, check_uint, pack, unpack
from chain.errors import DecodeError
from consensus.engine import MAX_ENGINE_PAYLOAD_BYTES

TAG_PRE_PREPARE = 64
TAG_PREPARE = 65
TAG_COMMIT = 66
TAG_CHECKPOINT = 67
TAG_PREPARED_CERT = 68
TAG_VIEW_CHANGE = 69
TAG_NEW_VIEW = 70
TAG_COMMIT_CERT = 71

NULL_DIGEST = bytes(32)  # the null request: a sequence number a new view fills with no block
MAX_VALIDATORS = 64  # n; a quorum is at most this many statements
MAX_WINDOW = 1024  # the watermark window L: a view-change names at most this many prepared sequence numbers
STATEMENT_BYTES = 160  # the most one signed vote or checkpoint encodes to (fields, key, signature: 153 at most)
_CERT_BYTES = 64 + MAX_VALIDATORS * STATEMENT_BYTES
# A view-change or new-view is one engine message: it must fit the envelope, whatever n and L genesis chose
# (consensus/pbft/spec.py refuses a genesis whose worst-case new-view would not fit).
_COMPOUND_BYTES = MAX_ENGINE_PAYLOAD_BYTES
T = TypeVar("T")


def _decode(data: object, tag: int, count: int, limit: int, what: str, build: Callable[[list[Any]], T]) -> T:
    fields = unpack(data, tag, 1, count, limit)
    try:
        return build(fields)
    except DecodeError:
        raise
    except ValueError as exc:
        raise DecodeError(f"pbft {what}: {exc}") from exc


def _key(value: object) -> bytes:
    return check_bytes(value, "signer", size=crypto.PUBKEY_BYTES)


def _signature(value: object) -> bytes:
    return check_bytes(value, "signature", size=crypto.SIGNATURE_BYTES)


def _list(value: object, name: str, limit: int) -> list[Any]:
    if type(value) is not list or len(value) > limit:
        raise ValueError(f"{name} must be a list of at most {limit} items")
    return value


class _Signed:
    """What every signed statement shares: a signature check against its own signing hash, and the signer's
    address. The dataclasses below define `signer`, `signature` and `signing_hash`."""

    __slots__ = ()
    signer: bytes
    signature: bytes

    def signing_hash(self, genesis_hash: bytes) -> bytes:
        raise NotImplementedError

    def verifies(self, genesis_hash: bytes) -> bool:
        """The signature is the signer's, over this statement on this network."""
        return crypto.verify(self.signer, self.signature, self.signing_hash(genesis_hash))

    @property
    def address(self) -> bytes:
        return crypto.address_of(self.signer)


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote(_Signed):
    """PRE-PREPARE, PREPARE or COMMIT (by `tag`): `signer` says that in `view`, sequence number `seq` (a height)
    holds the block `digest`. The primary of `view` signs the pre-prepare; backups prepare; everyone commits."""

    tag: int
    view: int
    seq: int
    digest: bytes
    signer: bytes = b""
    signature: bytes = b""

    def signing_hash(self, genesis_hash: bytes) -> bytes:
        return crypto.sha256(pack(self.tag, 1, [genesis_hash, self.view, self.seq, self.digest]))

    def signed(self, key: crypto.PrivateKey, genesis_hash: bytes) -> Vote:
        return Vote(tag=self.tag, view=self.view, seq=self.seq, digest=self.digest, signer=key.public_key,
                    signature=key.sign(self.signing_hash(genesis_hash)))

    def fields(self) -> list[Any]:
        return [self.view, self.seq, self.digest, self.signer, self.signature]

    def encode(self) -> bytes:
        return pack(self.tag, 1, self.fields())

    @classmethod
    def from_fields(cls, tag: int, f: list[Any]) -> Vote:
        if len(f) != 5:
            raise ValueError("a vote has 5 fields")
        return cls(tag=tag, view=check_uint(f[0], "view"), seq=check_uint(f[1], "seq"),
                   digest=check_bytes(f[2], "digest", size=32), signer=_key(f[3]), signature=_signature(f[4]))

    @classmethod
    def decode(cls, data: object, tag: int) -> Vote:
        if tag not in (TAG_PRE_PREPARE, TAG_PREPARE, TAG_COMMIT):
            raise ValueError(f"tag {tag} is not a vote")
        return _decode(data, tag, 5, STATEMENT_BYTES, "vote", lambda f: cls.from_fields(tag, f))


def pre_prepare(view: int, seq: int, digest: bytes) -> Vote:
    return Vote(tag=TAG_PRE_PREPARE, view=view, seq=seq, digest=digest)


def prepare(view: int, seq: int, digest: bytes) -> Vote:
    return Vote(tag=TAG_PREPARE, view=view, seq=seq, digest=digest)


def commit(view: int, seq: int, digest: bytes) -> Vote:
    return Vote(tag=TAG_COMMIT, view=view, seq=seq, digest=digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint(_Signed):
    """CHECKPOINT: `signer`'s state after executing up to `seq` is the block `digest` (whose header commits to
    the state root). Stable at 2f+1 matching checkpoints."""

    seq: int
    digest: bytes
    signer: bytes = b""
    signature: bytes = b""

    def signing_hash(self, genesis_hash: bytes) -> bytes:
        return crypto.sha256(pack(TAG_CHECKPOINT, 1, [genesis_hash, self.seq, self.digest]))

    def signed(self, key: crypto.PrivateKey, genesis_hash: bytes) -> Checkpoint:
        return Checkpoint(seq=self.seq, digest=self.digest, signer=key.public_key,
                          signature=key.sign(self.signing_hash(genesis_hash)))

    def fields(self) -> list[Any]:
        return [self.seq, self.digest, self.signer, self.signature]

    def encode(self) -> bytes:
        return pack(TAG_CHECKPOINT, 1, self.fields())

    @classmethod
    def from_fields(cls, f: list[Any]) -> Checkpoint:
        if type(f) is not list or len(f) != 4:
            raise ValueError("a checkpoint has 4 fields")
        return cls(seq=check_uint(f[0], "seq"), digest=check_bytes(f[1], "digest", size=32), signer=_key(f[2]),
                   signature=_signature(f[3]))

    @classmethod
    def decode(cls, data: object) -> Checkpoint:
        return _decode(data, TAG_CHECKPOINT, 4, STATEMENT_BYTES, "checkpoint", cls.from_fields)


def _votes(value: object, tag: int, name: str, limit: int = MAX_VALIDATORS) -> tuple[Vote, ...]:
    return tuple(Vote.from_fields(tag, _list(v, name, 5)) for v in _list(value, name, limit))


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedCert:
    """The proof that a request prepared: its pre-prepare and 2f matching prepares from other validators (the
    P set's entries inside a view-change)."""

    pre_prepare: Vote
    prepares: tuple[Vote, ...]

    def fields(self) -> list[Any]:
        return [self.pre_prepare.fields(), [p.fields() for p in self.prepares]]

    def encode(self) -> bytes:
        return pack(TAG_PREPARED_CERT, 1, self.fields())

    @classmethod
    def from_fields(cls, f: list[Any]) -> PreparedCert:
        if type(f) is not list or len(f) != 2:
            raise ValueError("a prepared certificate has 2 fields")
        return cls(pre_prepare=Vote.from_fields(TAG_PRE_PREPARE, _list(f[0], "pre-prepare", 5)),
                   prepares=_votes(f[1], TAG_PREPARE, "prepares"))

    @classmethod
    def decode(cls, data: object) -> PreparedCert:
        return _decode(data, TAG_PREPARED_CERT, 2, _CERT_BYTES, "prepared certificate", cls.from_fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class ViewChange(_Signed):
    """VIEW-CHANGE to `new_view`: the signer's last stable checkpoint (`stable_seq`, proven by 2f+1 checkpoints;
    none at 0, the genesis) and a prepared certificate for each sequence number above it it prepared."""

    new_view: int
    stable_seq: int
    checkpoint_proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCert, ...]
    signer: bytes = b""
    signature: bytes = b""

    def _body(self) -> list[Any]:
        return [self.new_view, self.stable_seq, [c.fields() for c in self.checkpoint_proof],
                [p.fields() for p in self.prepared]]

    def signing_hash(self, genesis_hash: bytes) -> bytes:
        return crypto.sha256(pack(TAG_VIEW_CHANGE, 1, [genesis_hash, *self._body()]))

    def signed(self, key: crypto.PrivateKey, genesis_hash: bytes) -> ViewChange:
        return ViewChange(new_view=self.new_view, stable_seq=self.stable_seq,
                          checkpoint_proof=self.checkpoint_proof, prepared=self.prepared, signer=key.public_key,
                          signature=key.sign(self.signing_hash(genesis_hash)))

    def fields(self) -> list[Any]:
        return [*self._body(), self.signer, self.signature]

    def encode(self) -> bytes:
        return pack(TAG_VIEW_CHANGE, 1, self.fields())

    @classmethod
    def from_fields(cls, f: list[Any]) -> ViewChange:
        if type(f) is not list or len(f) != 6:
            raise ValueError("a view-change has 6 fields")
        return cls(new_view=check_uint(f[0], "new_view"), stable_seq=check_uint(f[1], "stable_seq"),
                   checkpoint_proof=tuple(Checkpoint.from_fields(c)
                                          for c in _list(f[2], "checkpoint proof", MAX_VALIDATORS)),
                   prepared=tuple(PreparedCert.from_fields(p) for p in _list(f[3], "prepared", MAX_WINDOW)),
                   signer=_key(f[4]), signature=_signature(f[5]))

    @classmethod
    def decode(cls, data: object) -> ViewChange:
        return _decode(data, TAG_VIEW_CHANGE, 6, _COMPOUND_BYTES, "view-change", cls.from_fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewView(_Signed):
    """NEW-VIEW for `view`, from its primary: the 2f+1 view-changes it is built from (V) and the pre-prepares it
    re-issues (O: one per sequence number between the highest stable checkpoint in V and the highest prepared one,
    the null digest where nothing prepared)."""

    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[Vote, ...]
    signer: bytes = b""
    signature: bytes = b""

    def _body(self) -> list[Any]:
        return [self.view, [v.fields() for v in self.view_changes], [p.fields() for p in self.pre_prepares]]

    def signing_hash(self, genesis_hash: bytes) -> bytes:
        return crypto.sha256(pack(TAG_NEW_VIEW, 1, [genesis_hash, *self._body()]))

    def signed(self, key: crypto.PrivateKey, genesis_hash: bytes) -> NewView:
        return NewView(view=self.view, view_changes=self.view_changes, pre_prepares=self.pre_prepares,
                       signer=key.public_key, signature=key.sign(self.signing_hash(genesis_hash)))

    def encode(self) -> bytes:
        return pack(TAG_NEW_VIEW, 1, [*self._body(), self.signer, self.signature])

    @classmethod
    def decode(cls, data: object) -> NewView:
        def build(f: list[Any]) -> NewView:
            return cls(view=check_uint(f[0], "view"),
                       view_changes=tuple(ViewChange.from_fields(v)
                                          for v in _list(f[1], "view-changes", MAX_VALIDATORS)),
                       pre_prepares=_votes(f[2], TAG_PRE_PREPARE, "pre-prepares", MAX_WINDOW),
                       signer=_key(f[3]), signature=_signature(f[4]))

        return _decode(data, TAG_NEW_VIEW, 5, _COMPOUND_BYTES, "new-view", build)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitCert:
    """A block's finality proof: 2f+1 validators' COMMIT signatures for (`view`, `seq`, `digest`), stored with the
    block and served with it, so a node that syncs checks finality without the message history."""

    view: int
    seq: int
    digest: bytes
    signatures: tuple[tuple[bytes, bytes], ...]  # (signer public key, signature), in signer order

    @classmethod
    def of(cls, commits: Sequence[Vote]) -> CommitCert:
        """The certificate of matching commits (the caller checked the quorum)."""
        first = commits[0]
        return cls(view=first.view, seq=first.seq, digest=first.digest,
                   signatures=tuple(sorted((c.signer, c.signature) for c in commits)))

    def votes(self) -> tuple[Vote, ...]:
        return tuple(Vote(tag=TAG_COMMIT, view=self.view, seq=self.seq, digest=self.digest, signer=signer,
                          signature=signature) for signer, signature in self.signatures)

    def encode(self) -> bytes:
        return pack(TAG_COMMIT_CERT, 1, [self.view, self.seq, self.digest, [list(s) for s in self.signatures]])

    @classmethod
    def decode(cls, data: object) -> CommitCert:
        def pair(value: object) -> tuple[bytes, bytes]:
            items = _list(value, "signature", 2)
            if len(items) != 2:
                raise ValueError("a certificate signature is [signer, signature]")
            return _key(items[0]), _signature(items[1])

        return _decode(data, TAG_COMMIT_CERT, 4, _CERT_BYTES, "commit certificate", lambda f: cls(
            view=check_uint(f[0], "view"), seq=check_uint(f[1], "seq"), digest=check_bytes(f[2], "digest", size=32),
            signatures=tuple(pair(s) for s in _list(f[3], "signatures", MAX_VALIDATORS))))
