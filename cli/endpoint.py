"""Which node a command talks to when the user does not say, as bitcoin-cli finds its bitcoind.

The RPC URL comes from, in order: the `--node` option, `$CHAINLAB_NODE`, the user config file (`node = "..."`),
then the devnet's address (`chainlab devnet` listens on 127.0.0.1:8645 by default). The admin token comes from
`--admin-token`, `$CHAINLAB_ADMIN_TOKEN`, the config file (`admin_token = "..."`), then the devnet's own
config.toml in `./.devnet` when the URL is the devnet's. The config file is `$CHAINLAB_CONFIG`, else
`$XDG_CONFIG_HOME/chainlab/config.toml`, else `~/.config/chainlab/config.toml`; a missing file is no error, a
malformed one is an `EndpointConfigError` naming the file and the problem.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from node.client import normalize_base_url

NODE_ENV = "CHAINLAB_NODE"
ADMIN_TOKEN_ENV = "CHAINLAB_ADMIN_TOKEN"
CONFIG_ENV = "CHAINLAB_CONFIG"
DEVNET_URL = "http://127.0.0.1:8645"
DEVNET_DIR = Path(".devnet")
_KEYS = frozenset({"node", "admin_token"})


class EndpointConfigError(Exception):
    """The user config file cannot be read or holds a bad value (one line: the file and what is wrong)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """A resolved node: its RPC URL, the admin token (None: none known), and where the URL came from
    (`--node`, `$CHAINLAB_NODE`, the config file's path, or `devnet default`)."""

    url: str
    admin_token: str | None
    source: str


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The user config file's path (it need not exist)."""
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]).expanduser() if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "chainlab" / "config.toml"


def load_user_config(path: Path) -> dict[str, str]:
    """The config file's `node` and `admin_token` (absent keys left out); {} when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise EndpointConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EndpointConfigError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise EndpointConfigError(f"{path}: unknown key {unknown[0]!r} (known: admin_token, node)")
    values: dict[str, str] = {}
    for name, value in document.items():
        if not isinstance(value, str) or not value.strip():
            raise EndpointConfigError(f"{path}: {name} must be a non-empty string")
        values[name] = value.strip()
    if "node" in values:
        try:
            values["node"] = normalize_base_url(values["node"])
        except ValueError as exc:
            raise EndpointConfigError(f"{path}: node: {exc}") from None
    return values


def _devnet_token(devnet_dir: Path) -> str | None:
    """The admin token of the devnet in `devnet_dir`, if it has one (best effort: a devnet may have none)."""
    try:
        document = tomllib.loads((devnet_dir / "config.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    rpc = document.get("rpc")
    token = rpc.get("admin_token") if isinstance(rpc, dict) else None
    return token.strip() if isinstance(token, str) and token.strip() else None


def resolve_endpoint(
    node_option: str | None, token_option: str | None = None, *, want_token: bool = False,
    environ: Mapping[str, str] | None = None, devnet_dir: Path = DEVNET_DIR,
) -> Endpoint:
    """The node to talk to, in the order of the module docstring; the admin token is looked up only when
    `want_token` (else it is `token_option` or None). ValueError for a malformed URL given by option or
    environment; EndpointConfigError for a bad config file (read only when it is needed)."""
    env = os.environ if environ is None else environ
    token = token_option or (env.get(ADMIN_TOKEN_ENV) if want_token else None) or None
    if node_option:
        url, source = normalize_base_url(node_option), "--node"
    elif env.get(NODE_ENV):
        url, source = normalize_base_url(env[NODE_ENV]), f"${NODE_ENV}"
    else:
        path = config_path(env)
        config = load_user_config(path)
        url, source = config.get("node", ""), str(path)
        if want_token:
            token = token or config.get("admin_token")
        if not url:
            url, source = DEVNET_URL, "devnet default"
    if token is None and want_token:
        path = config_path(env)
        if source != str(path):
            token = load_user_config(path).get("admin_token")
    if token is None and want_token and url == DEVNET_URL:
        token = _devnet_token(devnet_dir)
    return Endpoint(url=url, admin_token=token, source=source)
