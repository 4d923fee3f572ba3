"""Relay and import decisions (pure, sans-I/O): the one place that decides what a node does with the inventory and
sync messages of its peers and with the chain's verdicts on what they sent.

Both drivers of a node call it: `p2p.service.P2PService` (asyncio, real sockets, an import queue that awaits the
chain) and `testnet.sim.node.SimNode` (virtual clock, modelled network, imports done at once). `Relay` is fed

- a message from a peer (`on_message`: Inv, GetData, NotFound, TxMsg, BlockMsg, GetBlocks, Blocks),
- the chain's verdict on an import job it asked for (`tx_imported`, `block_imported`, `batch_imported`) or the
  news that the job was dropped (`job_dropped`),
- a peer up or down, a timer tick (`tick`: fetch retries and expiry, sync polling),
- our own announcements (`announce_tx`, `announce_block`),

and returns actions, in the order they must be carried out: `Send` a message to a peer, `Submit` an import job,
`Punish` a peer. Transaction announcements are queued and leave together (`take_announcements`, one Inv per peer
and kind), when the driver chooses: the asyncio service once per event-loop iteration, the simulator after each
input. Time comes in as `now`; the chain is read through the synchronous `ChainView`; nothing here awaits, sleeps
or reads a clock.

Gossip: a block is pushed whole (after a cheap precheck, before its import, so propagation does not wait for
validation); transactions go announce -> fetch -> admit -> announce onward. An orphan makes the node sync from its
sender. A sync batch is imported in order, and its last connected block, if it is our tip, is announced onward so
peers further behind learn to sync from us. Penalties follow p2p/protocol/limits.py (docs/P2P.md, misbehaviour).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chain.block import Block, decode_block, peek_block_hash
from chain.errors import DecodeError, RejectError
from chain.tx import Transaction, decode_tx
from p2p.protocol.codec import DEFAULT_MAX_MESSAGE_BYTES
from p2p.protocol.inventory import Fetch, Gossip
from p2p.protocol.limits import Penalty, block_penalty, relayed_block_penalty, sync_stall_penalty, tx_penalty
from p2p.protocol.messages import (
    MAX_BLOCKS_PER_BATCH,
    MAX_INV_HASHES,
    BlockMsg,
    Blocks,
    GetBlocks,
    GetData,
    Inv,
    Message,
    NotFound,
    TxMsg,
)
from p2p.protocol.sync import SyncPlanner, fit_batch
from p2p.protocol.timing import PEER_TIMEOUT_S, fetch_timeout_s, tip_announce_s

RELAY_CACHE_BLOCKS = 64  # relayed blocks kept to answer the GetData their announcement brings before they are stored
POOL_ANNOUNCE_LIMIT = 5000  # pooled transactions announced to a peer when it becomes ready
BLOCK_STATUSES = ("connected", "side-branch", "stored", "orphan", "duplicate")  # stored: engine fork choice
RELAY_MESSAGES = (Inv, GetData, NotFound, TxMsg, BlockMsg, GetBlocks, Blocks)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockVerdict:
    """What importing a block did."""

    status: str  # connected | side-branch | stored (kept for the engine, not connected) | orphan | duplicate
    missing_parent: bytes | None = None  # for orphans: the ancestor to fetch (P2P then syncs from the sender)

    def __post_init__(self) -> None:
        if self.status not in BLOCK_STATUSES:
            raise ValueError(f"status must be one of {BLOCK_STATUSES}, got {self.status!r}")


class ChainView(Protocol):
    """The node's chain as the relay reads it: synchronous and cheap (the asyncio node calls it on its loop)."""

    def best_height(self) -> int:
        """Height of our best chain's tip."""

    def has_block(self, block_hash: bytes) -> bool:
        """True when the block is stored (any branch) or waiting as an orphan."""

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        """Canonical encoding of a stored block."""

    def locator(self) -> list[bytes]:
        """Block locator of our best chain, newest first, ending at genesis."""

    def blocks_after(self, locator: list[bytes], limit: int) -> list[bytes]:
        """Encoded best-chain blocks after the first `locator` hash on our best chain (genesis if none), oldest
        first, at most `limit`."""

    def has_tx(self, tx_hash: bytes) -> bool:
        """True when the transaction is in the mempool or the chain."""

    def tx_bytes(self, tx_hash: bytes) -> bytes | None:
        """Canonical encoding of a mempool transaction."""

    def pending_tx_hashes(self, limit: int) -> list[bytes]:
        """Ids of up to `limit` pooled transactions, best first: announced to every peer that becomes ready, so a
        node that was down or cut off catches up on what was admitted while it was away."""

    def precheck_block(self, block: Block) -> bool | None:
        """Raise RejectError unless header, seal/PoW and merkle root check out (cheap, before relaying); True when
        the header was checked against its parent (the import need not repeat it)."""


