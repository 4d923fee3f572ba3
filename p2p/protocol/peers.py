"""Who we connect to (pure): the address book with reconnect backoff, and admission of handshaken peers.

Addresses come from configuration (bootstrap, persistent: always redialed), from `Peers` answers and from the
`listen_url` of peers' Hellos (learnt, bounded, forgotten after repeated failures). A failed dial waits an
exponential backoff with "equal jitter": the n-th consecutive failure waits a uniform draw from [b/2, b] with
b = min(max, min * 2^(n-1)), drawn from the injected rng; a connection that worked and then ended is redialed after
a draw from [min/2, min].

Admission picks one connection per node id, and only for ids the handshake proved. When two nodes dial each other
at once, both keep the connection dialed by the node with the smaller id, so the two sides agree without talking
about it. Inbound connections cannot take the slots reserved for our own dials, are limited per remote address,
and when the book is full one of them is evicted by `choose_eviction` (docs/P2P.md, "Eclipse by slot filling").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
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
    """Whether a handshaken connection may stay, and which older ones it displaces."""

    accepted: bool
    code: str = ""  # refusal code when not accepted
    replaces: int | None = None  # connection id to close (`duplicate-peer`) in favour of this one
    evicts: int | None = None  # an inbound connection to close (`evicted`) to make room for this one


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerActivity:
    """What the eviction rule weighs about one admitted inbound connection (times in monotonic seconds)."""

    connected_at: float
    rtt_s: float | None = None
    last_block_at: float | None = None  # when it last delivered a block we did not have
    last_tx_at: float | None = None  # when it last delivered a transaction we did not have


PROTECT_BY_RTT = 4
PROTECT_BY_BLOCKS = 4
PROTECT_BY_TXS = 4


def netgroup(ip: str) -> str:
    """The network group an address counts in for eviction: IPv4 /16, IPv6 /32, the address itself otherwise
    (one operator rarely holds addresses in many groups, so an attacker's connections share few of them)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 16 if address.version == 4 else 32
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def choose_eviction(candidates: dict[int, tuple[str, PeerActivity]]) -> int | None:
    """The inbound connection to evict for a newcomer (connection id -> (netgroup, activity)), or None when every
    one is protected. The rule (docs/P2P.md, after Bitcoin Core's): protect the 4 with the lowest round trip, the 4
    that most recently delivered a novel block, the 4 that most recently delivered a novel transaction, then half
    of the rest by longest connection; of those left, evict the youngest of the most represented network group."""
    left = dict(candidates)

    def protect(count: int, key: Callable[[PeerActivity], float | None], *, lowest: bool) -> None:
        ranked = [(value, conn) for conn, (_, act) in left.items() if (value := key(act)) is not None]
        ranked.sort(reverse=not lowest)
        for _, conn in ranked[:count]:
            del left[conn]

    protect(PROTECT_BY_RTT, lambda a: a.rtt_s, lowest=True)
    protect(PROTECT_BY_BLOCKS, lambda a: a.last_block_at, lowest=False)
    protect(PROTECT_BY_TXS, lambda a: a.last_tx_at, lowest=False)
    protect(len(left) // 2, lambda a: a.connected_at, lowest=True)
    if not left:
        return None
    groups: dict[str, list[int]] = {}
    for conn, (group, _) in left.items():
        groups.setdefault(group, []).append(conn)

    def youngest(conns: list[int]) -> tuple[float, int]:
        return max((left[c][1].connected_at, c) for c in conns)

    biggest = max(groups.values(), key=lambda conns: (len(conns), youngest(conns)))
    return youngest(biggest)[1]


@dataclass(slots=True, kw_only=True)
class _Admitted:
    peer: str
    outbound: bool
    ip: str  # remote address of an inbound connection ("" for outbound)
    limit_ip: bool  # counts against the per-address limit


class PeerBook:
    """One connection per node id, at most `max_peers` of them, of which inbound ones take at most
    `max_peers - outbound_slots` and at most `max_inbound_per_ip` per remote address. Only connections whose
    node id is proven (the handshake's HelloAck verified) are admitted."""

    def __init__(
        self, *, our_id: str, max_peers: int, outbound_slots: int = 0, max_inbound_per_ip: int = 0,
    ) -> None:
        self.our_id = our_id
        self.max_peers = max_peers
        self.inbound_slots = max_peers - min(outbound_slots, max_peers // 2)
        self.max_inbound_per_ip = max_inbound_per_ip  # 0: no limit
        self._by_peer: dict[str, int] = {}
        self._conns: dict[int, _Admitted] = {}

    def __len__(self) -> int:
        return len(self._by_peer)

    def connection_of(self, peer: str) -> int | None:
        """The admitted connection of `peer`."""
        return self._by_peer.get(peer)

    def inbound_count(self) -> int:
        """Admitted inbound connections."""
        return sum(1 for c in self._conns.values() if not c.outbound)

    def admit(
        self, conn_id: int, peer: str, *, outbound: bool, ip: str = "", limit_ip: bool = False,
        activity: Callable[[int], PeerActivity] | None = None,
    ) -> Admission:
        """Decide on connection `conn_id` to the proven node `peer` (dialed by us when `outbound`; from remote
        address `ip` otherwise, counted against the per-address limit when `limit_ip`). `activity` reports on
        admitted inbound connections for the eviction rule; without it nobody is evicted."""
        if peer == self.our_id:
            return Admission(accepted=False, code="self-connection")
        existing = self._by_peer.get(peer)
        if existing is not None and existing != conn_id:
            # Keep the connection dialed by the smaller node id; both ends compute the same answer.
            keep_outbound = self.our_id < peer
            existing_outbound = self._conns[existing].outbound
            if outbound == keep_outbound and existing_outbound != keep_outbound:
                self._register(conn_id, _Admitted(peer=peer, outbound=outbound, ip=ip, limit_ip=limit_ip))
                del self._conns[existing]
                return Admission(accepted=True, replaces=existing)
            return Admission(accepted=False, code="duplicate-peer")
        evicts: int | None = None
        if outbound:
            # Our own dials always get a slot (we bound them: target_peers plus the configured peers): when the
            # book is full, an inbound connection makes room.
            if len(self._by_peer) >= self.max_peers:
                evicts = self._eviction(activity)
        else:
            if limit_ip and self.max_inbound_per_ip and sum(
                1 for c in self._conns.values() if c.limit_ip and c.ip == ip
            ) >= self.max_inbound_per_ip:
                return Admission(accepted=False, code="too-many-from-address")
            if self.inbound_count() >= self.inbound_slots or len(self._by_peer) >= self.max_peers:
                evicts = self._eviction(activity)
                if evicts is None:
                    return Admission(accepted=False, code="too-many-peers")
        if evicts is not None:
            self.remove(evicts)
        self._register(conn_id, _Admitted(peer=peer, outbound=outbound, ip=ip, limit_ip=limit_ip))
        return Admission(accepted=True, evicts=evicts)

    def _eviction(self, activity: Callable[[int], PeerActivity] | None) -> int | None:
        if activity is None:
            return None
        candidates = {conn: (netgroup(c.ip), activity(conn)) for conn, c in self._conns.items() if not c.outbound}
        return choose_eviction(candidates)

    def _register(self, conn_id: int, entry: _Admitted) -> None:
        self._by_peer[entry.peer] = conn_id
        self._conns[conn_id] = entry

    def remove(self, conn_id: int) -> str | None:
        """Forget connection `conn_id`; returns its peer when that peer has no admitted connection left."""
        entry = self._conns.pop(conn_id, None)
        if entry is None:
            return None
        peer = entry.peer
        if self._by_peer.get(peer) == conn_id:
            del self._by_peer[peer]
            return peer
        return None
