"""Lock events for `/v1/events` (docs/LOCKS.md): what each connected block's operations did, and the leases the
chain has passed.

Pure: fed the blocks a tip change connected, the tip state and the tip height; returns event dicts. The outcome of
an operation is read from the store (chain.chainstore.ChainStore.tx_outcome); the token and expiry follow from the
operation and its position (chain/locks.py), so nothing else needs keeping. Expiry needs memory: the watch keeps
each lease it saw granted or renewed since the node started until the chain passes its end (an `expired` event:
the holder lost the lock) or it is released. After a reorg the watch re-reads every lease it keeps from the new
tip state, so a lease the reorg undid does not expire, and one it moved expires at its new end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chain import crypto
from chain.block import Block
from chain.locks import KvPut, LockAcquire, LockRelease, LockRenew, decode_lock_record, fencing_token, lock_key
from chain.state import State

_ACTIONS = {LockAcquire: "granted", LockRenew: "renewed", LockRelease: "released"}


class LeaseWatch:
    """Turns connected blocks into `lock` and `kv` events and reports leases the chain has passed."""

    def __init__(self, outcome_of: Callable[[bytes], str | None], *, max_watched: int = 100_000) -> None:
        self._outcome_of = outcome_of
        self._max_watched = max_watched
        self._leases: dict[str, tuple[bytes, int, int]] = {}  # name -> (holder, token, expires_at)

    def on_tip_change(self, connected: Iterable[Block], state: State, height: int, *, final_height: int,
                      reorg: bool) -> list[dict[str, object]]:
        """Events of the `connected` blocks (in order), then `expired` for every kept lease the tip at `height`
        has passed; `state` is the tip state."""
        events: list[dict[str, object]] = []
        for block in connected:
            events.extend(self._block_events(block, state, final_height))
        if reorg:
            self._reconcile(state)
        for name, (holder, token, expires_at) in sorted(self._leases.items()):
            if height >= expires_at:
                del self._leases[name]
                events.append({"type": "lock", "event": "expired", "name": name,
                               "holder": crypto.address_to_text(holder), "token": token, "expires_at": expires_at,
                               "height": height})
        return events

    def _block_events(self, block: Block, state: State, final_height: int) -> list[dict[str, object]]:
        events: list[dict[str, object]] = []
        height = block.height
        for index, tx in enumerate(block.txs):
            op = tx.op
            if op is None:
                continue
            outcome = self._outcome_of(tx.hash) or "unknown"
            common = {"height": height, "index": index, "tx": tx.hash.hex(), "final": height <= final_height,
                      "sender": crypto.address_to_text(tx.recipient)}
            if isinstance(op, KvPut):
                events.append({"type": "kv", "event": "written" if outcome == "ok" else "refused", "key": op.key,
                               "lock": op.lock, "token": op.token, "result": outcome, **common})
                continue
            if outcome != "ok":
                events.append({"type": "lock", "event": "refused", "name": op.name, "op": op.kind,
                               "result": outcome, **common})
                continue
            event: dict[str, object] = {"type": "lock", "event": _ACTIONS[type(op)], "name": op.name, **common}
            if isinstance(op, LockRelease):
                self._leases.pop(op.name, None)
            else:
                token = fencing_token(height, index) if isinstance(op, LockAcquire) else self._token(op.name, state)
                expires_at = height + op.lease_blocks
                event.update(token=token, expires_at=expires_at)
                if token is not None and len(self._leases) < self._max_watched:
                    self._leases[op.name] = (tx.recipient, token, expires_at)
            events.append(event)
        return events

    def _token(self, name: str, state: State) -> int | None:
        kept = self._leases.get(name)
        if kept is not None:
            return kept[1]
        raw = state.get_record(lock_key(name))  # a lease granted before this node started
        return decode_lock_record(raw).token if raw is not None else None

    def _reconcile(self, state: State) -> None:
        for name in list(self._leases):
            raw = state.get_record(lock_key(name))
            if raw is None:
                del self._leases[name]
                continue
            record = decode_lock_record(raw)
            self._leases[name] = (record.holder, record.token, record.expires_at)
