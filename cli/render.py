"""`chainlab testnet render`: Kubernetes or Compose files and a node image for the network `testnet up` (or a
scenario's [network]) describes (docs/DEPLOY.md, "Kubernetes and Compose")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.common import emit_json
from cli.testnet_args import genesis_params, shares, user_errors
from testnet.launcher import UpOptions
from testnet.render.files import render
from testnet.render.network import RenderOptions
from testnet.scenario import load_manifest
from testnet.state import TestnetError

DEFAULT_NODES = 4
_NETWORK_FLAGS = ("--nodes", "--consensus", "--topology", "--hashrate-shares", "--hashrate-hps", "--genesis-param",
                  "--load-accounts")


def _number(text: str | None, flag: str, *, integer: bool = False) -> float | None:
    """A number option, parsed here so that a bad one is a one-line error like every other value."""
    if text is None:
        return None
    try:
        return int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise TestnetError(f"{flag} {text!r}: must be {kind}") from None


def source_tree() -> Path | None:
    """The chainlab source tree this command runs from (the image's build context), if it runs from one."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "testnet").is_dir() else None


def _network(manifest: Path | None, given: dict[str, Any], seed: str | None) -> tuple[UpOptions, dict[str, float]]:
    """The network options, from the flags or from a scenario manifest's [network] (and its [load] for the
    checker's rate); a flag of the network next to --manifest is refused (which would win?)."""
    if manifest is None:
        nodes = _number(given["nodes"], "--nodes", integer=True)
        options = UpOptions(
            nodes=int(nodes) if nodes is not None else DEFAULT_NODES, consensus=given["consensus"] or "pow",
            topology=given["topology"] or "full", hashrate_shares=shares(given["hashrate_shares"]),
            hashrate_hps=_number(given["hashrate_hps"], "--hashrate-hps"),
            genesis_params=genesis_params(given["genesis_params"]), seed=seed,
            load_accounts=int(_number(given["load_accounts"], "--load-accounts", integer=True) or 256))
        return options, {}
    clashing = [flag for flag, key in zip(_NETWORK_FLAGS, given, strict=True) if given[key]]
    if clashing:
        raise TestnetError(f"--manifest gives the network; drop {', '.join(clashing)}")
    scenario = load_manifest(manifest)
    network = scenario.network
    if seed is None and scenario.seed is not None:
        seed = f"s{scenario.seed}"  # as `testnet run` names the seed of a run of this manifest
    options = UpOptions(nodes=network.nodes, consensus=network.consensus, topology=network.topology,
                        hashrate_shares=network.hashrate_shares, hashrate_hps=network.hashrate_hps,
                        genesis_params=dict(network.params), seed=seed, load_accounts=network.load_accounts)
    load = {"load_tps": scenario.load.tps, "load_duration_s": scenario.load.duration_s} if scenario.load else {}
    return options, load


@click.command(name="render")
@click.option("--target", required=True, metavar="kubernetes|compose", help="what to write")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="directory to write (new or empty)")
@click.option("--force", is_flag=True, help="write into a non-empty --out, replacing the rendered files")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="take the network from a scenario manifest's [network] (and the checker's load from [load])")
@click.option("--nodes", metavar="N", help=f"number of nodes, 1..64 [default: {DEFAULT_NODES}]")
@click.option("--consensus", metavar="ENGINE", help="pow | primary-backup | round-robin | raft | pbft [default: pow]")
@click.option("--topology", metavar="KIND", help="full | line | ring | random: who bootstraps from whom "
                                                "[default: full]")
@click.option("--hashrate-shares", metavar="S0,S1,...", help="relative hash power per node (PoW)")
@click.option("--hashrate-hps", metavar="HPS", help="total capped hash rate [default: 4000 per miner]")
@click.option("--genesis-param", "genesis_params", multiple=True, metavar="KEY=VALUE",
              help="genesis parameter, as `testnet up` (repeatable)")
@click.option("--seed", help="seed of the node and load keys, as `testnet up --seed` (default: random)")
@click.option("--load-accounts", metavar="N", help="funded load accounts in genesis [default: 256]")
@click.option("--image", default="chainlab-node:latest", show_default=True, help="the node image's reference")
@click.option("--namespace", default="chainlab", show_default=True,
              help="Kubernetes namespace, Compose project name")
@click.option("--context", type=click.Path(file_okay=False, path_type=Path),
              help="the chainlab source tree to build the image from [default: the one this command runs from]")
@click.option("--load-tps", metavar="TPS", help="the checker's load rate [default: 5, or the manifest's]")
@click.option("--load-duration-s", metavar="S", help="the checker's load duration [default: 30, or the manifest's]")
@click.option("--json", "as_json", is_flag=True, help="print what was written as JSON")
def command(target: str, out: Path, force: bool, manifest: Path | None, nodes: str | None, consensus: str | None,
            topology: str | None, hashrate_shares: str | None, hashrate_hps: str | None,
            genesis_params: tuple[str, ...], seed: str | None, load_accounts: str | None, image: str, namespace: str,
            context: Path | None, load_tps: str | None, load_duration_s: str | None, as_json: bool) -> None:
    """Write Kubernetes objects (--target kubernetes) or a Compose file (--target compose) for the network
    `testnet up` would start with the same options and seed (same genesis, same node keys), a Dockerfile for the
    node image, and a README.md saying how to build, apply, attach and check. Secrets are written 0600."""
    @user_errors
    def run() -> None:
        given = {"nodes": nodes, "consensus": consensus, "topology": topology, "hashrate_shares": hashrate_shares,
                 "hashrate_hps": hashrate_hps, "genesis_params": genesis_params, "load_accounts": load_accounts}
        network, load = _network(manifest, given, seed)
        tps = _number(load_tps, "--load-tps")
        duration = _number(load_duration_s, "--load-duration-s")
        options = RenderOptions(
            target=target, out=out, network=network, force=force, image=image, namespace=namespace,
            context=context if context is not None else source_tree(),
            load_tps=tps if tps is not None else load.get("load_tps", 5.0),
            load_duration_s=duration if duration is not None else load.get("load_duration_s", 30.0))
        result = render(options)
        if as_json:
            emit_json({"out": str(result.out), "target": target, "seed": result.network.seed,
                       "chain_id": result.network.genesis.chain_id, "genesis": result.network.genesis.hash.hex(),
                       "files": result.files, "secret_files": result.secret_files})
            return
        click.echo(str(result.out))
        click.echo(f"rendered {len(result.network.nodes)} {result.network.genesis.consensus} nodes for {target} "
                   f"(chain {result.network.genesis.chain_id}, seed {result.network.seed}): "
                   f"{len(result.files)} files, {len(result.secret_files)} of them secret (0600); "
                   f"see {result.out / 'README.md'}", err=True)

    run()
