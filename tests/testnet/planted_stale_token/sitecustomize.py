"""A planted bug for tests/testnet/test_lock_scenario.py: put this directory first on PYTHONPATH and every Python
process started with it (the CLI, and the node processes the testnet launches) runs a register that accepts any
token a grant of the lock ever issued, not only the newest: the stale write a fencing token exists to stop."""

from __future__ import annotations

from collections.abc import Mapping

from chain import locks

_honest_kv_put = locks._apply_kv_put


def _accept_stale(read: locks.RecordReader, op: locks.KvPut, sender: bytes, height: int,
                  ) -> tuple[str, Mapping[bytes, bytes], int, int]:
    raw = read(locks.lock_key(op.lock))
    if raw is not None and op.token < locks.decode_lock_record(raw).token:
        written = locks.KvRecord(value=op.value, lock=op.lock, token=op.token, height=height)
        return locks.OK, {locks.kv_key(op.key): written.encode()}, op.token, 0
    return _honest_kv_put(read, op, sender, height)


locks._apply_kv_put = _accept_stale
