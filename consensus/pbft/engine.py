"""PBFT (pure): Practical Byzantine Fault Tolerance on the engine contract (Castro and Liskov, OSDI 1999 and TOCS
2002). n validators from genesis tolerate f = (n - 1) / 3 arbitrary ones; docs/ENGINES.md, "PBFT", tells the
whole protocol in the project's terms.

- **Sequence numbers are heights**, and a block is a request. The primary of view v is validator v mod n (in
  address order). It proposes the next height on the committed tip at most once per `block_interval_s` and sends
  PRE-PREPARE(v, h, block hash); the block itself travels by the block path.
- **Validate before prepare.** A backup that accepted the pre-prepare asks for the block to be validated on its
  parent (`Ready.validate`) and only then sends PREPARE. Prepared: the pre-prepare and prepares from quorum - 1
  distinct backups (2f when n = 3f + 1); the primary never prepares. Prepared, a validator persists the prepared
  certificate and sends COMMIT. 2f+1 matching COMMITs (a quorum, in any view) make the block final: the engine
  commits it by hash and stores the commit certificate.
- **Finality proofs travel with the chain.** A block's seal (consensus/pbft/seal.py) carries its parent's commit
  certificate, so a node that syncs block by block commits each parent once its child arrives and its certificate
  verifies, with no message history.
- **Checkpoints** every `checkpoint_interval` heights: CHECKPOINT(h, block hash), stable at a quorum; the low
  watermark moves to it, the high watermark is `watermark_window` above, and prepared certificates and votes
  below it are deleted from the engine's store.
- **View change.** A backup that sees no commit for a block interval plus `view_change_timeout_s` (doubling with
  each view change that brings no commit, up to 8 times) moves to view v+1 and sends VIEW-CHANGE with its stable
  checkpoint proof and its prepared certificates above it. The new primary, with a quorum of view-changes, sends
  NEW-VIEW re-issuing the prepared blocks (null, i.e. a fresh block, where none prepared); every replica verifies
  the NEW-VIEW in full (consensus/pbft/quorum.py) before it enters the view. f+1 validators asking for higher views
  pull a replica into the view change (section 4.5.2); a commit certificate from a higher view moves a replica that
  was away into that view.
- **Durable acknowledgements.** A PREPARE, COMMIT, CHECKPOINT or VIEW-CHANGE leaves only once the votes it
  rests on are on disk (`Ready.durable`), and a restarted validator reloads its view, its votes and its prepared
  certificates, so it never votes twice differently for one (view, height).

Not (yet) here: pipelining (one height is in flight at a time, so at most one prepared certificate lies above the
committed tip of an honest validator), and proactive recovery.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chain import crypto
from chain.block import BlockHeader
from chain.blocktree import ChainPolicy, ForkChoice, HeaderView
from chain.chainstore import BlockMeta
from chain.encoding import check_uint, pack, unpack
from chain.errors import DecodeError, RejectError
from chain.genesis import Genesis, GenesisError, ParamSpec
from consensus.engine import (
    ChainView,
    EngineBase,
    EngineContext,
    EngineMessage,
    EngineState,
    Outgoing,
    ProposeRequest,
    Ready,
    Sealed,
    SealOutcome,
    StatusBase,
)
from consensus.params import engine_param
from consensus.pbft.byzantine import (
    CHECKPOINT_KIND,
    COMMIT_KIND,
    NEW_VIEW_KIND,
    PRE_PREPARE_KIND,
    PREPARE_KIND,
    VIEW_CHANGE_KIND,
    VOTE_TAGS,
    Misbehaviour,
    parse_behaviour,
)
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
    check_role,
    check_statement,
    check_view_change,
    make_new_view,
    quorum_of,
    stable_checkpoint,
    view_to_join,
)
from consensus.pbft.seal import check_pbft_seal, decode_pbft_seal, make_pbft_seal

MAX_FOREIGN_VIEWS = 64  # commits of another view are kept only this many views away from ours
KEPT_VIEW_CHANGES = 4  # view-changes kept per validator (its latest views)
MAX_BACKOFF = 8  # a view change's timeout doubles with each one that brings no commit, up to this multiple
RETRY_INTERVALS = 2.0  # in-flight votes and view-changes are sent again after this many block intervals


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be above 0"


PBFT_PARAMETERS: dict[str, ParamSpec] = {
    "view_change_timeout_s": ParamSpec(kind=float, default=4.0, meaning="a backup that sees no block committed for "
                                       "this long moves to the next view (the timeout doubles with each view change "
                                       "that brings no commit, up to 8 times)", check=_positive),
    "checkpoint_interval": ParamSpec(kind=int, default=8, meaning="a checkpoint every this many heights (K)",
                                     check=lambda v: None if v >= 1 else "must be at least 1"),
    "watermark_window": ParamSpec(kind=int, default=32, meaning="L: heights accepted above the last stable "
                                  "checkpoint (at least 2K, so checkpoints stabilize before the window fills)",
                                  check=lambda v: None if 1 <= v <= 1024 else "must be in [1, 1024]"),
}

VIEW_KEY = b"view"
STABLE_KEY = b"stable"
PREPARED_PREFIX = b"p"  # + seq (8 bytes): our prepared certificate at that height (the highest view's)
VOTE_PREFIX = b"m"  # + seq + view + tag: a vote we sent (never a different one for the same slot)
CERT_PREFIX = b"c"  # + height: the block's commit certificate (kept: the finality proof)


def _seq_key(prefix: bytes, seq: int, *rest: int) -> bytes:
    return prefix + seq.to_bytes(8, "big") + b"".join(r.to_bytes(8, "big") for r in rest)


def validator_set(genesis: Genesis) -> Validators:
    return Validators.of(genesis.validators)


def max_new_view_bytes(n: int, window: int) -> int:
    """The largest NEW-VIEW a network of n validators and watermark window L can need: a quorum of view-changes,
    each with a checkpoint proof and up to L prepared certificates of a quorum of statements."""
    quorum = quorum_of(n)
    view_change = STATEMENT_BYTES * quorum * (window + 1) + 256
    return quorum * view_change + window * STATEMENT_BYTES + 256


def check_pbft_genesis(genesis: Genesis) -> None:
    from consensus.engine import MAX_ENGINE_PAYLOAD_BYTES
    from consensus.pbft.messages import MAX_VALIDATORS

    n = len(genesis.validators)
    if not 1 <= n <= MAX_VALIDATORS:
        raise GenesisError(f"a pbft genesis needs 1 to {MAX_VALIDATORS} validators, got {n}")
    interval = int(engine_param(genesis, PBFT_PARAMETERS, "checkpoint_interval"))
    window = int(engine_param(genesis, PBFT_PARAMETERS, "watermark_window"))
    if window < 2 * interval:
        raise GenesisError(f"watermark_window = {window} must be at least 2 x checkpoint_interval = {2 * interval}: "
                           f"the window would fill before a checkpoint could become stable")
    if max_new_view_bytes(n, window) > MAX_ENGINE_PAYLOAD_BYTES:
        raise GenesisError(f"{n} validators with watermark_window = {window}: a view change's NEW-VIEW could exceed "
                           f"an engine message ({MAX_ENGINE_PAYLOAD_BYTES} bytes); lower watermark_window")


def pbft_warnings(genesis: Genesis) -> list[str]:
    n = len(genesis.validators)
    f = (n - 1) // 3
    warnings = []
    if n < 4:
        warnings.append(f"{n} pbft validator(s) tolerate no Byzantine validator (f = 0); 4 tolerate one")
    elif n != 3 * f + 1:
        warnings.append(f"{n} pbft validators tolerate f = {f}, as {3 * f + 1} would: the other {n - 3 * f - 1} "
                        f"only make quorums larger")
    if any(weight != 1 for weight in genesis.validators.values()):
        # Quorums count validators (one vote each): a weight would suggest voting power PBFT does not give.
        warnings.append("pbft counts validators, one vote each: the validator weights of this genesis are ignored")
    return warnings


class PbftPolicy:
    """Header rules: sealed by the primary of the seal's view, carrying its parent's commit certificate; views
    never go back; time moves forward. Engine fork choice, commit finality."""

    fork_choice = ForkChoice.ENGINE
    confirmation_finality = False

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.genesis_hash = genesis.hash
        self.validators = validator_set(genesis)

    def block_work(self, header: BlockHeader) -> int:
        return 1

    def block_reward(self, header: BlockHeader) -> int:
        return self.genesis.block_reward

    def check_detached_header(self, header: BlockHeader) -> None:
        """The seal alone: signed by the proposer, the primary of the seal's view."""
        seal = check_pbft_seal(header)
        if header.proposer != self.validators.primary(seal.view):
            raise RejectError("bad-seal", f"block not proposed by the primary of view {seal.view}")

    def check_header(self, header: BlockHeader, parent: BlockMeta, view: HeaderView, now_ms: int) -> None:
        """The seal, and the parent's finality proof: 2f+1 commits of the parent (none for the genesis)."""
        self.check_detached_header(header)
        seal = decode_pbft_seal(header.seal)
        if header.timestamp_ms <= parent.header.timestamp_ms:
            raise RejectError("time-too-old", "timestamp not after the parent's")
        if parent.height == 0:
            if seal.parent_cert:
                raise RejectError("bad-seal", "a commit certificate for the genesis")
            return
        try:
            cert = seal.cert()
        except DecodeError as exc:
            raise RejectError("bad-seal", f"parent certificate: {exc}") from None
        if cert is None or cert.digest != parent.hash or cert.seq != parent.height:
            raise RejectError("bad-seal", "the seal does not carry its parent's commit certificate")
        check_commit_cert(cert, self.validators, self.genesis_hash)


