"""Round-robin (pure): the smallest engine that uses the whole contract, neither PoW nor primary-backup.

It exists to exercise consensus/engine.py from a third side (tests run it through the real node core in the
simulator and in real node processes), and as the model a Raft or PBFT engine starts from. Not for production:
a stopped proposer stalls the network (no view change), and a Byzantine validator is not tolerated.

- **Proposer**: validator `v[h mod n]` (validators sorted by address) proposes height h on the committed tip, at
  most once per `block_interval_s`, sealed with its signature (`Sealed`).
- **Validate before connect**: fork choice is the engine's (`ForkChoice.ENGINE`): a block that arrives is only
  stored; the engine asks for it to be validated on its parent (`Ready.validate`) and hears the verdict.
- **Durable acknowledgement**: a validator that found the block valid acknowledges it to the proposer alone
  (`Outgoing.to`: the envelope floods it through nodes that are not the proposer's neighbours), with the
  durability request, so "acknowledged" means "on my disk".
- **Commit by hash**: with acknowledgements from a majority of validators the proposer floods `commit(hash)`;
  every node commits that block by hash (`Ready.commit`) and the block tree connects it as final. A node that
  missed the commit (restarted, partitioned) commits a block once a child of it, built by the next proposer, has
  arrived: proposers build only on committed blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chain import crypto
from chain.block import BlockHeader
from chain.blocktree import ChainPolicy, ForkChoice, HeaderView
from chain.chainstore import BlockMeta
from chain.errors import RejectError
from chain.genesis import Genesis
from consensus.blockvote import decode_block_vote, encode_block_vote
from consensus.engine import (
    ChainView,
    EngineBase,
    EngineContext,
    EngineMessage,
    EngineState,
    Outgoing,
    ProposeRequest,
    Sealed,
    SealOutcome,
    StatusBase,
)
from consensus.signed_seal import check_signed_seal, make_signed_seal

TAG_VOTE = 19
ACK_KIND = "rr/ack"
COMMIT_KIND = "rr/commit"
RETRY_INTERVALS = 3.0


def validators_of(genesis: Genesis) -> list[bytes]:
    """The validators in proposing order."""
    return sorted(genesis.validators)


def encode_vote(block_hash: bytes, height: int) -> bytes:
    """An acknowledgement or commit body `[19, 1, block_hash, height]`."""
    return encode_block_vote(TAG_VOTE, block_hash, height)


def decode_vote(data: object) -> tuple[bytes, int]:
    """(block_hash, height); DecodeError otherwise."""
    return decode_block_vote(data, TAG_VOTE, "vote")


class RoundRobinPolicy:
    """Header rules: sealed by the height's proposer; time moves forward. Engine fork choice, commit finality."""

    fork_choice = ForkChoice.ENGINE
    confirmation_finality = False

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.validators = validators_of(genesis)
        if not self.validators:
            raise ValueError("a round-robin genesis needs validators")

    def proposer_of(self, height: int) -> bytes:
        """Who proposes `height`."""
        return self.validators[height % len(self.validators)]

    def block_work(self, header: BlockHeader) -> int:
        """Every block weighs 1 (the tree does not choose: the engine does)."""
        return 1

    def block_reward(self, header: BlockHeader) -> int:
        """The genesis reward, to the proposer."""
        return self.genesis.block_reward

    def check_detached_header(self, header: BlockHeader) -> None:
        """The seal alone: signed by the height's proposer."""
        if header.proposer != self.proposer_of(header.height):
            raise RejectError("bad-seal", "block not proposed by the proposer of its height")
        check_signed_seal(header, header.proposer, "the proposer of its height")

    def check_header(self, header: BlockHeader, parent: BlockMeta, view: HeaderView, now_ms: int) -> None:
        """The seal, and a timestamp after the parent's."""
        self.check_detached_header(header)
        if header.timestamp_ms <= parent.header.timestamp_ms:
            raise RejectError("time-too-old", "timestamp not after the parent's")


class Phase(Enum):
    """Where this node stands on the block at the next height."""

    WAITING = "waiting"  # for the proposer's block
    VALIDATING = "validating"  # asked for the verdict
    ACKNOWLEDGED = "acknowledged"  # sent our acknowledgement, waiting for the commit


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundRobinStatus(StatusBase):
    """Round-robin's status."""

    role: str
    next_proposer: str
    phase: Phase
    quorum: int
    validators: int


