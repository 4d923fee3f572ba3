"""The node's two faces: what P2P may ask of it (`ChainAccessAdapter`, p2p.service.ChainAccess) and what the RPC
server may ask of it (`NodeApiAdapter`, node.api.NodeAPI). Thin: every decision is the node core's.

The adapters see the node through `RunningNode`, a Protocol of what they use, not through node.runtime.Node: the
runtime builds the adapters, so importing it back would make a cycle."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from chain.block import Block, BlockHeader
from chain.blocktree import AddResult, BlockTree, TipInfo
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.mempool import Mempool, PoolEntryView
from chain.tx import Transaction
from consensus.engine import Engine, ReadResult, UnsupportedAdmin
from node.api import (
    AccountTx,
    AccountTxPage,
    AccountView,
    BlockPosition,
    EventBroker,
    EventSubscription,
    ReadProof,
    RecordView,
    TxState,
    TxStatus,
    WaitLevel,
)
from node.core import NodeCore
from node.metrics import NodeMetrics
from node.waits import TxCommitWaits
from p2p.config import BlockVerdict
from p2p.protocol.faults import FaultConfig

if TYPE_CHECKING:  # annotations only: the adapters themselves never touch the transport's module
    import prometheus_client

    from p2p.service import P2PService

log = logging.getLogger("chainlab.node")


def wall_ms() -> int:
    """Wall-clock milliseconds."""
    return int(time.time() * 1000)


class RunningNode(Protocol):
    """What the adapters use of the running node (node.runtime.Node implements it)."""

    @property
    def genesis(self) -> Genesis:
        """The network's genesis."""

    @property
    def tree(self) -> BlockTree:
        """The block tree (chain, store, orphans)."""

    @property
    def mempool(self) -> Mempool:
        """The transaction pool."""

    @property
    def core(self) -> NodeCore:
        """The node core (its cheap block precheck)."""

    @property
    def engine(self) -> Engine:
        """The consensus engine (its status)."""

    @property
    def metrics(self) -> prometheus_client.CollectorRegistry:
        """The registry the RPC server exports."""

    @property
    def node_metrics(self) -> NodeMetrics:
        """The node's counters and gauges."""

    @property
    def events(self) -> EventBroker:
        """The event stream's broker."""

    @property
    def reorg_log(self) -> Iterable[dict[str, object]]:
        """The node's last reorgs, newest first."""

    @property
    def trace_path(self) -> Path | None:
        """The causal trace file; None when the node does not trace."""

    @property
    def p2p(self) -> P2PService | None:
        """The P2P service once started."""

    def status(self) -> dict[str, object]:
        """The /v1/status document."""

    async def import_block(self, block: Block, source: str, *, prechecked: bool = False) -> AddResult:
        """Validate and import a block from a peer."""

    async def submit_tx(self, tx: Transaction, source: str | None = None) -> None:
        """Mempool admission, relay and a refreshed mining template (RejectError with its code)."""

    def on_engine_message(self, peer: str, kind: str, payload: bytes) -> None:
        """An engine message from P2P (RejectError propagates)."""

    def admin(self, action: str, value: object) -> dict[str, object]:
        """An admin action for the engine."""

    async def mine_now(self, count: int, proposer: bytes) -> list[bytes]:
        """Mine `count` blocks paying `proposer` now (on-demand mining); their hashes."""

    @property
    def tx_waits(self) -> TxCommitWaits:
        """Clients waiting for their transactions to be included or final."""

    async def read_index(self) -> ReadResult:
        """The engine's go-ahead for a linearizable read, once the final height has reached its index."""

    def write_refusal(self) -> RejectError | None:
        """Why client transactions are refused now, or None."""


