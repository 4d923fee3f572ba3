"""Inventory relay: announce transactions and blocks, fetch what peers announce, serve what they fetch.

Gossip is announce-then-fetch: `Inv` carries hashes, `GetData` asks for bodies, `TxMsg` / `BlockMsg` / `NotFound`
answer. The bookkeeping (seen-cache, per-peer known inventory, one pending fetch per hash) is the pure `Gossip` of
p2p/protocol/inventory.py; this module connects it to the chain, the importer and the peers' send queues.
Announcements made during one event-loop iteration leave together, as one Inv per peer and kind.

A gossiped block is checked cheaply (`ChainAccess.precheck_block`) and announced onward at once, before the
importer validates it in full, so propagation does not wait for the import; its bytes stay in a small cache to
answer the GetData that the announcement brings before the block is stored.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from chain.block import Block, decode_block
from chain.errors import DecodeError, RejectError
from chain.tx import decode_tx
from p2p.config import ChainAccess
from p2p.importer import BlockJob, Job, TxJob
from p2p.protocol.inventory import Fetch, Gossip
from p2p.protocol.limits import Penalty, block_penalty, tx_penalty
from p2p.protocol.messages import MAX_INV_HASHES, BlockMsg, GetData, Inv, Message, NotFound, TxMsg
from p2p.protocol.sync import SyncPlanner

log = logging.getLogger("chainlab.p2p")

RELAY_CACHE_BLOCKS = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayHooks:
    """What the relay asks of the service."""

    send: Callable[[str, Message], None]  # to a ready peer (by hex node id); dropped if it is gone
    ready_peers: Callable[[], list[str]]
    punish: Callable[[str, Penalty, str, str], None]  # peer, penalty, code, message
    submit: Callable[[Job], None]  # to the importer
    call_soon: Callable[[Callable[[], None]], None]  # run once the current loop iteration is done


class Relay:
    """Announcements out, announcements in, bodies both ways."""

    def __init__(self, chain: ChainAccess, gossip: Gossip, sync: SyncPlanner, hooks: RelayHooks) -> None:
        self.chain = chain
        self.gossip = gossip
        self.sync = sync
        self.hooks = hooks
        self._recent_blocks: OrderedDict[bytes, bytes] = OrderedDict()  # relayed, maybe not stored yet
        self._pending_inv: dict[str, dict[str, list[bytes]]] = {}
        self._flush_scheduled = False

    # -- announcing ----------------------------------------------------------------------------------------------

    def announce_tx(self, tx_hash: bytes, exclude: str | None = None) -> None:
        """Announce a transaction to every ready peer not known to have it, except `exclude`."""
        for peer in self.gossip.announce_to(tx_hash, self.hooks.ready_peers(), exclude):
            self._queue_inv(peer, "tx", tx_hash)

    def announce_block(self, block: Block, exclude: str | None = None) -> None:
        """Push a block to every ready peer not known to have it, except `exclude`.

        Blocks are pushed whole rather than announced by hash (as Bitcoin's high-bandwidth compact-block relay
        does): the body goes out before this node starts its own import, so a hop costs one transfer, not an
        Inv/GetData round trip that would wait for the import to finish. A peer that already has the block drops
        the copy after decoding its header; transactions keep the announce-then-fetch scheme.
        """
        raw = block.encoded
        for peer in self.gossip.announce_to(block.hash, self.hooks.ready_peers(), exclude):
            self.gossip.mark_known(peer, block.hash)
            self.hooks.send(peer, BlockMsg(raw=raw))

    def announce_pool_to(self, peer: str, tx_hashes: list[bytes]) -> None:
        """Announce pooled transactions to one peer that just became ready (batched into Inv messages)."""
        for tx_hash in tx_hashes:
            self.gossip.mark_known(peer, tx_hash)
            self._queue_inv(peer, "tx", tx_hash)

    def _queue_inv(self, peer: str, kind: str, item_hash: bytes) -> None:
        self._pending_inv.setdefault(peer, {}).setdefault(kind, []).append(item_hash)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.hooks.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending_inv = self._pending_inv, {}
        for peer, by_kind in pending.items():
            for kind in ("block", "tx"):  # blocks first: they matter more for everyone
                hashes = by_kind.get(kind, [])
                for start in range(0, len(hashes), MAX_INV_HASHES):
                    self.hooks.send(peer, Inv(kind=kind, hashes=tuple(hashes[start:start + MAX_INV_HASHES])))

    def peer_gone(self, peer: str, now: float) -> None:
        """Forget `peer`: what we were fetching from it is asked of the next peer that announced it."""
        self._pending_inv.pop(peer, None)
        self.send_fetches(self.gossip.remove_peer(peer, now))

    def expire(self, now: float) -> None:
        """Re-request fetches that timed out from the next announcer."""
        self.send_fetches(self.gossip.expire(now))

    def send_fetches(self, fetches: list[Fetch]) -> None:
        """Send a GetData for each fetch."""
        for fetch in fetches:
            self.hooks.send(fetch.peer, GetData(kind=fetch.kind, hashes=fetch.hashes))

    # -- receiving -----------------------------------------------------------------------------------------------

    def on_inv(self, peer: str, message: Inv, now: float) -> None:
        """Fetch what `peer` announced and we neither have nor are fetching already."""
        has = self.chain.has_tx if message.kind == "tx" else self.chain.has_block
        wanted = self.gossip.on_inv(peer, message.kind, message.hashes, now, has)
        if wanted:
            self.hooks.send(peer, GetData(kind=message.kind, hashes=tuple(wanted)))

    def on_not_found(self, peer: str, message: NotFound, now: float) -> None:
        """Ask the next announcer for what `peer` did not have."""
        self.send_fetches(self.gossip.on_not_found(peer, message.hashes, now))

    def on_get_data(self, peer: str, message: GetData) -> None:
        """Send the requested bodies, and one NotFound for the rest."""
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
            self.hooks.send(peer, reply)
        if missing:
            self.hooks.send(peer, NotFound(kind=message.kind, hashes=tuple(missing)))

    def on_tx(self, peer: str, raw: bytes) -> None:
        """Decode a transaction and queue it for the mempool (announced onward once admitted)."""
        try:
            tx = decode_tx(raw)
        except DecodeError as error:
            self.hooks.punish(peer, tx_penalty(error.code), error.code, f"transaction: {error.message}")
            return
        if self.gossip.on_received(peer, tx.hash) and not self.chain.has_tx(tx.hash):
            self.hooks.submit(TxJob(peer=peer, tx=tx))

    def on_block(self, peer: str, raw: bytes) -> None:
        """Decode and precheck a block, announce it onward, and queue it for import."""
        try:
            block = decode_block(raw)
        except DecodeError as error:
            self.hooks.punish(peer, block_penalty(error.code), error.code, f"block: {error.message}")
            return
        self.sync.note_height(peer, block.height)
        if not self.gossip.on_received(peer, block.hash) or self.chain.has_block(block.hash):
            return
        try:
            self.chain.precheck_block(block)
        except RejectError as error:
            penalty = block_penalty(error.code)
            if penalty.points == 0:
                self.gossip.forget(block.hash)  # not provably invalid (e.g. our clock): may be fetched again
            self.hooks.punish(peer, penalty, error.code, f"block {block.hash.hex()[:16]} failed precheck")
            return
        self._recent_blocks[block.hash] = raw
        while len(self._recent_blocks) > RELAY_CACHE_BLOCKS:
            self._recent_blocks.popitem(last=False)
        self.announce_block(block, exclude=peer)
        self.hooks.submit(BlockJob(peer=peer, block=block))
