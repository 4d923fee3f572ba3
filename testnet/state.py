"""A testnet's record on disk: `<dir>/testnet.json` (the network and each node's process and faults) and
`<dir>/events.jsonl` (every launcher and nemesis action, timestamped). docs/TESTNET.md describes both formats.

Every command that changes the record holds an exclusive lock on `<dir>/.lock` while it reads, acts and writes,
so two nemesis commands in two terminals do not lose each other's updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from node.config import write_private_text

STATE_FILE = "testnet.json"
EVENTS_FILE = "events.jsonl"
HISTORY_FILE = "history.jsonl"
REPORT_FILE = "report.json"
CHECK_FILE = "check.json"  # the last `testnet check` result, for the dashboard
LOCK_FILE = ".lock"
FORMAT_VERSION = 1
NODE_STATES = ("running", "paused", "stopped", "killed")
NETEM_FIELDS = ("delay_ms", "jitter_ms", "loss", "duplicate", "reorder", "rate_kbit")


class TestnetError(Exception):
    """A testnet directory that is missing or unreadable, a node that does not exist, or an action that cannot be
    done; the message says which and is meant for the user."""

    __test__ = False  # not a pytest test class, despite the name


@dataclass(kw_only=True)
class Faults:
    """The fault configuration the nemesis wants on one node: who it blocks (node names) and netem settings."""

    blocked: list[str] = field(default_factory=list)
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    # Kernel netem only (a --netns testnet): the nodes' own fault hooks have no reordering or rate limit.
    reorder: float = 0.0
    rate_kbit: float = 0.0

    def netem(self) -> dict[str, float]:
        """The non-zero netem settings."""
        return {name: getattr(self, name) for name in NETEM_FIELDS if getattr(self, name)}

    def is_clear(self) -> bool:
        """No block and no netem."""
        return not self.blocked and not self.netem()


@dataclass(kw_only=True)
class NodeRecord:
    """One node of the testnet: where it lives, how to reach it, its process and the faults it should have."""

    index: int
    name: str
    datadir: str = ""  # "" on a remote node
    log: str = ""
    admin_token: str = ""
    rpc_url: str = ""
    p2p_url: str = ""
    node_id: str = ""
    address: str = ""
    pid: int | None = None
    state: str = "stopped"
    mining: bool = False
    hashrate_hps: float = 0.0
    faults: Faults = field(default_factory=Faults)
    faults_applied: bool = True  # False while a paused or stopped node still has to receive `faults`
    # Byzantine: the behaviour the node was switched to (`testnet byzantine`; given again when it starts), "" when
    # honest; a twin names the node whose validator key it holds (testnet/byzantine.py).
    byzantine: str = ""
    twin_of: str = ""
    # A node the toolkit did not start (`testnet attach`, or a hand-written record): reached only through its RPC
    # URL and admin token; no pid, no data directory, no log here (testnet/remote.py).
    remote: bool = False
    p2p_node_id: str = ""  # the id peers block it by, when it differs from node_id (a remote node's /v1/status)
    netns: str = ""  # the network namespace it runs in (`testnet up --netns`), "" on the host's network

    def to_json(self) -> dict[str, Any]:
        """The node's entry in testnet.json."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRecord:
        """Parse a node entry; TestnetError when a field is missing or of the wrong type."""
        try:
            faults = Faults(**data.get("faults", {}))
            fields = {k: v for k, v in data.items() if k != "faults"}
            if fields.get("remote"):
                fields.setdefault("state", "running")  # not ours to start or stop: it runs unless said otherwise
            record = cls(faults=faults, **fields)
        except TypeError as exc:
            raise TestnetError(f"bad node entry in {STATE_FILE}: {exc}") from None
        if record.state not in NODE_STATES:
            raise TestnetError(f"bad node state {record.state!r} in {STATE_FILE}")
        if record.remote and (record.pid is not None or record.datadir):
            raise TestnetError(f"node {record.name} in {STATE_FILE} is remote but has a pid or a datadir (a remote "
                               "node is reached by rpc_url only)")
        if record.remote and not record.rpc_url:
            raise TestnetError(f"remote node {record.name} in {STATE_FILE} has no rpc_url")
        if not record.remote and not record.datadir:
            raise TestnetError(f"node {record.name} in {STATE_FILE} has no datadir (say \"remote\": true for a node "
                               "the toolkit did not start)")
        return record


