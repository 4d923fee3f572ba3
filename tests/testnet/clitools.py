"""The `chainlab testnet` CLI as the tests call it: in process, never a traceback, one-line errors."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import main


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
