"""Cluster.create judges the genesis by the engine's own table before it writes anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.genesis import GenesisError
from testnet.cluster import Cluster


def test_a_parameter_of_another_engine_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    root = tmp_path / "net"
    with pytest.raises(GenesisError, match="acks_required"):
        Cluster.create(root, 2, consensus="pow", params={"acks_required": 1})
    assert not any(root.glob("node*"))


def test_a_primary_backup_testnet_waits_for_a_majority_of_its_backups(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", 3, consensus="primary-backup")
    assert cluster.genesis.params["acks_required"] == 2  # not 0: the primary alone would finalize blocks
    given = Cluster.create(tmp_path / "given", 3, consensus="primary-backup", params={"acks_required": 1})
    assert given.genesis.params["acks_required"] == 1
