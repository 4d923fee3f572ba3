"""The STATE cell of `testnet status` and the live table: a node catching up says how far it is."""

from __future__ import annotations

from testnet.cells import state_cell


def test_a_syncing_node_shows_its_progress_and_eta() -> None:
    syncing = {"sync": {"height": 400, "target_height": 1000, "blocks_per_s": 120.0, "eta_s": 5.04}}
    assert state_cell("running", syncing) == "syncing 40% (ETA 5s)"
    assert state_cell("running", {"sync": {"height": 1, "target_height": 9, "eta_s": None}}) == "syncing 11%"
    assert state_cell("running", {"sync": None}) == "running"
    assert state_cell("paused", syncing) == "paused"
    assert state_cell("running", None) == "running"
