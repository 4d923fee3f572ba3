"""A small local network of real node processes: genesis, data directories, start, stop (tests and the launcher).

`Cluster.create(...)` makes deterministic node keys (so genesis can name the miners/validators), a genesis funding
load accounts, and one data directory per node with config and key; `start()` launches every node (each later node
bootstraps from the earlier ones, so the mesh forms without fixed ports); `stop()` always cleans up by pid.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey, address_to_text
from chain.genesis import Genesis
from consensus.registry import check_genesis, spec_named
from node.config import MiningSection, NodeConfig, NodeSection, P2PSection, RpcSection, write_config
from node.datadir import init_datadir
from node.identity import KEY_FILE
from testnet.local import LocalNode, wait_until


def node_key(seed: str, index: int) -> PrivateKey:
    """Deterministic key of node `index` of the network `seed`."""
    return PrivateKey.from_seed(f"chainlab-node/{seed}/{index}".encode())


def load_key(seed: str, index: int) -> PrivateKey:
    """Deterministic key of load account `index`."""
    return PrivateKey.from_seed(f"chainlab-load/{seed}/{index}".encode())


SINK_ACCOUNTS = 4
TRACE_FILE = "trace.jsonl"  # a traced node's causal trace, in its data directory


def sink_key(seed: str, index: int) -> PrivateKey:
    """Deterministic key of sink account `index`: it receives the load's transfers when the load reads, so that no
    load account's state changes but by its own transfers (nobody sends from a sink)."""
    return PrivateKey.from_seed(f"chainlab-sink/{seed}/{index}".encode())


def key_file_text(key: PrivateKey) -> str:
    """The text of a node's `node.key` file (node/identity.py reads it): the secret as hex and a newline."""
    return key.secret.hex() + "\n"


@dataclass(frozen=True, kw_only=True)
class NetworkPlan:
    """What a network is before anything is written: its genesis, node and load keys, and each node's
    configuration (name, admin token, mining). The launcher writes it into data directories; `testnet render`
    writes the same plan into Kubernetes and Compose files."""

    genesis: Genesis
    keys: list[PrivateKey]
    load_keys: list[PrivateKey]
    configs: list[NodeConfig]

    @classmethod
    def make(
        cls, count: int, *, consensus: str = "pow", seed: str | None = None, params: dict[str, Any] | None = None,
        finality_threshold: int = 6, hashrate_shares: Sequence[float] = (), hashrate_hps: float = 2000.0,
        load_accounts: int = 8, balance: int = 10**12, mining: bool = True, block_reward: int = 50,
        mining_nice: int = 0, chain_id: str | None = None, trace: bool = False,
        funds: Mapping[bytes, int] | None = None,
    ) -> NetworkPlan:
        """The plan of `count` nodes (arguments as Cluster.create); ValueError or GenesisError for bad values."""
        seed = seed or secrets.token_hex(4)
        keys = [node_key(seed, i) for i in range(count)]
        loads = [load_key(seed, i) for i in range(load_accounts)]
        shares = list(hashrate_shares) or [1.0] * count
        if len(shares) != count:
            raise ValueError("give one hash-rate share per node")
        if any(share < 0 for share in shares) or sum(shares) <= 0:
            raise ValueError("hash-rate shares must be non-negative, and at least one positive")
        total_share = sum(shares)
        rates = [hashrate_hps * count * share / total_share for share in shares]
        genesis_params: dict[str, Any] = {"block_interval_s": 1.0}
        genesis_params.update(params or {})
        spec = spec_named(consensus)
        genesis_params, validators = spec.testnet_network([k.address for k in keys],
                                                          [s / total_share for s in shares], sum(rates),
                                                          genesis_params)
        balances = {k.address: balance for k in loads}
        for address, amount in (funds or {}).items():
            if address in balances:
                raise ValueError(f"--fund {address_to_text(address)}: it is a load account, funded already")
            balances[address] = amount
        genesis = Genesis(chain_id=chain_id or f"chainlab-local-{seed}", consensus=consensus, params=genesis_params,
                          balances=balances, validators=validators,
                          finality_threshold=finality_threshold, block_reward=block_reward)
        check_genesis(genesis)  # before anything is written: a parameter of another engine is a one-line error
        configs = [
            NodeConfig(
                node=NodeSection(name=f"node{index}", trace_file=TRACE_FILE if trace else ""),
                p2p=P2PSection(port=0), rpc=RpcSection(port=0, admin_token=secrets.token_hex(16)),
                # a zero share must not mine: hashrate_hps 0 would mean "no cap"
                mining=MiningSection(enabled=mining and (rates[index] > 0 or not spec.seals_with_workers), processes=1,
                                     hashrate_hps=rates[index], nice=mining_nice),
            )
            for index in range(count)
        ]
        return cls(genesis=genesis, keys=keys, load_keys=loads, configs=configs)


