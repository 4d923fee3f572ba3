"""PBFT's statements and quorum checks, one protocol step at a time (Castro and Liskov, TOCS 2002, section 4):
quorum counting with duplicates, forgeries and strangers; prepared and committed predicates; checkpoint stability;
the watermark window; view-change and new-view construction and full verification, with null requests for gaps;
and named regressions for bugs PBFT implementations shipped."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain import crypto
from chain.errors import DecodeError, RejectError
from consensus.pbft.messages import (
    NULL_DIGEST,
    STATEMENT_BYTES,
    TAG_COMMIT,
    TAG_PRE_PREPARE,
    TAG_PREPARE,
    Checkpoint,
    CommitCert,
    NewView,
    PreparedCert,
    ViewChange,
    Vote,
    commit,
    pre_prepare,
    prepare,
)
from consensus.pbft.quorum import (
    Validators,
    Watermarks,
    check_commit_cert,
    check_new_view,
    check_pre_prepare,
    check_prepare,
    check_prepared_cert,
    check_view_change,
    commit_cert,
    is_prepared,
    make_new_view,
    new_view_requests,
    stable_checkpoint,
    view_to_join,
)

G = crypto.sha256(b"pbft test genesis")
WINDOW = 8


def keys(n: int) -> list[crypto.PrivateKey]:
    """n validator keys, in address order (validator i is keys[i])."""
    return sorted((crypto.PrivateKey.from_seed(b"pbft-%d" % i) for i in range(n)), key=lambda k: k.address)


K4 = keys(4)
V4 = Validators.of(k.address for k in K4)
K7 = keys(7)
V7 = Validators.of(k.address for k in K7)
STRANGER = crypto.PrivateKey.from_seed(b"not a validator")


def digest(label: str) -> bytes:
    return crypto.sha256(label.encode())


def code(call: Callable[[], object]) -> str:
    with pytest.raises(RejectError) as caught:
        call()
    return caught.value.code


def forged(vote: Vote) -> Vote:
    """`vote` with its signature over another digest: the right key, a signature that does not verify."""
    other = Vote(tag=vote.tag, view=vote.view, seq=vote.seq, digest=digest("forged"))
    signer = next(k for k in K4 + K7 + [STRANGER] if k.public_key == vote.signer)
    return Vote(tag=vote.tag, view=vote.view, seq=vote.seq, digest=vote.digest, signer=vote.signer,
                signature=other.signed(signer, G).signature)


def prepared_cert(ks: list[crypto.PrivateKey], vs: Validators, view: int, seq: int, d: bytes) -> PreparedCert:
    primary = next(k for k in ks if k.address == vs.primary(view))
    backups = [k for k in ks if k is not primary][:vs.quorum - 1]
    return PreparedCert(pre_prepare=pre_prepare(view, seq, d).signed(primary, G),
                        prepares=tuple(prepare(view, seq, d).signed(k, G) for k in backups))


def checkpoint_proof(ks: list[crypto.PrivateKey], vs: Validators, seq: int, d: bytes) -> tuple[Checkpoint, ...]:
    return tuple(Checkpoint(seq=seq, digest=d).signed(k, G) for k in ks[:vs.quorum])


def view_change(signer: crypto.PrivateKey, new_view: int, stable_seq: int = 0,
                prepared: tuple[PreparedCert, ...] = (), ks: list[crypto.PrivateKey] = K4,
                vs: Validators = V4) -> ViewChange:
    proof = checkpoint_proof(ks, vs, stable_seq, digest(f"state {stable_seq}")) if stable_seq else ()
    return ViewChange(new_view=new_view, stable_seq=stable_seq, checkpoint_proof=proof,
                      prepared=prepared).signed(signer, G)


# -- the validator set -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "f", "quorum"), [(1, 0, 1), (4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (10, 3, 7),
                                               (64, 21, 43)])
def test_f_and_quorums(n: int, f: int, quorum: int) -> None:
    vs = Validators.of(k.address for k in keys(n))
    assert (vs.f, vs.quorum, vs.weak) == (f, quorum, f + 1)
    # Two quorums always share an honest validator: 2 * quorum - n >= f + 1.
    assert 2 * vs.quorum - n >= vs.f + 1


def test_primary_rotates_with_the_view() -> None:
    assert [V4.primary(v) for v in range(6)] == [K4[i % 4].address for i in range(6)]


def test_validator_set_bounds() -> None:
    with pytest.raises(ValueError, match="1 to 64"):
        Validators(())
    with pytest.raises(ValueError, match="address order"):
        Validators((K4[1].address, K4[0].address))


# -- encodings ---------------------------------------------------------------------------------------------------

@functools.cache
def samples() -> list[tuple[bytes, Callable[[bytes], object]]]:
    pc = prepared_cert(K4, V4, 0, 3, digest("b3"))
    vc = view_change(K4[1], 1, 2, (pc,))
    nv = make_new_view(K4[1], 1, [vc, view_change(K4[2], 1), view_change(K4[3], 1)], G)
    cert = CommitCert.of([commit(0, 3, digest("b3")).signed(k, G) for k in K4[:3]])
    return [
        (pre_prepare(0, 1, digest("b1")).signed(K4[0], G).encode(), lambda b: Vote.decode(b, TAG_PRE_PREPARE)),
        (prepare(0, 1, digest("b1")).signed(K4[1], G).encode(), lambda b: Vote.decode(b, TAG_PREPARE)),
        (commit(2**64 - 1, 2**64 - 1, digest("b1")).signed(K4[2], G).encode(), lambda b: Vote.decode(b, TAG_COMMIT)),
        (Checkpoint(seq=2**64 - 1, digest=digest("s")).signed(K4[0], G).encode(), Checkpoint.decode),
        (pc.encode(), PreparedCert.decode), (vc.encode(), ViewChange.decode), (nv.encode(), NewView.decode),
        (cert.encode(), CommitCert.decode),
    ]


def test_every_statement_round_trips_and_fits_its_bound() -> None:
    for data, decode in samples():
        decoded = decode(data)
        assert decoded.encode() == data  # type: ignore[attr-defined]
    vote = commit(2**64 - 1, 2**64 - 1, digest("x")).signed(K4[0], G).encode()
    assert len(vote) <= STATEMENT_BYTES


def test_a_decoded_statement_still_verifies() -> None:
    data, decode = samples()[5]
    vc = decode(data)
    assert isinstance(vc, ViewChange) and vc.verifies(G) and not vc.verifies(digest("another network"))


@given(st.binary(max_size=400) | st.builds(msgpack.packb, st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2**64 - 1) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=6), max_leaves=30)))
def test_decoders_raise_only_decode_errors(data: bytes) -> None:
    for _, decode in samples():
        with contextlib.suppress(DecodeError):
            decode(data)


@given(data=st.data())
def test_truncations_and_bit_flips_raise_only_decode_errors(data: st.DataObject) -> None:
    sample, decode = data.draw(st.sampled_from(samples()))
    cut = data.draw(st.integers(0, len(sample) - 1))
    flipped = bytearray(sample)
    flipped[data.draw(st.integers(0, len(sample) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    for mangled in (sample[:cut], bytes(flipped)):
        with contextlib.suppress(DecodeError):
            decode(mangled)


def test_decoders_refuse_by_code() -> None:
    data, _ = samples()[0]
    with pytest.raises(DecodeError) as caught:
        Vote.decode(data, TAG_PREPARE)  # a pre-prepare is not a prepare
    assert caught.value.code == "malformed"
    with pytest.raises(DecodeError) as caught:
        Vote.decode(data + b"\0" * 200, TAG_PRE_PREPARE)
    assert caught.value.code == "oversize"
    too_many = msgpack.packb([71, 1, 0, 1, bytes(32), [[bytes(33), bytes(64)]] * 65])
    with pytest.raises(DecodeError) as caught:
        CommitCert.decode(too_many)
    assert "at most 64" in str(caught.value) or caught.value.code == "oversize"


# -- signatures and quorum counting ------------------------------------------------------------------------------

def test_commit_certificate_needs_2f_plus_1_distinct_validators() -> None:
    d = digest("b5")
    commits = [commit(0, 5, d).signed(k, G) for k in K4[:2]]
    assert commit_cert(commits + commits, V4, G) is None  # duplicates count once
    cert = commit_cert([*commits, commit(0, 5, d).signed(K4[3], G)], V4, G)
    assert cert is not None and (cert.view, cert.seq, cert.digest) == (0, 5, d)
    check_commit_cert(cert, V4, G)
    doubled = CommitCert(view=0, seq=5, digest=d, signatures=cert.signatures[:2] + cert.signatures[:1])
    assert code(lambda: check_commit_cert(doubled, V4, G)) == "bad-certificate"


def test_commits_for_different_blocks_do_not_add_up() -> None:
    commits = [commit(0, 5, digest("a")).signed(K4[0], G), commit(0, 5, digest("a")).signed(K4[1], G),
               commit(0, 5, digest("b")).signed(K4[2], G), commit(1, 5, digest("a")).signed(K4[3], G)]
    assert commit_cert(commits, V4, G) is None


def test_a_forged_or_foreign_signature_fails_the_certificate() -> None:
    d = digest("b5")
    good = [commit(0, 5, d).signed(k, G) for k in K4[:3]]
    cert = CommitCert.of([*good[:2], forged(good[2])])
    assert code(lambda: check_commit_cert(cert, V4, G)) == "bad-signature"
    stranger = CommitCert.of([*good[:2], commit(0, 5, d).signed(STRANGER, G)])
    assert code(lambda: check_commit_cert(stranger, V4, G)) == "not-a-validator"
    other_network = CommitCert.of([commit(0, 5, d).signed(k, digest("other")) for k in K4[:3]])
    assert code(lambda: check_commit_cert(other_network, V4, G)) == "bad-signature"


def test_only_the_primary_pre_prepares_and_it_does_not_prepare() -> None:
    d = digest("b1")
    check_pre_prepare(pre_prepare(1, 1, d).signed(K4[1], G), V4, G)
    assert code(lambda: check_pre_prepare(pre_prepare(1, 1, d).signed(K4[2], G), V4, G)) == "wrong-primary"
    check_prepare(prepare(1, 1, d).signed(K4[2], G), V4, G)
    # sawtooth-pbft#111: the primary sent PREPARE too, and its vote counted twice toward 2f.
    assert code(lambda: check_prepare(prepare(1, 1, d).signed(K4[1], G), V4, G)) == "wrong-primary"


def test_prepared_needs_the_pre_prepare_and_2f_backup_prepares() -> None:
    d = digest("b4")
    cert = prepared_cert(K7, V7, 0, 4, d)
    assert is_prepared(cert, V7, G)
    short = PreparedCert(pre_prepare=cert.pre_prepare, prepares=cert.prepares[:-1])
    assert code(lambda: check_prepared_cert(short, V7, G)) == "bad-certificate"
    duplicated = PreparedCert(pre_prepare=cert.pre_prepare, prepares=cert.prepares[:-1] + cert.prepares[:1])
    assert not is_prepared(duplicated, V7, G)
    from_primary = prepare(0, 4, d).signed(K7[0], G)
    with_primary = PreparedCert(pre_prepare=cert.pre_prepare, prepares=(*cert.prepares[:-1], from_primary))
    assert code(lambda: check_prepared_cert(with_primary, V7, G)) == "wrong-primary"
    other = prepare(0, 4, digest("other")).signed(K7[6], G)
    mismatched = PreparedCert(pre_prepare=cert.pre_prepare, prepares=(*cert.prepares[:-1], other))
    assert code(lambda: check_prepared_cert(mismatched, V7, G)) == "bad-certificate"
    not_primary = PreparedCert(pre_prepare=pre_prepare(0, 4, d).signed(K7[1], G), prepares=cert.prepares)
    assert code(lambda: check_prepared_cert(not_primary, V7, G)) == "wrong-primary"


# -- checkpoints and watermarks ----------------------------------------------------------------------------------

def test_a_checkpoint_is_stable_at_2f_plus_1_matching() -> None:
    cps = [Checkpoint(seq=10, digest=digest("s10")).signed(k, G) for k in K4[:2]]
    assert stable_checkpoint(cps + cps, V4) is None
    cps.append(Checkpoint(seq=10, digest=digest("s10")).signed(K4[2], G))
    assert stable_checkpoint(cps, V4) == (10, digest("s10"))
    later = [Checkpoint(seq=20, digest=digest("s20")).signed(k, G) for k in K4[1:]]
    assert stable_checkpoint(cps + later, V4) == (20, digest("s20"))


def test_divergent_checkpoints_are_never_stable() -> None:
    cps = [Checkpoint(seq=10, digest=digest("s10")).signed(k, G) for k in K4[:2]]
    cps.append(Checkpoint(seq=10, digest=digest("another state")).signed(K4[2], G))
    assert stable_checkpoint(cps, V4) is None


def test_watermarks_admit_one_window_above_the_stable_checkpoint() -> None:
    marks = Watermarks(low=16, window=WINDOW)
    assert [s for s in range(10, 30) if marks.admits(s)] == list(range(17, 25))
    # fabric#694: a sequence number beyond the window is refused, not queued forever or allowed to wrap.
    assert code(lambda: marks.check(25)) == "outside-watermarks"
    assert code(lambda: marks.check(16)) == "outside-watermarks"
    assert Watermarks(low=24, window=WINDOW).admits(25)


# -- view change -------------------------------------------------------------------------------------------------

def test_a_view_change_with_its_proofs_verifies() -> None:
    vc = view_change(K4[2], 1, 8, (prepared_cert(K4, V4, 0, 9, digest("b9")),))
    assert check_view_change(vc, V4, G, WINDOW) == K4[2].address


def test_a_stale_or_broken_checkpoint_proof_is_refused() -> None:
    proof = checkpoint_proof(K4, V4, 8, digest("state 8"))
    stale = ViewChange(new_view=1, stable_seq=16, checkpoint_proof=proof, prepared=()).signed(K4[2], G)
    assert code(lambda: check_view_change(stale, V4, G, WINDOW)) == "bad-view-change"
    short = ViewChange(new_view=1, stable_seq=8, checkpoint_proof=proof[:2], prepared=()).signed(K4[2], G)
    assert code(lambda: check_view_change(short, V4, G, WINDOW)) == "bad-view-change"
    split = (*proof[:2], Checkpoint(seq=8, digest=digest("other")).signed(K4[3], G))
    divergent = ViewChange(new_view=1, stable_seq=8, checkpoint_proof=split, prepared=()).signed(K4[2], G)
    assert code(lambda: check_view_change(divergent, V4, G, WINDOW)) == "bad-view-change"
    genesis_with_proof = ViewChange(new_view=1, stable_seq=0, checkpoint_proof=proof, prepared=()).signed(K4[2], G)
    assert code(lambda: check_view_change(genesis_with_proof, V4, G, WINDOW)) == "bad-view-change"


def test_prepared_certificates_must_lie_in_the_window_below_the_new_view() -> None:
    above_window = view_change(K4[2], 1, 8, (prepared_cert(K4, V4, 0, 8 + WINDOW + 1, digest("x")),))
    assert code(lambda: check_view_change(above_window, V4, G, WINDOW)) == "bad-view-change"
    below_checkpoint = view_change(K4[2], 1, 8, (prepared_cert(K4, V4, 0, 8, digest("x")),))
    assert code(lambda: check_view_change(below_checkpoint, V4, G, WINDOW)) == "bad-view-change"
    same_view = view_change(K4[2], 1, 0, (prepared_cert(K4, V4, 1, 3, digest("x")),))
    assert code(lambda: check_view_change(same_view, V4, G, WINDOW)) == "bad-view-change"
    twice = view_change(K4[2], 2, 0, (prepared_cert(K4, V4, 0, 3, digest("x")), prepared_cert(K4, V4, 1, 3,
                                                                                             digest("y"))))
    assert code(lambda: check_view_change(twice, V4, G, WINDOW)) == "bad-view-change"
    unsigned = ViewChange(new_view=1, stable_seq=0, checkpoint_proof=(), prepared=())
    assert code(lambda: check_view_change(unsigned, V4, G, WINDOW)) == "bad-signature"


def test_new_view_fills_gaps_with_null_requests_and_keeps_the_highest_view() -> None:
    vcs = [
        view_change(K4[0], 2, 4, (prepared_cert(K4, V4, 0, 5, digest("old 5")),
                                  prepared_cert(K4, V4, 0, 8, digest("b8")))),
        view_change(K4[2], 2, 4, (prepared_cert(K4, V4, 1, 5, digest("new 5")),)),
        view_change(K4[3], 2, 0),
    ]
    min_s, requests = new_view_requests(vcs)
    assert min_s == 4
    assert requests == [(5, digest("new 5")), (6, NULL_DIGEST), (7, NULL_DIGEST), (8, digest("b8"))]
    nv = make_new_view(K4[2], 2, vcs, G)
    assert check_new_view(nv, V4, G, WINDOW) == 4
    assert [(p.view, p.seq) for p in nv.pre_prepares] == [(2, 5), (2, 6), (2, 7), (2, 8)]


def test_new_view_with_nothing_prepared_reissues_nothing() -> None:
    vcs = [view_change(k, 1) for k in K4[1:]]
    nv = make_new_view(K4[1], 1, vcs, G)
    assert nv.pre_prepares == () and check_new_view(nv, V4, G, WINDOW) == 0


def test_new_view_is_verified_in_full() -> None:
    vcs = [view_change(K4[0], 1, 0, (prepared_cert(K4, V4, 0, 2, digest("b2")),)), view_change(K4[2], 1),
           view_change(K4[3], 1)]
    good = make_new_view(K4[1], 1, vcs, G)
    check_new_view(good, V4, G, WINDOW)
    assert code(lambda: check_new_view(make_new_view(K4[2], 1, vcs, G), V4, G, WINDOW)) == "wrong-primary"
    assert code(lambda: check_new_view(make_new_view(K4[1], 1, vcs[:2], G), V4, G, WINDOW)) == "bad-new-view"
    doubled = make_new_view(K4[1], 1, [vcs[0], vcs[1], vcs[1]], G)
    assert code(lambda: check_new_view(doubled, V4, G, WINDOW)) == "bad-new-view"
    wrong_target = make_new_view(K4[1], 1, [*vcs[:2], view_change(K4[3], 5)], G)
    assert code(lambda: check_new_view(wrong_target, V4, G, WINDOW)) == "bad-new-view"
    # The primary drops the prepared request (a Byzantine primary rewriting history): the replicas recompute O.
    dropped = NewView(view=1, view_changes=tuple(vcs), pre_prepares=()).signed(K4[1], G)
    assert code(lambda: check_new_view(dropped, V4, G, WINDOW)) == "bad-new-view"
    swapped = NewView(view=1, view_changes=tuple(vcs), pre_prepares=(
        pre_prepare(1, 1, NULL_DIGEST).signed(K4[1], G), pre_prepare(1, 2, digest("mine")).signed(K4[1], G),
    )).signed(K4[1], G)
    assert code(lambda: check_new_view(swapped, V4, G, WINDOW)) == "bad-new-view"
    old_view = NewView(view=1, view_changes=tuple(vcs), pre_prepares=(
        pre_prepare(0, 1, NULL_DIGEST).signed(K4[0], G), pre_prepare(0, 2, digest("b2")).signed(K4[0], G),
    )).signed(K4[1], G)
    assert code(lambda: check_new_view(old_view, V4, G, WINDOW)) == "bad-new-view"
    tampered_vc = ViewChange(new_view=1, stable_seq=0, checkpoint_proof=(), prepared=(),
                             signer=vcs[2].signer, signature=vcs[1].signature)
    forged_set = make_new_view(K4[1], 1, [*vcs[:2], tampered_vc], G)
    assert code(lambda: check_new_view(forged_set, V4, G, WINDOW)) == "bad-new-view"


def test_new_view_uses_the_view_changes_checkpoints_not_the_replicas() -> None:
    """fabric#1111: the primary built O from its own checkpoint set instead of V's, so min-s differed from what
    every replica computed and each new view was refused. Here the primary's own stable checkpoint (12) is above
    the view-changes' (4): O must still start at 5."""
    vcs = [view_change(K4[0], 1, 4, (prepared_cert(K4, V4, 0, 6, digest("b6")),)), view_change(K4[2], 1, 4),
           view_change(K4[3], 1, 4)]
    min_s, requests = new_view_requests(vcs)
    assert min_s == 4 and [s for s, _ in requests] == [5, 6]
    from_own_checkpoint = NewView(view=1, view_changes=tuple(vcs), pre_prepares=()).signed(K4[1], G)
    assert code(lambda: check_new_view(from_own_checkpoint, V4, G, WINDOW)) == "bad-new-view"


def test_f_plus_1_asks_make_a_replica_join_the_view_change() -> None:
    asked = {K7[1].address: 3, K7[2].address: 5}
    assert view_to_join(1, asked, V7) is None  # f = 2 asks: maybe all Byzantine
    asked[K7[3].address] = 4
    assert view_to_join(1, asked, V7) == 3  # three validators vouch for a view of at least 3
    assert view_to_join(4, asked, V7) is None
    assert view_to_join(0, {K7[i].address: 9 for i in range(3)}, V7) == 9


def test_vote_tags_are_distinct_statements() -> None:
    """A prepare's signature does not make a commit: the tag is signed."""
    p = prepare(0, 1, digest("b1")).signed(K4[1], G)
    as_commit = Vote(tag=TAG_COMMIT, view=0, seq=1, digest=digest("b1"), signer=p.signer, signature=p.signature)
    assert not as_commit.verifies(G)
