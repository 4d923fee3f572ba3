"""Per-peer limits and misbehaviour: token-bucket rate limiting, penalty tables, scores and bans (pure).

Misbehaviour is scored per node id once the handshake proved it (before that, per connection address: the URL we
dialed or `ip:<remote address>`); a score reaching `BAN_SCORE` bans the node (and the URL it used) for `ban_s`
seconds. Faults that prove bad intent or a broken implementation cost the whole score at once: a frame that is not
a message, a message out of protocol, a forged handshake, an invalid block or a transaction with a bad signature.
Handshake mismatches (another network, version, a duplicate connection) only end the connection: they are not
misbehaviour. See docs/P2P.md for the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

BAN_SCORE = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Penalty:
    """What a fault costs: misbehaviour points, and whether the connection ends."""

    points: int
    disconnect: bool


BAN = Penalty(points=BAN_SCORE, disconnect=True)
DISCONNECT = Penalty(points=0, disconnect=True)
NO_PENALTY = Penalty(points=0, disconnect=False)

# Faults on the connection itself (frames, protocol, handshake, limits), by code.
CONNECTION_PENALTIES: dict[str, Penalty] = {
    "malformed": BAN,
    "oversize": BAN,
    "unknown-message": BAN,
    "unexpected-message": BAN,
    "bad-clock": BAN,
    "bad-handshake-signature": BAN,
    "rate-limited": Penalty(points=10, disconnect=False),
    "bad-version": DISCONNECT,
    "wrong-chain-id": DISCONNECT,
    "wrong-genesis": DISCONNECT,
    "self-connection": DISCONNECT,
    "duplicate-peer": DISCONNECT,
    "banned": DISCONNECT,
    "too-many-peers": DISCONNECT,
    "timeout": DISCONNECT,
    "send-queue-full": DISCONNECT,
}

# A block the peer sent (or relayed) that was rejected: invalid by default, except for codes that can be an honest
# peer's situation (a clock ahead of ours; a branch we can no longer accept because ours went final).
BLOCK_PENALTIES: dict[str, Penalty] = {
    "time-too-new": NO_PENALTY,
    "fork-below-final": NO_PENALTY,
}
BLOCK_DEFAULT_PENALTY = BAN

# A transaction that was rejected: only a bad signature or a malformed encoding is misbehaviour; the rest
# (already-known, fee-too-low, nonce-too-low, mempool-full, ...) happens to honest relays all the time.
TX_PENALTIES: dict[str, Penalty] = {
    "bad-signature": BAN,
    "malformed": BAN,
    "oversize": BAN,
}
TX_DEFAULT_PENALTY = NO_PENALTY


# An engine message (EngineMsg, through the envelope router and the engine) that was refused. Bytes that do not
# decode, a forged signature, another network or a kind no engine has are the sender's fault whoever wrote the
# message: an honest relay checks all of that before it relays. They cost ENGINE_FAULT_POINTS each, so a peer is
# banned and disconnected at its fifth. The other refusals (`not-a-member`, `not-a-backup`, ...) depend on the
# engine's state, which honest nodes may briefly disagree on: no points (the rate limit bounds their cost).
ENGINE_FAULT_POINTS = 20
ENGINE_PENALTIES: dict[str, Penalty] = {
    code: Penalty(points=ENGINE_FAULT_POINTS, disconnect=False)
    for code in ("malformed", "oversize", "unknown-engine-message", "wrong-network", "bad-signature")
}
ENGINE_DEFAULT_PENALTY = NO_PENALTY


def engine_penalty(code: str) -> Penalty:
    """Penalty for an engine message refused with `code`."""
    return ENGINE_PENALTIES.get(code, ENGINE_DEFAULT_PENALTY)


# A sync request left unanswered for the sync timeout ("sync-stalled"): the height the peer claimed was not delivered.
# A peer without a track record on this connection (no valid block new to us) is disconnected, so a throwaway
# identity's claim costs it its connection (and its slot); no points, because an honest peer's answer can be lost
# (the simulator's lossy runs do it) and its claim never paused anything. A peer with a track record loses only its
# claim (SyncPlanner.poll).
SYNC_STALL_UNPROVEN_PENALTY = DISCONNECT


def sync_stall_penalty(*, delivered: bool) -> Penalty:
    """Penalty for leaving a sync request unanswered; `delivered`: the peer has a track record."""
    return NO_PENALTY if delivered else SYNC_STALL_UNPROVEN_PENALTY


def connection_penalty(code: str) -> Penalty:
    """Penalty for a connection-level fault; unknown codes end the connection without a ban."""
    return CONNECTION_PENALTIES.get(code, DISCONNECT)


def block_penalty(code: str) -> Penalty:
    """Penalty for sending a block rejected with `code`."""
    return BLOCK_PENALTIES.get(code, BLOCK_DEFAULT_PENALTY)


# Codes a relay can check before relaying (the cheap, stateless checks: encoding, header, seal/PoW, merkle root,
# sizes, duplicate or foreign transactions). A block
# that passed our precheck and then fails full validation was relayed unvalidated by its sender just as we relay
# blocks: only these codes are held against the sender of a gossiped block.
RELAY_ACCOUNTABLE_CODES = frozenset({
    "malformed", "oversize", "bad-seal", "bad-pow", "bad-diffbits", "bad-merkle-root", "bad-height", "time-too-old",
    "duplicate-tx", "bad-chain-id",
})


def relayed_block_penalty(code: str) -> Penalty:
    """Penalty for a gossiped block (it passed our precheck) that full validation rejected with `code`.

    Every invalid block bans its sender, as the node's contract says (invalid signature or block -> ban), not only
    the RELAY_ACCOUNTABLE_CODES a relay could have checked itself. The price, documented in docs/P2P.md: because
    blocks are relayed after the cheap checks and before full validation, an honest node that relayed a
    well-formed but invalid block (valid PoW, bad signature or state) is banned by its next hop for `ban_s`.
    Producing such a block costs its author a full proof of work, and the ban ends; BIP 152 makes the other
    choice for high-bandwidth compact blocks. `RELAY_ACCOUNTABLE_CODES` stays as the list of what a relay checks.
    """
    return block_penalty(code)


def tx_penalty(code: str) -> Penalty:
    """Penalty for sending a transaction rejected with `code`."""
    return TX_PENALTIES.get(code, TX_DEFAULT_PENALTY)


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; `take` spends tokens if there are enough."""

    __slots__ = ("_tokens", "_updated", "burst", "rate")

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = now

    def take(self, amount: float, now: float) -> bool:
        """Spend `amount` tokens and return True, or return False (spending nothing) when too few are left."""
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True


