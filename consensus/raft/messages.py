"""Raft's messages (pure): encodings of the bodies the envelope (consensus/envelope.py) carries, signed and
attributed to their sender by it. Entries are block hashes: blocks travel by the block path, once per link, and a
follower lacking one fetches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from chain.encoding import check_bytes, check_text, check_uint, pack, unpack
from chain.errors import DecodeError

MAX_ENTRIES = 256  # block hashes per AppendEntries
_MAX_BYTES = 256 + MAX_ENTRIES * 40
T = TypeVar("T")

VOTE_KIND = "raft/vote"
VOTE_RESP_KIND = "raft/vote-resp"
APPEND_KIND = "raft/append"
APPEND_RESP_KIND = "raft/append-resp"
READ_KIND = "raft/read"
READ_RESP_KIND = "raft/read-resp"
TIMEOUT_NOW_KIND = "raft/timeout-now"


def _decode(data: object, tag: int, count: int, what: str, build: Callable[[list[Any]], T]) -> T:
    """`build(fields)` of the canonical `tag` array of `count` fields; DecodeError naming `what` otherwise (`build`
    raises ValueError for a bad field)."""
    fields = unpack(data, tag, 1, count, _MAX_BYTES)
    try:
        return build(fields)
    except ValueError as exc:
        raise DecodeError(f"raft {what}: {exc}") from exc


def _hashes(value: object) -> tuple[bytes, ...]:
    if type(value) is not list or len(value) > MAX_ENTRIES:
        raise ValueError(f"entries must be a list of at most {MAX_ENTRIES} block hashes")
    return tuple(check_bytes(e, "entry", size=32) for e in value)


def _bool(value: object, name: str) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{name} must be true or false")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteRequest:
    """RequestVote (and PreVote: `prevote`, sent at term+1 without raising the sender's term). `transfer`: the
    leader handed over leadership (TimeoutNow), so voters inside a leader lease vote anyway."""

    term: int
    last_index: int
    last_term: int
    prevote: bool = False
    transfer: bool = False

    def encode(self) -> bytes:
        return pack(21, 1, [self.term, self.last_index, self.last_term, self.prevote, self.transfer])

    @classmethod
    def decode(cls, data: object) -> VoteRequest:
        return _decode(data, 21, 5, "vote", lambda f: cls(
            term=check_uint(f[0], "term"), last_index=check_uint(f[1], "last_index"),
            last_term=check_uint(f[2], "last_term"), prevote=_bool(f[3], "prevote"),
            transfer=_bool(f[4], "transfer")))


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteResponse:
    """The answer to a VoteRequest, at the voter's term (a pre-vote grant echoes the request's term)."""

    term: int
    granted: bool
    prevote: bool = False

    def encode(self) -> bytes:
        return pack(22, 1, [self.term, self.granted, self.prevote])

    @classmethod
    def decode(cls, data: object) -> VoteResponse:
        return _decode(data, 22, 3, "vote response", lambda f: cls(
            term=check_uint(f[0], "term"), granted=_bool(f[1], "granted"), prevote=_bool(f[2], "prevote")))


@dataclass(frozen=True, slots=True, kw_only=True)
class Append:
    """AppendEntries: the leader's log holds `prev_hash` at `prev_index` (in `prev_term`) followed by `entries`
    (block hashes at prev_index+1, ...). An empty `entries` is a heartbeat. `commit` is the leader's commit index;
    `ctx` numbers the heartbeat round that confirms ReadIndex reads (0: none)."""

    term: int
    prev_index: int
    prev_term: int
    prev_hash: bytes
    entries: tuple[bytes, ...]
    commit: int
    ctx: int = 0

    def encode(self) -> bytes:
        return pack(24, 1, [self.term, self.prev_index, self.prev_term, self.prev_hash, list(self.entries),
                            self.commit, self.ctx])

    @classmethod
    def decode(cls, data: object) -> Append:
        return _decode(data, 24, 7, "append", lambda f: cls(
            term=check_uint(f[0], "term"), prev_index=check_uint(f[1], "prev_index"),
            prev_term=check_uint(f[2], "prev_term"), prev_hash=check_bytes(f[3], "prev_hash", size=32),
            entries=_hashes(f[4]), commit=check_uint(f[5], "commit"), ctx=check_uint(f[6], "ctx")))


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResponse:
    """The follower's answer: `success` with `match` (its log equals the leader's up to there, durably), or a
    rejection with `hint` (the highest index at which the logs may still match: fast backtracking). `ctx` echoes
    the append's heartbeat round."""

    term: int
    success: bool
    match: int
    hint: int = 0
    ctx: int = 0

    def encode(self) -> bytes:
        return pack(25, 1, [self.term, self.success, self.match, self.hint, self.ctx])

    @classmethod
    def decode(cls, data: object) -> AppendResponse:
        return _decode(data, 25, 5, "append response", lambda f: cls(
            term=check_uint(f[0], "term"), success=_bool(f[1], "success"), match=check_uint(f[2], "match"),
            hint=check_uint(f[3], "hint"), ctx=check_uint(f[4], "ctx")))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadRequest:
    """A follower asks the leader for a read index on behalf of its client request `request_id`."""

    term: int
    request_id: int

    def encode(self) -> bytes:
        return pack(26, 1, [self.term, self.request_id])

    @classmethod
    def decode(cls, data: object) -> ReadRequest:
        return _decode(data, 26, 2, "read", lambda f: cls(
            term=check_uint(f[0], "term"), request_id=check_uint(f[1], "request_id")))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadResponse:
    """The leader's read index for a follower's request, or an error code (`no-quorum`, `no-leader`)."""

    term: int
    request_id: int
    index: int
    error: str = ""

    def encode(self) -> bytes:
        return pack(27, 1, [self.term, self.request_id, self.index, self.error])

    @classmethod
    def decode(cls, data: object) -> ReadResponse:
        return _decode(data, 27, 4, "read response", lambda f: cls(
            term=check_uint(f[0], "term"), request_id=check_uint(f[1], "request_id"),
            index=check_uint(f[2], "index"), error=check_text(f[3], "error", max_size=32)))


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutNow:
    """Leadership transfer: the leader tells an up-to-date follower to campaign at once."""

    term: int

    def encode(self) -> bytes:
        return pack(28, 1, [self.term])

    @classmethod
    def decode(cls, data: object) -> TimeoutNow:
        return _decode(data, 28, 1, "timeout-now", lambda f: cls(
            term=check_uint(f[0], "term")))


