"""The primary-backup engine (pure; see consensus/engine.py).

The primary (named in genesis) proposes and signs one block per `block_interval_s`, empty or not. Backups (the
other genesis validators) check the signature through the chain policy, connect the block, and acknowledge it
with a durability request: the acknowledgement (an engine message in the signed, flooded envelope) leaves only
after the block is on the backup's disk. Every node counts acknowledgements from distinct backups and commits a
block by hash once `acks_required` of them acknowledged it (0: committed as soon as it is connected). There is no
fail-over: when the primary stops, no block comes, status says the primary is unreachable, and the network
visibly stalls.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from chain import crypto
from chain.block import BlockHeader
from chain.blocktree import ChainPolicy
from chain.chainstore import BlockMeta
from chain.errors import RejectError
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
from consensus.params import engine_param
from consensus.primary_backup.policy import PB_PARAMETERS, PrimaryBackupPolicy, make_seal

TAG_ACK = 17
ACK_KIND = "pb/ack"
_MAX_TRACKED_BLOCKS = 1024
_UNREACHABLE_INTERVALS = 3.0


class Role(Enum):
    """A node's part in primary-backup, fixed by genesis."""

    PRIMARY = "primary"
    BACKUP = "backup"
    OBSERVER = "observer"


def encode_ack(block_hash: bytes, height: int) -> bytes:
    """An acknowledgement body `[17, 1, block_hash, height]` (the envelope names and authenticates the backup)."""
    return encode_block_vote(TAG_ACK, block_hash, height)


def decode_ack(data: object) -> tuple[bytes, int]:
    """(block_hash, height) of an acknowledgement; DecodeError otherwise."""
    return decode_block_vote(data, TAG_ACK, "ack")


@dataclass(frozen=True, slots=True, kw_only=True)
class PrimaryBackupStatus(StatusBase):
    """Primary-backup's status: the role, and whether blocks keep coming from the primary."""

    role: Role
    primary: str
    primary_reachable: bool
    last_block_s: float | None
    acks_required: int
    backups: int
    stalled: bool


class PrimaryBackupEngine(EngineBase):
    """One primary proposes; backups acknowledge durable blocks; acknowledgements commit blocks."""

    name = "primary-backup"

    def __init__(self, context: EngineContext) -> None:
        super().__init__()
        genesis = context.genesis
        if context.key is None:
            raise ValueError("a primary-backup node needs a key")
        self._policy = PrimaryBackupPolicy(genesis)
        self.key = context.key
        self.primary = self._policy.primary
        self.backups = {a for a in genesis.validators if a != self.primary}
        address = self.key.address
        self.role = Role.PRIMARY if address == self.primary else (
            Role.BACKUP if address in self.backups else Role.OBSERVER)
        self.interval_s = float(genesis.param("block_interval_s"))
        self.acks_required = int(engine_param(genesis, PB_PARAMETERS, "acks_required"))
        self._chain: ChainView | None = None
        self._next_proposal = 0.0
        self._acks: OrderedDict[bytes, set[bytes]] = OrderedDict()  # block hash -> backups that acknowledged
        self._last_primary_block: float | None = None
        self._started_at = 0.0
        self._committed: bytes | None = None

    @property
    def policy(self) -> ChainPolicy:
        """Signed seals, longest chain, finality by commit."""
        return self._policy

    @property
    def tick_interval_s(self) -> float:
        """Often enough to hold the block interval."""
        return max(0.02, self.interval_s / 10)

    def start(self, chain: ChainView, state: EngineState, *, now: float, now_ms: int) -> None:
        """Begin; the primary proposes its first block right away."""
        self._chain = chain
        self._started_at = now
        self._next_proposal = now
        self.tick(now=now, now_ms=now_ms)

    def tick(self, *, now: float, now_ms: int) -> None:
        """The primary proposes once per interval."""
        if self.role is not Role.PRIMARY or self._chain is None or now < self._next_proposal:
            return
        tip = self._chain.tip
        self._ready.propose = ProposeRequest(parent_hash=tip.hash, proposer=self.primary,
                                             min_timestamp_ms=tip.header.timestamp_ms + 1)
        self._next_proposal = now + self.interval_s

    def on_message(self, sender: bytes, message: EngineMessage, *, now: float, now_ms: int) -> None:
        """An acknowledgement from backup `sender`: count it (the envelope verified and relays it)."""
        if message.kind != ACK_KIND:
            raise RejectError("unknown-engine-message", f"primary-backup has no message kind {message.kind!r}")
        block_hash, _ = decode_ack(message.payload)
        if sender not in self.backups:
            raise RejectError("not-a-backup", "acknowledgement from a key that is not a backup")
        if self._count(block_hash, sender):
            self._commit_acknowledged()

    def on_chain_changed(
        self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *, now: float,
        now_ms: int,
    ) -> None:
        """Backups acknowledge what they connected, once it is on disk; commits follow the acknowledgements."""
        self._chain = chain
        if connected:
            self._last_primary_block = now
        if self.role is Role.BACKUP and connected:
            self._ready.durable = True  # "acknowledged" means "on my disk"
            for meta in connected:
                self._ready.messages.append(Outgoing(message=EngineMessage(
                    kind=ACK_KIND, payload=encode_ack(meta.hash, meta.height))))
                self._count(meta.hash, self.key.address)
        self._commit_acknowledged()

    def seal(self, header: BlockHeader) -> SealOutcome:
        """The primary signs the header."""
        if self.role is not Role.PRIMARY:
            raise AssertionError("only the primary seals blocks")
        return Sealed(header=header.with_seal(make_seal(self.key, header)))

    def _count(self, block_hash: bytes, backup: bytes) -> bool:
        acks = self._acks.setdefault(block_hash, set())
        if backup in acks:
            return False
        acks.add(backup)
        while len(self._acks) > _MAX_TRACKED_BLOCKS:
            self._acks.popitem(last=False)
        return True

    def _commit_acknowledged(self) -> None:
        """Commit the highest block of the active chain with enough acknowledgements (its ancestors with it)."""
        chain = self._chain
        if chain is None:
            return
        for height in range(chain.height, chain.final_height, -1):
            block_hash = chain.hash_at(height)
            if block_hash is not None and len(self._acks.get(block_hash, ())) >= self.acks_required:
                if block_hash != self._committed:
                    self._committed = block_hash
                    self._ready.commit = block_hash
                return

    def status(self, *, now: float) -> PrimaryBackupStatus:
        """Role, the primary and whether it is reachable (blocks keep arriving), acknowledgement settings."""
        since = None if self._last_primary_block is None else now - self._last_primary_block
        waited = now - self._started_at
        reachable = (since is not None and since < _UNREACHABLE_INTERVALS * self.interval_s) or (
            since is None and waited < _UNREACHABLE_INTERVALS * self.interval_s)
        if self.role is Role.PRIMARY:
            reachable = True
        return PrimaryBackupStatus(
            role=self.role, primary=crypto.address_to_text(self.primary), primary_reachable=reachable,
            last_block_s=None if since is None else round(since, 3), acks_required=self.acks_required,
            backups=len(self.backups), stalled=not reachable)
