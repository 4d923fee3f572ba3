"""PBFT's quorum arithmetic and certificate checks (pure): who the validators are, who is primary, when a request
is prepared or committed, when a checkpoint is stable, what the watermarks admit, and how a new view is built
from 2f+1 view-changes and verified by the replicas (Castro and Liskov, TOCS 2002, sections 4.2-4.4).

Every check counts **distinct validators** whose statement **verifies**: a duplicate statement from one signer
counts once, a statement whose signature fails or whose signer is no validator does not count and is refused
with its code. Failures are `RejectError`s with stable codes (docs/ENGINES.md, "PBFT"):

| code | meaning |
|---|---|
| `not-a-validator` | the statement's signer is not in genesis's validators |
| `bad-signature` | a statement's signature does not verify |
| `wrong-primary` | a pre-prepare or new-view not signed by the view's primary, or a prepare from the primary |
| `outside-watermarks` | a sequence number not in (h, h + L] |
| `bad-certificate` | a commit, checkpoint or prepared certificate without its quorum or with mismatched statements |
| `bad-view-change` | a view-change whose checkpoint proof or prepared certificates do not hold |
| `bad-new-view` | a new-view whose view-changes or re-issued pre-prepares are not what its V set demands |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chain import crypto
from chain.errors import RejectError
from consensus.pbft.messages import (
    MAX_VALIDATORS,
    NULL_DIGEST,
    TAG_COMMIT,
    TAG_PRE_PREPARE,
    TAG_PREPARE,
    Checkpoint,
    CommitCert,
    NewView,
    PreparedCert,
    ViewChange,
    Vote,
    pre_prepare,
)


def quorum_of(n: int) -> int:
    """ceil((n + f + 1) / 2) with f = (n - 1) // 3: 2f + 1 when n = 3f + 1 (see `Validators.quorum`)."""
    return (n + (n - 1) // 3 + 2) // 2


@dataclass(frozen=True, slots=True)
class Validators:
    """The validator set from genesis, in address order: n = 3f + 1 (or more: f is the most that n tolerates),
    and the primary of view v is validator v mod n."""

    addresses: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.addresses) <= MAX_VALIDATORS:
            raise ValueError(f"PBFT needs 1 to {MAX_VALIDATORS} validators, got {len(self.addresses)}")
        if list(self.addresses) != sorted(set(self.addresses)):
            raise ValueError("validators must be distinct and in address order")

    @classmethod
    def of(cls, addresses: Iterable[bytes]) -> Validators:
        return cls(tuple(sorted(set(addresses))))

    @property
    def n(self) -> int:
        return len(self.addresses)

    @property
    def f(self) -> int:
        """The most Byzantine validators the set tolerates."""
        return (self.n - 1) // 3

    @property
    def quorum(self) -> int:
        """ceil((n + f + 1) / 2), which is 2f + 1 when n = 3f + 1: any two quorums share at least f + 1
        validators, so at least one honest one. (2f + 1 alone is too few when n is not 3f + 1: with n = 5, two
        quorums of 3 may share only the one Byzantine validator.)"""
        return quorum_of(self.n)

    @property
    def weak(self) -> int:
        """f + 1: at least one of them is honest."""
        return self.f + 1

    def primary(self, view: int) -> bytes:
        return self.addresses[view % self.n]

    def __contains__(self, address: object) -> bool:
        return address in self.addresses


def check_statement(statement: Vote | Checkpoint | ViewChange | NewView, validators: Validators,
                    genesis_hash: bytes) -> bytes:
    """The signer's address, once the statement is signed by a validator and its signature verifies."""
    if not statement.signer or len(statement.signer) != crypto.PUBKEY_BYTES:
        raise RejectError("bad-signature", "unsigned statement")
    address = crypto.address_of(statement.signer)
    if address not in validators:
        raise RejectError("not-a-validator", f"{crypto.address_to_text(address)} is not a validator")
    if not statement.verifies(genesis_hash):
        raise RejectError("bad-signature", f"statement of {crypto.address_to_text(address)} does not verify")
    return address


