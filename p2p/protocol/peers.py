"""Who we connect to (pure): the address book with reconnect backoff, and admission of handshaken peers.

Addresses come from configuration (bootstrap, persistent: always redialed), from `Peers` answers and from the
`listen_url` of peers' Hellos (learnt, bounded, forgotten after repeated failures). A failed dial waits an
exponential backoff with "equal jitter": the n-th consecutive failure waits a uniform draw from [b/2, b] with
b = min(max, min * 2^(n-1)), drawn from the injected rng; a connection that worked and then ended is redialed after
a draw from [min/2, min].

Admission picks one connection per node id. When two nodes dial each other at once, both keep the connection
dialed by the node with the smaller id, so the two sides agree without talking about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from p2p.protocol.messages import check_peer_url

DEFAULT_ADDRESS_CAPACITY = 1_000
MAX_LEARNT_FAILURES = 10


def backoff_delay(failures: int, rng: Random, *, min_s: float, max_s: float) -> float:
    """Seconds to wait before the next dial after `failures` consecutive failures (0: a connection ended)."""
    base = min(max_s, min_s * 2 ** max(0, failures - 1))
    return rng.uniform(base / 2, base)


def is_peer_url(url: object) -> bool:
    """True for a ws:// or wss:// URL we would dial."""
    try:
        check_peer_url(url)
    except ValueError:
        return False
    return True


@dataclass(slots=True, kw_only=True)
class _Address:
    url: str
    persistent: bool
    failures: int = 0
    next_attempt: float = 0.0
    in_use: bool = False  # being dialed or connected
    last_error: str = ""  # why the last dial failed ("" after a handshake completed)
    last_error_at: float | None = None
    warned_at: float | None = None  # when a failed dial of it was last logged at WARNING
    warnings_held: int = 0  # failures since, not logged


class AddressBook:
    """Known peer URLs and when each may be dialed next."""

    def __init__(
        self, *, backoff_min_s: float, backoff_max_s: float, capacity: int = DEFAULT_ADDRESS_CAPACITY,
        own_urls: tuple[str, ...] = (),
    ) -> None:
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.capacity = capacity
        self._addresses: dict[str, _Address] = {}
        self._never: set[str] = {u for u in own_urls if u}

    def __contains__(self, url: object) -> bool:
        return url in self._addresses

    def __len__(self) -> int:
        return len(self._addresses)

    def add(self, url: str, now: float, *, persistent: bool = False) -> bool:
        """Remember `url` (invalid URLs and our own are ignored); True when it is new."""
        if url in self._never or not is_peer_url(url):
            return False
        known = self._addresses.get(url)
        if known is not None:
            known.persistent = known.persistent or persistent
            return False
        if len(self._addresses) >= self.capacity and not self._evict_one():
            return False
        self._addresses[url] = _Address(url=url, persistent=persistent, next_attempt=now)
        return True

    def forget(self, url: str, *, forever: bool = False) -> None:
        """Drop `url`; with `forever` (it is us) never take it back."""
        self._addresses.pop(url, None)
        if forever:
            self._never.add(url)

    def dial_started(self, url: str) -> None:
        """A dial of `url` began (no second dial until it ends)."""
        address = self._addresses.get(url)
        if address is not None:
            address.in_use = True

    def connected(self, url: str) -> None:
        """A connection to `url` completed its handshake: its failure count resets."""
        address = self._addresses.get(url)
        if address is not None:
            address.in_use = True
            address.failures = 0
            address.last_error = ""

    def failed(self, url: str, now: float, rng: Random, reason: str = "") -> float:
        """A dial of `url` failed (refused, or closed before the handshake): back off. Returns the delay."""
        address = self._addresses.get(url)
        if address is None:
            return 0.0
        address.in_use = False
        address.failures += 1
        address.last_error = reason or "failed"
        address.last_error_at = now
        if not address.persistent and address.failures >= MAX_LEARNT_FAILURES:
            del self._addresses[url]
            return 0.0
        delay = backoff_delay(address.failures, rng, min_s=self.backoff_min_s, max_s=self.backoff_max_s)
        address.next_attempt = now + delay
        return delay

    def disconnected(self, url: str, now: float, rng: Random) -> float:
        """A working connection to `url` ended: redial after a short jittered pause. Returns the delay."""
        address = self._addresses.get(url)
        if address is None:
            return 0.0
        address.in_use = False
        delay = backoff_delay(0, rng, min_s=self.backoff_min_s, max_s=self.backoff_max_s)
        address.next_attempt = now + delay
        return delay

    def should_warn(self, url: str, now: float, interval_s: float) -> tuple[bool, int]:
        """Whether a failed dial of `url` is logged at WARNING now (at most once per `interval_s` per address), and
        how many failures since the last warning were not."""
        address = self._addresses.get(url)
        if address is None:
            return False, 0
        if address.warned_at is not None and now - address.warned_at < interval_s:
            address.warnings_held += 1
            return False, 0
        held, address.warnings_held, address.warned_at = address.warnings_held, 0, now
        return True, held

    def persistent_rows(self, now: float) -> list[dict[str, object]]:
        """The configured (bootstrap and admin-added) addresses: url, failures, last_error, its age, and seconds
        until the next dial (0: due)."""
        return [{
            "url": a.url,
            "failures": a.failures,
            "last_error": a.last_error,
            "last_error_s_ago": round(now - a.last_error_at, 3) if a.last_error and a.last_error_at is not None
            else None,
            "next_dial_in_s": round(max(0.0, a.next_attempt - now), 3),
        } for a in sorted(self._addresses.values(), key=lambda a: a.url) if a.persistent]

    def failures(self, url: str) -> int:
        """Consecutive failed dials of `url`."""
        address = self._addresses.get(url)
        return address.failures if address is not None else 0

    def due(self, now: float, *, persistent: bool, exclude: set[str]) -> list[str]:
        """Addresses (persistent ones, or learnt ones) that may be dialed now, longest waiting first."""
        ready = [
            a for a in self._addresses.values()
            if a.persistent == persistent and not a.in_use and a.next_attempt <= now and a.url not in exclude
        ]
        ready.sort(key=lambda a: (a.next_attempt, a.url))
        return [a.url for a in ready]

    def sample(self, rng: Random, count: int, exclude: set[str]) -> list[str]:
        """Up to `count` addresses to share with a peer (the ones that have not been failing)."""
        good = sorted(a.url for a in self._addresses.values() if a.failures == 0 and a.url not in exclude)
        return rng.sample(good, min(count, len(good)))

    def reset_backoff(self, now: float) -> None:
        """Make every address due now (after a network fault healed)."""
        for address in self._addresses.values():
            address.next_attempt = min(address.next_attempt, now)

    def _evict_one(self) -> bool:
        learnt = [a for a in self._addresses.values() if not a.persistent and not a.in_use]
        if not learnt:
            return False
        worst = max(learnt, key=lambda a: (a.failures, a.next_attempt))
        del self._addresses[worst.url]
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """Whether a handshaken connection may stay, and which older one it replaces."""

    accepted: bool
    code: str = ""  # refusal code when not accepted
    replaces: int | None = None  # connection id to close (`duplicate-peer`) in favour of this one


