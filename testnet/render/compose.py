"""A Compose file for a rendered network: one service per node on one network, each with its own volume, its own
key and config as file secrets, the genesis as a config, a health check on /v1/status, its RPC published on the
host's loopback (for `testnet attach` from the host), and a one-shot checker service that attaches, loads and
checks once every node is healthy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testnet.render.image import DATADIR, RPC_PORT, check_script, health_command, start_script
from testnet.render.network import RenderedNetwork, RenderOptions

NETWORK = "chainlab"
GENESIS_TARGET = "/etc/chainlab/genesis.toml"
SECRETS_DIR = "secrets"  # beside compose.yaml, mode 0700; its files 0600
ADMIN_TOKENS_SECRET = "admin-tokens"
HOST_RPC_PORT = 18545  # node K's RPC on the host: 127.0.0.1:18545+K
NODE_LIMITS = {"cpus": "1.0", "memory": "1G"}  # as the Kubernetes limits


def host_of(index: int) -> str:
    """Node K's host name on the Compose network: its service name."""
    return f"node{index}"


def escape(text: str) -> str:
    """`text` with Compose's variable interpolation disarmed: `$` is written `$$` (the scripts' own variables)."""
    return text.replace("$", "$$")


def compose_file(network: RenderedNetwork, options: RenderOptions, out: Path) -> dict[str, Any]:
    """The Compose document. File secrets are bind mounts that keep the host file's owner and 0600 mode, so the
    containers run as root (uid 0 in the container, or the user with rootless Docker) to read them."""
    build: dict[str, str] = {}
    if options.context is not None:
        build = {"context": str(options.context.resolve()), "dockerfile": str((out / "Dockerfile").resolve())}
    services: dict[str, Any] = {}
    for node in network.nodes:
        service: dict[str, Any] = {
            "image": options.image,
            **({"build": build} if build else {}),
            "hostname": node.host,
            "user": "0:0",
            "command": ["/bin/sh", "-ec", escape(start_script())],
            "environment": {"CHAINLAB_ORDINAL": str(node.index), "CHAINLAB_KEYS": "/run/secrets",
                            "CHAINLAB_GENESIS": GENESIS_TARGET},
            "configs": [{"source": "genesis", "target": GENESIS_TARGET}],
            "secrets": [{"source": f"{node.name}-key", "target": f"{node.name}.key"},
                        {"source": f"{node.name}-config", "target": f"{node.name}.config.toml"}],
            "volumes": [{"type": "volume", "source": f"{node.name}-data", "target": DATADIR.rsplit("/", 1)[0]}],
            "networks": [NETWORK],
            "ports": [f"127.0.0.1:{HOST_RPC_PORT + node.index}:{RPC_PORT}"],
            "healthcheck": {"test": health_command(), "interval": "5s", "timeout": "3s", "retries": 6,
                            "start_period": "30s"},
            "restart": "unless-stopped",
            "deploy": {"resources": {"limits": NODE_LIMITS}},
        }
        services[node.name] = service
    script = check_script([node.rpc_url for node in network.nodes], load_tps=options.load_tps,
                          load_duration_s=options.load_duration_s, converge_timeout_s=options.converge_timeout_s)
    services["checker"] = {
        "image": options.image,
        **({"build": build} if build else {}),
        "user": "0:0",
        "command": ["/bin/sh", "-ec", escape(script)],
        "environment": {"CHAINLAB_ADMIN_TOKENS": f"/run/secrets/{ADMIN_TOKENS_SECRET}", "CHAINLAB_SEED": network.seed},
        "secrets": [{"source": ADMIN_TOKENS_SECRET, "target": ADMIN_TOKENS_SECRET}],
        "networks": [NETWORK],
        "depends_on": {node.name: {"condition": "service_healthy"} for node in network.nodes},
        "restart": "no",
    }
    secrets: dict[str, Any] = {}
    for node in network.nodes:
        secrets[f"{node.name}-key"] = {"file": f"./{SECRETS_DIR}/{node.name}.key"}
        secrets[f"{node.name}-config"] = {"file": f"./{SECRETS_DIR}/{node.name}.config.toml"}
    secrets[ADMIN_TOKENS_SECRET] = {"file": f"./{SECRETS_DIR}/{ADMIN_TOKENS_SECRET}"}
    return {
        "name": options.namespace,
        "services": services,
        "networks": {NETWORK: {"driver": "bridge"}},
        "volumes": {f"{node.name}-data": {} for node in network.nodes},
        "configs": {"genesis": {"file": "./genesis.toml"}},
        "secrets": secrets,
    }


def secret_files(network: RenderedNetwork) -> dict[str, str]:
    """The files of SECRETS_DIR (each written 0600): node keys, node configs (with their admin tokens), and the
    `NAME TOKEN` file for the checker and for `testnet attach` from the host."""
    files = {}
    for node in network.nodes:
        files[f"{node.name}.key"] = node.key_text
        files[f"{node.name}.config.toml"] = node.config.to_toml()
    files[ADMIN_TOKENS_SECRET] = network.admin_tokens_text()
    return files