class ChainAccessAdapter:
    """What P2P may ask of the node (p2p.service.ChainAccess)."""

    def __init__(self, node: RunningNode) -> None:
        self.node = node
        self.chain_id = node.genesis.chain_id
        self.genesis_hash = node.genesis.hash
        self._prechecked: dict[bytes, None] = {}  # blocks that passed precheck_block, not yet submitted

    def best_height(self) -> int:
        """Our tip height."""
        return self.node.tree.height

    def has_block(self, block_hash: bytes) -> bool:
        """Known in the tree or waiting as an orphan."""
        return self.node.tree.meta(block_hash) is not None or block_hash in self.node.tree.orphans

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        """A stored block's encoding."""
        return self.node.tree.block_bytes(block_hash)

    def locator(self) -> list[bytes]:
        """Our best chain's locator."""
        return self.node.tree.locator()

    def blocks_after(self, locator: list[bytes], limit: int) -> list[bytes]:
        """Encoded best-chain blocks after the first locator entry we share."""
        tree = self.node.tree
        start = tree.fork_point(locator) + 1
        out = []
        for height in range(start, min(tree.height, start + limit - 1) + 1):
            block_hash = tree.hash_at(height)
            raw = tree.block_bytes(block_hash) if block_hash else None
            if raw is None:
                break
            out.append(raw)
        return out

    def has_tx(self, tx_hash: bytes) -> bool:
        """In the mempool or on the best chain."""
        return tx_hash in self.node.mempool or self.node.tree.store.tx_location(tx_hash) is not None

    def pending_tx_hashes(self, limit: int) -> list[bytes]:
        """The pool's best transactions (announced to a peer that just connected)."""
        return [entry.tx_hash for entry in self.node.mempool.snapshot()[:limit]]

    def tx_bytes(self, tx_hash: bytes) -> bytes | None:
        """A pooled transaction's encoding."""
        tx = self.node.mempool.get(tx_hash)
        return tx.encoded if tx is not None else None

    def precheck_block(self, block: Block) -> bool:
        """Header, seal/PoW and merkle root: what must hold before we relay a block; True when the header was
        checked against its parent."""
        try:
            header_checked = self.node.core.precheck_block(block, now_ms=wall_ms())
        except RejectError as error:
            self.node.node_metrics.blocks_rejected.labels(code=error.code).inc()
            log.warning("block %s from a peer failed precheck: %s", block.hash.hex()[:16], error)
            raise
        if header_checked:  # the full header check ran: the import need not repeat it
            self._prechecked[block.hash] = None
            while len(self._prechecked) > 64:
                del self._prechecked[next(iter(self._prechecked))]
        return header_checked

    async def submit_block(self, block: Block, peer: str) -> BlockVerdict:
        """Full validation and import."""
        prechecked = self._prechecked.pop(block.hash, 0) is None
        result = await self.node.import_block(block, source=peer, prechecked=prechecked)
        return BlockVerdict(status=result.status, missing_parent=result.missing_parent)

    async def submit_tx(self, tx: Transaction, peer: str) -> None:
        """Mempool admission of a gossiped transaction."""
        await self.node.submit_tx(tx, source=peer)

    def on_engine_message(self, peer: str, kind: str, payload: bytes) -> None:
        """Hand an engine payload to the engine."""
        self.node.on_engine_message(peer, kind, payload)


