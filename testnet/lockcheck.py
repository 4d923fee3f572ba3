"""The lock checker (docs/LOCKS.md, docs/TESTNET.md "Checks"): from the committed chain's lock and register
operations and their recorded outcomes, check that

1. at no height do two clients hold one lock (an accepted acquire only after the previous lease ended; renew and
   release only by the live holder);
2. no write with a stale token was accepted;
3. every accepted write's token is the newest granted for its lock at its height, and its writer held a live
   lease then.

Pure, and independent of chain/locks.py's `apply_op`: it re-derives each lease from the accepted operations by the
documented rules (token = grant position, lease ends `lease_blocks` after its block, release ends it at its block),
so a bug in the state machine shows up as a violation here rather than being replayed faithfully.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chain.block import Block
from chain.crypto import address_from_text
from chain.locks import KvPut, LockAcquire, LockRenew

TOKEN_INDEX_BITS = 32  # the documented token layout, restated so the checker does not borrow the code it checks


@dataclass(frozen=True, slots=True, kw_only=True)
class LockOp:
    """One committed lock or register operation: where it is, who sent it, what it asked, what the block said."""

    height: int
    index: int
    kind: str  # lock-acquire | lock-renew | lock-release | kv-put
    sender: bytes
    lock: str
    outcome: str  # "ok" or the reject code
    lease_blocks: int = 0
    key: str = ""
    token: int = 0  # kv-put only


@dataclass(frozen=True, slots=True, kw_only=True)
class LockViolation:
    """One broken promise: `kind` is two-holders, stale-write-accepted or write-not-newest-token."""

    kind: str
    height: int
    lock: str
    message: str

    def describe(self) -> str:
        """One line for reports."""
        return f"{self.kind} at height {self.height} on lock {self.lock!r}: {self.message}"


@dataclass(slots=True)
class _Lease:
    holder: bytes
    token: int
    end: int  # first height at which the lease no longer holds


def lock_ops_of_blocks(blocks: Iterable[Block], outcome_of: Callable[[bytes], str | None]) -> list[LockOp]:
    """The operations of `blocks` (a best chain, in height order) with their outcomes (`outcome_of(tx_hash)`, e.g.
    a node's store or `GET /v1/transactions/{hash}`'s `result`; None reads as "unknown")."""
    ops = []
    for block in blocks:
        for index, tx in enumerate(block.txs):
            op = tx.op
            if op is None:
                continue
            outcome = outcome_of(tx.hash) or "unknown"
            # An operation's `recipient` is its sender's address (chain/tx.py).
            if isinstance(op, KvPut):
                ops.append(LockOp(height=block.height, index=index, kind=op.kind, sender=tx.recipient,
                                  outcome=outcome, lock=op.lock, key=op.key, token=op.token))
            elif isinstance(op, LockAcquire | LockRenew):
                ops.append(LockOp(height=block.height, index=index, kind=op.kind, sender=tx.recipient,
                                  outcome=outcome, lock=op.name, lease_blocks=op.lease_blocks))
            else:
                ops.append(LockOp(height=block.height, index=index, kind=op.kind, sender=tx.recipient,
                                  outcome=outcome, lock=op.name))
    return ops


def lock_op_of_json(height: int, index: int, tx: Mapping[str, Any]) -> LockOp | None:
    """The operation of one transaction as `GET /v1/blocks?txs=full` gives it (`op`, and `result` on the best
    chain), None for a transfer; KeyError or ValueError for a malformed one."""
    op = tx.get("op")
    if op is None:
        return None
    kind = str(op["kind"])
    sender = address_from_text(str(tx["from"]))
    outcome = str(tx.get("result") or "unknown")
    if kind == "kv-put":
        return LockOp(height=height, index=index, kind=kind, sender=sender, outcome=outcome, lock=str(op["lock"]),
                      key=str(op["key"]), token=int(op["token"]))
    if kind in ("lock-acquire", "lock-renew"):
        return LockOp(height=height, index=index, kind=kind, sender=sender, outcome=outcome, lock=str(op["name"]),
                      lease_blocks=int(op["lease_blocks"]))
    if kind == "lock-release":
        return LockOp(height=height, index=index, kind=kind, sender=sender, outcome=outcome, lock=str(op["name"]))
    raise ValueError(f"unknown operation kind {kind!r}")


def check_lock_history(ops: Sequence[LockOp]) -> list[LockViolation]:
    """Every violation of the three promises in `ops` (committed order: by height, then index)."""
    violations: list[LockViolation] = []
    leases: dict[str, _Lease] = {}
    newest_token: dict[str, int] = {}
    for op in sorted(ops, key=lambda o: (o.height, o.index)):
        if op.outcome != "ok":
            continue
        lease = leases.get(op.lock)
        live = lease is not None and op.height < lease.end
        if op.kind == "lock-acquire":
            if lease is not None and live:
                violations.append(LockViolation(
                    kind="two-holders", height=op.height, lock=op.lock,
                    message=f"granted to {op.sender.hex()} while {lease.holder.hex()}'s lease (token {lease.token}) "
                            f"holds until {lease.end}"))
            token = (op.height << TOKEN_INDEX_BITS) | op.index
            if token <= newest_token.get(op.lock, -1):
                violations.append(LockViolation(kind="two-holders", height=op.height, lock=op.lock,
                                                message=f"token {token} does not increase"))
            leases[op.lock] = _Lease(holder=op.sender, token=token, end=op.height + op.lease_blocks)
            newest_token[op.lock] = max(token, newest_token.get(op.lock, -1))
        elif op.kind in ("lock-renew", "lock-release"):
            if lease is None or not live or lease.holder != op.sender:
                violations.append(LockViolation(
                    kind="two-holders", height=op.height, lock=op.lock,
                    message=f"{op.kind} accepted from {op.sender.hex()}, who holds no live lease on it"))
                continue
            lease.end = op.height + op.lease_blocks if op.kind == "lock-renew" else op.height
        elif op.kind == "kv-put":
            newest = newest_token.get(op.lock)
            if newest is not None and op.token < newest:
                violations.append(LockViolation(
                    kind="stale-write-accepted", height=op.height, lock=op.lock,
                    message=f"write of {op.key!r} with token {op.token}, the newest grant is {newest}"))
            elif newest is None or op.token != newest or lease is None or not live or lease.holder != op.sender:
                violations.append(LockViolation(
                    kind="write-not-newest-token", height=op.height, lock=op.lock,
                    message=f"write of {op.key!r} with token {op.token} by {op.sender.hex()}: the newest grant is "
                            f"{newest}, its lease {'is live' if live else 'is over'}"))
    return violations


def check_locks(node: str, ops: Sequence[LockOp]) -> tuple[bool, str]:
    """One node's verdict for `chainlab testnet check`'s `locks` check: (ok, detail). Operations whose outcome is
    unknown (a node too old to record it) cannot be judged and fail the check."""
    unknown = [op for op in ops if op.outcome == "unknown"]
    if unknown:
        first = unknown[0]
        return False, (f"{node}: {len(unknown)} operation(s) without a recorded outcome, e.g. {first.kind} at "
                       f"height {first.height} index {first.index}")
    if not ops:
        return True, f"{node}: no lock or register operations"
    violations = check_lock_history(ops)
    if violations:
        more = f" ({len(violations)} violations)" if len(violations) > 1 else ""
        return False, f"{node}: {violations[0].describe()}{more}"
    granted = sum(1 for op in ops if op.kind == "lock-acquire" and op.outcome == "ok")
    written = sum(1 for op in ops if op.kind == "kv-put" and op.outcome == "ok")
    refused = sum(1 for op in ops if op.outcome != "ok")
    locks = len({op.lock for op in ops})
    return True, (f"{node}: {len(ops)} operations on {locks} locks ({granted} grants, {written} fenced writes "
                  f"accepted, {refused} refused), no violation")
