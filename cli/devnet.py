"""`chainlab devnet`: a single-node PoW network in the foreground, mining, with a line per block."""

from __future__ import annotations

import asyncio
import errno
import secrets
from pathlib import Path

import click

from chain.crypto import PrivateKey, address_to_text
from chain.genesis import Genesis
from cli.common import fail, started_line
from consensus.pow.spec import initial_target_for
from node.config import MiningSection, NodeConfig, NodeSection, RpcSection, write_config
from node.datadir import DatadirError, init_datadir
from node.identity import KEY_FILE, load_or_create_key

DEV_SEED = b"chainlab-devnet/dev-account"
DEV_SECRET_FILE = "dev-account.secret"
# Regtest-like: blocks on demand take ~1,000 hashes, and the difficulty never retargets (blocks mined back to back
# would otherwise quadruple it every window).
ON_DEMAND_HASHES_PER_BLOCK = 1_000.0
NEVER_RETARGET_BLOCKS = 1 << 62


def _genesis_params(block_interval_s: float, hashrate_hps: float, mine_on_demand: bool) -> dict[str, object]:
    if mine_on_demand:
        return {"block_interval_s": block_interval_s, "retarget_window": NEVER_RETARGET_BLOCKS,
                "initial_target": initial_target_for(ON_DEMAND_HASHES_PER_BLOCK, 1.0)}
    return {"block_interval_s": block_interval_s, "initial_target": initial_target_for(hashrate_hps, block_interval_s)}


@click.command(name="devnet")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path(".devnet"),
              show_default=True, help="data directory of the devnet node (kept between runs)")
@click.option("--block-interval-s", type=click.FloatRange(0.1, 600), default=2.0, show_default=True)
@click.option("--hashrate-hps", type=click.FloatRange(100), default=20_000.0, show_default=True,
              help="mining speed cap; the genesis difficulty is set for it")
@click.option("--rpc-port", type=click.IntRange(0, 65535), default=8645, show_default=True)
@click.option("--p2p-port", type=click.IntRange(0, 65535), default=0, show_default=True)
@click.option("--fresh", is_flag=True, help="delete the directory first and start a new chain")
@click.option("--mine-on-demand", is_flag=True,
              help="regtest style: the node mines nothing by itself; `chainlab mine N` makes N blocks now (a new "
              "chain made with it has an easy, fixed difficulty)")
@click.option("--json", "as_json", is_flag=True,
              help="print one JSON line (urls, chain id, data dir, dev account) on stdout once the node serves")
def command(directory: Path, block_interval_s: float, hashrate_hps: float, rpc_port: int, p2p_port: int,
            fresh: bool, mine_on_demand: bool, as_json: bool) -> None:
    """Run a one-node PoW devnet in the foreground until Ctrl-C: it mines a block every ~BLOCK_INTERVAL_S and
    logs a line per block. A dev account (its key is derived from a public seed: never use it for real funds) is
    funded in genesis (its secret is in DIR/dev-account.secret); the RPC listens on 127.0.0.1:RPC_PORT for
    `chainlab tx send`, `wallet balance`, curl. With --mine-on-demand nothing is mined until `chainlab mine N`
    asks (a new chain then gets an easy initial target and no retargeting, as Bitcoin's regtest)."""
    import shutil

    from node.logs import setup_logging
    from node.runtime import Node

    if fresh and directory.exists():
        shutil.rmtree(directory)
    dev = PrivateKey.from_seed(DEV_SEED)
    try:
        if not (directory / "genesis.toml").exists():
            directory.mkdir(parents=True, exist_ok=True)
            miner = load_or_create_key(directory)
            genesis = Genesis(
                chain_id="chainlab-devnet", consensus="pow", finality_threshold=3,
                balances={dev.address: 10**15}, validators={miner.address: 1},
                params=_genesis_params(block_interval_s, hashrate_hps, mine_on_demand),
            )
            init_datadir(directory, genesis)
            config = NodeConfig(node=NodeSection(name="devnet"),
                                rpc=RpcSection(port=rpc_port, admin_token=secrets.token_hex(16)),
                                mining=MiningSection(enabled=True, processes=1, hashrate_hps=hashrate_hps))
            write_config(directory, config)
            secret_path = directory / DEV_SECRET_FILE
            secret_path.write_text(dev.secret.hex() + "\n", encoding="ascii")
            secret_path.chmod(0o600)
        elif not (directory / KEY_FILE).exists():
            fail(f"{directory} has a genesis but no node key; use --fresh to start over")
    except (DatadirError, OSError) as exc:
        fail(str(exc))
    from node.config import load_config

    config = load_config(directory)
    if not config.rpc.admin_token:  # a devnet made before devnets had one: `mine` and `node peers` need it
        config = config.with_overrides({"rpc.admin_token": secrets.token_hex(16)})
        write_config(directory, config)
    config = config.with_overrides({"rpc.port": rpc_port, "p2p.port": p2p_port})
    if mine_on_demand:
        config = config.with_overrides({"mining.enabled": False})
    setup_logging("text", "info", "devnet")

    async def main() -> None:
        node = Node(directory, config)
        node.install_signal_handlers()
        try:
            await node.start()
        except BaseException:
            await node.stop()
            raise
        rpc_url = node.rpc.url if node.rpc is not None else f"http://127.0.0.1:{config.rpc.port}"
        if as_json:
            click.echo(started_line(node, directory))
        else:  # only now: the URLs are the ports really listened on, and a port in use never prints them
            click.echo(f"devnet in {directory}: RPC {rpc_url}, explorer {rpc_url}/explorer/, dev account "
                       f"{address_to_text(dev.address)} (import it: chainlab wallet import dev --secret-file "
                       f"{directory / DEV_SECRET_FILE}); Ctrl-C stops", err=True)
        await node.wait_stopped()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except DatadirError as exc:
        fail(f"devnet: {exc}")
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"devnet: {exc.strerror or 'address already in use'}; choose another --rpc-port (now {rpc_port}) "
                 f"or --p2p-port (now {p2p_port}), or 0 for a free one")
        fail(f"devnet: {exc.strerror or exc}")
