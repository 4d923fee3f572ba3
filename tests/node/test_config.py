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
    ("[p2p]\nmax_connections = 0\n", "[p2p] max_connections must be a positive integer"),
    ("[rpc]\nmax_connections = 10\nmax_connections_per_address = 20\n",
     "[rpc] max_connections_per_address must not exceed max_connections"),
    ("[rpc]\nheader_timeout_s = 0\n", "[rpc] header_timeout_s must be a positive number"),
    ("[p2p]\nidle_timeout_s = -1\n", "non-negative number"),
])
def test_bad_values_are_refused_with_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert needle in str(info.value) and "config.toml" in str(info.value)


@pytest.mark.parametrize(("given", "url"), [
    ("127.0.0.1:30301", "ws://127.0.0.1:30301/p2p"),
    ("localhost:30301", "ws://localhost:30301/p2p"),
    ("ws://127.0.0.1:30301", "ws://127.0.0.1:30301/p2p"),
    ("ws://127.0.0.1:30301/", "ws://127.0.0.1:30301/p2p"),
    ("ws://127.0.0.1:30301/p2p", "ws://127.0.0.1:30301/p2p"),
    ("wss://node.example:443/chain/p2p", "wss://node.example:443/chain/p2p"),
    ("WS://[::1]:30301", "ws://[::1]:30301/p2p"),
])
def test_peer_addresses_as_people_write_them(tmp_path: Path, given: str, url: str) -> None:
    (tmp_path / "config.toml").write_text(f'[p2p]\nbootstrap = ["{given}"]\n', encoding="utf-8")
    assert load_config(tmp_path).p2p.bootstrap == (url,)
    assert NodeConfig().with_overrides({"p2p.bootstrap": [given, url]}).p2p.bootstrap == (url,)  # one entry


@pytest.mark.parametrize(("given", "needle"), [
    ("http://127.0.0.1:30301", "not http://"),
    ("127.0.0.1", "a port is required"),
    ("ws://127.0.0.1", "a port is required"),
    ("127.0.0.1:0", "port must be a number in 1..65535"),
    ("127.0.0.1:70000", "port must be a number in 1..65535"),
    ("127.0.0.1:p2p", "port must be a number in 1..65535"),
    ("ws://127.0.0.1:30301/p2p?x=1", "expected host:port"),
    ("", "empty"),
])
def test_bad_peer_addresses_are_refused_naming_the_entry(tmp_path: Path, given: str, needle: str) -> None:
    (tmp_path / "config.toml").write_text(f'[p2p]\nbootstrap = ["{given}"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert needle in str(info.value) and "config.toml" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="command line"):
        NodeConfig().with_overrides({"p2p.bootstrap": [given]})


def test_socket_limits_have_defaults_that_fit_the_projects_own_clients(tmp_path: Path) -> None:
    """bench rpc/consensus keep 64+ keep-alive clients and the load generator up to 256 on 127.0.0.1; a local
    testnet puts every node's peers on 127.0.0.1 (max_peers 32 each)."""
    config = load_config(tmp_path)
    rpc, p2p = config.rpc.socket_limits(), config.p2p.socket_limits()
    assert rpc.max_connections_per_address >= 256 + 64 and p2p.max_connections_per_address >= 2 * config.p2p.max_peers
    assert rpc.idle_timeout_s > 15 and rpc.header_timeout_s >= 5  # aiohttp clients keep idle connections 15 s
    (tmp_path / "config.toml").write_text("[rpc]\nmax_connections_per_address = 8\nheader_timeout_s = 2.5\n")
    assert load_config(tmp_path).rpc.socket_limits().max_connections_per_address == 8
    assert load_config(tmp_path).rpc.header_timeout_s == 2.5


def test_config_holds_the_admin_token_so_only_its_owner_reads_it(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("")  # an older file, world-readable
    (tmp_path / "config.toml").chmod(0o644)
    (tmp_path / "config.tmp").write_text("")  # a leftover temporary keeps its mode through O_CREAT
    (tmp_path / "config.tmp").chmod(0o644)
    path = write_config(tmp_path, NodeConfig())
    assert path.stat().st_mode & 0o777 == 0o600


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
