"""Node configuration: `config.toml` in the data directory, overridden by command-line options.

```toml
[node]
name = "node0"
log_format = "text"          # text | json
log_level = "info"

[p2p]
host = "127.0.0.1"
port = 0                     # 0: the OS picks a free port (the bound port is logged and in /v1/status)
bootstrap = ["ws://127.0.0.1:30301/p2p"]
target_peers = 8
max_peers = 32

[rpc]
host = "127.0.0.1"
port = 0
admin_token = ""             # empty: admin routes are disabled

[mining]
enabled = true
processes = 1
hashrate_hps = 0             # 0: no cap
nice = 0

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


@dataclass(frozen=True, slots=True, kw_only=True)
class P2PSection:
    """[p2p]"""

    host: str = "127.0.0.1"
    port: int = 0
    bootstrap: tuple[str, ...] = ()
    target_peers: int = 8
    max_peers: int = 32
    advertise_url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcSection:
    """[rpc]"""

    host: str = "127.0.0.1"
    port: int = 0
    admin_token: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MiningSection:
    """[mining]"""

    enabled: bool = True
    processes: int = 1
    hashrate_hps: float = 0.0
    nice: int = 0


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
    return replace(section, **{key: value})


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
    for name, value in (("[mining] processes", config.mining.processes),
                        ("[validation] workers", config.validation.workers)):
        if value > MAX_PROCESSES:
            raise ConfigError(f"{path}: {name} must be at most {MAX_PROCESSES}")
    return config


def write_config(datadir: str | os.PathLike[str], config: NodeConfig) -> Path:
    """Write config.toml atomically."""
    path = Path(datadir) / CONFIG_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(config.to_toml(), encoding="utf-8")
    os.replace(temporary, path)
    return path
