"""What every target renders from: the network `testnet up` would make for the same options (genesis, node keys,
admin tokens, topology), with each node's configuration rewritten for a container network: listening on all
interfaces on fixed ports, advertising its stable host name, and its topology neighbours as bootstrap peers."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chain.genesis import Genesis, GenesisError
from node.config import NodeConfig
from testnet.cluster import NetworkPlan, key_file_text
from testnet.launcher import UpOptions, network_arguments
from testnet.render.image import P2P_PORT, RPC_PORT
from testnet.state import TestnetError
from testnet.topology import TopologyError, neighbours, topology_edges

TARGETS = ("kubernetes", "compose")
MAX_NODES = 64  # as `testnet up --nodes`
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(kw_only=True)
class RenderOptions:
    """What `testnet render` was asked for."""

    target: str
    out: Path
    network: UpOptions
    force: bool = False
    image: str = "chainlab-node:latest"
    namespace: str = "chainlab"  # Kubernetes namespace; the Compose project name
    context: Path | None = None  # the chainlab source tree: the image's build context
    load_tps: float = 5.0
    load_duration_s: float = 30.0
    converge_timeout_s: float = 60.0


@dataclass(frozen=True, kw_only=True)
class RenderedNode:
    """One node as the manifests run it."""

    index: int
    name: str  # node0, node1, ... as `testnet up` and `testnet attach` name them
    host: str  # its stable DNS name in the container network
    config: NodeConfig  # holds the admin token
    key_text: str  # node.key's contents

    @property
    def rpc_url(self) -> str:
        """Its RPC URL inside the container network."""
        return f"http://{self.host}:{RPC_PORT}"

    @property
    def p2p_url(self) -> str:
        """Its P2P URL inside the container network (what it advertises and its neighbours dial)."""
        return f"ws://{self.host}:{P2P_PORT}/p2p"


@dataclass(frozen=True, kw_only=True)
class RenderedNetwork:
    """The network to render: the same genesis and keys as `testnet up` with the same options and seed."""

    seed: str
    genesis: Genesis
    topology: str
    edges: list[tuple[int, int]]
    nodes: list[RenderedNode] = field(default_factory=list)

    def admin_tokens_text(self) -> str:
        """The `NAME TOKEN` file that `testnet attach --admin-token-file` reads."""
        return "".join(f"{node.name} {node.config.rpc.admin_token}\n" for node in self.nodes)


def check_options(options: RenderOptions) -> None:
    """Every value, before anything is written; TestnetError (one line) naming the option."""
    if options.target not in TARGETS:
        raise TestnetError(f"--target {options.target!r}: choose {' or '.join(TARGETS)}")
    if not 1 <= options.network.nodes <= MAX_NODES:
        raise TestnetError(f"--nodes {options.network.nodes}: must be 1..{MAX_NODES}")
    if not _DNS_LABEL.fullmatch(options.namespace):
        raise TestnetError(f"--namespace {options.namespace!r}: use 1 to 63 lower-case letters, digits and '-', "
                           "starting and ending with a letter or digit (a Kubernetes namespace and Compose project)")
    if not options.image or any(ch.isspace() for ch in options.image):
        raise TestnetError(f"--image {options.image!r}: give an image reference such as chainlab-node:latest")
    for flag, value in (("--load-tps", options.load_tps), ("--load-duration-s", options.load_duration_s),
                        ("--converge-timeout-s", options.converge_timeout_s)):
        if not value > 0:
            raise TestnetError(f"{flag} {value:g}: must be above 0")
    if options.context is not None and not (options.context / "pyproject.toml").is_file():
        raise TestnetError(f"--context {options.context}: not the chainlab source tree (no pyproject.toml)")
    out = options.out
    if out.exists() and not out.is_dir():
        raise TestnetError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not options.force:
        raise TestnetError(f"--out {out} is not empty; choose an empty or new directory, or --force to overwrite "
                           "the rendered files in it")


def rendered_network(options: RenderOptions, host_of: Callable[[int], str]) -> RenderedNetwork:
    """The network of `options` with node K reachable at `host_of(K)`. TestnetError for a value the launcher or
    the engine refuses (the same messages as `testnet up`)."""
    seed, arguments = network_arguments(options.network)
    try:
        plan = NetworkPlan.make(options.network.nodes, **arguments)
    except (ValueError, GenesisError) as exc:
        raise TestnetError(f"cannot create the testnet: {exc}") from None
    try:
        edges = sorted(topology_edges(options.network.topology, options.network.nodes,
                                      random.Random(f"{seed}/topology")))
    except TopologyError as exc:
        raise TestnetError(str(exc)) from None
    count = options.network.nodes
    full = options.network.topology == "full"
    nodes = []
    for index, (key, config) in enumerate(zip(plan.keys, plan.configs, strict=True)):
        peers = [f"ws://{host_of(n)}:{P2P_PORT}/p2p" for n in neighbours(edges, index)]
        cluster_config = config.with_overrides({
            "p2p.host": "0.0.0.0", "p2p.port": P2P_PORT, "p2p.advertise_url": f"ws://{host_of(index)}:{P2P_PORT}/p2p",
            "p2p.bootstrap": peers,
            # as the launcher: room for every node, and only bootstrap peers dialed unless the topology is full
            "p2p.max_peers": max(32, count + 4 + 8), "p2p.target_peers": count - 1 if full else 0,
            # the RPC answers the probes, the checker and `testnet attach`; its admin routes need the token
            "rpc.host": "0.0.0.0", "rpc.port": RPC_PORT,
        })
        nodes.append(RenderedNode(index=index, name=config.node.name, host=host_of(index), config=cluster_config,
                                  key_text=key_file_text(key)))
    return RenderedNetwork(seed=seed, genesis=plan.genesis, topology=options.network.topology, edges=edges,
                           nodes=nodes)
