"""The `chainlab` command: one click group, one module per command family."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

import click

# Command families: the command's name and the module that holds it (as `command`). A module is imported only when
# its command runs (or `--help` lists them all): every `chainlab ...` process skips the imports of the other
# families, which were most of its start-up time (`chainlab wallet --help`: 0.76 s before, 0.10 s after;
# `chainlab testnet --help`: 0.64 s).
_FAMILIES = {
    "wallet": "cli.wallet", "genesis": "cli.genesis", "tx": "cli.tx", "lock": "cli.lock", "kv": "cli.kv",
    "bench": "cli.bench", "demo": "cli.demo", "chain": "cli.chain", "node": "cli.node", "devnet": "cli.devnet",
    "mempool": "cli.mempool", "events": "cli.events", "mine": "cli.mine", "testnet": "cli.testnet",
    "sim": "cli.sim", "check": "cli.check", "trace": "cli.trace", "tour": "cli.tour",
}


class _Families(click.Group):
    """The top-level group, loading each command family's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_FAMILIES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = _FAMILIES.get(cmd_name)
        if module_name is None:
            return None
        command = importlib.import_module(module_name).command
        assert isinstance(command, click.Command) and command.name == cmd_name, module_name
        return command


def _version() -> str:
    try:
        return version("chainlab")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


@click.group(cls=_Families, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "--version", prog_name="chainlab")
def main() -> None:
    """chainlab: a blockchain full node and local-testnet toolkit for studying consensus.

    Make keys with `wallet`, define a network with `genesis`, build and sign transactions with `tx`, and measure
    the node's hot paths with `bench`. Every command that prints data takes --json for scripts.
    """


if __name__ == "__main__":
    main()
