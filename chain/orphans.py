"""A bounded pool of blocks whose parent is not known yet.

Limits: total count, total bytes, blocks per source (so one peer cannot fill the pool and push out everyone
else's orphans), and age. When over a limit the oldest block of the source that holds the most goes first.
Time comes in as `now` (seconds).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from chain.block import Block


@dataclass(frozen=True, slots=True, kw_only=True)
class OrphanLimits:
    """Bounds of the orphan pool."""

    max_count: int = 750
    max_bytes: int = 64 * 1024 * 1024
    max_per_source: int = 100
    max_age_s: float = 1200.0


@dataclass(frozen=True, slots=True)
class _Orphan:
    block: Block
    source: str
    added_at: float


class OrphanPool:
    """Orphan blocks by hash, with an index by missing parent."""

    def __init__(self, limits: OrphanLimits | None = None) -> None:
        self.limits = limits or OrphanLimits()
        self._orphans: OrderedDict[bytes, _Orphan] = OrderedDict()  # insertion order = age
        self._by_parent: dict[bytes, set[bytes]] = {}
        self._per_source: dict[str, int] = {}
        self.size_bytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._orphans)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._orphans

    def add(self, block: Block, source: str, now: float) -> bool:
        """Keep `block` until its parent arrives; False if it is already here or too large to keep."""
        if block.hash in self._orphans or block.size > self.limits.max_bytes:
            return False
        self.expire(now)
        self._orphans[block.hash] = _Orphan(block, source, now)
        self._by_parent.setdefault(block.parent, set()).add(block.hash)
        self._per_source[source] = self._per_source.get(source, 0) + 1
        self.size_bytes += block.size
        while self._per_source.get(source, 0) > self.limits.max_per_source:
            self._evict_oldest(of_source=source)
        while len(self._orphans) > self.limits.max_count or self.size_bytes > self.limits.max_bytes:
            heaviest = max(self._per_source, key=lambda s: (self._per_source[s], s))
            self._evict_oldest(of_source=heaviest)
        return block.hash in self._orphans

    def take_children(self, parent_hash: bytes) -> list[Block]:
        """Remove and return the orphans waiting for `parent_hash` (oldest first)."""
        hashes = self._by_parent.pop(parent_hash, set())
        children = [self._orphans[h] for h in hashes]
        children.sort(key=lambda o: o.added_at)
        for orphan in children:
            self._remove(orphan.block.hash)
        return [orphan.block for orphan in children]

    def missing_parents(self) -> list[bytes]:
        """Parents that orphans are waiting for and that are not orphans themselves (what to fetch)."""
        return [p for p in self._by_parent if p not in self._orphans]

    def root_of(self, block_hash: bytes) -> bytes:
        """The missing ancestor an orphan (chain) is waiting for."""
        current = self._orphans[block_hash].block.parent
        while current in self._orphans:
            current = self._orphans[current].block.parent
        return current

    def max_height(self) -> int:
        """The height of the highest orphan (0 with none): how far ahead blocks we cannot attach yet reach."""
        return max((orphan.block.height for orphan in self._orphans.values()), default=0)

    def entries(self) -> list[tuple[Block, str]]:
        """Every orphan with its source (for tips listings)."""
        return [(o.block, o.source) for o in self._orphans.values()]

    def expire(self, now: float) -> int:
        """Drop orphans older than max_age_s; returns how many went."""
        dropped = 0
        while self._orphans:
            oldest = next(iter(self._orphans.values()))
            if now - oldest.added_at <= self.limits.max_age_s:
                break
            self._remove(oldest.block.hash)
            dropped += 1
        return dropped

    def _evict_oldest(self, of_source: str) -> None:
        for block_hash, orphan in self._orphans.items():
            if orphan.source == of_source:
                self._remove(block_hash)
                self.evicted += 1
                return

    def _remove(self, block_hash: bytes) -> None:
        orphan = self._orphans.pop(block_hash)
        siblings = self._by_parent.get(orphan.block.parent)
        if siblings is not None:
            siblings.discard(block_hash)
            if not siblings:
                del self._by_parent[orphan.block.parent]
        self._per_source[orphan.source] -= 1
        if not self._per_source[orphan.source]:
            del self._per_source[orphan.source]
        self.size_bytes -= orphan.block.size
