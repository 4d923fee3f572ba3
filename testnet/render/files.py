"""`chainlab testnet render`: write a network's Kubernetes or Compose files and the node image's Dockerfile into a
directory, secrets 0600 in 0700 directories (as the launcher keeps node keys and configs)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from testnet.render import compose, kubernetes
from testnet.render.image import DOCKERFILE, dockerignore
from testnet.render.network import RenderedNetwork, RenderOptions, check_options, rendered_network
from testnet.render.notes import compose_notes, kubernetes_notes
from testnet.render.yamltext import to_yaml, to_yaml_documents
from testnet.state import TestnetError

ADMIN_TOKENS_FILE = "admin-tokens"  # Kubernetes: for `testnet attach --admin-token-file` from outside the cluster
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


@dataclass
class RenderResult:
    """What was written: every file (relative to the directory) and which of them hold secrets."""

    out: Path
    network: RenderedNetwork
    files: list[str] = field(default_factory=list)
    secret_files: list[str] = field(default_factory=list)


def render(options: RenderOptions) -> RenderResult:
    """Check every option, build the network as `testnet up` would, and write the target's files into
    `options.out`. TestnetError (one line) before anything is written for a bad value."""
    check_options(options)
    out = options.out
    if options.target == "kubernetes":
        network = rendered_network(options, kubernetes.host_of(options.namespace))
    else:
        network = rendered_network(options, compose.host_of)
    public: dict[str, str] = {"Dockerfile": DOCKERFILE, "Dockerfile.dockerignore": dockerignore(options.context, out)}
    private: dict[str, str] = {}
    if options.target == "kubernetes":
        for name, documents in kubernetes.objects(network, options).items():
            text = to_yaml_documents(documents)
            (private if name == "20-secrets.yaml" else public)[f"kubernetes/{name}"] = text
        private[ADMIN_TOKENS_FILE] = network.admin_tokens_text()
        public["README.md"] = kubernetes_notes(network, options)
    else:
        public["compose.yaml"] = to_yaml(compose.compose_file(network, options, out))
        public["genesis.toml"] = network.genesis.to_toml()
        for name, text in compose.secret_files(network).items():
            private[f"{compose.SECRETS_DIR}/{name}"] = text
        public["README.md"] = compose_notes(network, options)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if options.target == "compose":  # a directory of secrets alone: nobody else may even list it
            secrets_dir = out / compose.SECRETS_DIR
            secrets_dir.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
            secrets_dir.chmod(PRIVATE_DIR_MODE)
        for name, text in public.items():
            _write(out / name, text, private=False)
        for name, text in private.items():
            _write(out / name, text, private=True)
    except OSError as exc:
        raise TestnetError(f"cannot write {out}: {exc.strerror or exc}") from None
    return RenderResult(out=out, network=network, files=sorted([*public, *private]), secret_files=sorted(private))


def _write(path: Path, text: str, *, private: bool) -> None:
    """Write `path` atomically; a private file is created 0600: never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    mode = PRIVATE_FILE_MODE if private else 0o644
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), mode)  # O_CREAT keeps the mode of a leftover temporary
        file.write(text)
    os.replace(temporary, path)
