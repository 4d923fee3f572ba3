"""The simulated lock workload (pure): clients competing for a few locks, writing through the fenced register.

`chainlab sim --workload lock --locks K` replaces the transfers by lock sessions, one per load account. A session
does one operation at a time, through the production node core (`SimNode.submit_tx`: the core's admission,
which refuses an operation the next block would refuse, then the mempool and the engine), on its turn (the
simulator's `Submit` events, `--tx-rate` turns per virtual second over all sessions):

- without a lease it acquires one of the K locks (drawn) for a short lease (`LEASE_BLOCKS`; plus three times the
  finality depth k on engines where a block is final only under k confirmations: there a grant counts only once
  final, so the session learns of it, and of each operation after it, k blocks late);
- holding one, it writes a value under one of the lock's keys with its token, renews when half the lease is gone
  (by the height its node shows), releases, or pauses: a paused session does nothing for 1.5 leases of block
  intervals, and until the chain is past its lease (the simulator holds it: blocks can come slower than one an
  interval, e.g. Raft's empty blocks), then writes with its old token, which the register must refuse
  (Kleppmann's paused holder).

A session learns an operation's outcome when its transaction is final on some node (the node's recorded outcome,
`ChainStore.tx_outcome`), or at once when the node refuses it at admission. An operation nobody made final is
sent again (same bytes) to another node after `resend_after_s`, and given up after three of those: the session
then forgets it (its nonce comes from the node again, as a wallet asking `?at=latest` would). What the sessions
believe only shapes the workload; the `locks` check (`lock_check`) judges what the chains committed, with
testnet/lockcheck.py, on every honest node's final blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from random import Random

from chain.block import Block
from chain.blocktree import BlockTree
from chain.crypto import PrivateKey
from chain.locks import KvPut, LockAcquire, LockRelease, LockRenew, Operation, fencing_token
from chain.tx import Transaction, make_operation
from testnet.checks import CheckResult
from testnet.lockcheck import LockOp, check_locks, lock_ops_of_blocks
from testnet.sim.node import SimNode
from testnet.sim.trace import Trace

LEASE_BLOCKS = (3, 8)  # a lease's length is drawn in this range (blocks), plus FINALITY_LEASES finality depths
# Where a block is final only k blocks deep (PoW), a session learns of its grant k blocks late, and of each later
# operation too: the lease must cover the wait for the grant, one write and a renewal, each k blocks.
FINALITY_LEASES = 3
KEYS_PER_LOCK = 2  # register keys each lock fences
PAUSE_LEASES = 1.5  # a paused session sleeps this many of its leases, then writes with its old token...
PAUSE_EXTRA_BLOCKS = 2  # ...and at least until the chain is 0..this many blocks past its lease
OP_FEE = 1
GIVE_UP_RESENDS = 3  # an operation not final after this many resends is forgotten
# A holder's choice on its turn (cumulative weights): write, renew, release, pause. A renewal is also forced when
# half the lease is gone.
ACTIONS = (("write", 0.6), ("renew", 0.7), ("release", 0.88), ("pause", 1.0))


@dataclass(slots=True, kw_only=True)
class Lease:
    """What a session believes it holds."""

    lock: str
    token: int
    expires_at: int  # the first height at which the lease no longer holds
    lease_blocks: int


@dataclass(slots=True, kw_only=True)
class OpenOp:
    """A session's operation in flight: admitted by a node, not final anywhere yet."""

    tx: Transaction
    op: Operation
    sent_s: float
    resends: int = 0
    late: bool = False  # a write after a pause: the register must refuse it


@dataclass(slots=True, kw_only=True)
class LockSession:
    """One load account's lock client."""

    account: int
    lease: Lease | None = None
    open: OpenOp | None = None
    paused_until_s: float = 0.0
    paused_until_height: int = 0  # the nemesis holds a paused session until the chain is past its lease
    stale: Lease | None = None  # the lease a paused session will write with when it wakes


