"""`chainlab node init`: the node's default name comes from its data directory."""

from __future__ import annotations

from pathlib import Path

from chain import crypto
from node.config import load_config
from tests.cli.helpers import Invoke, assert_ok
from tests.conftest import key


def test_each_node_is_named_after_its_data_directory(invoke: Invoke, tmp_path: Path) -> None:
    genesis = tmp_path / "genesis.toml"
    assert_ok(invoke("genesis", "new", "--out", str(genesis), "--consensus", "pow", "--validator",
                     crypto.address_to_text(key(7).address)))
    for name in ("node1", "node2"):
        assert_ok(invoke("node", "init", "--datadir", str(tmp_path / name), "--genesis", str(genesis)))
        assert load_config(tmp_path / name).node.name == name
        assert f'name = "{name}"' in (tmp_path / name / "config.toml").read_text()
    assert_ok(invoke("node", "init", "--datadir", str(tmp_path / "node3"), "--genesis", str(genesis),
                     "--name", "alpha"))
    assert load_config(tmp_path / "node3").node.name == "alpha"
