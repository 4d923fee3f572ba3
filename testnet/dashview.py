"""The testnet dashboard's model (docs/DASHBOARD.md): what `chainlab testnet web` shows, computed from what it read.

Pure: testnet/dashboard.py reads testnet.json, events.jsonl, history.jsonl, check.json and every node's RPC, and
hands the results here; these functions and holders turn them into the JSON the page draws. The union block tree is
laid out here (not in the page) so that its rules are tested without a browser.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from testnet.topology import components

TREE_HEIGHTS = 30  # heights drawn, counted down from the highest tip any node knows
MAX_BRANCHES = 12  # columns drawn; further branches are counted, not drawn
CACHE_BLOCKS = 4096
EVENTS_SHOWN = 50
RATE_WINDOW_NS = 10_000_000_000  # accepted tx/s over the last 10 s
LATENCIES_KEPT = 1000
PENDING_KEPT = 100_000


# -- blocks and the union tree ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockRef:
    """What the tree needs of a block: where it sits."""

    hash: str
    height: int
    parent: str


class BlockCache:
    """The blocks the dashboard has fetched from any node, by hash, at most `limit` of them (the lowest go first)."""

    def __init__(self, limit: int = CACHE_BLOCKS) -> None:
        self.limit = limit
        self._blocks: dict[str, BlockRef] = {}

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, block_hash: str) -> BlockRef | None:
        """The block, if fetched."""
        return self._blocks.get(block_hash)

    def add_json(self, view: Mapping[str, Any]) -> BlockRef | None:
        """Add a block from a node's block JSON; None (and nothing added) when the JSON is not a block's."""
        block_hash, height, parent = view.get("hash"), view.get("height"), view.get("parent")
        if not (isinstance(block_hash, str) and isinstance(parent, str) and isinstance(height, int)
                and not isinstance(height, bool) and height >= 0):
            return None
        ref = BlockRef(block_hash, height, parent)
        self._blocks[block_hash] = ref
        if len(self._blocks) > self.limit:
            self.prune_below(sorted(b.height for b in self._blocks.values())[len(self._blocks) - self.limit])
        return ref

    def prune_below(self, height: int) -> None:
        """Forget the blocks below `height`."""
        self._blocks = {h: b for h, b in self._blocks.items() if b.height >= height}

    def ancestor(self, block_hash: str, height: int) -> str | None:
        """The hash of `block_hash`'s ancestor at `height` (itself included), None when a link is missing."""
        block = self._blocks.get(block_hash)
        while block is not None and block.height > height:
            block = self._blocks.get(block.parent)
        return block.hash if block is not None and block.height == height else None

    def reaches(self, block_hash: str, bottom: int) -> bool:
        """True when the chain below `block_hash` is cached down to height `bottom` (or to genesis)."""
        block = self._blocks.get(block_hash)
        while block is not None and block.height > bottom:
            block = self._blocks.get(block.parent)
        return block is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """One node as the tree sees it: its head, its final height and the side tips it keeps."""

    name: str
    head: str
    height: int
    final_height: int
    tips: Sequence[Mapping[str, Any]] = ()  # /v1/tips rows: hash, height, status


@dataclass(slots=True)
class _Leaf:
    hash: str
    height: int
    status: str
    nodes: list[str] = field(default_factory=list)