# -- import jobs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TxJob:
    """Admit a transaction from `peer` to the mempool."""

    peer: str
    tx: Transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockJob:
    """Import a gossiped block from `peer` (it passed precheck and was relayed already)."""

    peer: str
    block: Block
    prechecked: bool = False  # the precheck checked the header against its parent


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchJob:
    """Import a sync batch from `peer`, oldest block first, stopping at the first block that does not attach."""

    peer: str
    blocks: tuple[Block, ...]


Job = TxJob | BlockJob | BatchJob


# -- actions --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send `message` to the ready peer `peer` (dropped by the driver if the peer is gone)."""

    peer: str
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class Submit:
    """Hand `job` to the chain; its verdict comes back through `tx_imported` / `block_imported` /
    `batch_imported`, or `job_dropped` when the driver could not run it."""

    job: Job


@dataclass(frozen=True, slots=True, kw_only=True)
class Punish:
    """`peer` misbehaved: `penalty` for reject code `code` (`reason` for the log)."""

    peer: str
    penalty: Penalty
    code: str
    reason: str


Action = Send | Submit | Punish
ImportOutcome = BlockVerdict | RejectError


class BatchProgress:
    """The import of one sync batch, block by block: the driver imports `job.blocks` in order, feeding each outcome
    to `record`, and stops when it returns False; then hands the progress to `Relay.batch_imported`."""

    __slots__ = ("delivered", "imported", "last_connected", "punishment")

    def __init__(self) -> None:
        self.imported = True
        self.delivered = False  # a valid block new to us: the sender's track record (sync.py, claims)
        self.last_connected: Block | None = None
        self.punishment: tuple[Penalty, str, str] | None = None

    def record(self, block: Block, outcome: ImportOutcome) -> bool:
        """The outcome of importing `block`; True to go on with the next block."""
        if isinstance(outcome, RejectError):
            # Sync serves the sender's validated best chain: every invalid block counts against it.
            self.imported = False
            self.punishment = (block_penalty(outcome.code), outcome.code,
                               f"sync block {block.hash.hex()[:16]} at height {block.height} is invalid")
            return False
        if outcome.status == "orphan":
            self.imported = False  # the batch does not attach where we thought: start from our locator
            return False
        if outcome.status == "connected":
            self.last_connected = block
            self.delivered = True
        elif outcome.status != "duplicate":
            self.delivered = True
        return True


