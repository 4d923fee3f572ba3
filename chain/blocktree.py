"""The block tree: every valid block seen, fork choice, reorgs with undo, orphans, and finality.

`BlockTree.add_block(block, now_ms=..., source=...)` takes a decoded block from anywhere (a peer, a file, our own
miner) and returns what happened: stored as a side branch, connected (with the blocks the tip moved over), parked
as an orphan (with the parent to fetch), or a RejectError with a stable code.

Fork choice asks the consensus policy for each block's work and picks the valid tip with the most cumulative work,
the first seen winning a tie. A block is final once it has `finality_threshold` confirmations on the best chain
(the block itself counts as one, as in Bitcoin); a reorg that would disconnect a final block is refused, the node
stays on its final chain, and a `SafetyAlarm` is raised (returned, counted and logged with both branches).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from chain.block import Block, BlockHeader
from chain.chainstore import BlockMeta, BlockStatus, ChainStore, ChainStoreError
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.orphans import OrphanLimits, OrphanPool
from chain.state import Account, Application, State, apply_block
from chain.validation import Rules, SignatureChecker, check_block_cheap, connect_block

log = logging.getLogger("chainlab.chain")

# Blocks off the best chain kept at most (their branches are pruned lowest work first beyond this).
MAX_SIDE_BLOCKS = 5_000


class HeaderView(Protocol):
    """Read access to the tree's headers that a consensus policy needs (ancestors for retarget and median time)."""

    def meta(self, block_hash: bytes) -> BlockMeta | None:
        """Metadata of a known block."""

    def ancestors(self, block_hash: bytes, count: int) -> list[BlockMeta]:
        """`block_hash` and up to count-1 of its ancestors, newest first."""


class ForkChoice(Enum):
    """Who moves the active chain. MOST_WORK: the tree, to the valid tip with the most cumulative work (first seen
    on a tie) whenever a block arrives (PoW; primary-backup, where every block weighs 1). ENGINE: only the engine,
    through `set_head` (its fork choice: the leader's log) and `commit` (its finality); arriving blocks are stored
    and wait (Raft, PBFT)."""

    MOST_WORK = "most-work"
    ENGINE = "engine"


