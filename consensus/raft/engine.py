"""Raft (pure): blocks through a replicated log (Ongaro and Ousterhout, extended version), in the style of
etcd-io/raft's core, on the engine contract of consensus/engine.py.

**The log is the active chain.** Log index = block height; an entry's term is in its block's seal
(consensus/raft/seal.py). Entries up to the commit index are the final chain; entries above it are connected but
not final, and a new leader's log replaces a conflicting suffix (the block tree reorganises onto the leader's
branch: `Ready.head`). Because each block names its parent's hash, two logs holding the same hash at an index hold
the same prefix (the Log Matching property comes with the chain).

- **Persistence**: term and vote in the engine state, written (and synced: `Ready.durable`) before any message
  that depends on them; the log is the block store, synced before a follower acknowledges entries or the leader
  counts its own.
- **Election**: randomized timeouts in [T, 2T) from the injected `Random`; **PreVote** (a node asks whether it
  could win before it raises its term) and **CheckQuorum** (a leader that has not heard from a majority within T
  steps down; a node that heard from a leader within T ignores vote requests: the leader lease).
- **Replication**: AppendEntries carries block hashes (the blocks go by the block path); per-follower progress
  with probing and pipelining (at most `max_inflight_blocks` unacknowledged blocks), fast backtracking on
  conflict (the follower's hint skips past entries of later terms), retransmission after a silence.
- **Commit**: only an entry of the leader's current term is committed by counting replicas (Figure 8); earlier
  entries commit with it. A new leader proposes an empty block first.
- **Reads**: ReadIndex, confirmed by a heartbeat round; a leader that has not committed an entry of its term yet
  serves none (etcd-io/etcd#7331). Followers ask the leader.
- **Membership**: one server at a time, by a configuration entry (a block whose seal carries the new member list),
  in force as soon as it is in the log; a leader removed by it steps down once it is committed.
- **Leadership transfer**: the leader brings the target up to date, then sends TimeoutNow.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

from chain import crypto
from chain.block import BlockHeader
from chain.blocktree import ChainPolicy, ForkChoice, HeaderView
from chain.chainstore import BlockMeta
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
    ReadResult,
    Sealed,
    SealOutcome,
    StatusBase,
)
from consensus.params import engine_param, positive
from consensus.raft.messages import (
    APPEND_KIND,
    APPEND_RESP_KIND,
    MAX_ENTRIES,
    READ_KIND,
    READ_RESP_KIND,
    TIMEOUT_NOW_KIND,
    VOTE_KIND,
    VOTE_RESP_KIND,
    Append,
    AppendResponse,
    ReadRequest,
    ReadResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_config_base,
    decode_hard_state,
    encode_config_base,
    encode_hard_state,
)
from consensus.raft.seal import MAX_MEMBERS, check_raft_seal, decode_raft_seal, make_raft_seal, seal_term

RAFT_PARAMETERS: dict[str, ParamSpec] = {
    "election_timeout_s": ParamSpec(kind=float, default=1.0, meaning="election timeout T: a follower that hears no "
                                    "leader for a random time in [T, 2T) campaigns; a leader that hears no majority "
                                    "for T steps down", check=positive),
    "heartbeat_interval_s": ParamSpec(kind=float, default=0.1, meaning="leader heartbeats (at most T/2)",
                                      check=positive),
    "max_empty_interval_s": ParamSpec(kind=float, default=5.0, meaning="an empty block at most this often when "
                                      "no transaction waits (0: never)"),
    "max_inflight_blocks": ParamSpec(kind=int, default=64, meaning="blocks sent to a follower and not yet "
                                     "acknowledged, at most (also the uncommitted blocks a leader runs ahead)",
                                     check=lambda v: None if v >= 1 else "must be at least 1"),
}

Remote = tuple[bytes, int]  # a follower and its read request id

ADMIN_ACTIONS = ("transfer-leader", "add-member", "remove-member")
HARD_STATE_KEY = b"hardstate"
CONFIG_BASE_KEY = b"config"
MAX_PENDING_APPENDS = 64
MAX_PENDING_READS = 10_000
_TERM_CACHE = 4096


def check_raft_genesis(genesis: Genesis) -> None:
    """GenesisError unless the network names its members and its timing is workable."""
    if not genesis.validators:
        raise GenesisError("a raft genesis needs validators (the members)")
    if len(genesis.validators) > MAX_MEMBERS:
        raise GenesisError(f"a raft network has at most {MAX_MEMBERS} members")
    timeout = float(engine_param(genesis, RAFT_PARAMETERS, "election_timeout_s"))
    heartbeat = float(engine_param(genesis, RAFT_PARAMETERS, "heartbeat_interval_s"))
    if heartbeat * 2 > timeout:
        raise GenesisError(f"heartbeat_interval_s = {heartbeat} must be at most half of election_timeout_s = "
                           f"{timeout}: followers would campaign between heartbeats")


class RaftPolicy:
    """Header rules: sealed by its proposer with a Raft seal, terms never decrease, time moves forward. Fork
    choice and finality are the engine's (the leader's log wins; commit makes final)."""

    fork_choice = ForkChoice.ENGINE
    confirmation_finality = False

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis

    def block_work(self, header: BlockHeader) -> int:
        """Every block weighs 1 (the engine chooses)."""
        return 1

    def block_reward(self, header: BlockHeader) -> int:
        """The genesis reward, to the leader that proposed it."""
        return self.genesis.block_reward

    def check_detached_header(self, header: BlockHeader) -> None:
        """The seal alone: well formed and signed by the proposer."""
        check_raft_seal(header)

    def check_header(self, header: BlockHeader, parent: BlockMeta, view: HeaderView, now_ms: int) -> None:
        """The seal, a term not below the parent's, a timestamp after the parent's."""
        seal = check_raft_seal(header)
        if seal.term < seal_term(parent.header):
            raise RejectError("bad-seal", "term below the parent block's")
        if header.timestamp_ms <= parent.header.timestamp_ms:
            raise RejectError("time-too-old", "timestamp not after the parent's")


class Role(Enum):
    """A server's state (Figure 4, with PreVote's pre-candidate)."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower (etcd's Progress): `match` only grows; `next` is where to send;
    `probing` until the first success of a term (one append at a time), then pipelined."""

    match: int = 0
    next: int = 1
    probing: bool = True
    sent_at: float = float("-inf")
    progress_at: float = float("-inf")
    active: bool = False  # heard from since the last CheckQuorum round
    acked_ctx: int = 0  # highest heartbeat round (ReadIndex) it confirmed in this term


@dataclass(slots=True)
class PendingRead:
    """A ReadIndex request waiting for its heartbeat round: local client ids and follower requests."""

    index: int
    ctx: int
    local: list[int] = field(default_factory=list)
    remote: list[tuple[bytes, int]] = field(default_factory=list)  # (follower, its request id)
    deadline: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RaftStatus(StatusBase):
    """Raft's status (`/v1/status` `engine`)."""

    role: Role
    term: int
    leader: str
    voted_for: str
    commit_index: int
    last_index: int
    commit_lag: int
    members: int
    member: bool
    quorum: int
    leader_changes: int
    elections: int
    transferring_to: str


