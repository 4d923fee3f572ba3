"""Scenario manifests (TOML): parse and check them, and expand their timeline into a concrete plan.

A manifest has `[network]`, an optional `[load]`, a `[[timeline]]` of steps, `[end]` and `[checks]`
(docs/TESTNET.md, "Scenarios"). Every mistake is a `ManifestError` naming where it is (`timeline[3].node: ...`).
`plan()` resolves node names, draws every random choice (targets, shapes, intervals, hold times) from
`random.Random(seed)`, and returns the steps the runner executes, so one seed always gives one schedule.
"""

from __future__ import annotations

import random
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.genesis import TOP_LEVEL, GenesisError, parse_param_value
from chain.locks import MAX_LEASE_BLOCKS, MAX_NAME_CHARS, MAX_VALUE_BYTES, OUTCOME_CODES
from consensus.registry import all_parameters, engine_names
from testnet.audit import CHECK_NAMES
from testnet.byzantine import TWIN_SUFFIX, TWINS, behaviours
from testnet.latency import LatencyMatrix, parse_matrix
from testnet.linearizability import READ_LEVELS
from testnet.lockactors import LOCK_OPS
from testnet.state import Testnet, TestnetError
from testnet.topology import TOPOLOGIES, TopologyError, blocked_from_groups, shape_blocked

NODE_ACTIONS = ("kill", "stop", "start", "restart", "pause", "resume")
NETWORK_KEYS = ("nodes", "consensus", "topology", "hashrate_shares", "hashrate_hps", "load_accounts", "params",
                "netns", "subnet", "latency")
ACTIONS = (*NODE_ACTIONS, "partition", "heal", "netem", "random", "byzantine", "lock")
RANDOM_FAULTS = ("kill", "stop", "restart", "pause", "partition", "netem")
EXPECTATIONS = ("mining", "not mining", "stalled", "not stalled", "progress", "no progress", "new leader",
                "no quorum", "accepts writes", "no stale read")
# Node references resolved while the scenario runs, not when it is planned: "leader" is the running node whose
# /v1/status engine document says role = "leader" (of the highest term), "previous" the node the last node action
# acted on (to resume or start the leader that was paused or killed). `random` is drawn from the seed at planning.
RUNTIME_NODES = ("leader", "previous")
SHAPE_NAMES = ("halves", "isolate", "bridge", "majorities-ring", "minority-third")
DEFAULT_NETEM = {"delay_ms": 100.0, "jitter_ms": 50.0, "loss": 0.05, "duplicate": 0.0}
# What a scenario expects of its run: to pass, or (a demonstration of what breaks beyond the fault model, e.g. f+1
# Byzantine validators) to fail, with `expect_failed_checks` among the failed checks.
OUTCOMES = ("pass", "fail")


class ManifestError(ValueError):
    """A manifest that is not valid; the message names the key."""


@dataclass(kw_only=True)
class NetworkSpec:
    """[network]"""

    nodes: int
    consensus: str = "pow"
    topology: str = "full"
    hashrate_shares: list[float] = field(default_factory=list)
    hashrate_hps: float | None = None
    load_accounts: int = 64
    params: dict[str, Any] = field(default_factory=dict)
    netns: bool = False  # each node in its own network namespace (`testnet up --netns`; root only)
    subnet: str = ""  # with netns: the nodes' subnet ("" for the launcher's default)
    latency: LatencyMatrix | None = None  # [network.latency]: regions and per-pair delays
    keys: list[str] = field(default_factory=list)  # the keys the manifest gave (an attached run names ignored ones)


@dataclass(kw_only=True)
class LoadSpec:
    """[load]"""

    tps: float
    duration_s: float
    accounts: int | None = None
    start_at_s: float = 0.0
    settle_timeout_s: float | None = None
    reads: list[str] = field(default_factory=list)  # read levels (docs/CONSISTENCY.md); empty: transfers only
    read_ratio: float = 0.5


@dataclass(kw_only=True)
class Step:
    """One planned step: `kind` is action, wait or expect; `spec` its parameters (node refs are indices)."""

    kind: str
    spec: dict[str, Any]
    at_s: float | None = None
    after_s: float | None = None
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        """For plans and reports."""
        timing = {"at_s": self.at_s} if self.at_s is not None else {"after_s": self.after_s or 0.0}
        return {"kind": self.kind, **timing, **self.spec, "origin": self.origin}


