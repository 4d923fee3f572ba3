"""The `chainlab` command: one click group, one module per command family."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

import click

# Command family modules; each exposes a click command or group named `command`.
_FAMILIES = ("cli.wallet", "cli.genesis", "cli.tx", "cli.lock", "cli.kv",
             "cli.bench", "cli.demo", "cli.chain", "cli.node", "cli.devnet",
             "cli.mempool", "cli.events", "cli.mine",
             "cli.testnet", "cli.sim", "cli.check", "cli.trace", "cli.tour")


def _version() -> str:
    try:
        return version("chainlab")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0+unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "--version", prog_name="chainlab")
def main() -> None:
    """chainlab: a blockchain full node and local-testnet toolkit for studying consensus.

    Make keys with `wallet`, define a network with `genesis`, build and sign transactions with `tx`, and measure
    the node's hot paths with `bench`. Every command that prints data takes --json for scripts.
    """


for _module_name in _FAMILIES:
    try:
        _module = importlib.import_module(_module_name)
    except ModuleNotFoundError as exc:
        if exc.name != _module_name:  # a real import error inside the module: surface it
            raise
        continue
    main.add_command(_module.command)


if __name__ == "__main__":
    main()