@dataclass
class Cluster:
    """Nodes of one local network."""

    root: Path
    genesis: Genesis
    nodes: list[LocalNode]
    keys: list[PrivateKey]
    load_keys: list[PrivateKey] = field(default_factory=list)

    @classmethod
    def create(
        cls, root: Path, count: int, *, consensus: str = "pow", seed: str | None = None,
        params: dict[str, Any] | None = None, finality_threshold: int = 6, hashrate_shares: Sequence[float] = (),
        hashrate_hps: float = 2000.0, load_accounts: int = 8, balance: int = 10**12, mining: bool = True,
        block_reward: int = 50, extra_args: Sequence[str] = (), mining_nice: int = 0, chain_id: str | None = None,
        trace: bool = False, funds: Mapping[bytes, int] | None = None,
    ) -> Cluster:
        """Keys, genesis and data directories for `count` nodes under `root` (nothing is started).

        `hashrate_hps` is the average capped rate per miner; `hashrate_shares` split the total between the nodes (a
        share of 0 makes a node that does not mine and is not a declared miner). `mining_nice` is the nice value of
        the mining workers. With `trace`, every node writes a causal trace to TRACE_FILE in its data directory
        (docs/TRACING.md), which `chainlab testnet trace` collects. `funds` gives more addresses a genesis balance
        (`testnet up --fund`: a wallet of the user's own, for the wallet, tx and lock commands)."""
        plan = NetworkPlan.make(
            count, consensus=consensus, seed=seed, params=params, finality_threshold=finality_threshold,
            hashrate_shares=hashrate_shares, hashrate_hps=hashrate_hps, load_accounts=load_accounts, balance=balance,
            mining=mining, block_reward=block_reward, mining_nice=mining_nice, chain_id=chain_id, trace=trace,
            funds=funds)
        root.mkdir(parents=True, exist_ok=True)
        nodes = []
        for index, (key, config) in enumerate(zip(plan.keys, plan.configs, strict=True)):
            datadir = root / config.node.name
            init_datadir(datadir, plan.genesis)
            write_config(datadir, config)
            key_path = datadir / KEY_FILE
            if not key_path.exists():
                key_path.write_text(key_file_text(key))
                key_path.chmod(0o600)
            nodes.append(LocalNode(name=config.node.name, datadir=datadir, log_path=root / f"node{index}.log",
                                   admin_token=config.rpc.admin_token, extra_args=list(extra_args)))
        return cls(root=root, genesis=plan.genesis, nodes=nodes, keys=plan.keys, load_keys=plan.load_keys)

    def start(self, indices: Sequence[int] | None = None, wait_s: float = 30.0) -> None:
        """Start nodes (all by default), each bootstrapping from every running node before it."""
        for index in indices if indices is not None else range(len(self.nodes)):
            peers = [n.p2p_url for n in self.nodes if n.running() and n.info]
            self.nodes[index].start(peers=peers, wait_s=wait_s)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL); never raises."""
        for node in self.nodes:
            try:
                node.stop()
            except Exception:
                node.kill()

    def wait_connected(self, min_peers: int = 1, timeout_s: float = 20.0) -> None:
        """Until every running node has at least `min_peers` peers."""
        running = [n for n in self.nodes if n.running()]
        wait_until(lambda: all(int(n.client().status()["peers"]) >= min_peers for n in running), timeout_s,
                   f"every node to have {min_peers} peer(s)")

    def heights(self) -> list[int]:
        """Tip height per running node."""
        return [int(n.client().status()["height"]) for n in self.nodes if n.running()]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