class LockClients:
    """The lock sessions of a run; `stats` counts what they did and saw."""

    def __init__(self, keys: Sequence[PrivateKey], *, chain_id: str, locks: int, block_interval_s: float,
                 finality_blocks: int, resend_after_s: float) -> None:
        self.keys = list(keys)
        self.chain_id = chain_id
        self.locks = [f"lock{i}" for i in range(locks)]
        self.block_interval_s = block_interval_s
        self.finality_blocks = finality_blocks  # 0 where a block is final at commit
        self.resend_after_s = resend_after_s
        self.sessions = [LockSession(account=i) for i in range(len(self.keys))]
        # Each late write's fate, for pictures: (sender, lock, token, height: the block it went in, or the block
        # it was refused for at admission, the outcome code).
        self.late_writes: list[tuple[bytes, str, int, int, str]] = []
        self.stats: dict[str, int] = {"lock_ops_sent": 0, "lock_ops_resent": 0, "lock_ops_given_up": 0,
                                      "lock_refused_at_admission": 0, "lock_pauses": 0, "lock_late_writes": 0,
                                      "lock_late_writes_refused": 0, "lock_late_writes_in_lease": 0}

    # -- turns ---------------------------------------------------------------------------------------------------

    def turn(self, rng: Random, nodes: Sequence[SimNode], t: float, trace: Trace) -> None:
        """A session drawn from `rng` takes its turn: it waits on its open operation (resending or giving up),
        sleeps if paused, or sends its next operation."""
        session = self.sessions[rng.randrange(len(self.sessions))]
        running = [node for node in nodes if node.core is not None]
        if not running:
            return
        own = nodes[session.account % len(nodes)]
        node = own if own.core is not None else rng.choice(running)
        if session.open is not None:
            self._wait(session, rng, running, t, trace)
            return
        if t < session.paused_until_s or max(n.core.tree.height for n in running  # type: ignore[union-attr]
                                             ) < session.paused_until_height:
            return
        if session.stale is not None:  # awake after a pause: write with the old token, as if nothing happened
            stale, session.stale = session.stale, None
            self.stats["lock_late_writes"] += 1
            self._send(session, node, self._write(rng, stale), t, trace, late=True)
            return
        core = node.core
        assert core is not None
        height = core.tree.height + 1  # the block the operation would go in, as the node sees it
        lease = session.lease
        if lease is not None and height >= lease.expires_at:
            session.lease = None  # the lease ran out (lost); the next turn competes again
            return
        if lease is None:
            lock = rng.choice(self.locks)
            blocks = rng.randint(*LEASE_BLOCKS) + FINALITY_LEASES * self.finality_blocks
            self._send(session, node, LockAcquire(name=lock, lease_blocks=blocks), t, trace)
            return
        if lease.expires_at - height <= lease.lease_blocks // 2:
            self._send(session, node, LockRenew(name=lease.lock, lease_blocks=lease.lease_blocks), t, trace)
            return
        draw = rng.random()
        action = next(name for name, bound in ACTIONS if draw < bound)
        if action == "write":
            self._send(session, node, self._write(rng, lease), t, trace)
        elif action == "renew":
            self._send(session, node, LockRenew(name=lease.lock, lease_blocks=lease.lease_blocks), t, trace)
        elif action == "release":
            self._send(session, node, LockRelease(name=lease.lock), t, trace)
        else:
            self.stats["lock_pauses"] += 1
            session.paused_until_s = t + PAUSE_LEASES * lease.lease_blocks * self.block_interval_s
            session.paused_until_height = lease.expires_at + rng.randint(0, PAUSE_EXTRA_BLOCKS)
            session.stale, session.lease = lease, None

    @staticmethod
    def _write(rng: Random, lease: Lease) -> KvPut:
        key = f"{lease.lock}/k{rng.randrange(KEYS_PER_LOCK)}"
        return KvPut(key=key, value=rng.getrandbits(64).to_bytes(8, "big"), lock=lease.lock, token=lease.token)

    def _send(self, session: LockSession, node: SimNode, op: Operation, t: float, trace: Trace, *,
              late: bool = False) -> None:
        core = node.core
        assert core is not None
        key = self.keys[session.account]
        nonce = core.mempool.pending_nonce(key.address, core.tree.state)
        tx = make_operation(key, op, chain_id=self.chain_id, fee=OP_FEE, nonce=nonce)
        trace.record(t, node.name, "submit", tx.hash)
        self.stats["lock_ops_sent"] += 1
        code = node.submit_tx(tx, t)
        if code is None:
            session.open = OpenOp(tx=tx, op=op, sent_s=t, late=late)
            return
        self.stats["lock_refused_at_admission"] += 1
        self._outcome(session, op, code, height=core.tree.height + 1, index=0, late=late)

    def _wait(self, session: LockSession, rng: Random, running: Sequence[SimNode], t: float, trace: Trace) -> None:
        pending = session.open
        assert pending is not None
        if t - pending.sent_s < self.resend_after_s:
            return
        if pending.resends >= GIVE_UP_RESENDS:
            self.stats["lock_ops_given_up"] += 1
            session.open = None
            if isinstance(pending.op, LockAcquire | LockRenew):
                session.lease = None  # it may hold a lease it does not know the token of: it never writes with it
            return
        node = rng.choice(running)  # the node that had it may have crashed and lost its mempool
        pending.resends += 1
        pending.sent_s = t
        self.stats["lock_ops_resent"] += 1
        trace.record(t, node.name, "submit", pending.tx.hash)
        node.submit_tx(pending.tx, t)  # a refusal (known, nonce used) leaves it to finality or to giving up

    # -- outcomes ------------------------------------------------------------------------------------------------

    def on_final(self, node: SimNode, t: float) -> None:
        """`node`'s final height moved: the open operations it made final have their outcome."""
        core = node.core
        if core is None:
            return
        tree = core.tree
        for session in self.sessions:
            pending = session.open
            if pending is None:
                continue
            location = tree.store.tx_location(pending.tx.hash)
            meta = tree.meta(location[0]) if location is not None else None
            if location is None or meta is None or meta.height > tree.final_height or not tree.is_on_best_chain(
                    location[0]):
                continue
            outcome = tree.store.tx_outcome(pending.tx.hash)
            assert outcome is not None, "a final operation has a recorded outcome"
            session.open = None
            self._outcome(session, pending.op, outcome, height=meta.height, index=location[1], late=pending.late)

    def _outcome(self, session: LockSession, op: Operation, code: str, *, height: int, index: int,
                 late: bool) -> None:
        if late:
            # Accepted only while the lease still held: the pause is in time, the lease in blocks, and under faults
            # the chain can be slower than one block an interval (the locks check verifies it held).
            self.stats["lock_late_writes_in_lease" if code == "ok" else "lock_late_writes_refused"] += 1
            if isinstance(op, KvPut):
                self.late_writes.append((self.keys[session.account].address, op.lock, op.token, height, code))
            return
        if isinstance(op, LockAcquire):
            if code == "ok":
                session.lease = Lease(lock=op.name, token=fencing_token(height, index),
                                      expires_at=height + op.lease_blocks, lease_blocks=op.lease_blocks)
        elif isinstance(op, LockRenew):
            if code == "ok" and session.lease is not None:
                session.lease.expires_at = height + op.lease_blocks
            elif code != "ok":
                session.lease = None  # lost: someone else holds it, or it expired first
        elif code != "ok" or isinstance(op, LockRelease):
            session.lease = None  # released, or a refused write: the lease is gone