def _signers(statements: Iterable[Vote | Checkpoint], validators: Validators, genesis_hash: bytes) -> set[bytes]:
    """The distinct validators behind `statements`, each of which must verify (one bad one refuses them all:
    a certificate is evidence, and evidence with a forgery in it is not trusted)."""
    return {check_statement(s, validators, genesis_hash) for s in statements}


@dataclass(frozen=True, slots=True)
class Watermarks:
    """The sequence numbers a replica accepts: low < seq <= low + window. `low` is the last stable checkpoint;
    a faulty primary cannot exhaust the sequence space by choosing a huge seq (the high watermark bounds it)."""

    low: int
    window: int

    @property
    def high(self) -> int:
        return self.low + self.window

    def admits(self, seq: int) -> bool:
        return self.low < seq <= self.high

    def check(self, seq: int) -> None:
        if not self.admits(seq):
            raise RejectError("outside-watermarks", f"sequence number {seq} outside ({self.low}, {self.high}]")


def check_role(vote: Vote, signer: bytes, validators: Validators) -> None:
    """Who may make a vote, for an already verified `signer`: a pre-prepare comes from its view's primary, a
    prepare from a backup (the primary's pre-prepare is its prepare: sawtooth-pbft#111 counted a primary that also
    prepared twice toward 2f); anyone commits."""
    primary = validators.primary(vote.view)
    if vote.tag == TAG_PRE_PREPARE and signer != primary:
        raise RejectError("wrong-primary", f"pre-prepare for view {vote.view} not from its primary")
    if vote.tag == TAG_PREPARE and signer == primary:
        raise RejectError("wrong-primary", f"the primary of view {vote.view} does not prepare")


def check_pre_prepare(vote: Vote, validators: Validators, genesis_hash: bytes) -> None:
    """A verified pre-prepare from its view's primary."""
    if vote.tag != TAG_PRE_PREPARE:
        raise RejectError("malformed", "not a pre-prepare")
    check_role(vote, check_statement(vote, validators, genesis_hash), validators)


def check_prepare(vote: Vote, validators: Validators, genesis_hash: bytes) -> None:
    """A verified prepare from a backup."""
    if vote.tag != TAG_PREPARE:
        raise RejectError("malformed", "not a prepare")
    check_role(vote, check_statement(vote, validators, genesis_hash), validators)


def is_prepared(cert: PreparedCert, validators: Validators, genesis_hash: bytes) -> bool:
    """prepared(m, v, n): the primary's pre-prepare and prepares matching its (view, seq, digest) from 2f
    distinct backups (quorum - 1 when n is not 3f + 1). A certificate with a prepare for another request, a
    forged one or one from the primary is no proof at all."""
    try:
        check_prepared_cert(cert, validators, genesis_hash)
    except RejectError:
        return False
    return True


def check_prepared_cert(cert: PreparedCert, validators: Validators, genesis_hash: bytes) -> None:
    pp = cert.pre_prepare
    check_pre_prepare(pp, validators, genesis_hash)
    matching = [p for p in cert.prepares if (p.view, p.seq, p.digest) == (pp.view, pp.seq, pp.digest)]
    if len(matching) != len(cert.prepares):
        raise RejectError("bad-certificate", f"prepares for another request in the certificate of seq {pp.seq}")
    backups = set()
    for p in matching:  # each signature verified once
        if p.tag != TAG_PREPARE:
            raise RejectError("malformed", "not a prepare")
        signer = check_statement(p, validators, genesis_hash)
        check_role(p, signer, validators)
        backups.add(signer)
    if len(backups) < validators.quorum - 1:  # with the primary's pre-prepare: a quorum
        raise RejectError("bad-certificate", f"seq {pp.seq} view {pp.view}: {len(backups)} distinct prepares, "
                                             f"{validators.quorum - 1} needed")


