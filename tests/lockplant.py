"""The planted register bug every lock test uses: a `kv-put` rule that accepts any token a grant of the lock ever
issued, not only the newest (the stale write a fencing token exists to stop). Tests patch it in with
`monkeypatch.setattr(chain.locks, "_apply_kv_put", accept_stale)`; the scenario test's sitecustomize installs it in
every process it starts."""

from __future__ import annotations

from collections.abc import Mapping

from chain import locks

HONEST_KV_PUT = locks._apply_kv_put


def accept_stale(read: locks.RecordReader, op: locks.KvPut, sender: bytes, height: int,
                 ) -> tuple[str, Mapping[bytes, bytes], int, int]:
    """The planted rule: a stale token (older than the lock's newest grant) is written; everything else as honest."""
    raw = read(locks.lock_key(op.lock))
    if raw is not None and op.token < locks.decode_lock_record(raw).token:
        written = locks.KvRecord(value=op.value, lock=op.lock, token=op.token, height=height)
        return locks.OK, {locks.kv_key(op.key): written.encode()}, op.token, 0
    return HONEST_KV_PUT(read, op, sender, height)
