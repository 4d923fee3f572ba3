"""node/config.py: config.toml round trip, and every bad value refused with a ConfigError naming file and key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from node.config import ConfigError, NodeConfig, load_config, write_config


def test_round_trip_and_overrides(tmp_path: Path) -> None:
    config = NodeConfig()
    config = replace(config, mining=replace(config.mining, processes=2, hashrate_hps=500.0),
                     validation=replace(config.validation, workers=2))
    write_config(tmp_path, config)
    assert load_config(tmp_path) == config
    overridden = config.with_overrides({"mining.enabled": False, "validation.workers": None})
    assert overridden.mining.enabled is False and overridden.validation.workers == 2


@pytest.mark.parametrize(("text", "needle"), [
    ("[mining]\nprocesses = 0\n", "processes must be at least 1"),
    ("[validation]\nworkers = 0\n", "workers must be at least 1"),
    ("[validation]\nworkers = 100000\n", "[validation] workers must be at most 64"),  # as --workers allows
    ("[mining]\nprocesses = -1\n", "non-negative integer"),
    ("[mining]\nenabled = 1\n", "true or false"),
    ("[minig]\nenabled = true\n", "unknown section [minig]"),
    ("[mining]\nthreads = 2\n", "unknown key 'threads'"),
    ("[node]\nlog_format = 'xml'\n", "log_format must be text or json"),
    ("[node\n", "config.toml"),
])
def test_bad_values_are_refused_with_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert needle in str(info.value) and "config.toml" in str(info.value)


def test_a_nodes_default_name_is_its_data_directory(tmp_path: Path) -> None:
    from node.config import load_config as load

    (tmp_path / "node1").mkdir()
    assert load(tmp_path / "node1").node.name == "node1"  # not "node" for every node of a network
    write_config(tmp_path / "node1", load(tmp_path / "node1"))
    assert load(tmp_path / "node1").node.name == "node1"
    (tmp_path / "node2").mkdir()
    (tmp_path / "node2" / "config.toml").write_text("[rpc]\nport = 1\n")
    assert load(tmp_path / "node2").node.name == "node2"
    (tmp_path / "node3").mkdir()
    (tmp_path / "node3" / "config.toml").write_text('[node]\nname = "alpha"\n')
    assert load(tmp_path / "node3").node.name == "alpha"