def final_blocks(tree: BlockTree) -> list[Block]:
    """The blocks 1..final height of a node's best chain."""
    blocks = []
    for height in range(1, tree.final_height + 1):
        block_hash = tree.hash_at(height)
        block = tree.get_block(block_hash) if block_hash is not None else None
        assert block is not None, f"final block {height} is stored"
        blocks.append(block)
    return blocks


def lock_check(trees: Sequence[tuple[str, BlockTree]]) -> tuple[CheckResult, dict[str, int]]:
    """The `locks` check over every judged node's final blocks (testnet/lockcheck.py, the checker `chainlab
    testnet check` runs), and the counts of the node with the longest final chain: grants, accepted and refused
    writes, so a run that exercised nothing shows it."""
    counts: dict[str, int] = {"lock_grants": 0, "lock_writes_accepted": 0, "lock_writes_refused": 0,
                              "lock_ops_final": 0}
    best: list[LockOp] = []
    details = []
    for name, tree in trees:
        ops = lock_ops_of_blocks(final_blocks(tree), tree.store.tx_outcome)
        ok, detail = check_locks(name, ops)
        if not ok:
            return CheckResult(name="locks", ok=False, detail=detail), counts
        details.append(detail)
        if len(ops) >= len(best):
            best = ops
    counts["lock_grants"] = sum(1 for op in best if op.kind == "lock-acquire" and op.outcome == "ok")
    counts["lock_writes_accepted"] = sum(1 for op in best if op.kind == "kv-put" and op.outcome == "ok")
    counts["lock_writes_refused"] = sum(1 for op in best if op.kind == "kv-put" and op.outcome != "ok")
    counts["lock_ops_final"] = len(best)
    if not details:
        return CheckResult(name="locks", ok=True, detail="no node to judge"), counts
    return CheckResult(name="locks", ok=True, detail=(
        f"{len(details)} nodes, no violation; the longest final chain: {len(best)} operations, "
        f"{counts['lock_grants']} grants, {counts['lock_writes_accepted']} fenced writes accepted, "
        f"{counts['lock_writes_refused']} refused")), counts