@dataclass(kw_only=True)
class Scenario:
    """A parsed manifest."""

    name: str
    description: str
    seed: int | None
    network: NetworkSpec
    load: LoadSpec | None
    timeline: list[dict[str, Any]]
    end_heal: bool = True
    end_wait: list[str] = field(default_factory=lambda: ["converged", "all final"])
    end_timeout_s: float = 120.0
    checks: list[str] = field(default_factory=lambda: list(CHECK_NAMES))
    converge_timeout_s: float = 60.0
    check_stores: bool = True
    expect: str = "pass"
    expect_failed_checks: list[str] = field(default_factory=list)
    path: str = ""


def _table(doc: Mapping[str, Any], key: str, where: str, allowed: Sequence[str], required: bool = False,
           ) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        if required:
            raise ManifestError(f"{where}: missing [{key}]")
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: {key} must be a table")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ManifestError(f"{key}.{unknown[0]}: unknown key (known: {', '.join(allowed)})")
    return value


def _number(value: Any, where: str, *, minimum: float = 0.0, integer: bool = False, maximum: float | None = None,
            ) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ManifestError(f"{where}: must be {'an integer' if integer else 'a number'}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum:g}" if maximum is not None else ""
        raise ManifestError(f"{where}: must be at least {minimum:g}{bound}, got {value!r}")
    return value


def _text(value: Any, where: str, choices: Sequence[str] | None = None) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: must be a string, got {value!r}")
    if choices is not None and value not in choices:
        raise ManifestError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def load_manifest(path: Path) -> Scenario:
    """Read and check a manifest file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not UTF-8 text") from None
    scenario = parse_manifest(text, default_name=path.stem)
    scenario.path = str(path)
    return scenario


def parse_manifest(text: str, default_name: str = "scenario") -> Scenario:
    """Parse and check manifest TOML."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"not valid TOML: {exc}") from None
    allowed = ("name", "description", "seed", "expect", "expect_failed_checks", "network", "load", "timeline", "end",
               "checks")
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise ManifestError(f"{unknown[0]}: unknown key (known: {', '.join(allowed)})")
    network = _network(_table(doc, "network", "manifest", NETWORK_KEYS, required=True))
    load_table = _table(doc, "load", "manifest", ("tps", "duration_s", "accounts", "start_at_s", "settle_timeout_s",
                                                     "reads", "read_ratio"))
    load = _load(load_table, network) if load_table else None
    timeline = doc.get("timeline", [])
    if not isinstance(timeline, list) or not all(isinstance(step, dict) for step in timeline):
        raise ManifestError("timeline: must be an array of tables ([[timeline]])")
    twins: list[int] = []  # the nodes given twins so far: `nodeK-twin` names one of them from there on
    for number, step in enumerate(timeline):
        _check_step(step, f"timeline[{number}]", network, twins)
    clients = lock_clients(timeline)
    if len(clients) > network.load_accounts:
        raise ManifestError(f"timeline: {len(clients)} lock clients, but network.load_accounts = "
                            f"{network.load_accounts} (each client signs with a load account)")
    end = _table(doc, "end", "manifest", ("heal", "wait", "timeout_s"))
    checks = _table(doc, "checks", "manifest", ("run", "converge_timeout_s", "stores"))
    seed = doc.get("seed")
    if seed is not None:
        _number(seed, "seed", integer=True)
    scenario = Scenario(name=_text(doc.get("name", default_name), "name"),
                        description=_text(doc.get("description", ""), "description"), seed=seed, network=network,
                        load=load, timeline=timeline, expect=_text(doc.get("expect", "pass"), "expect", OUTCOMES))
    if "expect_failed_checks" in doc:
        names = doc["expect_failed_checks"]
        if scenario.expect != "fail":
            raise ManifestError("expect_failed_checks: goes with expect = \"fail\"")
        if not isinstance(names, list) or not names:
            raise ManifestError("expect_failed_checks: must be a non-empty list of check names")
        scenario.expect_failed_checks = [_text(n, f"expect_failed_checks[{i}]", CHECK_NAMES)
                                         for i, n in enumerate(names)]
    if "heal" in end:
        if not isinstance(end["heal"], bool):
            raise ManifestError("end.heal: must be true or false")
        scenario.end_heal = end["heal"]
    if "wait" in end:
        waits = end["wait"]
        if not isinstance(waits, list):
            raise ManifestError("end.wait: must be a list of wait conditions")
        for number, condition in enumerate(waits):
            parse_wait(_text(condition, f"end.wait[{number}]"), f"end.wait[{number}]")
        scenario.end_wait = list(waits)
    if "timeout_s" in end:
        scenario.end_timeout_s = float(_number(end["timeout_s"], "end.timeout_s", minimum=1))
    if "run" in checks:
        names = checks["run"]
        if not isinstance(names, list):
            raise ManifestError("checks.run: must be a list of check names")
        scenario.checks = [_text(n, f"checks.run[{i}]", CHECK_NAMES) for i, n in enumerate(names)]
    if "converge_timeout_s" in checks:
        scenario.converge_timeout_s = float(_number(checks["converge_timeout_s"], "checks.converge_timeout_s"))
    if "stores" in checks:
        if not isinstance(checks["stores"], bool):
            raise ManifestError("checks.stores: must be true or false")
        scenario.check_stores = checks["stores"]
    return scenario


def _network(table: dict[str, Any]) -> NetworkSpec:
    if "nodes" not in table:
        raise ManifestError("network.nodes: missing (how many nodes?)")
    spec = NetworkSpec(nodes=int(_number(table["nodes"], "network.nodes", minimum=1, integer=True, maximum=64)),
                       keys=sorted(table))
    if "netns" in table:
        if not isinstance(table["netns"], bool):
            raise ManifestError("network.netns: must be true or false")
        spec.netns = table["netns"]
    if "subnet" in table:
        if not spec.netns:
            raise ManifestError("network.subnet: goes with netns = true")
        spec.subnet = _text(table["subnet"], "network.subnet")
    if "latency" in table:
        if not isinstance(table["latency"], dict):
            raise ManifestError("network.latency: must be a table with [network.latency.regions] and "
                                "[network.latency.latency_ms]")
        try:
            spec.latency = parse_matrix(table["latency"], [f"node{i}" for i in range(spec.nodes)],
                                        where="network.latency")
        except TestnetError as exc:
            raise ManifestError(str(exc)) from None
    spec.consensus = _text(table.get("consensus", "pow"), "network.consensus", tuple(engine_names()))
    spec.topology = _text(table.get("topology", "full"), "network.topology", TOPOLOGIES)
    if "hashrate_shares" in table:
        shares = table["hashrate_shares"]
        if not isinstance(shares, list) or len(shares) != spec.nodes:
            raise ManifestError(f"network.hashrate_shares: must list one share per node ({spec.nodes})")
        spec.hashrate_shares = [float(_number(s, f"network.hashrate_shares[{i}]")) for i, s in enumerate(shares)]
        if sum(spec.hashrate_shares) <= 0:
            raise ManifestError("network.hashrate_shares: at least one share must be positive")
    if "hashrate_hps" in table:
        spec.hashrate_hps = float(_number(table["hashrate_hps"], "network.hashrate_hps", minimum=1))
    if "load_accounts" in table:
        spec.load_accounts = int(_number(table["load_accounts"], "network.load_accounts", minimum=1, integer=True))
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise ManifestError("network.params: must be a table of genesis parameters")
    for key, value in params.items():
        if key not in all_parameters() and key not in TOP_LEVEL:
            raise ManifestError(f"network.params.{key}: unknown genesis parameter (known: "
                                f"{', '.join(sorted([*TOP_LEVEL, *all_parameters()]))})")
        if key in ("consensus", "timestamp_ms"):
            raise ManifestError(f"network.params.{key}: not settable here (use network.consensus)")
        try:
            spec.params[key] = parse_param_value(key, str(value), all_parameters())
        except GenesisError as exc:
            raise ManifestError(f"network.params.{key}: {exc}") from None
    return spec


def _load(table: dict[str, Any], network: NetworkSpec) -> LoadSpec:
    for key in ("tps", "duration_s"):
        if key not in table:
            raise ManifestError(f"load.{key}: missing")
    spec = LoadSpec(tps=float(_number(table["tps"], "load.tps", minimum=0.001)),
                    duration_s=float(_number(table["duration_s"], "load.duration_s", minimum=0.001)))
    if "accounts" in table:
        spec.accounts = int(_number(table["accounts"], "load.accounts", minimum=1, integer=True,
                                    maximum=network.load_accounts))
    if "start_at_s" in table:
        spec.start_at_s = float(_number(table["start_at_s"], "load.start_at_s"))
    if "settle_timeout_s" in table:
        spec.settle_timeout_s = float(_number(table["settle_timeout_s"], "load.settle_timeout_s"))
    if "reads" in table:
        reads = table["reads"]
        if not isinstance(reads, list) or not reads or not all(level in READ_LEVELS for level in reads):
            raise ManifestError(f"load.reads: a non-empty list of read levels ({', '.join(READ_LEVELS)})")
        spec.reads = list(reads)
    if "read_ratio" in table:
        spec.read_ratio = float(_number(table["read_ratio"], "load.read_ratio"))
        if not 0 <= spec.read_ratio < 1:
            raise ManifestError("load.read_ratio: must be at least 0 and below 1")
    return spec


STEP_KEYS = {
    "common": ("at_s", "after_s"),
    "node": ("action", "node"),
    "restart": ("action", "node", "hard"),
    "partition": ("action", "groups", "shape"),
    "heal": ("action", "partition", "netem"),
    "netem": ("action", "nodes", "delay_ms", "jitter_ms", "loss", "duplicate"),
    "random": ("action", "count", "interval_s", "hold_s", "faults", "shapes", "delay_ms", "jitter_ms", "loss",
               "duplicate"),
    "wait": ("wait", "timeout_s", "nodes"),
    "expect": ("expect", "nodes", "within_s", "for_s"),
    "byzantine": ("action", "node", "behaviour"),
    "lock": ("action", "client", "op", "lock", "lease_blocks", "key", "value", "expect_result"),
}


def _check_step(step: dict[str, Any], where: str, network: NetworkSpec, twins: list[int]) -> None:
    kinds = [k for k in ("action", "wait", "expect") if k in step]
    if len(kinds) != 1:
        raise ManifestError(f"{where}: give exactly one of action, wait or expect")
    if "at_s" in step and "after_s" in step:
        raise ManifestError(f"{where}: at_s and after_s exclude each other")
    for key in ("at_s", "after_s"):
        if key in step:
            _number(step[key], f"{where}.{key}")
    kind = kinds[0]
    if kind == "action":
        action = _text(step["action"], f"{where}.action", ACTIONS)
        group = "node" if action in NODE_ACTIONS and action != "restart" else action
    else:
        group = kind
    allowed = (*STEP_KEYS["common"], *STEP_KEYS[group])
    unknown = sorted(set(step) - set(allowed))
    if unknown:
        raise ManifestError(f"{where}.{unknown[0]}: unknown key for this step (known: {', '.join(allowed)})")
    count = network.nodes
    if group in ("node", "restart", "byzantine"):
        if "node" not in step:
            raise ManifestError(f"{where}.node: missing (which node?)")
        index = None
        if step["node"] != "random" and step["node"] not in RUNTIME_NODES:
            index = node_index(step["node"], count, f"{where}.node", twins if group != "byzantine" else ())
        if "hard" in step and not isinstance(step["hard"], bool):
            raise ManifestError(f"{where}.hard: must be true or false")
        if group == "byzantine":
            _check_byzantine(step, where, network, index, twins)
    elif group == "partition":
        if ("groups" in step) == ("shape" in step):
            raise ManifestError(f"{where}: give groups or shape")
        if "groups" in step:
            groups = step["groups"]
            if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
                raise ManifestError(f"{where}.groups: must be a list of lists of nodes, e.g. [[0, 1], [2, 3, 4]]")
            resolved = [[node_index(n, count, f"{where}.groups", twins) for n in g] for g in groups]
            _try_shape(lambda: blocked_from_groups(resolved, count + len(twins)), f"{where}.groups")
        else:
            shape = _text(step["shape"], f"{where}.shape")
            if shape != "random":
                _try_shape(lambda: shape_blocked(shape, count), f"{where}.shape")
    elif group == "heal":
        for key in ("partition", "netem"):
            if key in step and not isinstance(step[key], bool):
                raise ManifestError(f"{where}.{key}: must be true or false")
    elif group == "lock":
        _check_lock(step, where)
    elif group in ("netem", "random"):
        _check_netem(step, where, count)
        if group == "random":
            _check_random(step, where, network)
    elif group == "wait":
        parse_wait(_text(step["wait"], f"{where}.wait"), f"{where}.wait")
        if "timeout_s" in step:
            _number(step["timeout_s"], f"{where}.timeout_s", minimum=0.1)
        _node_list(step.get("nodes"), count, f"{where}.nodes")
    else:
        _text(step["expect"], f"{where}.expect", EXPECTATIONS)
        if not step.get("nodes"):
            raise ManifestError(f"{where}.nodes: missing (which nodes is this about?)")
        _expect_nodes(step["nodes"], count, f"{where}.nodes")
        for key in ("within_s", "for_s"):
            if key in step:
                _number(step[key], f"{where}.{key}", minimum=0.1)


def _check_lock(step: dict[str, Any], where: str) -> None:
    """A lock client's step (testnet/lockactors.py): which client, which operation on which lock, its arguments,
    and the outcome it expects."""
    for required in ("client", "op", "lock"):
        if required not in step:
            raise ManifestError(f"{where}.{required}: missing")
    _text(step["client"], f"{where}.client")
    if not step["client"]:
        raise ManifestError(f"{where}.client: must not be empty")
    op = _text(step["op"], f"{where}.op", LOCK_OPS)
    _name_field(step["lock"], f"{where}.lock")
    needs = {"acquire": ("lease_blocks",), "renew": ("lease_blocks",), "release": (), "put": ("key", "value")}[op]
    for required in needs:
        if required not in step:
            raise ManifestError(f"{where}.{required}: missing (op = {op!r} needs {', '.join(needs)})")
    extra = sorted({"lease_blocks", "key", "value"} & set(step) - set(needs))
    if extra:
        raise ManifestError(f"{where}.{extra[0]}: not used by op = {op!r}")
    if "lease_blocks" in step:
        _number(step["lease_blocks"], f"{where}.lease_blocks", minimum=1, integer=True, maximum=MAX_LEASE_BLOCKS)
    if "key" in step:
        _name_field(step["key"], f"{where}.key")
    if "value" in step:
        value = _text(step["value"], f"{where}.value")
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise ManifestError(f"{where}.value: at most {MAX_VALUE_BYTES} bytes")
    if "expect_result" in step:
        _text(step["expect_result"], f"{where}.expect_result", OUTCOME_CODES)


def _name_field(value: Any, where: str) -> str:
    text = _text(value, where)
    if not 1 <= len(text) <= MAX_NAME_CHARS or not text.isascii() or not text.isprintable():
        raise ManifestError(f"{where}: 1 to {MAX_NAME_CHARS} printable ASCII characters")
    return text


def _check_byzantine(step: dict[str, Any], where: str, network: NetworkSpec, index: int | None,
                     twins: list[int]) -> None:
    """A `byzantine` step: a behaviour of the network's engine (checked against its spec), twins on a named node."""
    known = behaviours(network.consensus)
    if not known:
        raise ManifestError(f"{where}.action: {network.consensus} has no Byzantine behaviours")
    if "behaviour" not in step:
        raise ManifestError(f"{where}.behaviour: missing (one of {', '.join(known)})")
    behaviour = _text(step["behaviour"], f"{where}.behaviour", known)
    if behaviour == TWINS and network.netns:
        raise ManifestError(f"{where}.behaviour: twins are not supported with network.netns = true yet (a twin "
                            "would need a namespace of its own)")
    if behaviour == TWINS:
        if index is None:
            raise ManifestError(f"{where}.node: twins need a node named in the manifest (node0 or 0), so that "
                                f"later steps can name its twin")
        if index not in twins:
            twins.append(index)


def _try_shape(build: Callable[[], object], where: str) -> None:
    try:
        build()
    except TopologyError as exc:
        raise ManifestError(f"{where}: {exc}") from None


def _check_netem(step: dict[str, Any], where: str, count: int) -> None:
    for key in ("delay_ms", "jitter_ms"):
        if key in step:
            _number(step[key], f"{where}.{key}")
    for key in ("loss", "duplicate"):
        if key in step:
            _number(step[key], f"{where}.{key}", maximum=1.0)
    _node_list(step.get("nodes"), count, f"{where}.nodes")


def _check_random(step: dict[str, Any], where: str, network: NetworkSpec) -> None:
    _number(step.get("count", 1), f"{where}.count", minimum=1, integer=True)
    for key in ("interval_s", "hold_s"):
        if key in step:
            _range(step[key], f"{where}.{key}")
    faults = step.get("faults", list(RANDOM_FAULTS))
    if not isinstance(faults, list) or not faults:
        raise ManifestError(f"{where}.faults: must be a non-empty list of {', '.join(RANDOM_FAULTS)}")
    for number, fault in enumerate(faults):
        _text(fault, f"{where}.faults[{number}]", RANDOM_FAULTS)
    shapes = step.get("shapes", list(SHAPE_NAMES))
    if not isinstance(shapes, list) or not shapes:
        raise ManifestError(f"{where}.shapes: must be a non-empty list of {', '.join(SHAPE_NAMES)}")
    for number, shape in enumerate(shapes):
        _text(shape, f"{where}.shapes[{number}]", SHAPE_NAMES)
    if "partition" in faults and not usable_shapes(shapes, network.nodes):
        raise ManifestError(f"{where}.shapes: none of them fits {network.nodes} nodes")


def _range(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, list):
        if len(value) != 2:
            raise ManifestError(f"{where}: a range is [low, high]")
        low, high = (float(_number(v, where)) for v in value)
        if high < low:
            raise ManifestError(f"{where}: [low, high] with low <= high")
        return low, high
    number = float(_number(value, where))
    return number, number


def usable_shapes(shapes: Sequence[str], count: int) -> list[str]:
    """The shape names that can cut a network of `count` nodes."""
    usable = []
    for shape in shapes:
        try:
            shape_blocked("isolate:0" if shape == "isolate" else shape, count)
        except TopologyError:
            continue
        usable.append(shape)
    return usable


def node_index(ref: Any, count: int, where: str, twins: Sequence[int] = ()) -> int:
    """A node given as an index (2) or a name ("node2"); with `twins` (the nodes given twins, in order), also
    "node2-twin", whose index follows the network's nodes in the order the twins were made."""
    if isinstance(ref, bool):
        raise ManifestError(f"{where}: {ref!r} is not a node")
    if isinstance(ref, str) and ref.endswith(TWIN_SUFFIX):
        original = node_index(ref[:-len(TWIN_SUFFIX)], count, where)
        if original not in twins:
            raise ManifestError(f"{where}: {ref!r}: no earlier step gives node{original} a twin")
        return count + list(twins).index(original)
    if isinstance(ref, str) and ref.startswith("node") and ref[4:].isdigit():
        ref = int(ref[4:])
    if not isinstance(ref, int) or not 0 <= ref < count:
        raise ManifestError(f"{where}: {ref!r} is not a node of this network (0..{count - 1} or node0..)")
    return ref


def _expect_nodes(refs: Any, count: int, where: str) -> list[int | str]:
    """An expectation's nodes: indices, names, or "previous" (resolved at run time)."""
    if not isinstance(refs, list) or not refs:
        raise ManifestError(f"{where}: must be a non-empty list of nodes")
    return [ref if ref == "previous" else node_index(ref, count, where) for ref in refs]


def _node_list(refs: Any, count: int, where: str) -> list[int] | None:
    if refs is None:
        return None
    if not isinstance(refs, list) or not refs:
        raise ManifestError(f"{where}: must be a non-empty list of nodes")
    return [node_index(ref, count, where) for ref in refs]


def parse_wait(condition: str, where: str) -> tuple[str, int | None]:
    """`"height +5"` -> ("height+", 5); `"height 40"` -> ("height", 40); `"converged"`, `"all final"`."""
    words = condition.split()
    if words in (["converged"], ["all", "final"]):
        return " ".join(words), None
    if len(words) == 2 and words[0] == "height":
        relative = words[1].startswith("+")
        digits = words[1][1:] if relative else words[1]
        if digits.isdigit():
            return ("height+" if relative else "height"), int(digits)
    raise ManifestError(f"{where}: {condition!r} is not a wait condition ('height +N', 'height N', 'converged', "
                        "'all final')")


def plan(scenario: Scenario, seed: int) -> list[Step]:
    """The concrete steps of the timeline: node refs resolved, random steps expanded from `seed`."""
    rng = random.Random(seed)
    count = scenario.network.nodes
    twins = twins_of(scenario)
    clients = lock_clients(scenario.timeline)
    steps: list[Step] = []
    for number, entry in enumerate(scenario.timeline):
        origin = f"timeline[{number}]"
        at_s, after_s = entry.get("at_s"), entry.get("after_s")
        if "wait" in entry or "expect" in entry:
            kind = "wait" if "wait" in entry else "expect"
            spec = {k: v for k, v in entry.items() if k not in ("at_s", "after_s")}
            if "nodes" in spec:
                spec["nodes"] = (_expect_nodes(spec["nodes"], count, origin) if kind == "expect"
                                 else _node_list(spec["nodes"], count, origin))
            steps.append(Step(kind=kind, spec=spec, at_s=at_s, after_s=after_s, origin=origin))
        elif entry["action"] == "random":
            steps.extend(_expand_random(entry, rng, count, at_s, after_s, origin))
        else:
            spec = _resolve_action(entry, rng, count, origin, twins)
            if spec["action"] == "lock":
                spec["account"] = clients[str(spec["client"])]
            steps.append(Step(kind="action", spec=spec, at_s=at_s, after_s=after_s, origin=origin))
    return steps


def lock_clients(timeline: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each lock client of the timeline with the load account it signs with: 0, 1, ... in order of appearance."""
    clients: dict[str, int] = {}
    for entry in timeline:
        if entry.get("action") == "lock":
            clients.setdefault(str(entry["client"]), len(clients))
    return clients


def twins_of(scenario: Scenario) -> list[int]:
    """The nodes the timeline gives twins, in order (their twins' indices follow the network's nodes)."""
    twins: list[int] = []
    for entry in scenario.timeline:
        if entry.get("action") == "byzantine" and entry.get("behaviour") == TWINS:
            index = node_index(entry["node"], scenario.network.nodes, "timeline")
            if index not in twins:
                twins.append(index)
    return twins


def _resolve_action(entry: Mapping[str, Any], rng: random.Random, count: int, origin: str, twins: Sequence[int],
                    ) -> dict[str, Any]:
    spec = {k: v for k, v in entry.items() if k not in ("at_s", "after_s")}
    if "node" in spec:
        if spec["node"] == "random":
            spec["node"] = rng.randrange(count)
        elif spec["node"] not in RUNTIME_NODES:
            spec["node"] = node_index(spec["node"], count, origin, twins)
    if "groups" in spec:
        spec["groups"] = [[node_index(n, count, origin, twins) for n in group] for group in spec["groups"]]
    if spec.get("shape") == "random":
        spec.update(_random_shape(rng, count, SHAPE_NAMES))
    if "nodes" in spec:
        spec["nodes"] = _node_list(spec["nodes"], count, origin)
    return spec


def _random_shape(rng: random.Random, count: int, names: Sequence[str]) -> dict[str, Any]:
    shape = rng.choice(usable_shapes(names, count))
    if shape == "isolate":
        return {"shape": f"isolate:{rng.randrange(count)}"}
    return {"shape": shape, "order": rng.sample(range(count), count)}


def _expand_random(entry: Mapping[str, Any], rng: random.Random, count: int, at_s: float | None,
                   after_s: float | None, origin: str) -> list[Step]:
    interval = _range(entry.get("interval_s", [3.0, 8.0]), origin)
    hold = _range(entry.get("hold_s", [2.0, 5.0]), origin)
    faults = list(entry.get("faults", RANDOM_FAULTS))
    shapes = list(entry.get("shapes", SHAPE_NAMES))
    netem = {k: float(entry.get(k, v)) for k, v in DEFAULT_NETEM.items()}
    steps: list[Step] = []
    for number in range(int(entry.get("count", 1))):
        where = f"{origin}#{number}"
        gap = round(rng.uniform(*interval), 3)
        timing: dict[str, float | None] = {"at_s": None, "after_s": gap}
        if number == 0 and at_s is not None:
            timing = {"at_s": at_s, "after_s": None}
        elif number == 0 and after_s is not None:
            timing = {"at_s": None, "after_s": after_s}
        fault = rng.choice(faults)
        held = round(rng.uniform(*hold), 3)
        if fault in ("kill", "stop", "pause"):
            node = rng.randrange(count)
            undo = "resume" if fault == "pause" else "start"
            first, second = {"action": fault, "node": node}, {"action": undo, "node": node}
        elif fault == "restart":
            steps.append(Step(kind="action", spec={"action": "restart", "node": rng.randrange(count),
                                                   "hard": rng.random() < 0.5}, origin=where, **timing))
            continue
        elif fault == "partition":
            first, second = {"action": "partition", **_random_shape(rng, count, shapes)}, {
                "action": "heal", "partition": True, "netem": False}
        else:
            first, second = {"action": "netem", **netem}, {"action": "heal", "partition": False, "netem": True}
        steps.append(Step(kind="action", spec=first, origin=where, **timing))
        steps.append(Step(kind="action", spec=second, after_s=held, origin=where))
    return steps


# Keys of [network] that say how to start a network: an attached one already runs as it was started.
START_KEYS = ("topology", "hashrate_shares", "hashrate_hps", "load_accounts", "params")


def check_attached(scenario: Scenario, testnet: Testnet) -> list[str]:
    """A manifest run against an attached network (`testnet run MANIFEST --dir D`, D from `testnet attach`):
    ManifestError (one line naming the key) for what cannot be done to nodes this machine did not start, before
    anything runs; returns the [network] keys that are ignored (how to start a network that already runs)."""
    network = scenario.network
    where = f"the attached network in {testnet.dir}"
    if network.nodes != len(testnet.nodes):
        raise ManifestError(f"network.nodes: {network.nodes}, but {where} has {len(testnet.nodes)} nodes")
    if network.consensus != testnet.consensus:
        raise ManifestError(f"network.consensus: {network.consensus}"
                            f"{'' if 'consensus' in network.keys else ' (the default)'}, but {where} runs "
                            f"{testnet.consensus}")
    for key in ("netns", "subnet", "latency"):
        if key in network.keys:
            raise ManifestError(f"network.{key}: not on {where} (its links are not this host's; give a latency "
                                "matrix with `testnet latency FILE --dir D`, which the nodes' fault hooks apply)")
    local = "needs a process this machine started, and its nodes are remote (partition, heal, netem, byzantine, " \
            "waits and expectations work on them; crash faults belong to whatever runs the nodes)"
    for number, step in enumerate(scenario.timeline):
        action = step.get("action")
        if action in NODE_ACTIONS:
            raise ManifestError(f"timeline[{number}].action: {action} on {where} {local}")
        if action == "random":
            process = [f for f in step.get("faults", list(RANDOM_FAULTS)) if f in NODE_ACTIONS]
            if process:
                raise ManifestError(f"timeline[{number}].faults: {', '.join(process)} on {where} {local}; give "
                                    "faults = [\"partition\", \"netem\"]")
        if action == "byzantine" and step.get("behaviour") == TWINS:
            raise ManifestError(f"timeline[{number}].behaviour: twins on {where} {local}")
    if scenario.load is not None:
        if not testnet.load_accounts:
            raise ManifestError(f"load: {where} has no load accounts (attach with the --seed whose accounts its "
                                "genesis funds)")
        if (scenario.load.accounts or 0) > testnet.load_accounts:
            raise ManifestError(f"load.accounts: {scenario.load.accounts}, but {where} has "
                                f"{testnet.load_accounts} load accounts")
    return [f"network.{key}" for key in START_KEYS if key in network.keys]
