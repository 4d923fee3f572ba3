"""Node configuration: `config.toml` in the data directory, overridden by command-line options.

```toml
[node]
name = "node0"
log_format = "text"          # text | json
log_level = "info"
trace_file = ""              # causal trace, e.g. "trace.jsonl" (relative to the data directory); empty: off

[p2p]
host = "127.0.0.1"
port = 0                     # 0: the OS picks a free port (the bound port is logged and in /v1/status)
bootstrap = ["ws://127.0.0.1:30301/p2p"]   # or "127.0.0.1:30301" (the /p2p path is the default)
target_peers = 8
max_peers = 32
max_connections = 256        # TCP connections to the P2P port, counted before the websocket upgrade
max_connections_per_address = 128
header_timeout_s = 10.0      # a connection's first request headers must be complete by then
idle_timeout_s = 30.0        # a connection with no request in progress is closed after this long

[rpc]
host = "127.0.0.1"
port = 0
admin_token = ""             # empty: admin routes are disabled
max_connections = 1024       # the same four limits on the RPC port (docs/P2P.md, "Half-open sockets")
max_connections_per_address = 512
header_timeout_s = 10.0
idle_timeout_s = 30.0

[mining]
enabled = true
processes = 1
hashrate_hps = 0             # 0: no cap
nice = 0
startup_grace_s = 30         # with bootstrap peers, no mining until one is reached and caught up (or this long)

[validation]
workers = 1                  # processes checking signatures (1: in the node process)
```
Every value has a unit in its name where it has one; unknown sections or keys are errors naming the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from node.rpc import RPC_SOCKET_LIMITS
from p2p.config import P2P_SOCKET_LIMITS
from p2p.listener import SocketLimits
from p2p.protocol.messages import normalize_peer_address

CONFIG_FILE = "config.toml"
MAX_PROCESSES = 64  # mining processes and signature workers, as the command-line options allow


class ConfigError(ValueError):
    """A configuration file or override that is malformed; the message names the file and key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSection:
    """[node]"""

    name: str = "node"
    log_format: str = "text"
    log_level: str = "info"
    trace_file: str = ""  # causal trace (docs/TRACING.md); relative to the data directory; empty: off


