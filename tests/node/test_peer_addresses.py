"""Peer addresses as people write them, on real node processes: `host:port` and `ws://host:port` (no path)
connect; a peer that cannot be reached, or that is not a chainlab P2P endpoint, is logged at WARNING and shown
with its state and last error in /v1/status and /v1/peers; a malformed address is refused by `node init` and
`node run` with one line. Every test bounds its time and stops what it started (by pid)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from testnet.cluster import Cluster
from testnet.local import chainlab_command, wait_until
from tests.cli.helpers import assert_one_line_error

pytestmark = pytest.mark.slow


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_host_port_and_pathless_urls_connect_and_an_unreachable_peer_is_shown(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3, mining=False)
    dead = closed_port()
    try:
        cluster.start([0])
        port = int(cluster.nodes[0].p2p_url.rsplit(":", 1)[1].split("/")[0])
        cluster.nodes[1].start(peers=[f"127.0.0.1:{port}"])
        cluster.nodes[2].start(peers=[f"ws://localhost:{port}", f"127.0.0.1:{dead}", f"ws://127.0.0.1:{port}/nope"])
        cluster.wait_connected(1)
        status = cluster.nodes[2].client().status()
        rows = {row["url"]: row for row in status["bootstrap_peers"]}
        assert rows[f"ws://localhost:{port}/p2p"]["state"] == "connected"
        assert rows[f"ws://localhost:{port}/p2p"]["node_id"] == cluster.nodes[0].node_id

        def failed(url: str) -> bool:
            row = {r["url"]: r for r in cluster.nodes[2].client().status()["bootstrap_peers"]}[url]
            return row["state"] == "waiting" and int(row["failures"]) >= 1 and bool(row["last_error"])

        wait_until(lambda: failed(f"ws://127.0.0.1:{dead}/p2p"), 20, "the dead peer's failure in /v1/status")
        wait_until(lambda: failed(f"ws://127.0.0.1:{port}/nope"), 20, "the wrong path's failure in /v1/status")
        rows = {r["url"]: r for r in cluster.nodes[2].client().status()["bootstrap_peers"]}
        assert "HTTP 404" in str(rows[f"ws://127.0.0.1:{port}/nope"]["last_error"])
        log = cluster.nodes[2].log_path.read_text()
        assert f"cannot reach peer ws://127.0.0.1:{dead}/p2p" in log and "WARNING" in log
        # Rate-limited: the dead address is redialed with backoff, but warned about once a minute at most.
        assert log.count(f"cannot reach peer ws://127.0.0.1:{dead}/p2p") == 1
    finally:
        cluster.stop()


def test_malformed_peer_addresses_are_one_line_errors_at_init_and_run(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "net", 1, mining=False)
    genesis = str(cluster.nodes[0].datadir / "genesis.toml")
    runner = CliRunner()
    for bad, needle in (("http://127.0.0.1:30301", "not http://"), ("127.0.0.1", "a port is required")):
        result = runner.invoke(main, ["node", "init", "--datadir", str(tmp_path / "x"), "--genesis", genesis,
                                      "--peer", bad])
        assert_one_line_error(result, bad, needle)
    good = runner.invoke(main, ["node", "init", "--datadir", str(tmp_path / "y"), "--genesis", genesis,
                                "--peer", "127.0.0.1:30301"])
    assert good.exit_code == 0, good.output
    assert 'bootstrap = ["ws://127.0.0.1:30301/p2p"]' in (tmp_path / "y" / "config.toml").read_text()
    # `node run` refuses the same, from the command line and from config.toml, in one line and at once.
    config = tmp_path / "y" / "config.toml"
    config.write_text(config.read_text().replace("ws://127.0.0.1:30301/p2p", "http://127.0.0.1:30301"))
    for extra in ([], ["--peer", "localhost"]):
        if extra:
            config.write_text(config.read_text().replace("http://127.0.0.1:30301", "127.0.0.1:30301"))
        done = subprocess.run([*chainlab_command(), "node", "run", "--datadir", str(tmp_path / "y"), *extra],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("error: ") and ("http://" in done.stderr or "localhost" in done.stderr)
