"""P2PConfig and BlockVerdict validate on construction."""

from __future__ import annotations

import pytest

from p2p.config import BlockVerdict, P2PConfig


def test_defaults_are_valid() -> None:
    config = P2PConfig()
    assert config.listen_port == 0 and config.max_message_bytes == 8 * 1024 * 1024
    assert P2PConfig(bootstrap=("ws://127.0.0.1:1/p2p",), advertise_url="ws://node-1:9000/p2p").bootstrap


@pytest.mark.parametrize("kwargs", [
    {"listen_port": 70000},
    {"bootstrap": ["ws://127.0.0.1:1/p2p"]},
    {"bootstrap": ("http://127.0.0.1:1/",)},
    {"advertise_url": "127.0.0.1:1"},
    {"target_peers": 40, "max_peers": 32},
    {"max_message_bytes": 10},
    {"ban_s": 0},
    {"ping_interval_s": float("nan")},
    {"reconnect_min_s": 5.0, "reconnect_max_s": 1.0},
    {"ping_interval_s": 10.0, "peer_timeout_s": 5.0},
])
def test_invalid_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        P2PConfig(**kwargs)  # type: ignore[arg-type]


def test_block_verdict_statuses() -> None:
    assert BlockVerdict(status="orphan", missing_parent=bytes(32)).missing_parent == bytes(32)
    with pytest.raises(ValueError):
        BlockVerdict(status="accepted")