class ChainPolicy(Protocol):
    """What the consensus engine decides about blocks, for the tree (PoW: consensus/pow/policy.py)."""

    @property
    def fork_choice(self) -> ForkChoice:
        """Who moves the active chain."""

    @property
    def confirmation_finality(self) -> bool:
        """True: a block is final at `finality_threshold` confirmations (PoW). False: final when the engine
        commits it."""

    def check_detached_header(self, header: BlockHeader) -> None:
        """What can be checked of a header whose parent is unknown (PoW: its own work; signed seals: the
        signature); RejectError otherwise."""

    def block_work(self, header: BlockHeader) -> int:
        """Work this block adds to its branch (fork choice sums it)."""

    def check_header(self, header: BlockHeader, parent: BlockMeta, view: HeaderView, now_ms: int) -> None:
        """Raise RejectError unless the header is acceptable on `parent` (seal, target, timestamp)."""

    def block_reward(self, header: BlockHeader) -> int:
        """Reward minted to the block's proposer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SafetyAlarm:
    """A better branch that conflicts with a final block: the rule we refused to break."""

    final_height: int
    final_hash: bytes
    candidate_tip: bytes
    candidate_height: int
    fork_height: int

    def describe(self) -> str:
        """One log line naming both branches."""
        return (
            f"SAFETY ALARM: branch with tip {self.candidate_tip.hex()} (height {self.candidate_height}) forks at "
            f"height {self.fork_height}, below final block {self.final_hash.hex()} at height {self.final_height}; "
            "staying on the final chain"
        )


@dataclass(slots=True, kw_only=True)
class AddResult:
    """Outcome of add_block."""

    status: str  # connected | side-branch | stored (engine fork choice) | orphan | duplicate; commit/set_head:
    # committed | connected | unknown | conflict
    block_hash: bytes
    missing_parent: bytes | None = None
    connected: list[Block] = field(default_factory=list)
    disconnected: list[Block] = field(default_factory=list)
    rejected: list[tuple[bytes, RejectError]] = field(default_factory=list)  # other blocks that failed on the way
    alarms: list[SafetyAlarm] = field(default_factory=list)
    stored: list[bytes] = field(default_factory=list)  # blocks newly stored by this call (the block, adopted orphans)
    final_height_before: int = 0
    final_height: int = 0

    @property
    def tip_changed(self) -> bool:
        """True when the best chain moved."""
        return bool(self.connected or self.disconnected)


@dataclass(frozen=True, slots=True, kw_only=True)
class TipInfo:
    """One row of `tips` (as Bitcoin's getchaintips)."""

    hash: bytes
    height: int
    cumulative_work: int
    status: str  # active | valid-fork | valid-headers | orphan | invalid
    branch_length: int


class BlockTree:
    """The chain: block metadata in memory, bodies/state/undo in the store, the tip state in memory."""

    def __init__(
        self, store: ChainStore, genesis: Genesis, policy: ChainPolicy, *, signatures: SignatureChecker | None = None,
        orphan_limits: OrphanLimits | None = None, max_side_blocks: int = MAX_SIDE_BLOCKS,
        sync_every_blocks: int = 1,
    ) -> None:
        """Fork choice and finality come from `policy` (`fork_choice`, `confirmation_finality`; engines with their
        own finality call `commit`). `sync_every_blocks`: connect batches that advance finality are fsynced every
        this many blocks (1: each one, the node's policy; a bulk import coalesces and calls `make_durable` at the
        end); any crash still leaves a consistent store, and an engine that acknowledges blocks asks the node to
        sync before its acknowledgement leaves (the durability request of consensus/engine.py)."""
        self.store = store
        self.genesis = genesis
        self.policy = policy
        self.rules = Rules.from_genesis(genesis)
        self.signatures = signatures or SignatureChecker()
        self.orphans = OrphanPool(orphan_limits)
        self.max_side_blocks = max_side_blocks
        self.finality_threshold = genesis.finality_threshold
        self.confirmation_finality = policy.confirmation_finality
        self.engine_fork_choice = policy.fork_choice is ForkChoice.ENGINE
        self.sync_every_blocks = max(1, sync_every_blocks)
        self._unsynced_blocks = 0
        self.safety_alarms = 0
        self.pending_alarms: list[SafetyAlarm] = []  # alarms not yet taken by the node (metrics): take_alarms()
        self.alarmed_tips: set[bytes] = set()
        self._metas: dict[bytes, BlockMeta] = {}
        self._children: dict[bytes, set[bytes]] = {}
        self._best_chain: list[bytes] = []  # height -> hash of the active chain
        self._recent: dict[bytes, Block] = {}  # bodies stored by the current add_block: not read back from disk
        self._leaves: set[bytes] = set()  # non-invalid blocks without non-invalid children: the fork-choice candidates
        self._preview: tuple[tuple[object, ...], Application] | None = None  # see `preview`
        self._seq = 0
        self._open()

    # -- start-up ------------------------------------------------------------------------------------------------

    def _open(self) -> None:
        stored = self.store.genesis_hash()
        if stored is None:
            self.store.init_genesis(self.genesis)
        elif stored != self.genesis.hash:
            raise ChainStoreError(
                f"this data directory belongs to the network with genesis {stored.hex()}, not {self.genesis.hash.hex()}"
            )
        for meta in self.store.load_metas():
            self._metas[meta.hash] = meta
            if meta.height > 0:
                self._children.setdefault(meta.parent, set()).add(meta.hash)
            self._seq = max(self._seq, meta.seq + 1)
        self._leaves = {
            h for h, m in self._metas.items() if m.status is not BlockStatus.INVALID and not self._live_children(h)
        }
        tip_hash, _ = self.store.tip()
        if tip_hash not in self._metas:
            raise ChainStoreError(f"tip {tip_hash.hex()} has no metadata")
        self._best_chain = self._path_to(tip_hash)
        self.final_height = min(self.store.final_height(), self.height)
        self.state: State = self.store.tip_state()
        # A crash in the middle of a reorg leaves a valid tip on one branch; fork choice finishes the job.
        result = AddResult(status="duplicate", block_hash=tip_hash, final_height_before=self.final_height)
        self._update_best(result)

    def _path_to(self, block_hash: bytes) -> list[bytes]:
        path = []
        current: bytes | None = block_hash
        while current is not None and current in self._metas:
            path.append(current)
            meta = self._metas[current]
            current = meta.parent if meta.height > 0 else None
        path.reverse()
        if not path or self._metas[path[0]].height != 0:
            raise ChainStoreError(f"block {block_hash.hex()} does not lead back to genesis")
        return path

    # -- queries -------------------------------------------------------------------------------------------------

    @property
    def tip(self) -> BlockMeta:
        """The active tip."""
        return self._metas[self._best_chain[-1]]

    @property
    def height(self) -> int:
        """Height of the active tip."""
        return len(self._best_chain) - 1

    def meta(self, block_hash: bytes) -> BlockMeta | None:
        """Metadata of a known block (any branch), or None."""
        return self._metas.get(block_hash)

    def hash_at(self, height: int) -> bytes | None:
        """Hash of the active chain's block at `height`."""
        return self._best_chain[height] if 0 <= height < len(self._best_chain) else None

    def final_account(self, address: bytes) -> Account | None:
        """The account as of the final block (None: never used by then): the tip state with the undo records of
        the non-final blocks applied, newest first, so the oldest record of the address wins."""
        account = None
        found = False
        for height in range(self.height, self.final_height, -1):
            block_hash = self.hash_at(height)
            assert block_hash is not None
            for changed, previous in self.store.get_undo(block_hash).previous:
                if changed == address:
                    account, found = previous, True
        return account if found else self.state.get(address)

    def final_record(self, key: bytes) -> bytes | None:
        """The record at `key` (chain/locks.py) as of the final block, the way `final_account` reads accounts."""
        record = None
        found = False
        for height in range(self.height, self.final_height, -1):
            block_hash = self.hash_at(height)
            assert block_hash is not None
            for changed, previous in self.store.get_undo(block_hash).previous_records:
                if changed == key:
                    record, found = previous, True
        return record if found else self.state.get_record(key)

    def is_on_best_chain(self, block_hash: bytes) -> bool:
        """True when the block is part of the active chain."""
        meta = self._metas.get(block_hash)
        return meta is not None and self.hash_at(meta.height) == block_hash

    def get_block(self, block_hash: bytes) -> Block | None:
        """A stored block body."""
        return self.store.get_block(block_hash)

    def children(self, block_hash: bytes) -> list[BlockMeta]:
        """Known blocks whose parent is `block_hash` (any status), first seen first."""
        metas = [self._metas[h] for h in self._children.get(block_hash, ()) if h in self._metas]
        return sorted(metas, key=lambda m: m.seq)

    def ancestors(self, block_hash: bytes, count: int) -> list[BlockMeta]:
        """`block_hash` and up to count-1 ancestors, newest first."""
        out: list[BlockMeta] = []
        meta = self._metas.get(block_hash)
        while meta is not None and len(out) < count:
            out.append(meta)
            meta = self._metas.get(meta.parent) if meta.height > 0 else None
        return out

    def locator(self) -> list[bytes]:
        """Block locator of the active chain: dense near the tip, then exponentially sparse, then genesis."""
        hashes, step, height = [], 1, self.height
        while height > 0:
            hashes.append(self._best_chain[height])
            if len(hashes) >= 10:
                step *= 2
            height -= step
        hashes.append(self._best_chain[0])
        return hashes

    def fork_point(self, locator: list[bytes]) -> int:
        """Height of the first locator entry on our active chain (0 if none)."""
        for block_hash in locator:
            if self.is_on_best_chain(block_hash):
                return self._metas[block_hash].height
        return 0

    def _live_children(self, block_hash: bytes) -> bool:
        return any(self._metas[c].status is not BlockStatus.INVALID for c in self._children.get(block_hash, ()))

    def tips(self) -> list[TipInfo]:
        """Every branch tip with its status and the length of its branch off the active chain."""
        rows = []
        for block_hash, meta in self._metas.items():
            if self._children.get(block_hash) and (block_hash not in self._leaves):
                continue
            status = self._tip_status(meta)
            rows.append(TipInfo(hash=block_hash, height=meta.height, cumulative_work=meta.cumulative_work,
                                status=status, branch_length=self._branch_length(meta)))
        orphan_parents = {b.parent for b, _ in self.orphans.entries()}
        for block, _ in self.orphans.entries():
            if block.hash not in orphan_parents:
                rows.append(TipInfo(hash=block.hash, height=block.height, cumulative_work=0, status="orphan",
                                    branch_length=0))
        rows.sort(key=lambda r: (r.status != "active", -r.height))
        return rows

    def _tip_status(self, meta: BlockMeta) -> str:
        if meta.hash == self._best_chain[-1]:
            return "active"
        if meta.status is BlockStatus.INVALID:
            return "invalid"
        return "valid-fork" if meta.status is BlockStatus.VALID else "valid-headers"

    def _branch_length(self, meta: BlockMeta) -> int:
        length, current = 0, meta
        while not self.is_on_best_chain(current.hash):
            length += 1
            parent = self._metas.get(current.parent)
            if parent is None:
                break
            current = parent
        return length

    # -- adding blocks -------------------------------------------------------------------------------------------

    def add_block(self, block: Block, *, now_ms: int, source: str = "local", prechecked: bool = False) -> AddResult:
        """Accept a block from `source`; raise RejectError (with its code) if the block itself is invalid.

        `prechecked`: the caller already ran the policy's header check and `check_block_cheap` on this block with
        its parent known (the P2P relay precheck), so storing it skips repeating them.
        """
        result = AddResult(status="duplicate", block_hash=block.hash, final_height_before=self.final_height,
                           final_height=self.final_height)
        known = self._metas.get(block.hash)
        if known is not None:
            if known.status is BlockStatus.INVALID:
                raise RejectError(known.reason or "invalid", f"block {block.hash.hex()} is known to be invalid")
            return result
        if block.hash in self.orphans:
            result.status = "orphan"
            result.missing_parent = self.orphans.root_of(block.hash)
            return result
        parent = self._metas.get(block.parent)
        if parent is None:
            self.orphans.add(block, source, now_ms / 1000)
            result.status = "orphan"
            result.missing_parent = self.orphans.root_of(block.hash) if block.hash in self.orphans else block.parent
            return result
        self._store_new_block(block, parent, now_ms, prechecked=prechecked)
        result.stored.append(block.hash)
        result.status = "stored" if self.engine_fork_choice else "side-branch"
        try:
            self._adopt_orphans(block.hash, now_ms, result)
            self._update_best(result)
        finally:
            self._recent.clear()
        if self.is_on_best_chain(block.hash):
            result.status = "connected"
        elif self._metas[block.hash].status is BlockStatus.INVALID:
            meta = self._metas[block.hash]
            for rejected_hash, error in result.rejected:
                if rejected_hash == block.hash:
                    raise error
            raise RejectError(meta.reason or "invalid", f"block {block.hash.hex()} descends from an invalid block")
        return result

    def _store_new_block(self, block: Block, parent: BlockMeta, now_ms: int, prechecked: bool = False) -> BlockMeta:
        if parent.status is BlockStatus.INVALID:
            raise RejectError("bad-prevblk", f"parent {parent.hash.hex()} is invalid")
        if block.height != parent.height + 1:
            raise RejectError("bad-height", f"height {block.height} on a parent at height {parent.height}")
        if not prechecked:
            self.policy.check_header(block.header, parent, self, now_ms)
            # A body that does not match its header (merkle root, sizes) says nothing about the header: the hash is
            # not marked invalid, so the real block can still arrive.
            check_block_cheap(block, self.rules, now_ms=now_ms)
        if parent.height < self.final_height and not self.is_on_best_chain(parent.hash):
            work = parent.cumulative_work + self.policy.block_work(block.header)
            if work > self.tip.cumulative_work:
                # A heavier branch that conflicts with our final blocks: the evidence a safety alarm exists for,
                # even though the block is not stored.
                self._count_alarm(SafetyAlarm(
                    final_height=self.final_height, final_hash=self._best_chain[self.final_height],
                    candidate_tip=block.hash, candidate_height=block.height,
                    fork_height=self._fork_height(parent.hash)))
            raise RejectError("fork-below-final", f"parent {parent.hash.hex()} is on a branch below the final height")
        meta = BlockMeta(
            header=block.header, cumulative_work=parent.cumulative_work + self.policy.block_work(block.header),
            status=BlockStatus.STORED, seq=self._seq, size=block.size, tx_count=len(block.txs),
        )
        self._seq += 1
        self.store.put_block(block, meta)
        self._recent[block.hash] = block
        self._metas[block.hash] = meta
        self._children.setdefault(block.parent, set()).add(block.hash)
        self._leaves.discard(block.parent)
        self._leaves.add(block.hash)
        return meta

    def _adopt_orphans(self, parent_hash: bytes, now_ms: int, result: AddResult) -> None:
        pending = [parent_hash]
        while pending:
            for child in self.orphans.take_children(pending.pop()):
                parent = self._metas[child.parent]
                try:
                    self._store_new_block(child, parent, now_ms)
                except RejectError as error:
                    result.rejected.append((child.hash, error))
                    continue
                result.stored.append(child.hash)
                pending.append(child.hash)

    # -- fork choice and reorg -----------------------------------------------------------------------------------

    def _best_candidate(self) -> BlockMeta:
        metas = self._metas
        candidates = [metas[h] for h in self._leaves if h not in self.alarmed_tips]
        return max(candidates, key=lambda m: (m.cumulative_work, -m.seq), default=self.tip)

    def _update_best(self, result: AddResult) -> None:
        """Move the active chain to the best candidate, marking blocks invalid on the way when they fail (only with
        most-work fork choice: under engine fork choice the engine moves it)."""
        while not self.engine_fork_choice:
            best = self._best_candidate()
            current = self.tip
            if (best.cumulative_work, -best.seq) <= (current.cumulative_work, -current.seq):
                break  # includes best == current
            fork = self._fork_height(best.hash)
            if fork < self.final_height:
                self._raise_alarm(best, fork, result)
                continue
            if not self._reorg_to(best, fork, result):
                continue  # a block failed; choose again among what is left
        self._advance_finality(result)
        result.final_height = self.final_height

    def _fork_height(self, block_hash: bytes) -> int:
        meta = self._metas[block_hash]
        while not self.is_on_best_chain(meta.hash):
            meta = self._metas[meta.parent]
        return meta.height

    def _raise_alarm(self, best: BlockMeta, fork: int, result: AddResult) -> None:
        alarm = SafetyAlarm(final_height=self.final_height, final_hash=self._best_chain[self.final_height],
                            candidate_tip=best.hash, candidate_height=best.height, fork_height=fork)
        self.alarmed_tips.add(best.hash)
        result.alarms.append(alarm)
        self._count_alarm(alarm)

    def _count_alarm(self, alarm: SafetyAlarm) -> None:
        self.safety_alarms += 1
        self.pending_alarms.append(alarm)
        log.error(alarm.describe())

    def _reorg_to(self, best: BlockMeta, fork: int, result: AddResult) -> bool:
        """Disconnect down to `fork`, connect the branch up to `best`; False if a branch block proved invalid."""
        while self.height > fork:
            result.disconnected.append(self._disconnect_tip())
        branch = []
        meta = best
        while meta.height > fork:
            branch.append(meta)
            meta = self._metas[meta.parent]
        for meta in reversed(branch):
            block = self._recent.get(meta.hash) or self.store.get_block(meta.hash)
            if block is None:
                raise ChainStoreError(f"stored block {meta.hash.hex()} has no body")
            try:
                self._connect(block, meta)
            except RejectError as error:
                self._mark_invalid(meta.hash, error.code)
                result.rejected.append((meta.hash, error))
                return False
            result.connected.append(block)
        return True

    def preview(self, draft: Block) -> Application:
        """The application of `draft` on the tip's state, remembered: when the block sealed from it (the same
        parent, height, proposer, timestamp and transactions; only the seal and the state root differ) is
        connected next, its application is not computed a second time. A proposer's own block costs one
        application, not two."""
        application = apply_block(self.state, draft, reward=self.policy.block_reward(draft.header))
        self._preview = (self._preview_key(draft), application)
        return application

    def _preview_key(self, block: Block) -> tuple[object, ...]:
        header = block.header
        return (header.parent, header.height, header.proposer, header.timestamp_ms, header.tx_root,
                self.policy.block_reward(header))

    def _connect(self, block: Block, meta: BlockMeta) -> None:
        preview, self._preview = self._preview, None
        applied = (preview[1] if preview is not None and block.header.parent == self.tip.hash
                   and preview[0] == self._preview_key(block) else None)
        application = connect_block(
            self.state, block, self.rules, reward=self.policy.block_reward(block.header),
            now_ms=block.header.timestamp_ms, signatures=self.signatures, cheap_checks_done=True, applied=applied,
        )
        valid = meta.with_status(BlockStatus.VALID)
        new_final = self._confirmed_final(block.height)
        self._unsynced_blocks += 1
        sync = new_final > self.final_height and self._unsynced_blocks >= self.sync_every_blocks
        if sync:
            self._unsynced_blocks = 0
        self.store.connect(block, application, valid, new_final, sync=sync)
        self._metas[block.hash] = valid
        self._best_chain.append(block.hash)
        self.final_height = new_final
        self.state = State(self.store.accounts, application.state.accumulator, elements=self.store.elements)

    def _disconnect_tip(self) -> Block:
        tip = self.tip
        if tip.height <= self.final_height:
            raise AssertionError("refusing to disconnect a final block (fork choice must not get here)")
        block = self.store.get_block(tip.hash)
        if block is None:
            raise ChainStoreError(f"active block {tip.hash.hex()} has no body")
        undo = self.store.get_undo(tip.hash)
        self.store.disconnect(block, undo, tip.parent, self.final_height)
        self._best_chain.pop()
        self.state = State(self.store.accounts, undo.previous_accumulator, elements=self.store.elements)
        return block

    def _mark_invalid(self, block_hash: bytes, reason: str) -> None:
        pending = [block_hash]
        while pending:
            current = pending.pop()
            meta = self._metas.get(current)
            if meta is None or meta.status is BlockStatus.INVALID:
                continue
            invalid = meta.with_status(BlockStatus.INVALID, reason if current == block_hash else "bad-prevblk")
            self._metas[current] = invalid
            self._leaves.discard(current)
            self.store.put_meta(invalid)
            pending.extend(self._children.get(current, ()))
        self._relink_leaf(self._metas[block_hash].parent)

    def _relink_leaf(self, block_hash: bytes) -> None:
        """`block_hash` lost a child: it is a candidate again if no valid child is left."""
        meta = self._metas.get(block_hash)
        if meta is not None and meta.status is not BlockStatus.INVALID and not self._live_children(block_hash):
            self._leaves.add(block_hash)

    def _confirmed_final(self, tip_height: int) -> int:
        if not self.confirmation_finality:
            return self.final_height
        return max(self.final_height, tip_height - self.finality_threshold + 1)

    def _advance_finality(self, result: AddResult) -> None:
        self.final_height = self._confirmed_final(self.height)
        if self.final_height > result.final_height_before:
            self._prune()

    def finalize(self, height: int) -> bool:
        """Engine-driven finality: make the active chain final up to `height` (never beyond the tip, never
        backwards); True when the final height advanced. The new final height is stored durably."""
        height = min(height, self.height)
        if height <= self.final_height:
            return False
        before = self.final_height
        self.final_height = height
        self.store.set_final_height(height)
        self._advance_finality(AddResult(status="duplicate", block_hash=self.tip.hash, final_height_before=before))
        return True

    def commit(self, block_hash: bytes, *, sync: bool = True) -> AddResult:
        """Engine finality: `block_hash` and its ancestors are final. The active chain moves onto it if it was
        elsewhere (disconnecting non-final blocks, connecting and validating the committed branch), then the final
        height becomes its height; with most-work fork choice the tree may go on along its descendants.

        `sync` False leaves the final height's write to the next synced write (an engine whose commit index is
        volatile state, re-derived after a restart: Raft). The result's status: `committed`; `unknown` (the block
        is not here yet: the caller retries when it comes); `conflict` (it does not extend the final chain, or a
        block on the way to it is invalid: a safety alarm is raised, nothing moves)."""
        result = AddResult(status="committed", block_hash=block_hash, final_height_before=self.final_height,
                           final_height=self.final_height)
        meta = self._metas.get(block_hash)
        if meta is None:
            result.status = "unknown"
            return result
        if meta.height <= self.final_height:
            if self.hash_at(meta.height) != block_hash:
                self._conflict(meta, result)
            return result  # final already
        # On the active chain already: the tip stays (an engine may run ahead of its commit index, as a Raft
        # leader's uncommitted entries do); elsewhere, the active chain moves onto the committed branch.
        if not self.is_on_best_chain(block_hash) and not self._move_to(meta, result):
            return result
        before = self.final_height
        self.final_height = meta.height
        self.store.set_final_height(meta.height, sync=sync)
        self._update_best(result)
        if self.final_height > before:
            self._prune()
        result.final_height = self.final_height
        return result

    def set_head(self, block_hash: bytes) -> AddResult:
        """Engine fork choice: make `block_hash` the active tip (a reorg when it is on another branch; blocks are
        validated as they connect). Status `connected`, `unknown`, or `conflict` (it forks below the final
        height, or a block on the way is invalid)."""
        result = AddResult(status="connected", block_hash=block_hash, final_height_before=self.final_height,
                           final_height=self.final_height)
        meta = self._metas.get(block_hash)
        if meta is None:
            result.status = "unknown"
            return result
        self._move_to(meta, result)
        return result

    def _move_to(self, meta: BlockMeta, result: AddResult) -> bool:
        """Make `meta` the active tip; False (and result.status `conflict`) when that is not allowed or fails."""
        if meta.status is BlockStatus.INVALID:
            result.status = "conflict"
            result.rejected.append((meta.hash, RejectError(meta.reason or "invalid", "the block is invalid")))
            return False
        if self.is_on_best_chain(meta.hash):
            if meta.height < self.final_height:
                self._conflict(meta, result)
                return False
            while self.height > meta.height:
                result.disconnected.append(self._disconnect_tip())
            return True
        fork = self._fork_height(meta.hash)
        if fork < self.final_height:
            self._conflict(meta, result)
            return False
        try:
            ok = self._reorg_to(meta, fork, result)
        finally:
            self._recent.clear()
        if not ok:
            result.status = "conflict"
        return ok

    def alarm_conflicting_commit(self, block_hash: bytes, height: int) -> SafetyAlarm:
        """The engine committed a block the final chain excludes (it forks below the final height, and may have
        been pruned or refused as `fork-below-final`): count and log the safety alarm; nothing moves."""
        fork = self._fork_height(block_hash) if block_hash in self._metas else 0
        alarm = SafetyAlarm(final_height=self.final_height, final_hash=self._best_chain[self.final_height],
                            candidate_tip=block_hash, candidate_height=height, fork_height=fork)
        self._count_alarm(alarm)
        return alarm

    def _conflict(self, meta: BlockMeta, result: AddResult) -> None:
        result.status = "conflict"
        fork = self._fork_height(meta.hash) if meta.hash in self._metas else 0
        self._raise_alarm(meta, fork, result)

    def validate(self, block_hash: bytes) -> RejectError | None:
        """Validate-before-connect: check `block_hash` fully (signatures, state transition, state commitment) on
        its parent's state without connecting it. The parent must be the active tip or a stored descendant of it
        (those blocks are applied in memory first). None when valid; the RejectError otherwise; `not-ready` when
        the block is unknown or its parent state is not at hand (a branch off the active chain)."""
        meta = self._metas.get(block_hash)
        if meta is None:
            return RejectError("not-ready", "block not known yet")
        if meta.status is BlockStatus.INVALID:
            return RejectError(meta.reason or "invalid", "block is known to be invalid")
        if self.is_on_best_chain(block_hash):
            return None  # connected: validated already
        path = []
        current: BlockMeta | None = meta
        while current is not None and not self.is_on_best_chain(current.hash):
            path.append(current)
            current = self._metas.get(current.parent)
        if current is None or current.hash != self.tip.hash:
            return RejectError("not-ready", "the block's parent state is not at hand (not on the active tip)")
        state = self.state
        for step in reversed(path):
            block = self.store.get_block(step.hash)
            if block is None:
                return RejectError("not-ready", f"block {step.hash.hex()} has no body")
            try:
                application = connect_block(
                    state, block, self.rules, reward=self.policy.block_reward(block.header),
                    now_ms=block.header.timestamp_ms, signatures=self.signatures, cheap_checks_done=True)
            except RejectError as error:
                self._mark_invalid(step.hash, error.code)
                return error if step.hash == block_hash else RejectError("bad-prevblk", f"ancestor invalid: {error}")
            state = application.state
        return None

    def known_blocks(self) -> list[BlockMeta]:
        """Every block the tree knows (connected, side branches, stored but not connected), in no order."""
        return list(self._metas.values())

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        """A stored block's canonical encoding, without decoding it (serving peers)."""
        return self.store.get_block_bytes(block_hash)

    def _branch_root(self, leaf: bytes) -> BlockMeta:
        """The first block of `leaf`'s branch off the active chain."""
        meta = self._metas[leaf]
        while not self.is_on_best_chain(meta.parent):
            meta = self._metas[meta.parent]
        return meta

    def _prune(self) -> None:
        """Forget side branches that fork below the final height (they can never win) and bound the rest.

        Works from the leaves (a handful), so it costs O(side blocks), not O(chain), per finality step.
        """
        side_leaves = [h for h in self._leaves if not self.is_on_best_chain(h)]
        for leaf in side_leaves:
            if leaf not in self._metas:
                continue  # went with a sibling's branch
            root = self._branch_root(leaf)
            if root.height - 1 < self.final_height:
                self._forget_subtree(root.hash)
        side_count = len(self._metas) - len(self._best_chain)
        if side_count > self.max_side_blocks:
            lightest = sorted((self._metas[h] for h in self._leaves if not self.is_on_best_chain(h)),
                              key=lambda m: (m.cumulative_work, -m.seq))
            for leaf_meta in lightest:
                if len(self._metas) - len(self._best_chain) <= self.max_side_blocks:
                    break
                if leaf_meta.hash not in self._metas:
                    continue
                self._forget_subtree(self._branch_root(leaf_meta.hash).hash)

    def _forget_subtree(self, block_hash: bytes) -> None:
        root = self._metas.get(block_hash)
        pending = [block_hash]
        while pending:
            current = pending.pop()
            meta = self._metas.pop(current, None)
            if meta is None:
                continue
            pending.extend(self._children.pop(current, ()))
            siblings = self._children.get(meta.parent)
            if siblings is not None:
                siblings.discard(current)
            self._leaves.discard(current)
            self.alarmed_tips.discard(current)
            self.store.forget_block(current)
        if root is not None:
            self._relink_leaf(root.parent)

    def take_alarms(self) -> list[SafetyAlarm]:
        """Alarms raised since the last call (including those of refused blocks, which have no AddResult)."""
        alarms, self.pending_alarms = self.pending_alarms, []
        return alarms

    def make_durable(self) -> None:
        """Make everything connected so far survive a power loss (call before announcing a block)."""
        self.store.make_durable()