class Phase(Enum):
    """Where this validator stands on the next height."""

    IDLE = "idle"  # waiting for the primary's pre-prepare (or, as primary, for the time to propose)
    PRE_PREPARED = "pre-prepared"  # accepted a pre-prepare; validating the block or waiting for it
    PREPARED = "prepared"  # prepared: sent COMMIT, waiting for a quorum of commits
    VIEW_CHANGE = "view-change"  # left the view; waiting for a NEW-VIEW


@dataclass(slots=True)
class Slot:
    """What this validator knows of one (view, height)."""

    pre_prepare: Vote | None = None
    valid: bool = False  # the pre-prepared block validated on its parent
    prepares: dict[bytes, Vote] = field(default_factory=dict)  # signer key -> prepare
    commits: dict[bytes, Vote] = field(default_factory=dict)
    sent_prepare: bool = False
    sent_commit: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PbftStatus(StatusBase):
    """PBFT's status (/v1/status `engine`)."""

    role: str  # primary, backup, observer
    view: int
    primary: str
    view_changing: bool
    sequence: int  # the height in flight
    phase: Phase
    stable_checkpoint: int
    low_watermark: int
    high_watermark: int
    validators: int
    f: int
    quorum: int
    view_changes: int  # views this node has moved to since it started
    rejected: dict[str, int]  # peer statements refused, by code
    byzantine: str | None = None  # the behaviour this validator was switched to (consensus/pbft/byzantine.py)


