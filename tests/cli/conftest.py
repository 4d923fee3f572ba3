"""Fixtures for the CLI tests: an isolated wallet directory, a fast scrypt cost, and a runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from tests.cli.helpers import FAST_SCRYPT_N, PASSPHRASE, Invoke


@pytest.fixture
def wallet_dir(tmp_path: Path) -> Path:
    """A wallet directory that does not exist yet (the keystore creates it)."""
    return tmp_path / "wallets"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, wallet_dir: Path) -> Iterator[None]:
    # Some tests call the keystore module directly, so the process environment is isolated too.
    monkeypatch.setenv("CHAINLAB_WALLET_DIR", str(wallet_dir))
    monkeypatch.setenv("CHAINLAB_SCRYPT_N", FAST_SCRYPT_N)
    monkeypatch.delenv("CHAINLAB_PASSWORD", raising=False)
    # The default node endpoint must not come from the machine's environment or the user's config file.
    for name in ("CHAINLAB_NODE", "CHAINLAB_ADMIN_TOKEN", "CHAINLAB_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(wallet_dir.parent / "xdg-config"))
    yield


@pytest.fixture
def invoke(wallet_dir: Path) -> Invoke:
    """Run `chainlab ARGS...`.

    `password=` sets $CHAINLAB_PASSWORD (None: unset), `input=` feeds stdin, `env=` adds or overrides variables.
    """

    def run(
        *args: str, password: str | None = PASSPHRASE, input: str | None = None,
        env: dict[str, str | None] | None = None,
    ) -> Result:
        full_env: dict[str, str | None] = {
            "CHAINLAB_WALLET_DIR": str(wallet_dir),
            "CHAINLAB_SCRYPT_N": FAST_SCRYPT_N,
            "CHAINLAB_PASSWORD": password,
            **(env or {}),
        }
        return CliRunner(env=full_env).invoke(main, list(args), input=input, prog_name="chainlab")

    return run