def check_commit_cert(cert: CommitCert, validators: Validators, genesis_hash: bytes) -> None:
    """A finality proof: 2f+1 distinct validators committed (view, seq, digest)."""
    signers = _signers(cert.votes(), validators, genesis_hash)
    if len(signers) < validators.quorum:
        raise RejectError("bad-certificate", f"seq {cert.seq}: {len(signers)} distinct commits, "
                                             f"{validators.quorum} needed")


def commit_cert(commits: Sequence[Vote], validators: Validators, genesis_hash: bytes) -> CommitCert | None:
    """The certificate of the first (view, seq, digest) that 2f+1 distinct checked commits agree on, or None."""
    groups: dict[tuple[int, int, bytes], dict[bytes, Vote]] = {}
    for c in commits:
        if c.tag == TAG_COMMIT:
            groups.setdefault((c.view, c.seq, c.digest), {})[c.signer] = c
    for group in groups.values():
        if len(group) >= validators.quorum:
            cert = CommitCert.of(list(group.values())[:validators.quorum])
            check_commit_cert(cert, validators, genesis_hash)
            return cert
    return None


def stable_checkpoint(checkpoints: Iterable[Checkpoint], validators: Validators) -> tuple[int, bytes] | None:
    """The highest (seq, digest) that 2f+1 distinct already-checked checkpoints agree on, or None. Checkpoints
    that disagree on a digest at one seq are counted apart: a divergent state is never stable."""
    counts: dict[tuple[int, bytes], set[bytes]] = {}
    for c in checkpoints:
        counts.setdefault((c.seq, c.digest), set()).add(c.signer)
    stable = [key for key, signers in counts.items() if len(signers) >= validators.quorum]
    return max(stable) if stable else None


def check_checkpoint_proof(seq: int, proof: Sequence[Checkpoint], validators: Validators,
                           genesis_hash: bytes) -> bytes | None:
    """The digest a stable-checkpoint proof proves at `seq` (None at seq 0: the genesis needs no proof)."""
    if seq == 0:
        if proof:
            raise RejectError("bad-view-change", "a checkpoint proof for the genesis")
        return None
    if any(c.seq != seq for c in proof):
        raise RejectError("bad-view-change", f"checkpoint proof of seq {seq} holds other checkpoints")
    digests = {c.digest for c in proof}
    if len(digests) != 1:
        raise RejectError("bad-view-change", f"checkpoint proof of seq {seq} disagrees on the state")
    if len(_signers(proof, validators, genesis_hash)) < validators.quorum:
        raise RejectError("bad-view-change", f"checkpoint proof of seq {seq} has fewer than {validators.quorum} "
                                             f"distinct validators")
    return digests.pop()


def check_view_change(vc: ViewChange, validators: Validators, genesis_hash: bytes, window: int) -> bytes:
    """Everything a view-change claims holds; returns its signer's address. Its prepared certificates lie above
    its stable checkpoint and within one window of it, from views below the one it asks for, one per seq."""
    address = check_statement(vc, validators, genesis_hash)
    check_checkpoint_proof(vc.stable_seq, vc.checkpoint_proof, validators, genesis_hash)
    marks = Watermarks(vc.stable_seq, window)
    seen: set[int] = set()
    for cert in vc.prepared:
        seq, view = cert.pre_prepare.seq, cert.pre_prepare.view
        if not marks.admits(seq):
            raise RejectError("bad-view-change", f"prepared seq {seq} outside ({marks.low}, {marks.high}]")
        if view >= vc.new_view:
            raise RejectError("bad-view-change", f"prepared in view {view}, not below the new view {vc.new_view}")
        if seq in seen:
            raise RejectError("bad-view-change", f"two prepared certificates for seq {seq}")
        seen.add(seq)
        try:
            check_prepared_cert(cert, validators, genesis_hash)
        except RejectError as exc:
            raise RejectError("bad-view-change", f"prepared certificate of seq {seq}: {exc.message}") from exc
    return address