@dataclass(kw_only=True)
class Testnet:
    """The whole record of one testnet (`testnet.json`)."""

    __test__ = False  # not a pytest test class, despite the name

    dir: str
    chain_id: str
    genesis: str
    consensus: str
    nodes: list[NodeRecord]
    block_interval_s: float
    finality_threshold: int
    # Optional in a hand-written record of remote nodes: no seed means no load accounts, no edges a full mesh.
    seed: str = ""
    topology: str = "full"
    edges: list[list[int]] = field(default_factory=list)
    load_accounts: int = 0
    created: str = ""
    # `testnet up --netns`: the id in the names of its namespaces and links (testnet/netns.py) and its subnet
    netns_id: str = ""
    netns_subnet: str = ""
    # A latency matrix (testnet/latency.py): each node's region, and each node's one-way delay to each peer in ms
    regions: dict[str, str] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    @property
    def path(self) -> Path:
        """The testnet directory."""
        return Path(self.dir)

    def to_json(self) -> dict[str, Any]:
        """The testnet.json document."""
        data = asdict(self)
        data["nodes"] = [node.to_json() for node in self.nodes]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Testnet:
        """Parse testnet.json; TestnetError naming what is wrong."""
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise TestnetError(f"{STATE_FILE} is not a version-{FORMAT_VERSION} testnet record")
        try:
            # A hand-written record may leave out the indices (the order is the index) and the directory.
            nodes = [NodeRecord.from_json({"index": index, **node}) for index, node in enumerate(data["nodes"])]
            fields = {k: v for k, v in data.items() if k != "nodes"}
            fields.setdefault("dir", "")
            testnet = cls(nodes=nodes, **fields)
        except (KeyError, TypeError, AttributeError) as exc:
            raise TestnetError(f"bad {STATE_FILE}: {exc}") from None
        if [node.index for node in nodes] != list(range(len(nodes))) or not nodes:
            raise TestnetError(f"bad {STATE_FILE}: nodes must be a non-empty list with indices 0, 1, ... in order")
        if len({node.name for node in nodes}) != len(nodes):
            raise TestnetError(f"bad {STATE_FILE}: two nodes share a name")
        if not testnet.edges and testnet.topology == "full":
            testnet.edges = [[i, j] for i in range(len(nodes)) for j in range(i + 1, len(nodes))]
        return testnet

    def remote_nodes(self) -> list[NodeRecord]:
        """The nodes the toolkit did not start."""
        return [node for node in self.nodes if node.remote]

    def node(self, ref: str | int) -> NodeRecord:
        """A node by name (`node2`) or index (`2`); TestnetError listing the nodes otherwise."""
        text = str(ref).strip()
        for node in self.nodes:
            if text in (node.name, str(node.index)):
                return node
        names = ", ".join(n.name for n in self.nodes)
        raise TestnetError(f"no node {text!r} in this testnet (nodes: {names}, or their indices "
                           f"0..{len(self.nodes) - 1})")

    def index_of(self, ref: str | int) -> int:
        """The index of a node given by name or index."""
        return self.node(ref).index

    def byzantine(self) -> dict[str, str]:
        """The nodes the safety checks leave out, each with why: a behaviour switched on, a twin, or a node that
        has one (two processes signing with one validator key are both that validator, and it is not honest)."""
        twins = {node.twin_of: node.name for node in self.nodes if node.twin_of}
        out: dict[str, str] = {}
        for node in self.nodes:
            reasons = [f"behaviour {node.byzantine}"] if node.byzantine and not node.twin_of else []
            if node.twin_of:
                reasons.append(f"twin of {node.twin_of}")
            if node.name in twins:
                reasons.append(f"has a twin ({twins[node.name]})")
            if reasons:
                out[node.name] = ", ".join(reasons)
        return out

    def by_name(self, name: str) -> NodeRecord:
        """A node by its exact name."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise TestnetError(f"no node named {name!r}")


def load_testnet(directory: str | os.PathLike[str]) -> Testnet:
    """Read `<directory>/testnet.json`."""
    path = Path(directory) / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TestnetError(f"{directory} is not a testnet directory (no {STATE_FILE}); start one with "
                           "`chainlab testnet up`") from None
    except OSError as exc:
        raise TestnetError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TestnetError(f"{path} is not JSON: {exc}") from None
    testnet = Testnet.from_json(data)
    testnet.dir = str(Path(directory).resolve())
    return testnet


def save_testnet(testnet: Testnet) -> None:
    """Write testnet.json atomically."""
    path = testnet.path / STATE_FILE
    write_private_text(path, json.dumps(testnet.to_json(), indent=2) + "\n")  # 0600: it holds the admin tokens


@contextlib.contextmanager
def locked(directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the testnet's lock (blocking) for a read-modify-write of its record. A directory without a record is
    refused before anything is created in it (a missing one gave a traceback, a foreign one a stray lock file)."""
    if not (Path(directory) / STATE_FILE).is_file():
        load_testnet(directory)  # raises the one-line TestnetError naming the directory
    path = Path(directory) / LOCK_FILE
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def network_state(testnet: Testnet) -> dict[str, Any]:
    """What events.jsonl records after each action: which nodes are up, paused, and who blocks whom."""
    return {
        "running": [n.name for n in testnet.nodes if n.state == "running"],
        "paused": [n.name for n in testnet.nodes if n.state == "paused"],
        "down": [n.name for n in testnet.nodes if n.state in ("stopped", "killed")],
        "blocked": {n.name: sorted(n.faults.blocked) for n in testnet.nodes if n.faults.blocked},
        "netem": {n.name: n.faults.netem() for n in testnet.nodes if n.faults.netem()},
        "byzantine": testnet.byzantine(),
    }


