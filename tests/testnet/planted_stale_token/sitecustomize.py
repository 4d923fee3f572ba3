"""A planted bug for tests/testnet/test_lock_scenario.py: put this directory first on PYTHONPATH (and the project
root after it) and every Python process started with it (the CLI, and the node processes the testnet launches)
runs a register that accepts any token a grant of the lock ever issued, not only the newest: the stale write a
fencing token exists to stop (tests/lockplant.py)."""

from __future__ import annotations

from chain import locks
from tests.lockplant import accept_stale

locks._apply_kv_put = accept_stale
