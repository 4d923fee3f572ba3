"""Block sync planning (pure): when to ask whom for the next batch of blocks.

Sync is locator-based: `GetBlocks(locator)` asks a peer for up to `limit` blocks of its best chain after the first
locator hash that is on that chain. Batches form a chain of requests: the locator of batch n+1 starts with the
last block of batch n (the "frontier"), followed by our own chain's locator, so a batch can be requested while the
previous one is still being imported, and a batch of side-branch blocks (imported but not connected) still moves
sync forward. One request is in flight at a time, because each needs the previous answer; successive batches
rotate round-robin over the peers that are ahead of the frontier, so the download is spread across peers and a
slow or vanished peer costs at most one timeout. A request unanswered for an eighth of the timeout is sent again,
same locator, same peer (up to 3 times): a lost request or answer costs a second or so, not the whole timeout, while
a node that is behind (and may mine a fork meanwhile) waits. A late answer to an earlier copy is the awaited answer;
a second copy of a batch already received (its last block is the frontier) is dropped, not taken for the next
answer.
A peer that sent a non-empty batch is asked again until it sends an empty one (a batch may be cut short by the frame
size, and a height claimed in Hello may be stale). At most `max_queued_batches` received batches wait for import,
which bounds the work queued behind the download.

A claim is worth only what it delivers (docs/P2P.md, "Height claims"). Claimed heights (Hello, blocks seen) choose
whom to ask, so an honest node behind its peers starts downloading at once; but only the heights of peers that
delivered a valid block new to us on this connection (`delivered`) count for `pause_height`, the height the node
pauses mining for. A peer that leaves a request unanswered for `timeout_s`, or answers with a batch that delivers
nothing new, loses its claim; a stall is reported by `take_stalled` (the relay punishes it). And once no peer has
delivered a valid new block for `PAUSE_WITHOUT_DELIVERY_TIMEOUTS` sync timeouts, no claim counts until one does.
So an unproven claim pauses nothing, and no pause outlasts 2 sync timeouts without a delivered block.

Nothing is persisted: after a restart the locator comes from the chain, and sync resumes from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from p2p.protocol.messages import MAX_BLOCKS_PER_BATCH, MAX_LOCATOR_HASHES, GetBlocks

DEFAULT_SYNC_TIMEOUT_S = 10.0
# A request unanswered for timeout / SYNC_RESEND_FRACTION goes again to the same peer, up to SYNC_RESENDS times
# before the timeout: a lost request or answer costs a fraction of the timeout, not all of it.
SYNC_RESEND_FRACTION = 8
SYNC_RESENDS = 3
# Claims stop counting for the mining pause once no peer delivered a valid new block for this many sync timeouts:
# the backstop that bounds any pause, whatever the peers claim.
PAUSE_WITHOUT_DELIVERY_TIMEOUTS = 2
_BLOCKS_FRAME_OVERHEAD_BYTES = 16  # array, tag, version and the raws array header
_BIN_HEADER_BYTES = 5  # bin32 header in front of each block


def fit_batch(raws: list[bytes], max_message_bytes: int) -> tuple[bytes, ...]:
    """The longest prefix of `raws` (at most a full batch) whose Blocks frame stays within `max_message_bytes`.

    A batch cut short is fine: the requester continues from the last block it got.
    """
    budget = max_message_bytes - _BLOCKS_FRAME_OVERHEAD_BYTES
    batch = []
    for raw in raws[:MAX_BLOCKS_PER_BATCH]:
        budget -= len(raw) + _BIN_HEADER_BYTES
        if budget < 0:
            break
        batch.append(raw)
    return tuple(batch)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncRequest:
    """Send `message` to `peer`."""

    peer: str
    message: GetBlocks


@dataclass(slots=True, kw_only=True)
class _InFlight:
    peer: str
    sent_at: float  # the first send: the timeout counts from here
    message: GetBlocks
    resent: int = 0


class SyncPlanner:
    """Tracks peers' best heights and the one GetBlocks in flight; `poll` says what to request next."""

    def __init__(
        self, *, batch_limit: int = MAX_BLOCKS_PER_BATCH, timeout_s: float = DEFAULT_SYNC_TIMEOUT_S,
        max_queued_batches: int = 2,
    ) -> None:
        if not 1 <= batch_limit <= MAX_BLOCKS_PER_BATCH:
            raise ValueError(f"batch_limit must be in 1..{MAX_BLOCKS_PER_BATCH}")
        self.batch_limit = batch_limit
        self.timeout_s = timeout_s
        self.max_queued_batches = max_queued_batches
        self._queued_batches = 0
        self._heights: dict[str, int] = {}
        self._in_flight: _InFlight | None = None
        self._frontier: tuple[bytes, int] | None = None  # (hash, height) of the last block received by sync
        self._forced: list[str] = []  # peers to ask next whatever their height (an orphan came from them)
        self._more: set[str] = set()  # sent a non-empty batch last time: may have more even if not claimed
        self._last_peer: str | None = None
        self._delivered: set[str] = set()  # delivered a valid block new to us: its claims count for the pause
        self._delivered_at: float | None = None  # when the last valid new block was delivered (by any peer)
        self._stalled: list[tuple[str, int]] = []  # (peer, its claim) of requests that timed out, not yet taken
        self.batches_received = 0

    # -- peers ---------------------------------------------------------------------------------------------------

    def add_peer(self, peer: str, best_height: int) -> None:
        """A peer is ready, claiming `best_height`."""
        self._heights[peer] = best_height

    def remove_peer(self, peer: str) -> None:
        """A peer left; a request in flight to it is abandoned."""
        self._heights.pop(peer, None)
        self._delivered.discard(peer)
        self._forced = [p for p in self._forced if p != peer]
        self._more.discard(peer)
        if self._in_flight is not None and self._in_flight.peer == peer:
            self._in_flight = None

    def note_height(self, peer: str, height: int) -> None:
        """`peer` has a block at `height` on its best chain (from a block it sent)."""
        if peer in self._heights and height > self._heights[peer]:
            self._heights[peer] = height

    def peer_height(self, peer: str) -> int | None:
        """Best height we believe `peer` has."""
        return self._heights.get(peer)

    def request_from(self, peer: str, height: int) -> None:
        """Sync from `peer` next: it sent a block at `height` whose ancestors we lack (an orphan)."""
        self.note_height(peer, height)
        if peer in self._heights and peer not in self._forced:
            self._forced.append(peer)

    def delivered(self, peer: str, now: float) -> None:
        """`peer` delivered a block that proved valid and was new to us: from now on (on this connection) its
        claimed height counts for `pause_height`."""
        self._delivered_at = now
        if peer in self._heights:
            self._delivered.add(peer)

    def nothing_delivered(self, peer: str, local_height: int) -> None:
        """A batch from `peer` brought no valid block new to us (all known, or not attaching): as an empty answer,
        its claim falls to what we have, so a peer cannot keep a claim alive by resending old blocks."""
        self._more.discard(peer)
        if peer in self._heights:
            self._heights[peer] = min(self._heights[peer], self._frontier_height(local_height))

    def has_delivered(self, peer: str) -> bool:
        """True when `peer` delivered a valid block new to us on this connection (its track record)."""
        return peer in self._delivered

    @property
    def stalled_pending(self) -> bool:
        """True when `take_stalled` has something."""
        return bool(self._stalled)

    def take_stalled(self) -> list[tuple[str, int]]:
        """(peer, the height it claimed) for each request that timed out since the last call: undelivered claims."""
        stalled, self._stalled = self._stalled, []
        return stalled

    # -- state ---------------------------------------------------------------------------------------------------

    def target_height(self) -> int:
        """The best height any peer claims (0 with no peers)."""
        return max(self._heights.values(), default=0)

    def pause_height(self, now: float) -> int:
        """The best height claimed by a peer with a track record (0 with none): what the node may pause mining
        for. A claim alone pauses nothing, and no claim counts once no peer delivered a valid new block for
        `PAUSE_WITHOUT_DELIVERY_TIMEOUTS` sync timeouts."""
        if not self._delivered or self._delivered_at is None:
            return 0
        if now - self._delivered_at > PAUSE_WITHOUT_DELIVERY_TIMEOUTS * self.timeout_s:
            return 0
        heights = self._heights
        return max(heights[peer] for peer in self._delivered)

    def active(self, local_height: int) -> bool:
        """True while a batch is in flight or some peer is ahead of both our chain and the frontier."""
        return self._in_flight is not None or bool(self._forced) or bool(self._candidates(local_height))

    def in_flight_peer(self) -> str | None:
        """The peer asked for the current batch."""
        return self._in_flight.peer if self._in_flight is not None else None

    def _frontier_height(self, local_height: int) -> int:
        return max(local_height, self._frontier[1]) if self._frontier is not None else local_height

    def _candidates(self, local_height: int) -> list[str]:
        floor = self._frontier_height(local_height)
        more = self._more
        # Polled on every timer tick, when usually no peer is ahead: no sort for an empty or one-peer list.
        found = [peer for peer, height in self._heights.items() if height > floor or peer in more]
        if len(found) > 1:
            found.sort()
        return found

    # -- planning ------------------------------------------------------------------------------------------------

    def poll(self, now: float, local_height: int, locator: Callable[[], list[bytes]]) -> SyncRequest | None:
        """The next GetBlocks to send (and to whom), or None. `locator()` gives our chain's locator, newest first
        (called only when a request goes out)."""
        in_flight = self._in_flight
        if in_flight is not None:
            waited = now - in_flight.sent_at
            if waited < self.timeout_s:
                resend_at = (in_flight.resent + 1) * self.timeout_s / SYNC_RESEND_FRACTION
                if in_flight.resent >= SYNC_RESENDS or waited < resend_at:
                    return None
                in_flight.resent += 1
                return SyncRequest(peer=in_flight.peer, message=in_flight.message)
            # Timed out: the next peer in the rotation gets the batch, and the silent one no longer counts as ahead
            # until it shows a block again (note_height): an unanswered claim must not keep us "behind", which
            # pauses mining.
            silent = in_flight.peer
            self._stalled.append((silent, self._heights.get(silent, 0)))
            self._more.discard(silent)
            if silent in self._heights:
                self._heights[silent] = min(self._heights[silent], self._frontier_height(local_height))
            self._in_flight = None
        if self._queued_batches >= self.max_queued_batches:
            return None  # let the import catch up
        peer = self._forced.pop(0) if self._forced else self._next_in_rotation(local_height)
        if peer is None:
            return None
        hashes = list(locator())
        if self._frontier is not None and self._frontier[0] not in hashes:
            hashes.insert(0, self._frontier[0])
        if len(hashes) > MAX_LOCATOR_HASHES:
            hashes = [*hashes[: MAX_LOCATOR_HASHES - 1], hashes[-1]]  # keep the genesis end
        message = GetBlocks(locator=tuple(hashes), limit=self.batch_limit)
        self._in_flight = _InFlight(peer=peer, sent_at=now, message=message)
        self._last_peer = peer
        return SyncRequest(peer=peer, message=message)

    def _next_in_rotation(self, local_height: int) -> str | None:
        candidates = self._candidates(local_height)
        if not candidates:
            return None
        if self._last_peer is not None:
            after = [p for p in candidates if p > self._last_peer]
            if after:
                return after[0]
        return candidates[0]

    def on_blocks(self, peer: str, blocks: list[tuple[bytes, int]], local_height: int) -> bool:
        """`peer` answered with `blocks` ((hash, height), oldest first). False when it is not the answer we wait
        for (unsolicited, or late after a timeout): the caller should ignore the batch."""
        if self._in_flight is None or self._in_flight.peer != peer:
            return False
        if blocks and self._frontier is not None and blocks[-1][0] == self._frontier[0]:
            return False  # a second answer to a resent request, arriving after the next request went out: not its
        self._in_flight = None
        self.batches_received += 1
        if not blocks:
            # Nothing after our locator on its best chain: its claimed height is not ahead of us after all.
            self._more.discard(peer)
            self._heights[peer] = min(self._heights.get(peer, 0), self._frontier_height(local_height))
            return True
        last_hash, last_height = blocks[-1]
        self._frontier = (last_hash, last_height)
        self._queued_batches += 1
        self._heights[peer] = max(self._heights.get(peer, 0), last_height)
        # A batch may be cut short by the frame size, and a claimed height may be stale: a peer that sent blocks is
        # asked again until it sends none.
        self._more.add(peer)
        return True

    def batch_done(self, *, imported: bool) -> None:
        """A batch that `on_blocks` accepted left the import queue; when not `imported` (a block was invalid, or
        the batch did not attach where we thought) sync restarts from our chain's own locator."""
        self._queued_batches = max(0, self._queued_batches - 1)
        if not imported:
            self._frontier = None