class RaftEngine(EngineBase):
    """One Raft server over the node's chain."""

    name = "raft"

    def __init__(self, context: EngineContext) -> None:
        super().__init__()
        genesis = context.genesis
        self.genesis = genesis
        self._policy = RaftPolicy(genesis)
        self.key = context.key
        self.address = self.key.address if self.key is not None else None
        self.rng = context.rng
        self.proposing_allowed = context.proposing_allowed
        self.election_timeout = float(engine_param(genesis, RAFT_PARAMETERS, "election_timeout_s"))
        self.heartbeat_interval = float(engine_param(genesis, RAFT_PARAMETERS, "heartbeat_interval_s"))
        self.max_empty_interval = float(engine_param(genesis, RAFT_PARAMETERS, "max_empty_interval_s"))
        self.max_inflight = int(engine_param(genesis, RAFT_PARAMETERS, "max_inflight_blocks"))
        self.block_interval = float(genesis.param("block_interval_s"))
        self._chain: ChainView | None = None
        # Persistent state (Figure 2).
        self.term = 0
        self.voted_for: bytes | None = None
        # Volatile state.
        self.role = Role.FOLLOWER
        self.leader: bytes | None = None
        self.commit = 0
        self._votes: dict[bytes, bool] = {}
        self._election_deadline = 0.0
        self._leader_heard_at = float("-inf")  # last message from the current leader (the lease)
        self._heard: dict[bytes, float] = {}  # member -> last message from it
        self._progress: dict[bytes, Progress] = {}
        self._check_quorum_at = 0.0
        self._heartbeat_at = 0.0
        self._self_match = 0  # the leader's own durable last index
        self._noop_pending = False
        self._last_proposal_at = float("-inf")
        self._last_block_at = float("-inf")
        # Configuration: the membership in force at `_base_height` of the final chain, and configuration entries
        # above it in the log (height, hash, members), oldest first.
        self._base_height = 0
        self._base_members: tuple[bytes, ...] = tuple(sorted(genesis.validators))
        self._configs: list[tuple[int, bytes, tuple[bytes, ...]]] = []
        self._pending_config: tuple[bytes, ...] | None = None
        # Follower side.
        self._pending_appends: list[tuple[bytes, Append]] = []
        self._awaiting: tuple[bytes, Append, int, bytes] | None = None  # (leader, append, target index, hash)
        self._log_dirty = False
        # Reads.
        self._read_ctx = 0
        self._reads: list[PendingRead] = []
        self._waiting_reads: list[tuple[int | None, Remote | None, float]] = []  # before the term's first commit
        self._forwarded: dict[int, float] = {}  # local request id -> deadline (asked the leader)
        # Leadership transfer.
        self._transfer_to: bytes | None = None
        self._transfer_deadline = 0.0
        self._terms: OrderedDict[bytes, int] = OrderedDict()
        self.leader_changes = 0
        self.elections = 0

    # -- contract plumbing ---------------------------------------------------------------------------------------

    @property
    def policy(self) -> ChainPolicy:
        """Raft seals, engine fork choice, commit finality."""
        return self._policy

    @property
    def tick_interval_s(self) -> float:
        """Fine enough for heartbeats and for proposing soon after transactions arrive."""
        return max(0.005, min(self.heartbeat_interval, self.block_interval) / 4)

    @property
    def members(self) -> tuple[bytes, ...]:
        """The membership in force: the last configuration entry in the log, committed or not (Section 6)."""
        return self._configs[-1][2] if self._configs else self._base_members

    def _known_member(self, address: bytes) -> bool:
        """Whether `address` is a member in genesis, the committed base or any configuration entry in the log. (A
        follower whose log lacks the entry that added a member refuses that member's messages until it has the
        entry: it catches up from the others by block sync.)"""
        return (address in self.genesis.validators or address in self._base_members
                or any(address in members for _, _, members in self._configs))

    @property
    def quorum(self) -> int:
        """A majority of the members."""
        return len(self.members) // 2 + 1

    @property
    def is_member(self) -> bool:
        """Whether this node votes and may lead."""
        return self.address is not None and self.address in self.members

    def _chain_view(self) -> ChainView:
        assert self._chain is not None, "the engine has not started"
        return self._chain

    def _send(self, kind: str, payload: bytes, to: bytes | None = None) -> None:
        self._ready.messages.append(Outgoing(message=EngineMessage(kind=kind, payload=payload), to=to))

    def _note(self, text: str) -> None:
        self._ready.notes.append(f"raft: {text}")

    def _term_at(self, index: int) -> int:
        """The term of the log entry at `index` (0 past the end)."""
        chain = self._chain_view()
        block_hash = chain.hash_at(index)
        if block_hash is None:
            return 0
        return self._term_of(block_hash)

    def _term_of(self, block_hash: bytes) -> int:
        term = self._terms.get(block_hash)
        if term is None:
            meta = self._chain_view().meta(block_hash)
            if meta is None:
                return 0  # not here (yet): nothing to remember
            term = seal_term(meta.header)
            self._terms[block_hash] = term
            if len(self._terms) > _TERM_CACHE:
                self._terms.popitem(last=False)
        return term

    @property
    def last_index(self) -> int:
        """The log's last index (the active tip's height)."""
        return self._chain_view().height

    # -- persistence ---------------------------------------------------------------------------------------------

    def start(self, chain: ChainView, state: EngineState, *, now: float, now_ms: int) -> None:
        """Recover term and vote from the engine state and the log and membership from the chain."""
        self._chain = chain
        stored = state.get(HARD_STATE_KEY)
        if stored is not None:
            self.term, self.voted_for = decode_hard_state(stored)
        base = state.get(CONFIG_BASE_KEY)
        if base is not None:
            height, members = decode_config_base(base)
            if height <= chain.final_height:
                self._base_height, self._base_members = height, members
        self._rescan_configs()
        self.commit = chain.final_height
        self._reset_election_timer(now)
        # A restarted leader's blocks above the commit index stay in its log: the next leader decides them.
        self._note(f"started at term {self.term}, log {self.last_index}, commit {self.commit}, "
                   f"{len(self.members)} members")

    def _rescan_configs(self) -> None:
        """Configuration entries in the log above the base, from the chain's headers."""
        chain = self._chain_view()
        found: list[tuple[int, bytes, tuple[bytes, ...]]] = []
        height = chain.height
        while height > self._base_height:
            block_hash = chain.hash_at(height)
            meta = chain.meta(block_hash) if block_hash is not None else None
            if meta is None:
                break
            members = self._members_in(meta.header)
            if members:
                found.append((height, meta.hash, members))
            height -= 1
        self._configs = list(reversed(found))

    @staticmethod
    def _members_in(header: BlockHeader) -> tuple[bytes, ...]:
        try:
            return decode_raft_seal(header.seal).members
        except DecodeError:
            return ()

    def _persist_hard_state(self) -> None:
        self._ready.persist.put(HARD_STATE_KEY, encode_hard_state(self.term, self.voted_for))
        self._ready.durable = True

    # -- time ----------------------------------------------------------------------------------------------------

    def _reset_election_timer(self, now: float) -> None:
        self._election_deadline = now + self.election_timeout * (1.0 + self.rng.random())

    def _in_lease(self, now: float) -> bool:
        """Heard from a live leader within the election timeout (CheckQuorum's lease)."""
        if self.role is Role.LEADER:
            return True  # CheckQuorum steps a leader down when it loses its majority
        return self.leader is not None and now - self._leader_heard_at < self.election_timeout

    def tick(self, *, now: float, now_ms: int) -> None:
        """Elections, heartbeats, CheckQuorum, proposals, and expiry of waiting reads."""
        if self._chain is None:
            return
        self._expire_reads(now)
        if self.role is Role.LEADER:
            self._tick_leader(now)
            return
        if now >= self._election_deadline and self.is_member:
            self._note(f"no leader heard for {self.election_timeout:g}s+ at term {self.term}: pre-vote")
            self._campaign(now, prevote=True)

    def _tick_leader(self, now: float) -> None:
        if now >= self._check_quorum_at:
            active = 1 + sum(1 for addr, pr in self._progress.items() if pr.active and addr in self.members)
            if active < self.quorum:
                self._note(f"step down at term {self.term}: heard from {active} of {len(self.members)} members "
                           f"within {self.election_timeout:g}s (CheckQuorum)")
                self._become_follower(self.term, None, now)
                return
            for pr in self._progress.values():
                pr.active = False
            self._check_quorum_at = now + self.election_timeout
        if self._transfer_to is not None and now >= self._transfer_deadline:
            self._note(f"leadership transfer to {_short(self._transfer_to)} timed out")
            self._transfer_to = None
        if now >= self._heartbeat_at:
            self._heartbeat_at = now + self.heartbeat_interval
            for peer, pr in self._progress.items():
                if pr.next - 1 > pr.match and now - max(pr.sent_at, pr.progress_at) > 2 * self.heartbeat_interval:
                    pr.next, pr.probing = pr.match + 1, True  # acknowledgements lost: resend from the match
                if not self._send_append(peer, pr, now):
                    self._send_heartbeat(peer, pr, 0)
        self._maybe_propose(now)

    # -- elections -----------------------------------------------------------------------------------------------

    def _campaign(self, now: float, *, prevote: bool, transfer: bool = False) -> None:
        self._reset_election_timer(now)
        self._votes = {}
        assert self.address is not None
        if prevote:
            self.role = Role.PRE_CANDIDATE
            term = self.term + 1
        else:
            self.role = Role.CANDIDATE
            self.term += 1
            self.voted_for = self.address
            self.leader = None
            self.elections += 1
            self._persist_hard_state()
            self._note(f"campaign for term {self.term} (log {self.last_index}, "
                       f"term {self._term_at(self.last_index)})")
            term = self.term
        self._votes[self.address] = True
        if self._tally(now):
            return
        request = VoteRequest(term=term, last_index=self.last_index, last_term=self._term_at(self.last_index),
                              prevote=prevote, transfer=transfer)
        self._send(VOTE_KIND, request.encode())

    def _tally(self, now: float) -> bool:
        """Won the (pre-)vote? Moves on and returns True when it did."""
        granted = sum(1 for addr, ok in self._votes.items() if ok and addr in self.members)
        if granted >= self.quorum:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(now, prevote=False)
            else:
                self._become_leader(now)
            return True
        return False

    def _log_up_to_date(self, last_index: int, last_term: int) -> bool:
        ours = self._term_at(self.last_index)
        return last_term > ours or (last_term == ours and last_index >= self.last_index)

    def _on_vote(self, sender: bytes, request: VoteRequest, now: float) -> None:
        if sender not in self.members or not self.is_member:
            return
        if request.term > self.term and not request.transfer and self._in_lease(now) and sender != self.leader:
            return  # a live leader: ignore disruptive candidates (etcd's lease with CheckQuorum)
        if request.prevote:
            # A pre-vote changes nothing here; it is granted for a term we would also vote in.
            granted = request.term > self.term and self._log_up_to_date(request.last_index, request.last_term)
            self._send(VOTE_RESP_KIND, VoteResponse(term=request.term if granted else self.term, granted=granted,
                                                    prevote=True).encode(), to=sender)
            return
        if request.term > self.term:
            self._become_follower(request.term, None, now)
        if request.term < self.term:
            self._send(VOTE_RESP_KIND, VoteResponse(term=self.term, granted=False).encode(), to=sender)
            return
        can_vote = self.voted_for in (None, sender)
        granted = can_vote and self._log_up_to_date(request.last_index, request.last_term)
        if granted:
            self.voted_for = sender
            self._reset_election_timer(now)
            self._persist_hard_state()  # the vote is on disk before the reply leaves (PySyncObj#84)
            self._ready.decisions.append(("vote-cast", {"term": self.term, "candidate": _short(sender)}))
        self._send(VOTE_RESP_KIND, VoteResponse(term=self.term, granted=granted).encode(), to=sender)

    def _on_vote_response(self, sender: bytes, response: VoteResponse, now: float) -> None:
        if response.term > self.term and not (response.prevote and response.granted):
            self._become_follower(response.term, None, now)
            return
        expected = Role.PRE_CANDIDATE if response.prevote else Role.CANDIDATE
        wanted_term = self.term + 1 if response.prevote else self.term
        if self.role is not expected or response.term != wanted_term or sender not in self.members:
            return
        self._votes[sender] = response.granted
        if self._tally(now):
            return
        refused = sum(1 for addr, ok in self._votes.items() if not ok and addr in self.members)
        if refused >= self.quorum:
            self._become_follower(self.term, None, now)

    def _become_follower(self, term: int, leader: bytes | None, now: float) -> None:
        was_leader = self.role is Role.LEADER
        if term > self.term:
            self.term, self.voted_for = term, None
            self._persist_hard_state()
        self.role = Role.FOLLOWER
        if leader != self.leader and leader is not None:
            self.leader_changes += 1
            self._note(f"leader is {_short(leader)} at term {term}")
        self.leader = leader
        self._progress = {}
        self._transfer_to = None
        self._reset_election_timer(now)
        if was_leader:
            self._fail_reads("no-leader", "leadership lost")

    def _become_leader(self, now: float) -> None:
        assert self.address is not None
        self.role = Role.LEADER
        self.leader = self.address
        self.leader_changes += 1
        self._leader_heard_at = now
        last = self.last_index
        self._progress = {m: Progress(next=last + 1, active=True) for m in self.members if m != self.address}
        self._self_match = last
        self._check_quorum_at = now + self.election_timeout
        self._heartbeat_at = now
        self._noop_pending = True
        self._note(f"elected leader for term {self.term} with log {last} (commit {self.commit})")
        self._ready.decisions.append(("leader-elected", {"term": self.term, "log": last}))
        for peer, pr in self._progress.items():
            self._send_heartbeat(peer, pr, 0)  # assert leadership at once
        self._maybe_propose(now)

    # -- proposing -----------------------------------------------------------------------------------------------

    def _maybe_propose(self, now: float) -> None:
        if self.role is not Role.LEADER or self.address is None or not self.proposing_allowed:
            return
        if self._transfer_to is not None:
            return  # no new entries while handing over
        tip = self._chain_view().tip
        # The no-op goes out even with a long uncommitted log: that log commits with it. A configuration entry
        # waits for room like any block; both are empty blocks (`seal` puts the members in the seal).
        room = tip.height - self.commit < self.max_inflight
        empty = self._noop_pending or (self._pending_config is not None and room)
        if not empty:
            if not room or now - self._last_proposal_at < self.block_interval:
                return  # far enough ahead of the commit index, or too soon
            self._last_proposal_at = now
        empty_due = self.max_empty_interval > 0 and now - self._last_block_at >= self.max_empty_interval
        self._ready.propose = ProposeRequest(parent_hash=tip.hash, proposer=self.address,
                                             min_timestamp_ms=tip.header.timestamp_ms + 1, empty=empty,
                                             only_with_txs=not (empty or empty_due))

    def on_transactions_available(self, *, now: float) -> None:
        """Propose soon (the tick does, within the block interval)."""
        self._maybe_propose(now)

    def seal(self, header: BlockHeader) -> SealOutcome:
        """The leader's seal: its term, a new membership for a configuration entry, its signature."""
        assert self.key is not None and self.role is Role.LEADER, "only the leader proposes"
        members: tuple[bytes, ...] = ()
        if self._noop_pending:
            self._noop_pending = False
        elif self._pending_config is not None:
            members, self._pending_config = self._pending_config, None
        return Sealed(header=header.with_seal(make_raft_seal(self.key, header, self.term, members)))

    def on_block_stored(self, chain: ChainView, meta: BlockMeta, *, now: float, now_ms: int) -> None:
        """Our own proposal joins our log; a follower retries appends that waited for this block."""
        self._chain = chain
        if (self.role is Role.LEADER and meta.header.proposer == self.address and meta.parent == chain.tip.hash
                and self._term_of(meta.hash) == self.term):
            self._ready.head = meta.hash
            return
        if self._pending_appends:
            self._retry_pending(now)

    # -- replication: leader -------------------------------------------------------------------------------------

    def _send_append(self, peer: bytes, pr: Progress, now: float) -> bool:
        """Entries from `pr.next` within the in-flight window; False when there is nothing to send."""
        chain = self._chain_view()
        last = chain.height
        if pr.next > last:
            return False
        if pr.probing and now - pr.sent_at < self.heartbeat_interval:
            return False  # one probe at a time
        if pr.next - 1 - pr.match >= self.max_inflight:
            return False
        stop = min(last, pr.match + self.max_inflight, pr.next + MAX_ENTRIES - 1)
        if pr.probing:
            stop = min(last, pr.next + MAX_ENTRIES - 1)
        prev = pr.next - 1
        prev_hash = chain.hash_at(prev)
        if prev_hash is None:
            return False
        entries = []
        for index in range(pr.next, stop + 1):
            block_hash = chain.hash_at(index)
            if block_hash is None:
                break
            entries.append(block_hash)
        append = Append(term=self.term, prev_index=prev, prev_term=self._term_at(prev), prev_hash=prev_hash,
                        entries=tuple(entries), commit=self.commit, ctx=self._read_ctx)
        self._send(APPEND_KIND, append.encode(), to=peer)
        pr.sent_at = now
        if not pr.probing:
            pr.next = prev + len(entries) + 1
        return True

    def _send_heartbeat(self, peer: bytes, pr: Progress, ctx: int) -> None:
        chain = self._chain_view()
        prev = min(pr.match, chain.height)
        prev_hash = chain.hash_at(prev)
        assert prev_hash is not None
        append = Append(term=self.term, prev_index=prev, prev_term=self._term_at(prev), prev_hash=prev_hash,
                        entries=(), commit=min(self.commit, prev), ctx=ctx or self._read_ctx)
        self._send(APPEND_KIND, append.encode(), to=peer)

    def _on_append_response(self, sender: bytes, response: AppendResponse, now: float) -> None:
        if response.term > self.term:
            self._become_follower(response.term, None, now)
            return
        if self.role is not Role.LEADER or response.term < self.term:
            return
        pr = self._progress.get(sender)
        if pr is None:
            return
        pr.active = True
        self._heard[sender] = now
        if response.ctx > pr.acked_ctx:
            pr.acked_ctx = response.ctx
            self._confirm_reads()
        if not response.success:
            if response.hint < pr.match:
                return  # stale (it answers an append older than the match we know): resending would only repeat it
            # Fast backtracking: the follower's log may match up to `hint` at most.
            pr.next = max(pr.match + 1, min(pr.next - 1, response.hint + 1))
            pr.probing, pr.sent_at = True, float("-inf")
            self._send_append(sender, pr, now)
            return
        if response.match > pr.match:  # match never goes backwards (a stale or duplicated response)
            pr.match = response.match
            pr.progress_at = now
        pr.next = max(pr.next, pr.match + 1)
        if pr.probing:
            pr.probing = False
            pr.next = pr.match + 1
        self._advance_commit(now)
        if self._transfer_to == sender and pr.match == self.last_index:
            self._send(TIMEOUT_NOW_KIND, TimeoutNow(term=self.term).encode(), to=sender)
        self._send_append(sender, pr, now)

    def _advance_commit(self, now: float) -> None:
        """The highest index a majority holds durably, if it is of this term (Figure 8); earlier entries commit
        with it."""
        matches = sorted((self._self_match if m == self.address else
                          (self._progress[m].match if m in self._progress else 0)) for m in self.members)
        if not self.is_member:
            matches = sorted(pr.match for m, pr in self._progress.items() if m in self.members)
        candidate = matches[len(matches) - self.quorum] if len(matches) >= self.quorum else 0
        if candidate <= self.commit or self._term_at(candidate) != self.term:
            return
        self._commit_to(candidate, now)

    def _commit_to(self, index: int, now: float) -> None:
        chain = self._chain_view()
        block_hash = chain.hash_at(index)
        if block_hash is None or index <= self.commit:
            return
        self.commit = index
        self._ready.commit = block_hash
        if self.role is Role.LEADER:
            # Tell followers at once (as etcd does): clients waiting at a follower see the commit a round trip
            # sooner than with the next block's append.
            for peer, pr in self._progress.items():
                if pr.match >= index and not pr.probing:
                    self._send_heartbeat(peer, pr, 0)
            self._serve_waiting_reads(now)
            if not self.is_member and not any(h > index for h, _, _ in self._configs):
                self._note(f"removed from the membership at {index}: step down")
                self._become_follower(self.term, None, now)

    # -- replication: follower -----------------------------------------------------------------------------------

    def _on_append(self, sender: bytes, append: Append, now: float) -> None:
        if append.term < self.term:
            # A stale leader: tell it our term so that it steps down (without this, a node with a higher term
            # that cannot win is ignored for ever: etcd-io/etcd#8243).
            self._send(APPEND_RESP_KIND, AppendResponse(term=self.term, success=False, match=0).encode(), to=sender)
            return
        if append.term > self.term or self.role is not Role.FOLLOWER or self.leader != sender:
            self._become_follower(append.term, sender, now)
        self._leader_heard_at = now
        self._heard[sender] = now
        self._reset_election_timer(now)
        self._handle_append(sender, append, now)

    def _handle_append(self, sender: bytes, append: Append, now: float, *, first: bool = True) -> None:
        chain = self._chain_view()
        if append.prev_index > chain.height and self._covered(append.prev_index):
            # Pipelined: an earlier append that reaches this far still waits for its blocks; this one follows it.
            self._queue_append(sender, append)
            return
        if append.prev_index > chain.height or chain.hash_at(append.prev_index) != append.prev_hash:
            if append.prev_index <= chain.height and append.prev_index <= chain.final_height:
                self._note(f"leader {_short(sender)} disagrees with our committed entry {append.prev_index}")
            hint = min(append.prev_index, chain.height + 1) - 1
            while hint > chain.final_height and self._term_at(hint) > append.prev_term:
                hint -= 1  # entries of a later term than the leader's prev cannot match it
            self._reply(sender, AppendResponse(term=self.term, success=False, match=0, hint=max(hint, 0),
                                               ctx=append.ctx))
            return
        have = 0
        for block_hash in append.entries:
            if chain.meta(block_hash) is None:
                break
            have += 1
        missing = append.entries[have:]
        if missing:
            if first:
                self._ready.fetch.extend(missing[:self.max_inflight])
            self._queue_append(sender, append)
        target = append.prev_index + have
        target_hash = append.entries[have - 1] if have else append.prev_hash
        if chain.hash_at(target) == target_hash:
            self._acknowledge(sender, append, target, now)
            return
        # Our log conflicts at or is shorter than the entries we have: the leader's branch wins.
        self._awaiting = (sender, append, target, target_hash)
        self._ready.head = target_hash

    def _covered(self, index: int) -> bool:
        """Whether `index` is reached by the head move this input asked for or by a contiguous run of waiting
        appends from the end of our log (their blocks have not all arrived): then an append at `index` follows
        them instead of being refused."""
        reach = self._chain_view().height
        awaiting = self._awaiting
        if awaiting is not None and self._ready.head == awaiting[3]:
            reach = max(reach, awaiting[2])  # the head moves there once this input's Ready is applied
        for _, waiting in sorted(self._pending_appends, key=lambda item: item[1].prev_index):
            if waiting.prev_index <= reach:  # a contiguous run of waiting appends from our log's end
                reach = max(reach, waiting.prev_index + len(waiting.entries))
        return index <= reach

    def _queue_append(self, sender: bytes, append: Append) -> None:
        self._pending_appends.append((sender, append))
        del self._pending_appends[:-MAX_PENDING_APPENDS]

    def _acknowledge(self, sender: bytes, append: Append, match: int, now: float) -> None:
        if self._log_dirty:
            self._ready.durable = True  # the entries are on disk before the leader counts them
            self._log_dirty = False
        self._reply(sender, AppendResponse(term=self.term, success=True, match=match, ctx=append.ctx))
        commit = min(append.commit, match)
        if commit > self.commit:
            self._commit_to(commit, now)

    def _reply(self, to: bytes, response: AppendResponse) -> None:
        self._send(APPEND_RESP_KIND, response.encode(), to=to)

    def _retry_pending(self, now: float) -> None:
        pending, self._pending_appends = self._pending_appends, []
        for sender, append in sorted(pending, key=lambda item: item[1].prev_index):
            if append.term == self.term and sender == self.leader and self.role is Role.FOLLOWER:
                self._handle_append(sender, append, now, first=False)

    def on_chain_changed(self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *,
                         now: float, now_ms: int) -> None:
        """The log changed: membership entries in or out, acknowledgements of what connected, the leader's own
        match and commit."""
        self._chain = chain
        for meta in disconnected:
            self._configs = [c for c in self._configs if c[0] < meta.height]
        for meta in connected:
            members = self._members_in(meta.header)
            if members:
                self._configs.append((meta.height, meta.hash, members))
                self._note(f"configuration entry at {meta.height}: {len(members)} members")
                if self.role is Role.LEADER:
                    for m in members:
                        if m != self.address and m not in self._progress:
                            self._progress[m] = Progress(next=self.last_index + 1, active=True)
        if connected:
            self._last_block_at = now
        self._log_dirty = True
        self._fold_committed_configs()
        if self.role is Role.LEADER:
            self._ready.durable = True  # our own entries count once they are on our disk
            self._log_dirty = False
            self._self_match = chain.height
            for peer, pr in self._progress.items():
                self._send_append(peer, pr, now)
            self._advance_commit(now)
            self._maybe_propose(now)
            return
        awaiting = self._awaiting
        if awaiting is not None:
            sender, append, target, target_hash = awaiting
            if chain.hash_at(target) == target_hash:
                self._awaiting = None
                if append.term == self.term and sender == self.leader:
                    self._acknowledge(sender, append, target, now)
        if self._pending_appends:
            self._retry_pending(now)

    def _fold_committed_configs(self) -> None:
        chain = self._chain_view()
        committed = [c for c in self._configs if c[0] <= chain.final_height]
        if committed:
            height, _, members = committed[-1]
            self._base_height, self._base_members = height, members
            self._configs = [c for c in self._configs if c[0] > chain.final_height]
            self._ready.persist.put(CONFIG_BASE_KEY, encode_config_base(height, members))

    # -- reads ---------------------------------------------------------------------------------------------------

    def read_index(self, request_id: int, *, now: float) -> None:
        """ReadIndex: the leader confirms it still leads with a heartbeat round; a follower asks the leader."""
        if self.role is Role.LEADER:
            self._leader_read(request_id, None, now)
            return
        refusal = self.write_refusal(now=now)
        if refusal is not None or self.leader is None:
            self._ready.reads.append(ReadResult(request_id=request_id, error=refusal or RejectError(
                "no-leader", "no leader known")))
            return
        if len(self._forwarded) >= MAX_PENDING_READS:
            self._ready.reads.append(ReadResult(request_id=request_id, error=RejectError("busy", "too many reads")))
            return
        self._forwarded[request_id] = now + self.election_timeout
        self._send(READ_KIND, ReadRequest(term=self.term, request_id=request_id).encode(), to=self.leader)

    def _leader_read(self, local: int | None, remote: Remote | None, now: float) -> None:
        if self._term_at(self.commit) != self.term:
            # No entry of this term committed yet: our commit index may be behind the last leader's
            # (etcd-io/etcd#7331). Wait for the no-op.
            if len(self._waiting_reads) >= MAX_PENDING_READS:
                self._answer_read(local, remote, 0, RejectError("busy", "too many reads"))
                return
            self._waiting_reads.append((local, remote, now + self.election_timeout))
            return
        if len(self.members) == 1 and self.is_member:
            self._answer_read(local, remote, self.commit, None)
            return
        if len(self._reads) >= MAX_PENDING_READS:
            self._answer_read(local, remote, 0, RejectError("busy", "too many reads"))
            return
        self._read_ctx += 1
        read = PendingRead(index=self.commit, ctx=self._read_ctx, deadline=now + self.election_timeout)
        if local is not None:
            read.local.append(local)
        if remote is not None:
            read.remote.append(remote)
        self._reads.append(read)
        for peer, pr in self._progress.items():
            self._send_heartbeat(peer, pr, self._read_ctx)

    def _serve_waiting_reads(self, now: float) -> None:
        if self._term_at(self.commit) != self.term or not self._waiting_reads:
            return
        waiting, self._waiting_reads = self._waiting_reads, []
        for local, remote, _ in waiting:
            self._leader_read(local, remote, now)

    def _confirm_reads(self) -> None:
        """Reads whose heartbeat round a majority confirmed (each member counted once, by the highest round it
        acknowledged in this term: a duplicated response confirms nothing new, etcd-io/etcd#20418)."""
        if not self._reads:
            return
        acked = sorted([pr.acked_ctx for m, pr in self._progress.items() if m in self.members]
                       + ([self._read_ctx] if self.is_member else []))
        confirmed = acked[len(acked) - self.quorum] if len(acked) >= self.quorum else 0
        done = [r for r in self._reads if r.ctx <= confirmed]
        self._reads = [r for r in self._reads if r.ctx > confirmed]
        for read in done:
            self._answer_all(read, read.index, None)

    def _answer_all(self, read: PendingRead, index: int, error: RejectError | None) -> None:
        for local in read.local:
            self._answer_read(local, None, index, error)
        for remote in read.remote:
            self._answer_read(None, remote, index, error)

    def _answer_read(self, local: int | None, remote: Remote | None, index: int, error: RejectError | None) -> None:
        if local is not None:
            self._ready.reads.append(ReadResult(request_id=local, index=index, term=self.term, error=error))
        if remote is not None:
            follower, request_id = remote
            self._send(READ_RESP_KIND, ReadResponse(term=self.term, request_id=request_id, index=index,
                                                    error=error.code if error else "").encode(), to=follower)

    def _on_read(self, sender: bytes, request: ReadRequest, now: float) -> None:
        if self.role is not Role.LEADER:
            self._answer_read(None, (sender, request.request_id), 0, RejectError("no-leader", "not the leader"))
            return
        self._leader_read(None, (sender, request.request_id), now)

    def _on_read_response(self, sender: bytes, response: ReadResponse, now: float) -> None:
        if sender != self.leader or self._forwarded.pop(response.request_id, None) is None:
            return
        error = RejectError(response.error, f"the leader answered {response.error}") if response.error else None
        self._ready.reads.append(ReadResult(request_id=response.request_id, index=response.index,
                                            term=response.term, error=error))

    def _expire_reads(self, now: float) -> None:
        for request_id, deadline in list(self._forwarded.items()):
            if now >= deadline:
                del self._forwarded[request_id]
                self._ready.reads.append(ReadResult(request_id=request_id, error=RejectError(
                    "no-quorum", "the leader did not confirm the read within the election timeout")))
        expired = [r for r in self._reads if now >= r.deadline]
        if expired:
            self._reads = [r for r in self._reads if now < r.deadline]
            for read in expired:
                self._answer_all(read, 0, RejectError("no-quorum", "no majority confirmed leadership"))
        waiting = [w for w in self._waiting_reads if now >= w[2]]
        if waiting:
            self._waiting_reads = [w for w in self._waiting_reads if now < w[2]]
            for local, remote, _ in waiting:
                self._answer_read(local, remote, 0, RejectError("no-quorum", "no entry of this term committed"))

    def _fail_reads(self, code: str, why: str) -> None:
        reads, self._reads = self._reads, []
        waiting, self._waiting_reads = self._waiting_reads, []
        for read in reads:
            self._answer_all(read, 0, RejectError(code, why))
        for local, remote, _ in waiting:
            self._answer_read(local, remote, 0, RejectError(code, why))

    def tx_destination(self) -> bytes | None:
        """The leader, which alone proposes (etcd forwards proposals to it the same way): a follower sends its
        clients' transactions there and nowhere else, the leader keeps them, and the blocks bring them to every
        follower. Without a leader (an election) they go to everyone, so whoever wins has them."""
        return self.leader

    def write_refusal(self, *, now: float) -> RejectError | None:
        """Writes need a leader that a majority follows: `no-quorum` when this node cannot see a majority,
        `no-leader` during an election."""
        if self.role is Role.LEADER:
            active = 1 + sum(1 for m in self.members if m != self.address
                             and now - self._heard.get(m, float("-inf")) < self.election_timeout)
            return None if active >= self.quorum else RejectError(
                "no-quorum", f"the leader hears {active} of {len(self.members)} members")
        if self._in_lease(now):
            return None
        heard = (1 if self.is_member else 0) + sum(
            1 for m in self.members if m != self.address and now - self._heard.get(m, float("-inf"))
            < self.election_timeout)
        if heard < self.quorum:
            return RejectError("no-quorum", f"this node hears {heard} of {len(self.members)} members")
        return RejectError("no-leader", f"no leader at term {self.term} (election in progress)")

    # -- messages ------------------------------------------------------------------------------------------------

    def on_message(self, sender: bytes, message: EngineMessage, *, now: float, now_ms: int) -> None:
        """Dispatch a Raft message (authenticated sender); RejectError for a malformed or unknown one, or one from a
        key that was never a member (any node key can sign an envelope: without this, one append with a huge
        term would make every follower follow a stranger)."""
        if not self._known_member(sender):
            raise RejectError("not-a-member", "raft messages come from members only")
        kind = message.kind
        try:
            if kind == APPEND_KIND:
                self._on_append(sender, Append.decode(message.payload), now)
            elif kind == APPEND_RESP_KIND:
                self._on_append_response(sender, AppendResponse.decode(message.payload), now)
            elif kind == VOTE_KIND:
                self._heard[sender] = now
                self._on_vote(sender, VoteRequest.decode(message.payload), now)
            elif kind == VOTE_RESP_KIND:
                self._heard[sender] = now
                self._on_vote_response(sender, VoteResponse.decode(message.payload), now)
            elif kind == READ_KIND:
                self._on_read(sender, ReadRequest.decode(message.payload), now)
            elif kind == READ_RESP_KIND:
                self._on_read_response(sender, ReadResponse.decode(message.payload), now)
            elif kind == TIMEOUT_NOW_KIND:
                request = TimeoutNow.decode(message.payload)
                if request.term == self.term and sender == self.leader and self.is_member:
                    self._note(f"leadership handed over by {_short(sender)}: campaign now")
                    self._campaign(now, prevote=False, transfer=True)
            else:
                raise RejectError("unknown-engine-message", f"raft has no message kind {kind!r}")
        except DecodeError as exc:
            raise RejectError("malformed", str(exc)) from None

    # -- admin ---------------------------------------------------------------------------------------------------

    def admin(self, action: str, value: object, *, now: float) -> dict[str, object]:
        """`transfer-leader` (to a member address), `add-member` / `remove-member` (one at a time)."""
        if action not in ADMIN_ACTIONS:
            return super().admin(action, value, now=now)
        if not isinstance(value, str):
            raise RejectError("bad-request", f"{action} takes a member address")
        try:
            address = crypto.address_from_text(value)
        except crypto.AddressError as exc:
            raise RejectError("bad-address", str(exc)) from None
        if self.role is not Role.LEADER:
            leader = crypto.address_to_text(self.leader) if self.leader else None
            raise RejectError("not-leader", f"ask the leader ({leader or 'none known'})")
        if action == "transfer-leader":
            if address not in self.members:
                raise RejectError("not-a-member", "leadership goes to a member")
            if address == self.address:
                return {"leader": value, "transferring": False}
            pr = self._progress.get(address)
            if pr is None:
                raise RejectError("not-a-member", "that member is not replicated from this leader yet")
            self._transfer_to = address
            self._transfer_deadline = now + self.election_timeout
            self._note(f"transferring leadership to {_short(address)} (match {pr.match} of {self.last_index})")
            if pr.match == self.last_index:
                self._send(TIMEOUT_NOW_KIND, TimeoutNow(term=self.term).encode(), to=address)
            else:
                self._send_append(address, pr, now)
            return {"transferring_to": value, "term": self.term}
        if any(h > self.commit for h, _, _ in self._configs) or self._pending_config is not None:
            raise RejectError("config-change-pending", "one membership change at a time: the last is not committed")
        members = set(self.members)
        if action == "add-member":
            if address in members:
                raise RejectError("already-a-member", "that address is a member")
            if len(members) >= MAX_MEMBERS:
                raise RejectError("too-many-members", f"at most {MAX_MEMBERS} members")
            members.add(address)
        else:
            if address not in members:
                raise RejectError("not-a-member", "that address is not a member")
            if len(members) == 1:
                raise RejectError("last-member", "the last member cannot be removed")
            members.discard(address)
        self._pending_config = tuple(sorted(members))
        self._maybe_propose(now)
        return {"members": [crypto.address_to_text(m) for m in sorted(members)], "term": self.term}

    def status(self, *, now: float) -> RaftStatus:
        """Role, term, leader, commit index and log."""
        chain = self._chain
        last = chain.height if chain is not None else 0
        return RaftStatus(
            role=self.role, term=self.term, leader=crypto.address_to_text(self.leader) if self.leader else "",
            voted_for=crypto.address_to_text(self.voted_for) if self.voted_for else "", commit_index=self.commit,
            last_index=last, commit_lag=max(0, last - self.commit), members=len(self.members),
            member=self.is_member, quorum=self.quorum, leader_changes=self.leader_changes, elections=self.elections,
            transferring_to=crypto.address_to_text(self._transfer_to) if self._transfer_to else "")


def _short(address: bytes) -> str:
    return crypto.address_to_text(address)[:12]