@dataclass(frozen=True, slots=True, kw_only=True)
class P2PSection:
    """[p2p]"""

    host: str = "127.0.0.1"
    port: int = 0
    bootstrap: tuple[str, ...] = ()
    target_peers: int = 8
    max_peers: int = 32
    advertise_url: str = ""
    max_connections: int = P2P_SOCKET_LIMITS.max_connections
    max_connections_per_address: int = P2P_SOCKET_LIMITS.max_connections_per_address
    header_timeout_s: float = P2P_SOCKET_LIMITS.header_timeout_s
    idle_timeout_s: float = P2P_SOCKET_LIMITS.idle_timeout_s

    def socket_limits(self) -> SocketLimits:
        """The P2P port's TCP-level limits (raises ValueError if they do not fit together)."""
        return _socket_limits(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcSection:
    """[rpc]"""

    host: str = "127.0.0.1"
    port: int = 0
    admin_token: str = ""
    max_connections: int = RPC_SOCKET_LIMITS.max_connections
    max_connections_per_address: int = RPC_SOCKET_LIMITS.max_connections_per_address
    header_timeout_s: float = RPC_SOCKET_LIMITS.header_timeout_s
    idle_timeout_s: float = RPC_SOCKET_LIMITS.idle_timeout_s

    def socket_limits(self) -> SocketLimits:
        """The RPC port's TCP-level limits (raises ValueError if they do not fit together)."""
        return _socket_limits(self)


def _socket_limits(section: P2PSection | RpcSection) -> SocketLimits:
    return SocketLimits(max_connections=section.max_connections,
                        max_connections_per_address=section.max_connections_per_address,
                        header_timeout_s=section.header_timeout_s, idle_timeout_s=section.idle_timeout_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class MiningSection:
    """[mining]"""

    enabled: bool = True
    processes: int = 1
    hashrate_hps: float = 0.0
    nice: int = 0
    startup_grace_s: float = 30.0  # with bootstrap peers: mine alone after this long without reaching one


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationSection:
    """[validation]"""

    workers: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """The whole configuration."""

    node: NodeSection = field(default_factory=NodeSection)
    p2p: P2PSection = field(default_factory=P2PSection)
    rpc: RpcSection = field(default_factory=RpcSection)
    mining: MiningSection = field(default_factory=MiningSection)
    validation: ValidationSection = field(default_factory=ValidationSection)

    def with_overrides(self, overrides: dict[str, Any]) -> NodeConfig:
        """A copy with `section.key` overrides applied (values already typed)."""
        config = self
        for dotted, value in overrides.items():
            if value is None:
                continue
            section_name, _, key = dotted.partition(".")
            section = getattr(config, section_name)
            config = replace(config, **{section_name: _set(section, key, value, "command line")})
        return config

    def to_toml(self) -> str:
        """TOML text of this configuration."""
        lines: list[str] = []
        for section_field in fields(self):
            section = getattr(self, section_field.name)
            lines.append(f"[{section_field.name}]")
            for item in fields(section):
                lines.append(f"{item.name} = {_toml(getattr(section, item.name))}")
            lines.append("")
        return "\n".join(lines)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(type(value).__name__)


def _set(section: Any, key: str, value: object, origin: str) -> Any:
    known = {f.name: f for f in fields(section)}
    if key not in known:
        raise ConfigError(f"{origin}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    default = getattr(type(section)(), key)
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{origin}: {key} must be a list of strings")
        value = tuple(value)
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{origin}: {key} must be true or false")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{origin}: {key} must be a non-negative number")
        value = float(value)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{origin}: {key} must be a non-negative integer")
    elif not isinstance(value, str):
        raise ConfigError(f"{origin}: {key} must be a string")
    if isinstance(section, P2PSection) and key in ("bootstrap", "advertise_url"):
        value = _peer_addresses(value, origin)
    return replace(section, **{key: value})


def _peer_addresses(value: object, origin: str) -> object:
    """Bootstrap peers and the advertised URL as ws:// URLs (host:port accepted); ConfigError naming the entry."""
    try:
        if isinstance(value, tuple):
            return tuple(dict.fromkeys(normalize_peer_address(v) for v in value))
        return normalize_peer_address(value) if value else value
    except ValueError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc


def default_name(datadir: str | os.PathLike[str]) -> str:
    """A node's name unless configured: its data directory's name (./node1 -> "node1"), so the nodes of a
    network tell apart in logs and status; "node" for a directory without a usable name."""
    name = Path(datadir).resolve().name.strip()
    return name or "node"


def load_config(datadir: str | os.PathLike[str]) -> NodeConfig:
    """The data directory's config.toml (defaults when absent; the node's name defaults to the directory's)."""
    path = Path(datadir) / CONFIG_FILE
    config = NodeConfig(node=NodeSection(name=default_name(datadir)))
    if not path.exists():
        return config
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    for section_name, table in doc.items():
        if section_name not in {f.name for f in fields(NodeConfig)}:
            raise ConfigError(f"{path}: unknown section [{section_name}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section_name}] must be a table")
        section = getattr(config, section_name)
        for key, value in table.items():
            section = _set(section, key, value, f"{path} [{section_name}]")
        config = replace(config, **{section_name: section})
    if config.node.log_format not in ("text", "json"):
        raise ConfigError(f"{path}: log_format must be text or json")
    if config.mining.processes < 1:
        raise ConfigError(f"{path}: [mining] processes must be at least 1 (enabled = false turns mining off)")
    if config.validation.workers < 1:
        raise ConfigError(f"{path}: [validation] workers must be at least 1 (1 checks signatures in the node)")
    for section_name, section in (("p2p", config.p2p), ("rpc", config.rpc)):
        try:
            section.socket_limits()
        except ValueError as exc:
            raise ConfigError(f"{path}: [{section_name}] {exc}") from exc
    for name, value in (("[mining] processes", config.mining.processes),
                        ("[validation] workers", config.validation.workers)):
        if value > MAX_PROCESSES:
            raise ConfigError(f"{path}: {name} must be at most {MAX_PROCESSES}")
    return config


def write_private_text(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable and writable by its owner alone (mode 0600, like node.key):
    config.toml and testnet.json hold the admin token."""
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # a leftover temporary keeps its old mode through O_CREAT
        file.write(text)
    os.replace(temporary, path)


def write_config(datadir: str | os.PathLike[str], config: NodeConfig) -> Path:
    """Write config.toml atomically, mode 0600 (it holds the admin token)."""
    path = Path(datadir) / CONFIG_FILE
    write_private_text(path, config.to_toml())
    return path