class PbftEngine(EngineBase):
    """A PBFT replica (or an observer that follows commit certificates)."""

    name = "pbft"

    def __init__(self, context: EngineContext) -> None:
        super().__init__()
        genesis = context.genesis
        self.genesis = genesis
        self.genesis_hash = genesis.hash
        self._policy = PbftPolicy(genesis)
        self.validators = self._policy.validators
        self.key = context.key
        self.address = self.key.address if self.key is not None else None
        self.is_validator = self.address is not None and self.address in self.validators
        self.proposing_allowed = context.proposing_allowed
        self.interval_s = float(genesis.param("block_interval_s"))
        self.timeout_s = float(engine_param(genesis, PBFT_PARAMETERS, "view_change_timeout_s"))
        self.checkpoint_interval = int(engine_param(genesis, PBFT_PARAMETERS, "checkpoint_interval"))
        self.window = int(engine_param(genesis, PBFT_PARAMETERS, "watermark_window"))
        self._chain: ChainView | None = None
        self.view = 0
        self.changing = False
        self._attempts = 0  # view changes since the last commit
        self._deadline = 0.0
        self._retry_at = 0.0
        self._next_proposal = 0.0
        self._proposed: tuple[int, int] | None = None  # (view, height) we proposed as primary
        self._slots: dict[tuple[int, int], Slot] = {}
        self._prepared: dict[int, PreparedCert] = {}  # height -> our prepared certificate (highest view)
        self._stable: tuple[int, bytes] = (0, b"")
        self._stable_proof: tuple[Checkpoint, ...] = ()
        self._checkpoints: dict[int, dict[bytes, Checkpoint]] = {}
        self._view_changes: dict[int, dict[bytes, ViewChange]] = {}
        self._asked: dict[bytes, int] = {}  # validator -> the highest view it asked for
        self._my_view_change: ViewChange | None = None
        self._new_view: NewView | None = None  # the last NEW-VIEW we made as primary (sent again to late askers)
        self._new_view_resent_at = 0.0
        self._certs: dict[int, CommitCert] = {}  # recent commit certificates by height (the store keeps all)
        self._view_change_count = 0
        self._rejected: Counter[str] = Counter()
        self._rng = context.rng
        self._misbehaviour: Misbehaviour | None = None  # a Byzantine validator's lie (byzantine.py)

    # -- the contract ---------------------------------------------------------------------------------------------

    @property
    def policy(self) -> ChainPolicy:
        return self._policy

    @property
    def tick_interval_s(self) -> float:
        return max(0.02, min(self.interval_s, self.timeout_s) / 10)

    @property
    def marks(self) -> Watermarks:
        return Watermarks(self._stable[0], self.window)

    def start(self, chain: ChainView, state: EngineState, *, now: float, now_ms: int) -> None:
        """Reload the view, the stable checkpoint, our prepared certificates and votes, the last certificates."""
        self._chain = chain
        raw = state.get(VIEW_KEY)
        if raw is not None:
            view, changing = unpack(raw, 73, 1, 2, 64)
            self.view, self.changing = check_uint(view, "view"), bool(changing)
        raw = state.get(STABLE_KEY)
        if raw is not None:
            seq, proof = unpack(raw, 74, 1, 2, 64 + STATEMENT_BYTES * 64 * 2)
            self._stable_proof = tuple(Checkpoint.from_fields(c) for c in proof)
            self._stable = (check_uint(seq, "seq"), self._stable_proof[0].digest if self._stable_proof else b"")
        for _, value in state.range(PREPARED_PREFIX, PREPARED_PREFIX + b"\xff"):
            cert = PreparedCert.decode(value)
            self._prepared[cert.pre_prepare.seq] = cert
        for key, value in state.range(VOTE_PREFIX, VOTE_PREFIX + b"\xff"):
            vote = Vote.decode(value, key[-1])
            slot = self._slot(vote.view, vote.seq)
            if vote.tag == TAG_PREPARE:
                slot.sent_prepare = True
                slot.prepares[vote.signer] = vote
            elif vote.tag == TAG_COMMIT:
                slot.sent_commit = slot.sent_prepare = True
                slot.commits[vote.signer] = vote
            elif vote.tag == TAG_PRE_PREPARE:
                slot.pre_prepare = vote
        tip = chain.tip
        if tip.height > 0:
            raw = state.get(_seq_key(CERT_PREFIX, tip.height))
            if raw is not None:
                self._certs[tip.height] = CommitCert.decode(raw)
        self._deadline = now + self.interval_s + self._timeout()
        self._next_proposal = now
        if self.changing and self.is_validator:  # restarted during a view change: ask again
            self._my_view_change = self._view_change_for(self.view)
            self._broadcast(VIEW_CHANGE_KIND, self._my_view_change.encode())
            self._record_view_change(self._my_view_change, now)
        for child in chain.children(tip.hash):
            self.on_block_stored(chain, child, now=now, now_ms=now_ms)
        self.tick(now=now, now_ms=now_ms)

    def tick(self, *, now: float, now_ms: int) -> None:
        chain = self._chain
        if chain is None or not self.is_validator:
            return
        if now >= self._deadline and (not self.changing or self._view_change_quorum()):
            # Changing view, the timer runs only once a quorum asks for this view or a later one (Castro and Liskov,
            # 4.5.2, counting a validator that moved on as one that came this far): a
            # replica that moved on alone would run ahead of the others view after view, and no view would ever
            # gather a quorum again (sawtooth-pbft#90, replicas stuck in view-changing).
            self._start_view_change(self.view + 1, now, reason="no commit in time" if not self.changing
                                    else f"no new view {self.view} in time")
        if now >= self._retry_at:
            self._retry_at = now + RETRY_INTERVALS * max(self.interval_s, 0.25)
            self._resend()
        self._maybe_propose(now)
        if self._misbehaviour is not None and chain is not None:
            self._misbehaviour.on_tick(self._ready, view=self.view, marks=self.marks, next_seq=chain.tip.height + 1)

    def on_peers(self, count: int, *, now: float) -> None:
        if count:
            self._retry_at = min(self._retry_at, now)

    def seal(self, header: BlockHeader) -> SealOutcome:
        assert self.key is not None, "only validators propose"
        parent_cert = b""
        if header.height > 1:
            cert = self._certs.get(header.height - 1)
            assert cert is not None, "a primary proposes only on a tip whose certificate it holds"
            parent_cert = cert.encode()
        return Sealed(header=header.with_seal(make_pbft_seal(self.key, header, self.view, parent_cert)))

    def on_block_stored(self, chain: ChainView, meta: BlockMeta, *, now: float, now_ms: int) -> None:
        """A block on the committed tip: the primary pre-prepares its own, a backup validates one it has a
        pre-prepare for. Any block: its seal's certificate may commit its parent (sync, or missed commits)."""
        self._chain = chain
        tip = chain.tip
        if meta.height >= tip.height + 2:
            self._commit_from_child(chain, meta)
            return
        if meta.height != tip.height + 1 or meta.parent != tip.hash:
            return
        seq = meta.height
        try:
            seal_view = decode_pbft_seal(meta.header.seal).view
        except DecodeError:
            return
        if (meta.header.proposer == self.address and self._proposed == (self.view, seq) and seal_view == self.view
                and not self.changing and self._slot(self.view, seq).pre_prepare is None):
            self._pre_prepare(meta.hash, seq, now)
            return
        for (view, slot_seq), slot in list(self._slots.items()):
            if slot_seq == seq and slot.pre_prepare is not None and slot.pre_prepare.digest == meta.hash:
                self._validate(view, seq)
        self._try_commit_any(seq)

    def on_validated(self, block_hash: bytes, error: RejectError | None, *, now: float, now_ms: int) -> None:
        chain = self._chain
        if chain is None:
            return
        for (view, seq), slot in list(self._slots.items()):
            if slot.pre_prepare is None or slot.pre_prepare.digest != block_hash or slot.valid:
                continue
            if error is not None:
                if error.code != "not-ready":
                    self._ready.notes.append(f"pbft: the block of view {view} height {seq} is invalid ({error}); "
                                             f"not preparing it")
                continue
            slot.valid = True
            if view == self.view and not self.changing:
                self._send_prepare(view, seq)
                self._check_prepared(view, seq)

    def on_message(self, sender: bytes, message: EngineMessage, *, now: float, now_ms: int) -> None:
        kind = message.kind
        if kind in VOTE_TAGS:
            self._on_vote(sender, Vote.decode(message.payload, VOTE_TAGS[kind]), now)
        elif kind == CHECKPOINT_KIND:
            self._on_checkpoint(sender, Checkpoint.decode(message.payload))
        elif kind == VIEW_CHANGE_KIND:
            self._on_view_change(sender, ViewChange.decode(message.payload), now)
        elif kind == NEW_VIEW_KIND:
            self._on_new_view(NewView.decode(message.payload), now)
        else:
            raise RejectError("unknown-engine-message", f"pbft has no message kind {kind!r}")

    def on_chain_changed(self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *,
                         now: float, now_ms: int) -> None:
        """A height was committed: the timer restarts, the next height begins, checkpoints are taken."""
        self._chain = chain
        tip = chain.tip
        if connected:
            self._attempts = 0
            if not self.changing:  # the next block is due in an interval; its commit a timeout later
                self._deadline = now + self.interval_s + self._timeout()
            self._next_proposal = now + self.interval_s
        for meta in connected:
            if meta.height % self.checkpoint_interval == 0 and self.is_validator:
                self._send_checkpoint(meta)
        self._slots = {k: s for k, s in self._slots.items() if k[1] > tip.height}
        for child in chain.children(tip.hash):  # the next block may have come before this commit
            self.on_block_stored(chain, child, now=now, now_ms=now_ms)
        self._try_commit_any(tip.height + 1)
        self.tick(now=now, now_ms=now_ms)

    def admin(self, action: str, value: object, *, now: float) -> dict[str, object]:
        """`byzantine`: make this validator lie one way of consensus/pbft/byzantine.py (`honest` to stop)."""
        if action != "byzantine":
            return super().admin(action, value, now=now)
        behaviour = parse_behaviour(value)
        if behaviour is not None and (self.key is None or not self.is_validator):
            raise RejectError("not-a-validator", "only a validator can be Byzantine: this node holds no validator key")
        self._misbehaviour = None
        if behaviour is not None and self.key is not None:
            self._misbehaviour = Misbehaviour(behaviour, key=self.key, genesis_hash=self.genesis_hash,
                                              validators=self.validators, rng=self._rng)
        self._ready.notes.append(f"pbft: byzantine behaviour {behaviour or 'off'} (admin)")
        return {"byzantine": behaviour or "honest"}

    def ready(self) -> Ready:
        """Take the pending outputs, bent by a Byzantine behaviour when one is on."""
        ready = super().ready()
        if self._misbehaviour is not None:
            self._misbehaviour.apply(ready)
        return ready

    def status(self, *, now: float) -> PbftStatus:
        chain = self._chain
        seq = chain.tip.height + 1 if chain is not None else 1
        slot = self._slots.get((self.view, seq))
        if self.changing:
            phase = Phase.VIEW_CHANGE
        elif slot is not None and slot.sent_commit:
            phase = Phase.PREPARED
        elif slot is not None and slot.pre_prepare is not None:
            phase = Phase.PRE_PREPARED
        else:
            phase = Phase.IDLE
        primary = self.validators.primary(self.view)
        role = "observer" if not self.is_validator else "primary" if primary == self.address else "backup"
        marks = self.marks
        return PbftStatus(role=role, view=self.view, primary=crypto.address_to_text(primary),
                          view_changing=self.changing, sequence=seq, phase=phase, stable_checkpoint=self._stable[0],
                          low_watermark=marks.low, high_watermark=marks.high, validators=self.validators.n,
                          f=self.validators.f, quorum=self.validators.quorum,
                          view_changes=self._view_change_count, rejected=dict(self._rejected),
                          byzantine=self._misbehaviour.behaviour if self._misbehaviour is not None else None)

    # -- normal case ----------------------------------------------------------------------------------------------

    def _slot(self, view: int, seq: int) -> Slot:
        slot = self._slots.get((view, seq))
        if slot is None:
            slot = self._slots[(view, seq)] = Slot()
        return slot

    def _timeout(self) -> float:
        return self.timeout_s * float(min(2 ** self._attempts, MAX_BACKOFF))

    def _maybe_propose(self, now: float) -> None:
        chain = self._chain
        if (chain is None or self.changing or not self.proposing_allowed or now < self._next_proposal
                or self.validators.primary(self.view) != self.address):
            return
        tip = chain.tip
        seq = tip.height + 1
        if seq > self.marks.high or self._proposed == (self.view, seq):
            return
        if self._slot(self.view, seq).pre_prepare is not None:
            return  # a NEW-VIEW re-issued this height: its block goes on
        if tip.height > 0 and tip.height not in self._certs:
            return  # we hold no certificate for the tip (committed from a child we no longer have): wait
        self._proposed = (self.view, seq)
        self._ready.propose = ProposeRequest(parent_hash=tip.hash, proposer=self.address or b"",
                                             min_timestamp_ms=tip.header.timestamp_ms + 1)

    def _broadcast(self, kind: str, payload: bytes) -> None:
        self._ready.messages.append(Outgoing(message=EngineMessage(kind=kind, payload=payload)))

    def _persist_vote(self, vote: Vote) -> None:
        self._ready.persist.put(_seq_key(VOTE_PREFIX, vote.seq, vote.view) + bytes([vote.tag]), vote.encode())
        self._ready.durable = True

    def _pre_prepare(self, digest: bytes, seq: int, now: float) -> None:
        assert self.key is not None
        vote = pre_prepare(self.view, seq, digest).signed(self.key, self.genesis_hash)
        slot = self._slot(self.view, seq)
        slot.pre_prepare, slot.valid = vote, True  # we built it on our committed tip
        self._persist_vote(vote)
        self._broadcast(PRE_PREPARE_KIND, vote.encode())
        self._ready.decisions.append(("block-proposed", {"view": self.view, "height": seq}))
        self._check_prepared(self.view, seq)  # a lone validator (n = 1) needs no prepare: it is prepared now

    def _validate(self, view: int, seq: int) -> None:
        chain = self._chain
        slot = self._slots.get((view, seq))
        if chain is None or slot is None or slot.pre_prepare is None or slot.valid:
            return
        meta = chain.meta(slot.pre_prepare.digest)
        if meta is None:
            self._ready.fetch.append(slot.pre_prepare.digest)
        elif meta.height == chain.tip.height + 1 and meta.parent == chain.tip.hash:
            self._ready.validate.append(meta.hash)

    def _send_prepare(self, view: int, seq: int) -> None:
        slot = self._slot(view, seq)
        if slot.sent_prepare or self.key is None or slot.pre_prepare is None:
            return
        if self.validators.primary(view) == self.address:
            return  # the primary's pre-prepare is its prepare (sawtooth-pbft#111)
        vote = prepare(view, seq, slot.pre_prepare.digest).signed(self.key, self.genesis_hash)
        slot.sent_prepare = True
        slot.prepares[vote.signer] = vote
        self._persist_vote(vote)
        self._broadcast(PREPARE_KIND, vote.encode())

    def _check_prepared(self, view: int, seq: int) -> None:
        slot = self._slots.get((view, seq))
        if slot is None or slot.pre_prepare is None or not slot.valid or slot.sent_commit or self.key is None:
            return
        pp = slot.pre_prepare
        matching = [p for p in slot.prepares.values() if p.digest == pp.digest]
        if len(matching) < self.validators.quorum - 1:
            return
        cert = PreparedCert(pre_prepare=pp, prepares=tuple(sorted(matching, key=lambda v: v.signer)
                                                            [:self.validators.quorum - 1]))
        held = self._prepared.get(seq)
        if held is None or held.pre_prepare.view <= view:
            self._prepared[seq] = cert
            self._ready.persist.put(_seq_key(PREPARED_PREFIX, seq), cert.encode())
        vote = commit(view, seq, pp.digest).signed(self.key, self.genesis_hash)
        slot.sent_commit = True
        slot.commits[vote.signer] = vote
        self._persist_vote(vote)
        self._broadcast(COMMIT_KIND, vote.encode())
        self._try_commit(view, seq)

    def _try_commit_any(self, seq: int) -> None:
        for view, slot_seq in list(self._slots):
            if slot_seq == seq:
                self._try_commit(view, seq)

    def _try_commit(self, view: int, seq: int) -> None:
        """A quorum of matching commits (in any view) for a block we hold on the committed tip: it is final."""
        chain = self._chain
        slot = self._slots.get((view, seq))
        if chain is None or slot is None or seq != chain.tip.height + 1:
            return
        by_digest: dict[bytes, list[Vote]] = {}
        for vote in slot.commits.values():
            by_digest.setdefault(vote.digest, []).append(vote)
        for digest, votes in by_digest.items():
            if len(votes) < self.validators.quorum:
                continue
            meta = chain.meta(digest)
            if meta is None:
                self._ready.fetch.append(digest)
                return
            cert = CommitCert.of(sorted(votes, key=lambda v: v.signer)[:self.validators.quorum])
            self._commit(cert)
            return

    def _commit(self, cert: CommitCert) -> None:
        self._certs[cert.seq] = cert
        for height in [h for h in self._certs if h < cert.seq - 2]:
            del self._certs[height]
        self._ready.persist.put(_seq_key(CERT_PREFIX, cert.seq), cert.encode())
        self._ready.commit = cert.digest
        self._ready.decisions.append(("committed", {"view": cert.view, "height": cert.seq}))
        if cert.view > self.view:
            # A quorum committed in a later view: it exists, and we were away when it began.
            self._enter_view(cert.view, reason=f"a commit certificate of view {cert.view}")

    def _commit_from_child(self, chain: ChainView, meta: BlockMeta) -> None:
        """The child's seal proves its parent final: commit the parent (it may be the next of several)."""
        try:
            cert = decode_pbft_seal(meta.header.seal).cert()
        except DecodeError:
            return
        parent = chain.meta(meta.parent)
        if cert is None or parent is None or cert.digest != parent.hash or cert.seq != parent.height:
            return
        if parent.height <= chain.tip.height:
            return
        try:
            check_commit_cert(cert, self.validators, self.genesis_hash)
        except RejectError as exc:
            self._rejected[exc.code] += 1
            return
        self._commit(cert)

    def _on_vote(self, sender: bytes, vote: Vote, now: float) -> None:
        signer = self._check_sender(sender, vote)
        chain = self._chain
        if chain is None:
            return
        if vote.seq <= chain.tip.height:
            return  # already final here
        if vote.seq > self.marks.high:
            # Above the window. (Below it there is only what is final here already, refused above: a checkpoint the
            # others made stable before we committed its height moves the low watermark past our tip, and the
            # votes that commit our next height must still count; fabric#1119.)
            self._rejected["outside-watermarks"] += 1
            return
        if vote.tag == TAG_COMMIT:
            if vote.view != self.view and (vote.seq != chain.tip.height + 1
                                           or abs(vote.view - self.view) > MAX_FOREIGN_VIEWS):
                # Another view's commits matter for the next height alone (a validator that left or missed a view
                # catches up with them); kept for any view and height, a Byzantine validator's made-up views
                # would grow the slots without bound.
                self._rejected["foreign-view"] += 1
                return
            self._slot(vote.view, vote.seq).commits[vote.signer] = vote
            self._try_commit(vote.view, vote.seq)
            return
        if vote.view != self.view or self.changing:
            return  # another view's pre-prepare or prepare: not ours to act on
        slot = self._slot(vote.view, vote.seq)
        if vote.tag == TAG_PRE_PREPARE:
            self._check_role(vote, signer)
            if slot.pre_prepare is not None:
                if slot.pre_prepare.digest != vote.digest:
                    self._ready.notes.append(f"pbft: the primary of view {vote.view} pre-prepared two blocks at "
                                             f"height {vote.seq}: changing view")
                    self._rejected["equivocation"] += 1
                    self._start_view_change(self.view + 1, now, reason="equivocating primary")
                return
            slot.pre_prepare = vote
            self._validate(vote.view, vote.seq)
        else:
            self._check_role(vote, signer)
            slot.prepares[vote.signer] = vote
            self._check_prepared(vote.view, vote.seq)

    def _check_sender(self, sender: bytes, statement: Vote | Checkpoint | ViewChange) -> bytes:
        """The signer of a statement that is its sender's own, valid, validator's statement; counted and raised
        otherwise."""
        try:
            signer = check_statement(statement, self.validators, self.genesis_hash)
        except RejectError as exc:
            self._rejected[exc.code] += 1
            raise
        self._check_own(sender, signer)
        return signer

    def _check_own(self, sender: bytes, signer: bytes) -> None:
        if signer != sender:
            self._rejected["bad-signature"] += 1
            raise RejectError("bad-signature", "a statement signed by another validator than its sender")

    def _check_role(self, vote: Vote, signer: bytes) -> None:
        try:
            check_role(vote, signer, self.validators)
        except RejectError as exc:
            self._rejected[exc.code] += 1
            raise

    # -- checkpoints ----------------------------------------------------------------------------------------------

    def _send_checkpoint(self, meta: BlockMeta) -> None:
        assert self.key is not None
        checkpoint = Checkpoint(seq=meta.height, digest=meta.hash).signed(self.key, self.genesis_hash)
        self._ready.durable = True
        self._broadcast(CHECKPOINT_KIND, checkpoint.encode())
        self._record_checkpoint(checkpoint)

    def _on_checkpoint(self, sender: bytes, checkpoint: Checkpoint) -> None:
        self._check_sender(sender, checkpoint)
        if checkpoint.seq <= self._stable[0] or checkpoint.seq > self.marks.high + self.window:
            return
        self._record_checkpoint(checkpoint)

    def _record_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._checkpoints.setdefault(checkpoint.seq, {})[checkpoint.signer] = checkpoint
        stable = stable_checkpoint((c for group in self._checkpoints.values() for c in group.values()),
                                   self.validators)
        if stable is None or stable[0] <= self._stable[0]:
            return
        seq, digest = stable
        proof = tuple(sorted((c for c in self._checkpoints[seq].values() if c.digest == digest),
                             key=lambda c: c.signer)[:self.validators.quorum])
        self._stable, self._stable_proof = stable, proof
        # Garbage collection below the low watermark: checkpoints, prepared certificates and votes.
        self._checkpoints = {s: g for s, g in self._checkpoints.items() if s > seq}
        self._prepared = {s: c for s, c in self._prepared.items() if s > seq}
        writes = self._ready.persist
        writes.put(STABLE_KEY, pack(74, 1, [seq, [c.fields() for c in proof]]))
        writes.delete_range(PREPARED_PREFIX, _seq_key(PREPARED_PREFIX, seq + 1))
        writes.delete_range(VOTE_PREFIX, _seq_key(VOTE_PREFIX, seq + 1))

    # -- view change ----------------------------------------------------------------------------------------------

    def _persist_view(self) -> None:
        self._ready.persist.put(VIEW_KEY, pack(73, 1, [self.view, self.changing]))
        self._ready.durable = True

    def _start_view_change(self, new_view: int, now: float, *, reason: str) -> None:
        if not self.is_validator or self.key is None or new_view < self.view or (new_view == self.view
                                                                                  and self.changing):
            return
        self.view, self.changing = new_view, True
        self._attempts += 1
        self._view_change_count += 1
        self._deadline = now + self._timeout()
        self._persist_view()
        vc = self._my_view_change = self._view_change_for(new_view)
        self._ready.notes.append(f"pbft: moving to view {new_view} ({reason})")
        self._broadcast(VIEW_CHANGE_KIND, vc.encode())
        self._record_view_change(vc, now)

    def _view_change_for(self, new_view: int) -> ViewChange:
        """Our VIEW-CHANGE: the stable checkpoint with its proof, our prepared certificates above it."""
        assert self.key is not None
        stable_seq = self._stable[0]
        prepared = tuple(self._prepared[s] for s in sorted(self._prepared) if stable_seq < s <= stable_seq
                         + self.window and self._prepared[s].pre_prepare.view < new_view)
        return ViewChange(new_view=new_view, stable_seq=stable_seq, checkpoint_proof=self._stable_proof,
                          prepared=prepared).signed(self.key, self.genesis_hash)

    def _on_view_change(self, sender: bytes, vc: ViewChange, now: float) -> None:
        if vc.new_view < self.view or (vc.new_view == self.view and not self.changing):
            self._check_sender(sender, vc)
            if vc.new_view == self.view:
                # A validator that missed our view's start asks for it: as its primary, send the NEW-VIEW again.
                nv = self._new_view
                if nv is not None and nv.view == self.view and now >= self._new_view_resent_at:
                    self._new_view_resent_at = now + RETRY_INTERVALS * max(self.interval_s, 0.25)
                    self._broadcast(NEW_VIEW_KIND, nv.encode())
            return  # stale
        try:
            signer = check_view_change(vc, self.validators, self.genesis_hash, self.window)  # verifies it once
        except RejectError as exc:
            self._rejected[exc.code] += 1
            raise
        self._check_own(sender, signer)
        self._record_view_change(vc, now)

    def _record_view_change(self, vc: ViewChange, now: float) -> None:
        signer = vc.address
        if vc.new_view < self._asked.get(signer, 0):
            return  # overtaken: the validator asks for a later view already
        # A validator's latest KEPT_VIEW_CHANGES view-changes: made-up views cannot grow the table, and one that
        # moved on still counts towards the quorum of the view it left (a replica that kept only the latest lost
        # that quorum, and with it the timer that would move it along: a view-change deadlock).
        mine = sorted(v for v, group in self._view_changes.items() if signer in group and v != vc.new_view)
        for view in mine[:max(0, len(mine) - KEPT_VIEW_CHANGES + 1)]:
            del self._view_changes[view][signer]
            if not self._view_changes[view]:
                del self._view_changes[view]
        had_quorum = self._view_change_quorum()
        self._view_changes.setdefault(vc.new_view, {})[signer] = vc
        self._asked[signer] = vc.new_view
        if self.changing and not had_quorum and self._view_change_quorum():
            self._deadline = now + self._timeout()  # the quorum is here: the new primary has its time from now
        join = view_to_join(self.view, {a: v for a, v in self._asked.items() if a != self.address},
                            self.validators)
        if join is not None:
            self._start_view_change(join, now, reason=f"{self.validators.weak} validators ask for view {join}")
        self._maybe_new_view(now)

    def _view_change_quorum(self) -> bool:
        """A quorum of validators asks for our view or a later one: at least f+1 honest ones have come this far."""
        return sum(1 for view in self._asked.values() if view >= self.view) >= self.validators.quorum

    def _maybe_new_view(self, now: float) -> None:
        if not self.changing or self.key is None or self.validators.primary(self.view) != self.address:
            return
        collected = self._view_changes.get(self.view, {})
        if len(collected) < self.validators.quorum:
            return
        chosen = [collected[a] for a in sorted(collected)][:self.validators.quorum]
        nv = make_new_view(self.key, self.view, chosen, self.genesis_hash)
        self._new_view = nv
        self._broadcast(NEW_VIEW_KIND, nv.encode())
        self._adopt_new_view(nv, now)

    def _on_new_view(self, nv: NewView, now: float) -> None:
        if nv.view < self.view or (nv.view == self.view and not self.changing):
            return
        try:
            check_new_view(nv, self.validators, self.genesis_hash, self.window)
        except RejectError as exc:
            self._rejected[exc.code] += 1
            raise
        self._adopt_new_view(nv, now)

    def _adopt_new_view(self, nv: NewView, now: float) -> None:
        self._enter_view(nv.view, reason="new view")
        self._deadline = now + self.interval_s + self._timeout()
        chain = self._chain
        tip = chain.tip.height if chain is not None else 0
        for pp in nv.pre_prepares:
            if pp.seq <= tip or pp.digest == NULL_DIGEST:
                continue  # final here already, or a null request: the new primary proposes a fresh block
            slot = self._slot(nv.view, pp.seq)
            if slot.pre_prepare is None:
                slot.pre_prepare = pp
                if self.validators.primary(nv.view) == self.address:
                    slot.valid = True
                    self._proposed = (nv.view, pp.seq)
                    self._persist_vote(pp)  # a restarted primary must not propose another block here
                self._validate(nv.view, pp.seq)

    def _enter_view(self, view: int, *, reason: str) -> None:
        if view < self.view or (view == self.view and not self.changing):
            return
        self.view, self.changing = view, False
        self._my_view_change = None
        self._view_changes = {v: s for v, s in self._view_changes.items() if v > view}
        self._persist_view()
        self._ready.notes.append(f"pbft: in view {view} ({reason}); primary "
                                 f"{crypto.address_to_text(self.validators.primary(view))[:12]}")
        self._ready.decisions.append(("leader-elected", {"view": view}))

    def _resend(self) -> None:
        """Messages are lost: say again what is in flight (our votes at the next height, our view-change)."""
        chain = self._chain
        if chain is None:
            return
        if self.changing and self._my_view_change is not None:
            self._broadcast(VIEW_CHANGE_KIND, self._my_view_change.encode())
            return
        seq = chain.tip.height + 1
        slot = self._slots.get((self.view, seq))
        if slot is None:
            return
        mine = self.key.public_key if self.key is not None else b""
        if slot.pre_prepare is not None and slot.pre_prepare.signer == mine:
            self._broadcast(PRE_PREPARE_KIND, slot.pre_prepare.encode())
        if mine in slot.prepares:
            self._broadcast(PREPARE_KIND, slot.prepares[mine].encode())
        if mine in slot.commits:
            self._broadcast(COMMIT_KIND, slot.commits[mine].encode())
