"""The node image (Dockerfile and its .dockerignore) and the two shell scripts every target runs in it: a node's
start (seed the data directory from the mounted genesis, key and config, then `chainlab node run`) and the
checker's (`testnet attach` to the nodes' RPC URLs, `testnet load`, `testnet check`)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

P2P_PORT = 30301
RPC_PORT = 8545
NODE_UID = 10001  # the image's user; Kubernetes runs the pods as this user and group
DATADIR = "/data/node"
ATTACH_TRIES = 60  # the checker retries attach every 5 s: nodes start with it (about 5 minutes)

DOCKERFILE = f"""\
# The chainlab node image, written by `chainlab testnet render` (docs/DEPLOY.md, "Kubernetes and Compose").
# The build context is the chainlab source tree; the .dockerignore beside this file keeps caches, virtual
# environments and test data out of it (BuildKit reads Dockerfile.dockerignore next to the Dockerfile):
#   docker build -f DIR/Dockerfile -t IMAGE /path/to/chainlab
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid {NODE_UID} chainlab \\
 && useradd --system --uid {NODE_UID} --gid chainlab --home-dir /data --no-create-home --shell /usr/sbin/nologin \\
      chainlab \\
 && install -d -o chainlab -g chainlab -m 0700 /data
COPY . /src
RUN pip install /src && rm -rf /src
USER {NODE_UID}:{NODE_UID}
WORKDIR /data
EXPOSE {P2P_PORT} {RPC_PORT}
# The manifests run the start script below instead; this runs a data directory made by `chainlab node init`.
CMD ["chainlab", "node", "run", "--datadir", "{DATADIR}"]
"""

_IGNORED = (".git", ".venv", "venv", "**/__pycache__", "**/*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache",
            ".hypothesis", ".benchmarks", "build", "dist", "*.egg-info", "testnets", "tests", "benches", "docs")


def dockerignore(context: Path | None, out: Path) -> str:
    """The image's .dockerignore; when the rendered directory lies inside the build context it is left out too:
    it holds the node keys and admin tokens, which must not end up in an image."""
    lines = ["# written by `chainlab testnet render`: what the node image does not need", *_IGNORED]
    if context is not None:
        try:
            inside = out.resolve().relative_to(context.resolve())
        except ValueError:
            inside = None
        if inside is not None and str(inside) != ".":
            lines.append(inside.as_posix())
    return "\n".join(lines) + "\n"


def start_script() -> str:
    """The node container's command (run by /bin/sh -e). CHAINLAB_ORDINAL (else the pod name's `-K` suffix)
    picks node K's key and config in CHAINLAB_KEYS; CHAINLAB_GENESIS is the genesis file. The config holds the
    admin token, so both are copied with umask 077 (0600, as the launcher writes them)."""
    return f"""\
# chainlab node start (written by `chainlab testnet render`): seed the data directory, then run the node
ordinal="${{CHAINLAB_ORDINAL:-${{HOSTNAME##*-}}}}"
name="node${{ordinal}}"
datadir={DATADIR}
umask 077
mkdir -p "$datadir"
cp "$CHAINLAB_KEYS/$name.key" "$datadir/node.key"
cp "$CHAINLAB_KEYS/$name.config.toml" "$datadir/config.toml"
chainlab node init --datadir "$datadir" --genesis "$CHAINLAB_GENESIS" >/dev/null
exec chainlab node run --datadir "$datadir"
"""


def check_script(rpc_urls: Sequence[str], *, load_tps: float, load_duration_s: float,
                 converge_timeout_s: float) -> str:
    """The checker's command (run by /bin/sh -e): attach to the nodes (retrying while they start), load, check.
    CHAINLAB_ADMIN_TOKENS is the `NAME TOKEN` file, CHAINLAB_SEED the seed whose load accounts the genesis funds.
    Exit status: that of `testnet check` (1 when a check fails)."""
    urls = shlex.quote(",".join(rpc_urls))
    return f"""\
# chainlab checker (written by `chainlab testnet render`): attach, load, check
testnet=/tmp/testnet
tries=0
until chainlab testnet attach --dir "$testnet" --rpc {urls} --admin-token-file "$CHAINLAB_ADMIN_TOKENS" \\
    --seed "$CHAINLAB_SEED"; do
  tries=$((tries + 1))
  if [ "$tries" -ge {ATTACH_TRIES} ]; then echo "error: the nodes did not all answer" >&2; exit 1; fi
  sleep 5
done
chainlab testnet status --dir "$testnet"
chainlab testnet load --dir "$testnet" --tps {load_tps:g} --duration {load_duration_s:g}
exec chainlab testnet check --dir "$testnet" --converge-timeout-s {converge_timeout_s:g}
"""


def health_command() -> list[str]:
    """A container health check that needs nothing but the image's Python: GET /v1/status answers 200."""
    probe = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{RPC_PORT}/v1/status', timeout=3)")
    return ["CMD", "python", "-c", probe]