def new_view_requests(view_changes: Sequence[ViewChange]) -> tuple[int, list[tuple[int, bytes]]]:
    """What a new primary must re-issue, computed from the view-changes alone (V): min-s is the highest stable
    checkpoint among them, max-s the highest prepared seq; every seq in (min-s, max-s] gets the digest prepared
    there in the highest view, or the null digest when no view-change prepared it. Returns (min-s, [(seq,
    digest)]). It must use V's own checkpoints: using the replica's checkpoint set instead (fabric#1111) makes
    the primary and the replicas compute different O sets and reject every new view."""
    min_s = max((vc.stable_seq for vc in view_changes), default=0)
    best: dict[int, tuple[int, bytes]] = {}
    for vc in view_changes:
        for cert in vc.prepared:
            pp = cert.pre_prepare
            if pp.seq > min_s and (pp.seq not in best or pp.view > best[pp.seq][0]):
                best[pp.seq] = (pp.view, pp.digest)
    max_s = max(best, default=min_s)
    return min_s, [(seq, best[seq][1] if seq in best else NULL_DIGEST) for seq in range(min_s + 1, max_s + 1)]


def make_new_view(key: crypto.PrivateKey, view: int, view_changes: Sequence[ViewChange],
                  genesis_hash: bytes) -> NewView:
    """The new primary's NEW-VIEW from 2f+1 checked view-changes for `view` (the caller collected them)."""
    _, requests = new_view_requests(view_changes)
    pre_prepares = tuple(pre_prepare(view, seq, digest).signed(key, genesis_hash) for seq, digest in requests)
    return NewView(view=view, view_changes=tuple(view_changes), pre_prepares=pre_prepares).signed(key, genesis_hash)


def check_new_view(nv: NewView, validators: Validators, genesis_hash: bytes, window: int) -> int:
    """Verify a NEW-VIEW in full: signed by the view's primary, 2f+1 valid view-changes for this view from
    distinct validators, and exactly the pre-prepares those view-changes demand, each signed by the primary for
    this view. Returns min-s, the stable checkpoint the new view starts from."""
    if check_statement(nv, validators, genesis_hash) != validators.primary(nv.view):
        raise RejectError("wrong-primary", f"new-view for view {nv.view} not from its primary")
    signers: set[bytes] = set()
    for vc in nv.view_changes:
        if vc.new_view != nv.view:
            raise RejectError("bad-new-view", f"a view-change for view {vc.new_view} in the new-view of {nv.view}")
        try:
            signers.add(check_view_change(vc, validators, genesis_hash, window))
        except RejectError as exc:
            raise RejectError("bad-new-view", f"view-change: {exc.message}") from exc
    if len(signers) < validators.quorum or len(signers) != len(nv.view_changes):
        raise RejectError("bad-new-view", f"{len(signers)} distinct view-changes of {len(nv.view_changes)}, "
                                          f"{validators.quorum} needed")
    min_s, requests = new_view_requests(nv.view_changes)
    got = [(pp.seq, pp.digest) for pp in nv.pre_prepares]
    if got != requests:
        raise RejectError("bad-new-view", f"re-issued pre-prepares {_span(got)} differ from the {_span(requests)} "
                                          f"the view-changes demand")
    for pp in nv.pre_prepares:
        if pp.view != nv.view:
            raise RejectError("bad-new-view", f"a re-issued pre-prepare for view {pp.view}")
        check_pre_prepare(pp, validators, genesis_hash)
    return min_s


def _span(requests: Sequence[tuple[int, bytes]]) -> str:
    if not requests:
        return "(none)"
    nulls = sum(1 for _, d in requests if d == NULL_DIGEST)
    return f"seq {requests[0][0]}..{requests[-1][0]} ({nulls} null)"


def view_to_join(current_view: int, asked: dict[bytes, int], validators: Validators) -> int | None:
    """The liveness rule of section 4.5.2: when f+1 distinct validators (so at least one honest) ask for views
    above ours, join the smallest view of such a set. Of the asks above ours, the f+1 highest are taken, so the
    view joined is the highest that f+1 validators vouch for. `asked` maps each validator to the highest view it
    asked for (checked view-changes)."""
    above = sorted(view for view in asked.values() if view > current_view)
    if len(above) < validators.weak:
        return None
    return above[len(above) - validators.weak]