class PeerBook:
    """One connection per node id, at most `max_peers` of them."""

    def __init__(self, *, our_id: str, max_peers: int) -> None:
        self.our_id = our_id
        self.max_peers = max_peers
        self._by_peer: dict[str, int] = {}
        self._conns: dict[int, tuple[str, bool]] = {}  # connection id -> (peer, outbound)

    def __len__(self) -> int:
        return len(self._by_peer)

    def connection_of(self, peer: str) -> int | None:
        """The admitted connection of `peer`."""
        return self._by_peer.get(peer)

    def admit(self, conn_id: int, peer: str, *, outbound: bool) -> Admission:
        """Decide on connection `conn_id` to `peer` (dialed by us when `outbound`)."""
        if peer == self.our_id:
            return Admission(accepted=False, code="self-connection")
        existing = self._by_peer.get(peer)
        if existing is not None and existing != conn_id:
            # Keep the connection dialed by the smaller node id; both ends compute the same answer.
            keep_outbound = self.our_id < peer
            existing_outbound = self._conns[existing][1]
            if outbound == keep_outbound and existing_outbound != keep_outbound:
                self._register(conn_id, peer, outbound)
                del self._conns[existing]
                return Admission(accepted=True, replaces=existing)
            return Admission(accepted=False, code="duplicate-peer")
        if existing is None and len(self._by_peer) >= self.max_peers:
            return Admission(accepted=False, code="too-many-peers")
        self._register(conn_id, peer, outbound)
        return Admission(accepted=True)

    def _register(self, conn_id: int, peer: str, outbound: bool) -> None:
        self._by_peer[peer] = conn_id
        self._conns[conn_id] = (peer, outbound)

    def remove(self, conn_id: int) -> str | None:
        """Forget connection `conn_id`; returns its peer when that peer has no admitted connection left."""
        entry = self._conns.pop(conn_id, None)
        if entry is None:
            return None
        peer = entry[0]
        if self._by_peer.get(peer) == conn_id:
            del self._by_peer[peer]
            return peer
        return None