class Relay:
    """One node's inventory relay, sync and import decisions over its `ChainView` (see the module docstring).

    `decode_block` / `decode_tx` decode bodies from peers (the chain's decoders by default; the simulator passes
    memoizing ones, which return equal values faster). Peers are iterated in sorted order, so what is sent does
    not depend on the order peers connected in.
    """

    def __init__(
        self, chain: ChainView, *, peer_timeout_s: float = PEER_TIMEOUT_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        decode_block: Callable[[bytes], Block] = decode_block, decode_tx: Callable[[bytes], Transaction] = decode_tx,
    ) -> None:
        self.chain = chain
        self.gossip = Gossip(request_timeout_s=fetch_timeout_s(peer_timeout_s))
        self.sync = SyncPlanner(timeout_s=peer_timeout_s)
        self.max_message_bytes = max_message_bytes
        self._decode_block = decode_block
        self._decode_tx = decode_tx
        self._peers: list[str] = []  # ready peers, sorted
        self._recent_blocks: OrderedDict[bytes, bytes] = OrderedDict()  # relayed, maybe not stored yet
        self._pending_inv: dict[str, dict[str, list[bytes]]] = {}
        self._pending_push: dict[str, list[bytes]] = {}  # transactions to push whole to one peer (a leader)
        self.tip_announce_s = tip_announce_s(peer_timeout_s)
        self._tip_announced_at: float | None = None

    # -- peers ---------------------------------------------------------------------------------------------------

    @property
    def peers(self) -> list[str]:
        """The ready peers, sorted."""
        return self._peers

    def peer_up(self, peer: str, best_height: int, now: float) -> list[Action]:
        """`peer` became ready claiming `best_height`: announce our pool to it, and sync from it if it is ahead."""
        if peer not in self._peers:
            self._peers.append(peer)
            self._peers.sort()
        self.gossip.add_peer(peer)
        self.sync.add_peer(peer, best_height)
        for tx_hash in self.chain.pending_tx_hashes(POOL_ANNOUNCE_LIMIT):
            self.gossip.mark_known(peer, tx_hash)
            self._queue_inv(peer, "tx", tx_hash)
        return self.poll_sync(now)

    def peer_down(self, peer: str, now: float) -> list[Action]:
        """Forget `peer`: what we were fetching from it is asked of the next peer that announced it."""
        if peer in self._peers:
            self._peers.remove(peer)
        self._pending_inv.pop(peer, None)
        self._pending_push.pop(peer, None)
        self.sync.remove_peer(peer)
        return self._fetches(self.gossip.remove_peer(peer, now))

    # -- timers --------------------------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        """Re-request fetches that timed out from the next announcer, then poll sync (call every ~100 ms..1 s).
        Every `tip_announce_s` the tip is announced again to every peer (it leaves with `take_announcements`)."""
        actions = self._fetches(self.gossip.expire(now))
        actions.extend(self.poll_sync(now))
        if self._tip_announced_at is None:
            self._tip_announced_at = now
        elif now - self._tip_announced_at >= self.tip_announce_s:
            self._tip_announced_at = now
            self._reannounce_tip()
        return actions

    def _reannounce_tip(self) -> None:
        """Announce our tip to every peer, known to have it or not. Pushes and sync answers can be lost (a full
        send queue, a dropped frame); without this a peer that missed them would only learn of our chain from our
        next block, and two nodes mining apart on one link could each bury their own branch deep enough to call it
        final. A peer that has the tip ignores the Inv; one that lacks it fetches it, finds an orphan and syncs."""
        if not self._peers:
            return
        tip = self.chain.locator()[0]
        for peer in self._peers:
            self._queue_inv(peer, "block", tip)

    def poll_sync(self, now: float) -> list[Action]:
        """The next GetBlocks, if one is due."""
        request = self.sync.poll(now, self.chain.best_height(), self.chain.locator)
        actions: list[Action] = self._stall_punishments() if self.sync.stalled_pending else []
        if request is None:
            return actions
        if request.peer not in self._peers:
            self.sync.remove_peer(request.peer)
            return actions
        actions.append(Send(peer=request.peer, message=request.message))
        return actions

    def _stall_punishments(self) -> list[Action]:
        """A peer that left a sync request unanswered did not deliver the height it claimed (docs/P2P.md)."""
        return [Punish(peer=peer, penalty=sync_stall_penalty(delivered=self.sync.has_delivered(peer)),
                       code="sync-stalled", reason=f"claimed height {claimed} not delivered within "
                       f"{self.sync.timeout_s:g}s")
                for peer, claimed in self.sync.take_stalled() if peer in self._peers]

    # -- announcing ----------------------------------------------------------------------------------------------

    def announce_tx(self, tx_hash: bytes, exclude: str | None = None, only: str | None = None) -> None:
        """Queue an announcement of a transaction to every ready peer not known to have it, except `exclude`; or,
        when `only` is a ready peer (the one proposer that needs it), push the transaction itself to it, sparing
        the Inv/GetData round trip (it leaves with `take_announcements`)."""
        if only is not None and only in self._peers:
            for peer in self.gossip.announce_to(tx_hash, [only], exclude):
                self._pending_push.setdefault(peer, []).append(tx_hash)
            return
        for peer in self.gossip.announce_to(tx_hash, self._peers, exclude):
            self._queue_inv(peer, "tx", tx_hash)

    def announce_block(self, block: Block, exclude: str | None = None) -> list[Action]:
        """Push a block to every ready peer not known to have it, except `exclude`.

        Blocks are pushed whole rather than announced by hash (as Bitcoin's high-bandwidth compact-block relay
        does): the body goes out before this node starts its own import, so a hop costs one transfer, not an
        Inv/GetData round trip that would wait for the import to finish. A peer that already has the block drops
        the copy after decoding its header; transactions keep the announce-then-fetch scheme.
        """
        targets = self.gossip.announce_to(block.hash, self._peers, exclude)
        if not targets:
            return []
        message = BlockMsg(raw=block.encoded)
        return [Send(peer=peer, message=message) for peer in targets]

    @property
    def announcements_pending(self) -> bool:
        """True when `take_announcements` has something to send."""
        return bool(self._pending_inv or self._pending_push)

    def take_announcements(self) -> list[Action]:
        """The queued announcements: one Inv per peer and kind (blocks first), at most MAX_INV_HASHES hashes each;
        then the transactions pushed whole (one TxMsg each: the transport bundles what leaves together)."""
        pending, self._pending_inv = self._pending_inv, {}
        pushes, self._pending_push = self._pending_push, {}
        actions: list[Action] = []
        for peer, by_kind in pending.items():
            for kind in ("block", "tx"):  # blocks first: they matter more for everyone
                hashes = by_kind.get(kind, [])
                for start in range(0, len(hashes), MAX_INV_HASHES):
                    actions.append(Send(peer=peer, message=Inv(kind=kind, hashes=tuple(hashes[start:start +
                                                                                          MAX_INV_HASHES]))))
        for peer, hashes in pushes.items():
            for tx_hash in hashes:
                raw = self.chain.tx_bytes(tx_hash)
                if raw is not None:  # gone from the pool since (included, replaced): nothing to push
                    actions.append(Send(peer=peer, message=TxMsg(raw=raw)))
        return actions

    def _queue_inv(self, peer: str, kind: str, item_hash: bytes) -> None:
        self._pending_inv.setdefault(peer, {}).setdefault(kind, []).append(item_hash)

    # -- messages from peers -------------------------------------------------------------------------------------

    def want_blocks(self, peer: str, hashes: list[bytes], now: float) -> list[Action]:
        """Fetch blocks the node learnt of other than by an announcement (an engine committed a block it does not
        have) from `peer`, as if `peer` had announced them: fetched once, retried with other announcers."""
        return self.on_message(peer, Inv(kind="block", hashes=tuple(hashes)), now)

    def on_message(self, peer: str, message: Message, now: float) -> list[Action]:
        """A relay message (one of RELAY_MESSAGES) from the ready peer `peer`."""
        if isinstance(message, BlockMsg):
            return self._on_block(peer, message.raw)
        if isinstance(message, Inv):
            has = self.chain.has_tx if message.kind == "tx" else self.chain.has_block
            wanted = self.gossip.on_inv(peer, message.kind, message.hashes, now, has)
            return [Send(peer=peer, message=GetData(kind=message.kind, hashes=tuple(wanted)))] if wanted else []
        if isinstance(message, GetData):
            return self._on_get_data(peer, message)
        if isinstance(message, TxMsg):
            return self._on_tx(peer, message.raw)
        if isinstance(message, NotFound):
            return self._fetches(self.gossip.on_not_found(peer, message.hashes, now))
        if isinstance(message, GetBlocks):
            raws = self.chain.blocks_after(list(message.locator), min(message.limit, MAX_BLOCKS_PER_BATCH))
            return [Send(peer=peer, message=Blocks(raws=fit_batch(raws, self.max_message_bytes)))]
        if isinstance(message, Blocks):
            return self._on_blocks(peer, message.raws, now)
        raise AssertionError(f"not a relay message: {message.name}")

    def _on_get_data(self, peer: str, message: GetData) -> list[Action]:
        actions: list[Action] = []
        missing = []
        for item_hash in message.hashes:
            reply: Message | None = None
            if message.kind == "tx":
                raw = self.chain.tx_bytes(item_hash)
                reply = TxMsg(raw=raw) if raw is not None else None
            else:
                raw = self.chain.block_bytes(item_hash) or self._recent_blocks.get(item_hash)
                reply = BlockMsg(raw=raw) if raw is not None else None
            if reply is None:
                missing.append(item_hash)
                continue
            self.gossip.mark_known(peer, item_hash)
            actions.append(Send(peer=peer, message=reply))
        if missing:
            actions.append(Send(peer=peer, message=NotFound(kind=message.kind, hashes=tuple(missing))))
        return actions

    def _on_tx(self, peer: str, raw: bytes) -> list[Action]:
        try:
            tx = self._decode_tx(raw)
        except DecodeError as error:
            return [Punish(peer=peer, penalty=tx_penalty(error.code), code=error.code,
                           reason=f"transaction: {error.message}")]
        if self.gossip.on_received(peer, tx.hash) and not self.chain.has_tx(tx.hash):
            return [Submit(job=TxJob(peer=peer, tx=tx))]
        return []

    def _on_block(self, peer: str, raw: bytes) -> list[Action]:
        """Decode and precheck a block, push it onward, and queue it for import. A copy of a block we hold or
        saw is recognised by its header's hash before any decoding (blocks are pushed whole, so in a mesh most
        arrivals are copies)."""
        seen_hash = peek_block_hash(raw)
        if seen_hash is not None and (seen_hash in self.gossip.seen or self.chain.has_block(seen_hash)):
            self.gossip.mark_known(peer, seen_hash)
            return []
        try:
            block = self._decode_block(raw)
        except DecodeError as error:
            return [Punish(peer=peer, penalty=block_penalty(error.code), code=error.code,
                           reason=f"block: {error.message}")]
        self.sync.note_height(peer, block.height)
        if not self.gossip.on_received(peer, block.hash) or self.chain.has_block(block.hash):
            return []
        try:
            header_checked = bool(self.chain.precheck_block(block))
        except RejectError as error:
            penalty = block_penalty(error.code)
            if penalty.points == 0:
                self.gossip.forget(block.hash)  # not provably invalid (e.g. our clock): may be fetched again
            return [Punish(peer=peer, penalty=penalty, code=error.code,
                           reason=f"block {block.hash.hex()[:16]} failed precheck")]
        self._recent_blocks[block.hash] = raw
        while len(self._recent_blocks) > RELAY_CACHE_BLOCKS:
            self._recent_blocks.popitem(last=False)
        actions = self.announce_block(block, exclude=peer)
        actions.append(Submit(job=BlockJob(peer=peer, block=block, prechecked=header_checked)))
        return actions

    def _on_blocks(self, peer: str, raws: tuple[bytes, ...], now: float) -> list[Action]:
        """A sync batch: taken only from the peer we asked; polls for the next batch before this one imports."""
        if self.sync.in_flight_peer() != peer:
            return []  # unsolicited, or late after a timeout: not worth decoding
        blocks = []
        for raw in raws:
            try:
                blocks.append(self._decode_block(raw))
            except DecodeError as error:
                return [Punish(peer=peer, penalty=block_penalty(error.code), code=error.code,
                               reason=f"sync block: {error.message}")]
        if not self.sync.on_blocks(peer, [(b.hash, b.height) for b in blocks], self.chain.best_height()):
            return []  # a second copy of the batch we already have (a resent request's other answer)
        for block in blocks:
            self.gossip.on_received(peer, block.hash)
        actions = self.poll_sync(now)  # ask for the next batch while this one imports
        if blocks:
            actions.append(Submit(job=BatchJob(peer=peer, blocks=tuple(blocks))))
        return actions

    # -- verdicts ------------------------------------------------------------------------------------------------

    def tx_imported(self, job: TxJob, error: RejectError | None) -> list[Action]:
        """The mempool's verdict on `job` (None: admitted; the node announces it onward, where its engine says:
        node.core.NodeCore.receive_tx)."""
        if error is not None:
            return [Punish(peer=job.peer, penalty=tx_penalty(error.code), code=error.code,
                           reason=f"tx {job.tx.hash.hex()[:16]}")]
        return []

    def block_imported(self, job: BlockJob, outcome: ImportOutcome, now: float) -> list[Action]:
        """The chain's verdict on a gossiped block: an invalid one is held against its sender as far as it could
        have caught it cheaply; an orphan makes us sync from the sender."""
        if isinstance(outcome, RejectError):
            # The block passed our precheck and was relayed before full validation, by its sender as by us: only a
            # fault the sender could have caught cheaply is held against it (docs/P2P.md, misbehaviour).
            return [Punish(peer=job.peer, penalty=relayed_block_penalty(outcome.code), code=outcome.code,
                           reason=f"block {job.block.hash.hex()[:16]} is invalid")]
        if outcome.status == "orphan":
            self.sync.request_from(job.peer, job.block.height)
            return self.poll_sync(now)
        if outcome.status != "duplicate":
            self.sync.delivered(job.peer, now)
        return []

    def batch_imported(self, job: BatchJob, progress: BatchProgress, now: float) -> list[Action]:
        """A sync batch was imported as far as `progress` says: punish an invalid block, move sync on, re-announce
        the last connected block if it is our tip (peers further behind learn to sync from us), poll sync."""
        actions: list[Action] = []
        if progress.punishment is not None:
            penalty, code, reason = progress.punishment
            actions.append(Punish(peer=job.peer, penalty=penalty, code=code, reason=reason))
        self.sync.batch_done(imported=progress.imported)
        if progress.delivered:
            self.sync.delivered(job.peer, now)
        elif progress.imported:  # every block known already (one that does not attach restarts from our locator)
            self.sync.nothing_delivered(job.peer, self.chain.best_height())
        last = progress.last_connected
        if last is not None and last.height == self.chain.best_height():
            actions.extend(self.announce_block(last, job.peer))
        actions.extend(self.poll_sync(now))
        return actions

    def job_dropped(self, job: Job) -> None:
        """The driver could not run `job` (a full queue, a banned sender, a bug): its items may be fetched again,
        and a sync batch restarts from our own locator."""
        if isinstance(job, TxJob):
            self.gossip.forget(job.tx.hash)
        elif isinstance(job, BlockJob):
            self.gossip.forget(job.block.hash)
        else:
            self.sync.batch_done(imported=False)

    # -- helpers -------------------------------------------------------------------------------------------------

    def _fetches(self, fetches: list[Fetch]) -> list[Action]:
        return [Send(peer=fetch.peer, message=GetData(kind=fetch.kind, hashes=fetch.hashes)) for fetch in fetches]