def append_event(testnet: Testnet, action: str, *, nodes: list[str] | None = None, **detail: Any) -> dict[str, Any]:
    """Append one action to events.jsonl with a wall-clock timestamp and the resulting network state."""
    now_ns = time.time_ns()
    event = {"time_ns": now_ns, "time": _iso(now_ns), "action": action, "nodes": nodes or [], "detail": detail,
             "network": network_state(testnet)}
    with open(testnet.path / EVENTS_FILE, "a", encoding="utf-8") as out:
        out.write(json.dumps(event, sort_keys=True) + "\n")
    return event


def trace_events_path(trace: Path) -> Path:
    """Where the faults of a trace go (a simulated run's, a collected testnet's): FILE's name with `.events.jsonl`
    for its suffix; `chainlab trace` looks there first, then at an events.jsonl beside the trace."""
    return trace.with_name(trace.stem + ".events.jsonl")


def read_events(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event of events.jsonl in order (a torn last line, from a crash mid-write, is skipped)."""
    path = Path(directory) / EVENTS_FILE
    if not path.exists():
        return []
    return read_event_file(path)


def read_event_file(path: str | os.PathLike[str], *, strict: bool = False) -> list[dict[str, Any]]:
    """Every event of an events.jsonl file by its path, which need not sit in a testnet directory (a torn last
    line is skipped); OSError when it cannot be read. Lenient by default: lines that are not JSON objects are skipped.
    With `strict` (a file the user named), every line must be an event ({time_ns, action, ...}) except a torn last
    line (no newline, after an event), and the file must hold one: ValueError naming the line otherwise."""
    text = Path(path).read_text(encoding="utf-8")
    events: list[dict[str, Any]] = []
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            event, problem = None, f"not JSON ({exc})"
        else:
            problem = "" if _is_event(event) or (not strict and isinstance(event, dict)) else \
                "not an event ({time_ns, action, ...})"
        if not problem:
            events.append(event)
        elif strict and not (number == len(lines) and not line.endswith("\n") and events):
            raise ValueError(f"{path} line {number}: {problem}")
    if strict and not events:
        raise ValueError(f"no events in {path}")
    return events


def _is_event(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("time_ns"), int) and isinstance(value.get("action"), str)


def _iso(time_ns: int) -> str:
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 1_000_000:03d}Z"


def iso_now() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    return _iso(time.time_ns())