class RoundRobinEngine(EngineBase):
    """Rotating proposer; validate, acknowledge durably, commit by hash at a majority."""

    name = "round-robin"

    def __init__(self, context: EngineContext) -> None:
        super().__init__()
        self.genesis = context.genesis
        self._policy = RoundRobinPolicy(context.genesis)
        self.key = context.key
        self.address = self.key.address if self.key is not None else None
        self.validators = self._policy.validators
        self.quorum = len(self.validators) // 2 + 1
        self.interval_s = float(context.genesis.param("block_interval_s"))
        self.proposing_allowed = context.proposing_allowed
        self._chain: ChainView | None = None
        self._phase = Phase.WAITING
        self._candidate: bytes | None = None  # the block at the next height we validate / acknowledged
        self._acks: dict[bytes, set[bytes]] = {}  # our proposals' hash -> validators that acknowledged
        self._proposed_height = 0
        self._next_proposal = 0.0
        self._retry_at = 0.0
        self._recommit_at = 0.0
        self._peer_count = 0
        self._commits = 0
        self._committed_height = 0  # the highest height we committed as its proposer

    @property
    def policy(self) -> ChainPolicy:
        """Proposer seals, engine fork choice, commit finality."""
        return self._policy

    @property
    def tick_interval_s(self) -> float:
        """A tenth of the block interval."""
        return max(0.02, self.interval_s / 10)

    def start(self, chain: ChainView, state: EngineState, *, now: float, now_ms: int) -> None:
        """Begin at the committed tip (the engine keeps nothing of its own: the chain is the log)."""
        self._chain = chain
        self._next_proposal = now
        for child in chain.children(chain.tip.hash):  # stored before a restart, never committed
            self.on_block_stored(chain, child, now=now, now_ms=now_ms)
        self.tick(now=now, now_ms=now_ms)

    def tick(self, *, now: float, now_ms: int) -> None:
        """Propose when it is our turn and the interval has passed."""
        chain = self._chain
        if chain is None or self.address is None or not self.proposing_allowed:
            return
        tip = chain.tip
        if tip.height > 0 and tip.header.proposer == self.address and now >= self._recommit_at:
            # Our last commit is the tip: say it again now and then, for validators that missed it (a lost
            # message, a partition, a restart); the next proposer cannot build on a block it has not committed.
            self._recommit_at = now + RETRY_INTERVALS * self.interval_s
            self._ready.messages.append(Outgoing(message=EngineMessage(
                kind=COMMIT_KIND, payload=encode_vote(tip.hash, tip.height))))
        height = tip.height + 1
        if self._policy.proposer_of(height) != self.address or now < self._next_proposal:
            return
        if self._proposed_height < height or now >= self._retry_at:
            # A proposal nobody committed (it went out before any peer was connected, or was lost) is made
            # again after a few intervals: a block is pushed once, and a stored block is not a sync target.
            self._proposed_height = height
            self._retry_at = now + RETRY_INTERVALS * self.interval_s
            self._ready.propose = ProposeRequest(parent_hash=chain.tip.hash, proposer=self.address,
                                                 min_timestamp_ms=chain.tip.header.timestamp_ms + 1)

    def on_peers(self, count: int, *, now: float) -> None:
        """A new peer: a proposal made before it was connected never reached it; make it again at the next tick."""
        if count > self._peer_count:
            self._retry_at = min(self._retry_at, now)
        self._peer_count = count

    def seal(self, header: BlockHeader) -> SealOutcome:
        """Our signature over the header."""
        assert self.key is not None, "only validators propose"
        return Sealed(header=header.with_seal(make_signed_seal(self.key, header)))

    def on_block_stored(self, chain: ChainView, meta: BlockMeta, *, now: float, now_ms: int) -> None:
        """A block at the next height on the committed tip: validate it. A block further on: its parent was
        committed by a quorum we did not hear (proposers build only on committed blocks)."""
        self._chain = chain
        tip = chain.tip
        # A newer proposal for the same height replaces the one we were on (its proposer gave up on the first).
        if meta.height == tip.height + 1 and meta.parent == tip.hash and meta.hash != self._candidate:
            self._phase = Phase.VALIDATING
            self._candidate = meta.hash
            self._ready.validate.append(meta.hash)
        elif meta.height > tip.height + 1:
            parent = chain.meta(meta.parent)
            if parent is not None and parent.height > tip.height:
                self._ready.commit = parent.hash

    def on_validated(self, block_hash: bytes, error: RejectError | None, *, now: float, now_ms: int) -> None:
        """Valid: acknowledge to the proposer, durably. Invalid: wait for another block."""
        chain = self._chain
        if block_hash != self._candidate or chain is None:
            return
        if error is not None:
            self._ready.notes.append(f"round-robin: block {block_hash.hex()[:16]} refused: {error}")
            self._phase, self._candidate = Phase.WAITING, None
            return
        meta = chain.meta(block_hash)
        if meta is None or self.address not in self.validators:
            return
        self._phase = Phase.ACKNOWLEDGED
        proposer = self._policy.proposer_of(meta.height)
        self._ready.durable = True  # the acknowledgement says "it is on my disk"
        self._ready.messages.append(Outgoing(message=EngineMessage(kind=ACK_KIND,
                                                                   payload=encode_vote(block_hash, meta.height)),
                                             to=proposer))
        if proposer == self.address:
            self._count(block_hash, meta.height, self.address)

    def on_message(self, sender: bytes, message: EngineMessage, *, now: float, now_ms: int) -> None:
        """Acknowledgements (to us, the proposer) and commits (from the proposer of that height)."""
        block_hash, height = decode_vote(message.payload)
        if message.kind == ACK_KIND:
            if sender not in self.validators:
                raise RejectError("not-a-validator", "acknowledgement from a key that is not a validator")
            if self._policy.proposer_of(height) == self.address:
                self._count(block_hash, height, sender)
        elif message.kind == COMMIT_KIND:
            if sender != self._policy.proposer_of(height):
                raise RejectError("not-the-proposer", "commit from a validator that did not propose that height")
            self._ready.commit = block_hash
        else:
            raise RejectError("unknown-engine-message", f"round-robin has no message kind {message.kind!r}")

    def _count(self, block_hash: bytes, height: int, validator: bytes) -> None:
        acks = self._acks.setdefault(block_hash, set())
        if validator in acks:
            return
        acks.add(validator)
        chain = self._chain
        if len(acks) == self.quorum and chain is not None and height > max(chain.tip.height, self._committed_height):
            # One commit per height: a retried proposal (a second block at this height) can gather a quorum of
            # its own, since validators acknowledge the newer proposal; committing it too would finalize two
            # blocks at one height (found by the simulator swarm under loss and duplication).
            self._committed_height = height
            self._ready.messages.append(Outgoing(message=EngineMessage(kind=COMMIT_KIND,
                                                                       payload=encode_vote(block_hash, height))))
            self._ready.commit = block_hash
            # The first rebroadcast waits an interval: the commit just went out.
            self._recommit_at = self._next_proposal + RETRY_INTERVALS * self.interval_s

    def on_chain_changed(self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *,
                         now: float, now_ms: int) -> None:
        """A commit moved the tip: the next height begins."""
        self._chain = chain
        self._commits += len(connected)
        self._phase, self._candidate = Phase.WAITING, None
        self._acks = {h: a for h, a in self._acks.items() if (m := chain.meta(h)) is not None
                      and m.height > chain.height}
        self._next_proposal = now + self.interval_s  # the next height's proposer waits one interval too
        for child in chain.children(chain.tip.hash):  # the next block may have arrived before this commit
            self.on_block_stored(chain, child, now=now, now_ms=now_ms)
        self.tick(now=now, now_ms=now_ms)

    def status(self, *, now: float) -> RoundRobinStatus:
        """The next proposer, our phase, the quorum."""
        chain = self._chain
        next_height = chain.tip.height + 1 if chain is not None else 1
        return RoundRobinStatus(role="validator" if self.address in self.validators else "observer",
                                next_proposer=crypto.address_to_text(self._policy.proposer_of(next_height)),
                                phase=self._phase, quorum=self.quorum, validators=len(self.validators))