def tree_layout(cache: BlockCache, views: Sequence[NodeView], *, heights: int = TREE_HEIGHTS,
                max_branches: int = MAX_BRANCHES, remembered: Iterable[str] = ()) -> dict[str, Any]:
    """The union of the nodes' block trees over the top `heights` heights, as columns.

    The first column is the chain of the highest head (ties: the head most nodes share); each other head and each
    side tip a node keeps gets a column of the blocks no earlier column holds, joined to the block it forks from.
    Each node's head and final block are named on the blocks. A chain whose blocks are not all fetched yet is drawn
    down to its lowest fetched block.

    `remembered` are heads and tips seen in earlier states: one that no chain drawn holds any more gets a column
    marked `abandoned`, so a branch a node left in a reorg stays in the picture after the node itself dropped it
    (nodes forget side branches that fork below their final block).
    """
    leaves: dict[str, _Leaf] = {}
    for view in views:
        if view.head in cache:
            leaf = leaves.setdefault(view.head, _Leaf(view.head, view.height, "active"))
            leaf.status = "active"
            leaf.nodes.append(view.name)
    for view in views:
        for tip in view.tips:
            tip_hash, status = tip.get("hash"), tip.get("status")
            if isinstance(tip_hash, str) and tip_hash in cache and tip_hash not in leaves:
                ref = cache.get(tip_hash)
                assert ref is not None
                leaves[tip_hash] = _Leaf(tip_hash, ref.height, str(status) if status else "fork")
    for block_hash in remembered:
        ref = cache.get(block_hash)
        if ref is not None and block_hash not in leaves:
            leaves[block_hash] = _Leaf(block_hash, ref.height, "abandoned")
    if not leaves:
        return {"bottom": 0, "top": 0, "columns": [], "heads": {}, "finals": {}, "hidden_branches": 0}
    top = max(leaf.height for leaf in leaves.values())
    bottom = max(0, top - heights + 1)
    rank = {"active": 0, "abandoned": 2}
    ordered = sorted(leaves.values(), key=lambda leaf: (rank.get(leaf.status, 1), -leaf.height, -len(leaf.nodes),
                                                        leaf.hash))
    placed: dict[str, int] = {}
    columns: list[dict[str, Any]] = []
    hidden = 0
    for leaf in ordered:
        if leaf.height < bottom or leaf.hash in placed:
            continue
        segment: list[BlockRef] = []
        fork_from: str | None = None
        block = cache.get(leaf.hash)
        while block is not None and block.height >= bottom:
            if block.hash in placed:
                fork_from = block.hash
                break
            segment.append(block)
            block = cache.get(block.parent)
        if not segment:
            continue
        if len(columns) >= max_branches:
            hidden += 1
            continue
        for ref in segment:
            placed[ref.hash] = len(columns)
        columns.append({"status": leaf.status, "fork_from": fork_from,
                        "blocks": [{"hash": ref.hash, "height": ref.height} for ref in segment]})
    heads: dict[str, list[str]] = {}
    finals: dict[str, list[str]] = {}
    for view in views:
        if view.head in placed:
            heads.setdefault(view.head, []).append(view.name)
        final = cache.ancestor(view.head, view.final_height) if view.final_height >= bottom else None
        if final is not None and final in placed:
            finals.setdefault(final, []).append(view.name)
    return {"bottom": bottom, "top": top, "columns": columns, "heads": heads, "finals": finals,
            "hidden_branches": hidden}


# -- the partition ----------------------------------------------------------------------------------------------------


