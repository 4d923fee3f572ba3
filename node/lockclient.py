"""A Python client for locks with leases and fencing tokens (docs/LOCKS.md): acquire, renew, release and fenced
writes through a node's RPC, and a `LeaseKeeper` that renews in the background and reports **lock lost**.

Every call waits until its transaction is final (`POST /v1/transactions?wait=final`) and then reads the outcome
the block recorded: a grant counts only once final, on every engine (on PoW that is k confirmations; docs/LOCKS.md
says what that costs). A refusal, at admission (422) or in the block, is a `LockRefused` with the reject code.

Synchronous, on node.client.RpcClient; the keeper runs in one daemon thread and calls back from it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain import crypto
from chain.locks import KvPut, LockAcquire, LockRelease, LockRenew, Operation, fencing_token
from chain.tx import make_operation
from node.client import RpcClient, RpcError, RpcUnavailable

DEFAULT_WAIT_TIMEOUT_S = 60
log = logging.getLogger("chainlab.locks")


class LockRefused(Exception):
    """The chain (or the node, before spending a fee) refused a lock or register operation: `code` is its reject
    code (`lock-held`, `not-lock-holder`, `lock-not-held`, `stale-fencing-token`, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A granted lease: use `token` with every write to the protected resource; it is valid in blocks below
    `expires_at` (a renewal gives a new Lease with the same token and a later end)."""

    name: str
    token: int
    expires_at: int
    lease_blocks: int
    height: int  # the block that granted or last renewed it


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseEvent:
    """What the keeper saw: `renewed` (a renewal is final; `lease` is the new one) or `lost` (the chain reached
    the lease's end without a final renewal, or a renewal was refused: stop using the token)."""

    kind: str
    lease: Lease
    reason: str = ""


class LockClient:
    """Lock and register operations signed by `key`, sent through the node at `rpc`."""

    def __init__(self, rpc: RpcClient, key: crypto.PrivateKey, *, fee: int | None = None,
                 wait_timeout_s: int = DEFAULT_WAIT_TIMEOUT_S) -> None:
        self.rpc = rpc
        self.key = key
        self.address = crypto.address_to_text(key.address)
        status = rpc.status()
        self.chain_id = str(status["chain_id"])
        min_fee = status.get("min_fee")
        self.fee = fee if fee is not None else (min_fee if type(min_fee) is int and min_fee > 0 else 1)
        self.wait_timeout_s = wait_timeout_s
        self._lock = threading.Lock()  # one operation at a time: each takes the next nonce

    def acquire(self, name: str, lease_blocks: int) -> Lease:
        """Take lock `name` for `lease_blocks` blocks; LockRefused (`lock-held`, ...) when someone holds it."""
        height, index, _ = self._run(LockAcquire(name=name, lease_blocks=lease_blocks))
        return Lease(name=name, token=fencing_token(height, index), expires_at=height + lease_blocks,
                     lease_blocks=lease_blocks, height=height)

    def renew(self, lease: Lease, lease_blocks: int | None = None) -> Lease:
        """Extend `lease` to `lease_blocks` (default: its own) blocks from the renewal's block."""
        blocks = lease.lease_blocks if lease_blocks is None else lease_blocks
        height, _, _ = self._run(LockRenew(name=lease.name, lease_blocks=blocks))
        return Lease(name=lease.name, token=lease.token, expires_at=height + blocks, lease_blocks=blocks,
                     height=height)

    def release(self, lease: Lease) -> None:
        """End `lease` now."""
        self._run(LockRelease(name=lease.name))

    def put(self, key: str, value: bytes, lease: Lease) -> int:
        """Write `value` under `key`, fenced by `lease`'s token; the height of the block that accepted it."""
        height, _, _ = self._run(KvPut(key=key, value=value, lock=lease.name, token=lease.token))
        return height

    def status(self, name: str, at: str = "final") -> dict[str, Any]:
        """The lock as `GET /v1/locks/{name}` reads it."""
        return self.rpc.lock(name, at)

    def _run(self, op: Operation) -> tuple[int, int, dict[str, Any]]:
        """Submit `op`, wait until final, and return (height, index, status); LockRefused on a refusal."""
        with self._lock:
            nonce = int(self.rpc.account(self.address, "latest")["pending_nonce"])
            tx = make_operation(self.key, op, chain_id=self.chain_id, fee=self.fee, nonce=nonce)
            try:
                self.rpc.submit_tx_and_wait(tx.encoded, "final", timeout_s=self.wait_timeout_s)
            except RpcError as exc:
                if exc.http_status == 422:
                    raise LockRefused(exc.code, exc.message) from None
                raise
        status = self.rpc.tx_status(tx.hash)
        result = status.get("result")
        if result != "ok":
            raise LockRefused(str(result), f"{op.kind} refused in block {status.get('height')}")
        return int(status["height"]), int(status["index"]), status


class LeaseKeeper:
    """Keeps `lease` alive in a background thread: renews it when at most `renew_margin_blocks` blocks are left
    and calls `on_event` with each `LeaseEvent` (`renewed`, `lost`). After `lost` it stops; `lost` is also a
    threading.Event to wait on, and `current` the newest lease."""

    def __init__(self, client: LockClient, lease: Lease, on_event: Callable[[LeaseEvent], None], *,
                 renew_margin_blocks: int | None = None, poll_interval_s: float = 0.2) -> None:
        self.client = client
        self.current = lease
        self.on_event = on_event
        self.renew_margin_blocks = (renew_margin_blocks if renew_margin_blocks is not None
                                    else max(1, lease.lease_blocks // 2))
        self.poll_interval_s = poll_interval_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-keeper:{lease.name}", daemon=True)

    def start(self) -> LeaseKeeper:
        """Start renewing."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop renewing (the lease then runs out on its own unless released)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> LeaseKeeper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _height(self) -> int:
        return int(self.client.rpc.status()["height"])

    def _lose(self, reason: str) -> None:
        self.lost.set()
        self.on_event(LeaseEvent(kind="lost", lease=self.current, reason=reason))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                height = self._height()
                if height + 1 >= self.current.expires_at:
                    self._lose(f"the chain reached height {height}; the lease ends at {self.current.expires_at}")
                    return
                if self.current.expires_at - (height + 1) <= self.renew_margin_blocks:
                    self.current = self.client.renew(self.current)
                    self.on_event(LeaseEvent(kind="renewed", lease=self.current))
                    continue
            except LockRefused as exc:
                self._lose(f"renewal refused [{exc.code}]: {exc.message}")
                return
            except (RpcError, RpcUnavailable) as exc:
                # The node cannot be asked: keep trying; the lease's end is judged again at the next answer.
                log.warning("lease keeper for %s: %s", self.current.name, exc)
            self._stop.wait(self.poll_interval_s)