class RateLimiter:
    """A peer's two budgets: messages per second and bytes per second (one second of burst each; the byte
    burst is at least one maximum-size frame, so a legal frame always fits an idle budget)."""

    __slots__ = ("_bytes", "_messages")

    def __init__(self, *, messages_per_s: float, bytes_per_s: float, max_message_bytes: int, now: float) -> None:
        self._messages = TokenBucket(rate=messages_per_s, burst=max(1.0, messages_per_s), now=now)
        self._bytes = TokenBucket(rate=bytes_per_s, burst=max(bytes_per_s, float(max_message_bytes)), now=now)

    def allow(self, size: int, now: float) -> bool:
        """True when a frame of `size` bytes fits both budgets (and spends them); False when over the rate."""
        if not self._messages.take(1, now):
            return False
        return self._bytes.take(size, now)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ban:
    """A ban in force."""

    until: float
    reason: str


class LogLimiter:
    """At most one log line per key per `interval_s` (a peer that repeats a fault must not fill the log); counts
    what it held back so the next line can say so."""

    def __init__(self, *, interval_s: float, max_keys: int = 10_000) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._last: dict[str, tuple[float, int]] = {}  # key -> (when last logged, suppressed since)

    def allow(self, key: str, now: float) -> int | None:
        """None to stay quiet; else log now, and the number of lines held back since the last one."""
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._last[key] = (last[0], last[1] + 1)
            return None
        self._last.pop(key, None)
        self._last[key] = (now, 0)
        while len(self._last) > self.max_keys:
            del self._last[next(iter(self._last))]
        return last[1] if last is not None else 0


class Scoreboard:
    """Misbehaviour scores per node id and bans by node id or URL (bounded)."""

    def __init__(self, *, ban_s: float, ban_score: int = BAN_SCORE, max_entries: int = 10_000) -> None:
        self.ban_s = ban_s
        self.ban_score = ban_score
        self.max_entries = max_entries
        self._scores: dict[str, int] = {}
        self._bans: dict[str, Ban] = {}
        self.bans_total = 0

    def score(self, peer: str) -> int:
        """Current misbehaviour score of `peer`."""
        return self._scores.get(peer, 0)

    def penalize(self, peer: str, points: int, reason: str, now: float, *, also: tuple[str, ...] = ()) -> bool:
        """Add `points` to `peer`'s score; at the ban score, ban `peer` and the keys in `also` (its URL). Returns
        True when this call banned the peer."""
        if points <= 0 or self.is_banned(peer, now):
            return False
        total = self._scores.get(peer, 0) + points
        if total < self.ban_score:
            self._scores[peer] = total
            self._trim(self._scores)
            return False
        self._scores.pop(peer, None)
        self.ban([peer, *also], reason, now)
        return True

    def ban(self, keys: list[str], reason: str, now: float) -> None:
        """Ban each of `keys` (node ids or URLs) for `ban_s` seconds."""
        for key in keys:
            if key:
                self._bans[key] = Ban(until=now + self.ban_s, reason=reason)
        self.bans_total += 1
        self._trim(self._bans)

    def is_banned(self, key: str, now: float) -> bool:
        """True while a ban on `key` is in force."""
        ban = self._bans.get(key)
        if ban is None:
            return False
        if now >= ban.until:
            del self._bans[key]
            return False
        return True

    def ban_of(self, key: str, now: float) -> Ban | None:
        """The ban in force on `key`, if any."""
        return self._bans.get(key) if self.is_banned(key, now) else None

    def expire(self, now: float) -> None:
        """Forget bans that ended."""
        for key in [k for k, b in self._bans.items() if now >= b.until]:
            del self._bans[key]

    def _trim(self, table: dict[str, object] | dict[str, int] | dict[str, Ban]) -> None:
        while len(table) > self.max_entries:
            del table[next(iter(table))]  # insertion order: the oldest entry goes
