"""A node's cells as the live table (testnet/live.py) and the dashboard (testnet/dashboard.py) show them: its state
(or its sync progress) and its engine's one-line status."""

from __future__ import annotations

from typing import Any

from consensus.registry import spec_named


def engine_column(consensus: str) -> str:
    """The header of the engine column, as the engine's spec names it (PoW: MINING; others: ROLE)."""
    return spec_named(consensus).status_column


def engine_cell(consensus: str, status: dict[str, Any] | None) -> str:
    """The engine's cell: mining on/off with the reachable hash share (PoW), or the role (primary-backup)."""
    if status is None:
        return "-"
    engine = status.get("engine", {})
    return spec_named(consensus).status_cell(engine if isinstance(engine, dict) else {})


def state_cell(state: str, status: dict[str, Any] | None) -> str:
    """The node's process state, or `syncing 40% (ETA 12s)` while it catches up with its peers."""
    sync = status.get("sync") if status is not None else None
    if state != "running" or not isinstance(sync, dict):
        return state
    try:  # a node's answer, read as it comes: a malformed one shows as the plain state
        target = int(sync.get("target_height") or 0)
        share = 100 * int(sync.get("height") or 0) // target if target > 0 else 100
    except (TypeError, ValueError):
        return state
    eta = sync.get("eta_s")
    return f"syncing {share}%" + (f" (ETA {eta:.0f}s)" if isinstance(eta, int | float) else "")
