"""Inventory gossip bookkeeping (pure): what we have seen, what each peer knows, what we are fetching.

Gossip announces hashes (`Inv`) and fetches bodies on demand (`GetData`). Three bounded structures keep it cheap:

- the seen-cache: hashes of transactions and blocks we received or announced recently (an LRU), so a hash is
  fetched once however many peers announce it, and a rejected one is not fetched again;
- per-peer known inventory (an LRU per peer): what the peer announced to us or we sent to it, so we never
  announce a hash to a peer that told us about it;
- pending requests: each wanted hash is requested from one peer at a time; the other peers that announced it
  are remembered, and after `request_timeout_s` (or a NotFound, or the peer leaving) the next one is asked.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

DEFAULT_SEEN_CAPACITY = 100_000
DEFAULT_KNOWN_PER_PEER = 20_000
DEFAULT_MAX_PENDING = 50_000
DEFAULT_REQUEST_TIMEOUT_S = 5.0
_MAX_ANNOUNCERS = 8


class LruSet:
    """A set of hashes that forgets the least recently added or touched one beyond `capacity`."""

    __slots__ = ("_items", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: bytes) -> bool:
        """Add (or refresh) `item`; True when it was not there."""
        if item in self._items:
            self._items.move_to_end(item)
            return False
        self._items[item] = None
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return True

    def discard(self, item: bytes) -> None:
        """Remove `item` if present."""
        self._items.pop(item, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch:
    """Ask `peer` for these `hashes` of `kind` (one GetData)."""

    peer: str
    kind: str
    hashes: tuple[bytes, ...]


@dataclass(slots=True, kw_only=True)
class _Pending:
    kind: str
    peer: str  # asked now
    deadline: float
    others: list[str] = field(default_factory=list)  # also announced it, not asked yet


class Gossip:
    """Seen-cache, per-peer known inventory and pending fetches."""

    def __init__(
        self, *, seen_capacity: int = DEFAULT_SEEN_CAPACITY, known_per_peer: int = DEFAULT_KNOWN_PER_PEER,
        max_pending: int = DEFAULT_MAX_PENDING, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        self.seen = LruSet(seen_capacity)
        self.known_per_peer = known_per_peer
        self.max_pending = max_pending
        self.request_timeout_s = request_timeout_s
        self._known: dict[str, LruSet] = {}
        self._pending: dict[bytes, _Pending] = {}

    # -- peers ---------------------------------------------------------------------------------------------------

    def add_peer(self, peer: str) -> None:
        """Start tracking a peer's known inventory."""
        self._known.setdefault(peer, LruSet(self.known_per_peer))

    def remove_peer(self, peer: str, now: float) -> list[Fetch]:
        """Forget a peer; its pending fetches move to other announcers (returned to send)."""
        self._known.pop(peer, None)
        moved: list[tuple[bytes, _Pending]] = []
        for item_hash, pending in list(self._pending.items()):
            if peer in pending.others:
                pending.others.remove(peer)
            if pending.peer == peer:
                moved.append((item_hash, pending))
        return self._reassign(moved, now)

    def peer_knows(self, peer: str, item_hash: bytes) -> bool:
        """True when `peer` announced `item_hash` to us or we sent it to the peer."""
        known = self._known.get(peer)
        return known is not None and item_hash in known

    def mark_known(self, peer: str, item_hash: bytes) -> None:
        """Record that `peer` has `item_hash`."""
        known = self._known.get(peer)
        if known is not None:
            known.add(item_hash)

    # -- announcements in ----------------------------------------------------------------------------------------

    def on_inv(
        self, peer: str, kind: str, hashes: Iterable[bytes], now: float, have: Callable[[bytes], bool]
    ) -> list[bytes]:
        """`peer` announced `hashes`: return the ones to request from it now (not seen, not had, not already
        being fetched from someone else, which instead remember `peer` as a fallback)."""
        wanted = []
        for item_hash in hashes:
            self.mark_known(peer, item_hash)
            if item_hash in self.seen:
                continue
            pending = self._pending.get(item_hash)
            if pending is not None:
                if pending.peer != peer and peer not in pending.others and len(pending.others) < _MAX_ANNOUNCERS:
                    pending.others.append(peer)
                continue
            if have(item_hash):
                self.seen.add(item_hash)
                continue
            if len(self._pending) >= self.max_pending:
                continue  # bounded: another announcement will bring it back
            self._pending[item_hash] = _Pending(kind=kind, peer=peer, deadline=now + self.request_timeout_s)
            wanted.append(item_hash)
        return wanted

    def on_received(self, peer: str, item_hash: bytes) -> bool:
        """A body arrived from `peer`: mark it seen and known; True when it is new to us."""
        self.mark_known(peer, item_hash)
        self._pending.pop(item_hash, None)
        return self.seen.add(item_hash)

    def on_not_found(self, peer: str, hashes: Iterable[bytes], now: float) -> list[Fetch]:
        """`peer` does not have these after all: ask the next announcer."""
        moved = []
        for item_hash in hashes:
            pending = self._pending.get(item_hash)
            if pending is not None and pending.peer == peer:
                moved.append((item_hash, pending))
        return self._reassign(moved, now)

    def expire(self, now: float) -> list[Fetch]:
        """Requests that timed out move to the next announcer (returned to send); the rest are dropped."""
        moved = [(h, p) for h, p in self._pending.items() if now >= p.deadline]
        return self._reassign(moved, now)

    def pending_count(self) -> int:
        """Number of hashes being fetched."""
        return len(self._pending)

    def _reassign(self, moved: list[tuple[bytes, _Pending]], now: float) -> list[Fetch]:
        grouped: dict[tuple[str, str], list[bytes]] = {}
        for item_hash, pending in moved:
            if not pending.others:
                del self._pending[item_hash]
                continue
            pending.peer = pending.others.pop(0)
            pending.deadline = now + self.request_timeout_s
            grouped.setdefault((pending.peer, pending.kind), []).append(item_hash)
        return [Fetch(peer=peer, kind=kind, hashes=tuple(h)) for (peer, kind), h in grouped.items()]

    # -- announcements out ---------------------------------------------------------------------------------------

    def announce_to(self, item_hash: bytes, peers: Iterable[str], exclude: str | None = None) -> list[str]:
        """Peers (of `peers`) to announce `item_hash` to: those not known to have it. Marks it seen, and known by
        each returned peer."""
        self.seen.add(item_hash)
        self._pending.pop(item_hash, None)
        targets = []
        for peer in peers:
            if peer == exclude or self.peer_knows(peer, item_hash):
                continue
            self.mark_known(peer, item_hash)
            targets.append(peer)
        return targets

    def forget(self, item_hash: bytes) -> None:
        """Drop `item_hash` from the seen-cache (we could not process it, so it may be fetched again)."""
        self.seen.discard(item_hash)