class NodeApiAdapter:
    """What the RPC server may ask of the node (node.api.NodeAPI)."""

    def __init__(self, node: RunningNode) -> None:
        self.node = node
        self.metrics = node.metrics

    @property
    def genesis(self) -> Genesis:
        """The network's genesis (read when asked: `GET /v1/genesis`)."""
        return self.node.genesis

    def status(self) -> dict[str, object]:
        """The status document."""
        return self.node.status()

    def block(self, ref: int | bytes) -> Block | None:
        """By best-chain height or by hash."""
        tree = self.node.tree
        block_hash = tree.hash_at(ref) if isinstance(ref, int) else ref
        return tree.get_block(block_hash) if block_hash is not None else None

    def block_height_info(self, block_hash: bytes) -> BlockPosition:
        """Height, best-chain membership and finality of a known block."""
        tree = self.node.tree
        meta = tree.meta(block_hash)
        if meta is None:
            raise KeyError(block_hash.hex())
        on_best = tree.is_on_best_chain(block_hash)
        final = on_best and meta.height <= tree.final_height
        return BlockPosition(height=meta.height, on_best_chain=on_best, final=final)

    def op_outcome(self, tx_hash: bytes) -> str | None:
        """From the store's outcome records (kept for best-chain operations only)."""
        return self.node.tree.store.tx_outcome(tx_hash)

    def blocks_range(self, from_height: int, limit: int) -> list[Block]:
        """Consecutive best-chain blocks."""
        tree = self.node.tree
        out = []
        for height in range(from_height, min(tree.height, from_height + limit - 1) + 1):
            block = self.block(height)
            if block is not None:
                out.append(block)
        return out

    def tips(self) -> list[TipInfo]:
        """Branch tips."""
        return self.node.tree.tips()

    def describe_seal(self, header: BlockHeader) -> dict[str, object]:
        """The engine's reading of a seal."""
        return self.node.core.spec.seal_view(header)

    def reorgs(self) -> list[dict[str, object]]:
        """The node's last reorgs, newest first."""
        return list(self.node.reorg_log)

    async def submit_tx(self, tx: Transaction) -> None:
        """Admission and relay."""
        await self.node.submit_tx(tx, source=None)

    def tx_status(self, tx_hash: bytes) -> TxStatus:
        """pending | included | final | unknown."""
        node = self.node
        pooled = node.mempool.get(tx_hash)
        if pooled is not None:
            return TxStatus(status="pending", tx=pooled)
        location = node.tree.store.tx_location(tx_hash)
        if location is None:
            return TxStatus(status="unknown")
        block_hash, index = location
        meta = node.tree.meta(block_hash)
        if meta is None or not node.tree.is_on_best_chain(block_hash):
            return TxStatus(status="unknown")
        block = node.tree.get_block(block_hash)
        tx = block.txs[index] if block is not None and index < len(block.txs) else None
        status: TxState = "final" if meta.height <= node.tree.final_height else "included"
        outcome = node.tree.store.tx_outcome(tx_hash) if tx is not None and tx.op is not None else None
        return TxStatus(status=status, height=meta.height, block_hash=block_hash, index=index, tx=tx,
                        outcome=outcome)

    def account(self, address: bytes, at: str) -> AccountView:
        """As of the tip, or of the final block (the tip state with the non-final blocks' undo applied)."""
        tree = self.node.tree
        if at == "latest":
            account = tree.state.get(address)
            balance, nonce = (account.balance, account.nonce) if account else (0, 0)
            pending = self.node.mempool.pending_nonce(address, tree.state)
            return AccountView(balance=balance, nonce=nonce, height=tree.height, pending_nonce=pending)
        account = tree.final_account(address)
        balance, nonce = (account.balance, account.nonce) if account else (0, 0)
        return AccountView(balance=balance, nonce=nonce, height=tree.final_height)

    def account_txs(self, address: bytes, before: tuple[int, int] | None, limit: int) -> AccountTxPage:
        """A page of the address index (chain.chainstore.ChainStore.address_history), one entry more than asked
        to know whether an older page exists."""
        tree = self.node.tree
        history = tree.store.address_history(address, before=before, limit=limit + 1)
        txs = tuple(
            AccountTx(tx=tx, height=ref.height, block_hash=block_hash, position=ref.position,
                      final=ref.height <= tree.final_height, confirmations=tree.height - ref.height + 1)
            for ref, block_hash, tx in history[:limit]
        )
        older = (txs[-1].height, txs[-1].position) if len(history) > limit and txs else None
        pending = tuple(self.node.mempool.txs_from(address)) if before is None else ()
        return AccountTxPage(txs=txs, older=older, pending=pending)

    async def account_linearizable(self, address: bytes) -> tuple[AccountView, ReadProof]:
        """The final state once the engine's read index is final: no await between the final height's check
        (inside read_index) and the state read, so the proof names the very block the answer reflects."""
        grant = await self.node.read_index()
        view = self.account(address, "final")
        block_hash = self.node.tree.hash_at(view.height)
        assert block_hash is not None, "the final block is on the best chain"
        return view, ReadProof(term=grant.term, read_index=grant.index, applied_height=view.height,
                               block_hash=block_hash)

    def record(self, key: bytes, at: str) -> RecordView:
        """As of the tip, or of the final block (the tip state with the non-final blocks' undo applied)."""
        tree = self.node.tree
        if at == "latest":
            return RecordView(record=tree.state.get_record(key), height=tree.height)
        return RecordView(record=tree.final_record(key), height=tree.final_height)

    async def record_linearizable(self, key: bytes) -> tuple[RecordView, ReadProof]:
        """As `account_linearizable`, for a record."""
        grant = await self.node.read_index()
        view = self.record(key, "final")
        block_hash = self.node.tree.hash_at(view.height)
        assert block_hash is not None, "the final block is on the best chain"
        return view, ReadProof(term=grant.term, read_index=grant.index, applied_height=view.height,
                               block_hash=block_hash)

    def write_refusal(self) -> RejectError | None:
        """The engine's refusal of client writes, if any."""
        return self.node.write_refusal()

    async def wait_for_tx(self, tx_hash: bytes, level: WaitLevel, timeout_s: float) -> TxStatus | None:
        """Event-driven wait (node.waits.TxCommitWaits), then the transaction's status."""
        tree = self.node.tree
        reached = await self.node.tx_waits.wait(tx_hash, level, self._best_chain_height,
                                                lambda: tree.final_height, timeout_s=timeout_s)
        return self.tx_status(tx_hash) if reached else None

    def _best_chain_height(self, tx_hash: bytes) -> int | None:
        tree = self.node.tree
        location = tree.store.tx_location(tx_hash)
        if location is None:
            return None
        meta = tree.meta(location[0])
        return meta.height if meta is not None and tree.is_on_best_chain(location[0]) else None

    def mempool(self) -> list[PoolEntryView]:
        """The pool, best fee rate first."""
        return self.node.mempool.snapshot()

    def peers(self) -> list[dict[str, object]]:
        """Connected peers."""
        return self.node.p2p.peers() if self.node.p2p is not None else []

    def configured_peers(self) -> list[dict[str, object]]:
        """Configured peer addresses and their state."""
        return self.node.p2p.configured_peers() if self.node.p2p is not None else []

    def subscribe(self) -> EventSubscription:
        """A new event stream."""
        return self.node.events.subscribe()

    def set_faults(self, spec: dict[str, object]) -> dict[str, object]:
        """Fault injection in the P2P transport (testnet nemesis)."""
        allowed = {"blocked_peers", "delay_ms", "jitter_ms", "loss", "duplicate", "peer_delay_ms"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))} (known: {', '.join(sorted(allowed))})")
        blocked = spec.get("blocked_peers", [])
        if not isinstance(blocked, list) or not all(isinstance(p, str) for p in blocked):
            raise ValueError("blocked_peers must be a list of node ids or urls")
        numbers: dict[str, float] = {}
        for name in ("delay_ms", "jitter_ms", "loss", "duplicate"):
            value = spec.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            numbers[name] = float(value)
        for name in ("loss", "duplicate"):
            if numbers[name] > 1:
                raise ValueError(f"{name} is a probability in [0, 1]")
        peer_delay = spec.get("peer_delay_ms", {})
        if not isinstance(peer_delay, dict) or not all(
                isinstance(ms, int | float) and not isinstance(ms, bool) and math.isfinite(ms) and ms >= 0
                for ms in peer_delay.values()):
            raise ValueError("peer_delay_ms must map node ids to non-negative numbers of ms")
        faults = FaultConfig(blocked_peers=frozenset(blocked), peer_delay_ms={str(k): float(v) for k, v in
                                                                              peer_delay.items()}, **numbers)
        self._p2p().set_faults(faults)
        log.warning("faults set: %s", spec)
        return {"blocked_peers": sorted(blocked), **numbers, **({"peer_delay_ms": dict(faults.peer_delay_ms)}
                                                                 if faults.peer_delay_ms else {})}

    def trace_path(self) -> Path | None:
        """`[node] trace_file` in the data directory; None when the node does not trace."""
        return self.node.trace_path

    def set_mining(self, enabled: bool) -> dict[str, object]:
        """Admin mining switch; answers the engine's decision after the switch (the partition handler may still
        keep a switched-on miner paused, and says why)."""
        try:
            return self.node.admin("mining", enabled)
        except UnsupportedAdmin as error:
            raise ValueError(error.message) from None

    def engine_admin(self, action: str, value: object) -> dict[str, object]:
        """The engine's answer, or its RejectError."""
        return self.node.admin(action, value)

    async def mine_blocks(self, count: int, address: bytes | None) -> list[bytes]:
        """On-demand mining (node.runtime.Node.mine_now); None pays the node's own address."""
        return await self.node.mine_now(count, address if address is not None else self.node.core.key.address)

    def remove_peer(self, target: str) -> list[str]:
        """Forget and disconnect a peer (URL or node id)."""
        return self._p2p().remove(target)

    def connect_peer(self, url: str) -> None:
        """Dial a peer."""
        self._p2p().connect(url)

    def _p2p(self) -> P2PService:
        service = self.node.p2p
        assert service is not None, "the node starts P2P before the RPC server that calls this"
        return service
