"""Housekeeping policy (pure): how often a node expires what it holds in memory, and how old things may get.

Both drivers of a node core (node/runtime.py's housekeeping loop and the simulator) run
`node.core.NodeCore.housekeeping` every `HOUSEKEEPING_S` seconds of their monotonic clock, so they import the
interval from here rather than each keeping a copy. The orphan pool's own age limit is `chain.orphans.OrphanLimits`.
"""

from __future__ import annotations

HOUSEKEEPING_S = 5.0  # how often orphans and mempool entries are expired
MEMPOOL_MAX_AGE_S = 3600.0  # a pooled transaction not mined within this is dropped (with its sender's later nonces)