def encode_hard_state(term: int, voted_for: bytes | None) -> bytes:
    """Term and vote, persisted before any message that depends on them."""
    return pack(29, 1, [term, voted_for or b""])


def decode_hard_state(data: bytes) -> tuple[int, bytes | None]:
    """(term, voted_for); DecodeError for a corrupt record."""
    f = unpack(data, 29, 1, 2, 128)
    try:
        term = check_uint(f[0], "term")
        voted = check_bytes(f[1], "voted_for", max_size=20)
        if voted and len(voted) != 20:
            raise ValueError("voted_for must be empty or a 20-byte address")
    except ValueError as exc:
        raise DecodeError(f"raft hard state: {exc}") from exc
    return term, (voted or None)


def encode_config_base(height: int, members: tuple[bytes, ...]) -> bytes:
    """The membership in force at `height` of the final chain (configuration entries above it are in the log)."""
    return pack(30, 1, [height, list(members)])


def decode_config_base(data: bytes) -> tuple[int, tuple[bytes, ...]]:
    """(height, members)."""
    f = unpack(data, 30, 1, 2, 4096)
    try:
        if type(f[1]) is not list:
            raise ValueError("members must be a list")
        return check_uint(f[0], "height"), tuple(check_bytes(m, "member", size=20) for m in f[1])
    except ValueError as exc:
        raise DecodeError(f"raft config base: {exc}") from exc