def partition_view(names: Sequence[str], blocked: Mapping[str, Iterable[str]],
                   netem: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """The partition groups (who can still talk to whom: two nodes are in one group when a path of nodes, neither of
    which blocks the next, joins them), who blocks whom, and each node's netem settings."""
    index = {name: i for i, name in enumerate(names)}
    blocked_ix = {index[name]: {index[other] for other in others if other in index}
                  for name, others in blocked.items() if name in index}
    edges = {(a, b) for a in range(len(names)) for b in range(a + 1, len(names))}
    groups = components(len(names), edges, blocked_ix, range(len(names)))
    return {"groups": [[names[i] for i in sorted(group)] for group in groups],
            "partitioned": len(groups) > 1,
            "blocked": {name: sorted(others) for name, others in blocked.items() if others},
            "netem": {name: dict(settings) for name, settings in netem.items() if settings}}


# -- nemesis events ---------------------------------------------------------------------------------------------------


def event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """An events.jsonl line as the page lists it (without the network state it carries)."""
    detail = event.get("detail")
    return {"time": event.get("time"), "time_ns": event.get("time_ns"), "action": event.get("action"),
            "nodes": event.get("nodes") or [], "detail": detail if isinstance(detail, dict) else {}}


class EventLog:
    """The last `keep` events, newest first."""

    def __init__(self, keep: int = EVENTS_SHOWN) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=keep)

    def feed(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Add events in file order."""
        for event in events:
            self._events.appendleft(event_view(event))

    def to_json(self) -> list[dict[str, Any]]:
        """The events, newest first."""
        return list(self._events)


# -- load figures -----------------------------------------------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], share: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


class LoadFigures:
    """Counts and latencies of the load, fed with history.jsonl records (docs/TESTNET.md) as they are written.

    Latency is from a transfer's invoke to the observer seeing it included, then final; the last 1,000 of each kept.
    """

    def __init__(self) -> None:
        self.counts = {"submitted": 0, "accepted": 0, "rejected": 0, "unknown": 0, "included": 0, "final": 0}
        self._invoked: OrderedDict[str, int] = OrderedDict()
        self._accepted_ns: deque[int] = deque()
        self._latency: dict[str, deque[float]] = {"included": deque(maxlen=LATENCIES_KEPT),
                                                  "final": deque(maxlen=LATENCIES_KEPT)}
        self.last_ns = 0

    def feed(self, record: Mapping[str, Any]) -> None:
        """One history record; records of other ops, the rebroadcaster's and malformed ones are skipped."""
        kind, op, key, time_ns = record.get("type"), record.get("op"), record.get("key"), record.get("time_ns")
        if not isinstance(key, str) or not isinstance(time_ns, int):
            return
        if str(record.get("process", "")).startswith("rebroadcast"):
            return  # the load's resubmissions of accepted transactions: not new sends (docs/TESTNET.md)
        self.last_ns = max(self.last_ns, time_ns)
        if op == "transfer":
            if kind == "invoke":
                self.counts["submitted"] += 1
                self._invoked[key] = time_ns
                if len(self._invoked) > PENDING_KEPT:
                    self._invoked.popitem(last=False)
            elif kind == "ok":
                self.counts["accepted"] += 1
                self._accepted_ns.append(time_ns)
            elif kind == "fail":
                self.counts["rejected"] += 1
                self._invoked.pop(key, None)
            elif kind == "info":
                self.counts["unknown"] += 1
        elif op in ("included", "final") and kind == "ok":
            self.counts[op] += 1
            started = self._invoked.get(key)
            if started is not None:
                self._latency[op].append((time_ns - started) / 1e6)
                if op == "final":
                    del self._invoked[key]

    def to_json(self, now_ns: int) -> dict[str, Any]:
        """The counts, the accepted rate over the last 10 s and latency percentiles (ms)."""
        while self._accepted_ns and self._accepted_ns[0] < now_ns - RATE_WINDOW_NS:
            self._accepted_ns.popleft()
        latency = {}
        for op, values in self._latency.items():
            ordered = sorted(values)
            latency[op] = {"p50_ms": _percentile(ordered, 0.5), "p95_ms": _percentile(ordered, 0.95),
                           "samples": len(ordered)}
        return {**self.counts, "accepted_tps": len(self._accepted_ns) / (RATE_WINDOW_NS / 1e9),
                "latency": latency, "last_record_ns": self.last_ns or None}


# -- the last check ---------------------------------------------------------------------------------------------------


def check_view(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The last `testnet check` result as the page shows it: the verdict, when, and each check's line."""
    if not result:
        return None
    checks = result.get("checks")
    rows = [{"name": str(c.get("name")), "ok": bool(c.get("ok")), "detail": str(c.get("detail", ""))}
            for c in checks if isinstance(c, dict)] if isinstance(checks, list) else []
    return {"ok": bool(result.get("ok")), "time": result.get("time"), "checks": rows}


def lines_complete(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Split what was read from an appended file into its complete lines and the partial tail still being
    written."""
    cut = buffer.rfind(b"\n")
    if cut < 0:
        return [], buffer
    return buffer[:cut].split(b"\n"), buffer[cut + 1:]

