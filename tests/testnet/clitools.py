"""The `chainlab testnet` CLI as the tests call it: in process, never a traceback, one-line errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli.main import main
from testnet.state import NodeRecord, Testnet, save_testnet


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`chainlab testnet ARGS...`: (exit code, stdout, stderr); fails the test on a traceback."""
    result = CliRunner().invoke(main, ["testnet", *args], env=env)
    assert "Traceback" not in result.output + result.stderr, result.output + result.stderr
    return result.exit_code, result.stdout, result.stderr


def one_error(stderr: str) -> str:
    """The one `error: ...` line a refused command prints (fails the test on anything else)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def stopped_testnet(directory: Path, *, consensus: str = "pow", count: int = 3) -> Testnet:
    """A saved testnet record of `count` fully connected nodes that never ran (no process, no store)."""
    nodes = [NodeRecord(index=i, name=f"node{i}", datadir=str(directory / f"node{i}"),
                        log=str(directory / f"n{i}.log"), admin_token="t", node_id=f"{i:02x}" * 33, state="stopped")
             for i in range(count)]
    testnet = Testnet(dir=str(directory), seed="s", chain_id="c", genesis="g", consensus=consensus, topology="full",
                      edges=[[a, b] for a in range(count) for b in range(a + 1, count)], nodes=nodes, load_accounts=8,
                      block_interval_s=1.0, finality_threshold=3)
    save_testnet(testnet)
    return testnet
