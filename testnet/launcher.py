"""`chainlab testnet up / down / status`: bring a local network of real node processes up, find it again from
its directory, and take it down leaving no process behind.

Up: keys, a genesis funding the load accounts, and one data directory per node (testnet/cluster.py); every node is
launched at once with OS-chosen ports, then the topology's edges are dialed through the admin API (the higher
index dials the lower), and each node's config.toml is rewritten with its bound ports and its neighbours as
bootstrap peers, so a restarted node comes back on the same URLs and redials its neighbours itself.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.genesis import TOP_LEVEL, GenesisError
from consensus.registry import UnknownEngineError, spec_named
from node.client import RpcClient, RpcError, RpcUnavailable
from node.config import ConfigError, load_config, write_config
from node.datadir import DatadirError
from testnet import netns, procs
from testnet.cluster import Cluster
from testnet.local import LocalNode, LocalNodeError
from testnet.netns import DEFAULT_SUBNET
from testnet.remote import forget, refuse_remote
from testnet.state import (
    STATE_FILE,
    NodeRecord,
    Testnet,
    TestnetError,
    append_event,
    iso_now,
    load_testnet,
    locked,
    save_testnet,
)
from testnet.topology import TOPOLOGIES, TopologyError, neighbours, topology_edges

DEFAULT_ROOT = "testnets"
LATEST_LINK = "latest"
ENV_DIR = "CHAINLAB_TESTNET"
DEFAULT_HASHRATE_PER_MINER_HPS = 4000.0
# Miners are capped at their share of --hashrate-hps (about 1% of a core each), which is what keeps a laptop usable;
# niced as well (they were at 10), they lost the CPU to busy nodes under load and blocks came late: p99 inclusion
# 16.2 s instead of 8.6 s at 500 tx/s with 2 s blocks (docs/PERFORMANCE.md, "Local testnet").
DEFAULT_MINING_NICE = 0
START_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
Progress = Callable[[str], None]


@dataclass(kw_only=True)
class UpOptions:
    """What `testnet up` was asked for (CLI options or a scenario's [network])."""

    nodes: int
    consensus: str = "pow"
    directory: Path | None = None
    topology: str = "full"
    hashrate_shares: Sequence[float] = ()
    hashrate_hps: float | None = None  # total over the miners; default DEFAULT_HASHRATE_PER_MINER_HPS each
    genesis_params: dict[str, Any] = field(default_factory=dict)  # engine parameters and top-level fields
    seed: str | None = None
    load_accounts: int = 64
    mining_nice: int = DEFAULT_MINING_NICE
    # Foreground: the nodes end with this process, however it ends (parent-death signal); up() must then run on
    # the main thread. A detached testnet's nodes outlive the command that started them.
    tie_to_launcher: bool = False
    trace: bool = False  # every node writes a causal trace (docs/TRACING.md; `chainlab testnet trace` collects)
    netns: bool = False  # each node in its own network namespace on a bridge (root only; testnet/netns.py)
    subnet: str = DEFAULT_SUBNET
    funds: dict[bytes, int] = field(default_factory=dict)  # more genesis balances: address -> amount (`--fund`)


def _noop(message: str) -> None:
    pass


def default_directory(seed: str) -> Path:
    """A new directory under ./testnets (or the temp directory when the working directory is not writable)."""
    name = time.strftime("%Y%m%d-%H%M%S") + f"-{seed}"
    root = Path(DEFAULT_ROOT)
    try:
        root.mkdir(exist_ok=True)
        path = root / name
        path.mkdir()
        latest = root / LATEST_LINK
        if latest.is_symlink() or not latest.exists():
            latest.unlink(missing_ok=True)
            latest.symlink_to(name)
        return path.resolve()
    except OSError:
        return Path(tempfile.mkdtemp(prefix=f"chainlab-testnet-{seed}-"))


def resolve_directory(directory: str | os.PathLike[str] | None) -> Path:
    """The testnet a command works on: --dir, else $CHAINLAB_TESTNET, else ./testnets/latest."""
    if directory:
        return Path(directory)
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    latest = Path(DEFAULT_ROOT) / LATEST_LINK
    if (latest / STATE_FILE).exists():
        return latest.resolve()
    raise TestnetError(f"which testnet? pass --dir DIR or set {ENV_DIR} (no ./{DEFAULT_ROOT}/{LATEST_LINK})")


def _split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    top = {k: v for k, v in params.items() if k in TOP_LEVEL}
    if "consensus" in top or "timestamp_ms" in top:
        raise TestnetError("set the engine with --consensus; timestamp_ms is not settable for a testnet")
    return top, {k: v for k, v in params.items() if k not in TOP_LEVEL}


def network_arguments(options: UpOptions) -> tuple[str, dict[str, Any]]:
    """The seed and the keyword arguments of Cluster.create / NetworkPlan.make for `options`, checked and with the
    engine's testnet defaults filled in: `testnet up` and `testnet render` make the same network from them.
    TestnetError (one line) for a bad value."""
    if options.nodes < 1:
        raise TestnetError("--nodes must be at least 1")
    if options.topology not in TOPOLOGIES:
        raise TestnetError(f"unknown topology {options.topology!r} (choose one of {', '.join(TOPOLOGIES)})")
    seed = options.seed or secrets.token_hex(4)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", seed):
        raise TestnetError(f"--seed {seed!r}: use 1 to 40 letters, digits, '_', '.' or '-' (it names the chain)")
    shares = list(options.hashrate_shares) or [1.0] * options.nodes
    if len(shares) != options.nodes:
        raise TestnetError(f"--hashrate-shares gives {len(shares)} shares for {options.nodes} nodes")
    if any(share < 0 for share in shares) or sum(shares) <= 0:
        raise TestnetError("--hashrate-shares must be non-negative with at least one positive share")
    miners = sum(1 for share in shares if share > 0)
    total_hps = options.hashrate_hps or DEFAULT_HASHRATE_PER_MINER_HPS * max(1, miners)
    top, params = _split_params(dict(options.genesis_params))
    try:
        spec = spec_named(options.consensus)
    except UnknownEngineError as exc:
        raise TestnetError(f"--consensus: {exc}") from None
    # An engine may choose its own testnet block interval; the rest of its defaults may depend on the interval.
    params.setdefault("block_interval_s", spec.testnet_defaults(params).get("block_interval_s", 2.0))
    for key, value in spec.testnet_defaults(params).items():
        params.setdefault(key, value)
    return seed, {
        "consensus": options.consensus, "seed": seed, "params": params,
        "finality_threshold": int(top.get("finality_threshold", 6)), "block_reward": int(top.get("block_reward", 50)),
        "chain_id": top.get("chain_id"), "hashrate_shares": shares, "hashrate_hps": total_hps / options.nodes,
        "load_accounts": options.load_accounts, "mining_nice": options.mining_nice, "trace": options.trace,
        "funds": dict(options.funds),
    }


def up(options: UpOptions, progress: Progress = _noop) -> Testnet:
    """Create and start a testnet; returns its record once every node answers and has its topology's peers.
    On failure every started process is stopped and TestnetError says what went wrong (logs stay in the dir)."""
    seed, arguments = network_arguments(options)
    spec = spec_named(options.consensus)
    plan = _netns_plan(options)
    if options.directory and (Path(options.directory) / STATE_FILE).exists():
        raise TestnetError(f"{options.directory} already holds a testnet (take it down and delete it, or use "
                           "another --dir)")
    fresh = not options.directory or not Path(options.directory).exists()
    directory = Path(options.directory).resolve() if options.directory else default_directory(seed)
    try:
        cluster = Cluster.create(directory, options.nodes, **arguments)
    except (ValueError, GenesisError, DatadirError) as exc:
        if fresh:  # nothing was started: do not leave a half-made directory behind
            shutil.rmtree(directory, ignore_errors=True)
        raise TestnetError(f"cannot create the testnet: {exc}") from None
    try:
        edges = topology_edges(options.topology, options.nodes, random.Random(f"{seed}/topology"))
    except TopologyError as exc:
        raise TestnetError(str(exc)) from None
    testnet = _record(cluster, directory, seed, options, edges, plan)
    progress(f"testnet {directory}: {options.nodes} {options.consensus} nodes, {options.topology} topology, "
             f"chain {testnet.chain_id}" + (f", namespaces {plan.namespace(0)}.. on {plan.subnet}" if plan else ""))
    for warning in spec.warnings(cluster.genesis):  # e.g. acks_required=0 given on purpose
        progress(f"warning: {warning}")
    for record in testnet.nodes:
        _write_node_config(testnet, record, first_start=True)
    if options.tie_to_launcher and threading.current_thread() is not threading.main_thread():
        raise TestnetError("a foreground testnet starts its nodes from the main thread (their parent-death signal "
                           "follows the thread that started them)")
    started = time.monotonic()
    handles = [LocalNode(name=r.name, datadir=Path(r.datadir), log_path=Path(r.log), admin_token=r.admin_token,
                         exec_prefix=netns_exec_prefix(testnet, r)) for r in testnet.nodes]
    try:
        if plan is not None:
            netns.create(plan, directory)
            progress(f"{options.nodes} namespaces on bridge {plan.bridge} ({plan.gateway}) after "
                     f"{time.monotonic() - started:.1f} s")
        for handle in handles:
            handle.launch(tie_to_parent=options.tie_to_launcher)
            assert handle.process is not None
            procs.adopt(handle.process)
        for handle, record in zip(handles, testnet.nodes, strict=True):
            handle.wait_started(START_TIMEOUT_S)
            adopt_info(record, handle)
        progress(f"{options.nodes} nodes answering after {time.monotonic() - started:.1f} s; connecting")
        for low, high in sorted(edges):
            _client(testnet.nodes[high]).connect_peer(testnet.nodes[low].p2p_url)
        for record in testnet.nodes:
            _write_node_config(testnet, record, first_start=False)
        wait_connected(testnet, CONNECT_TIMEOUT_S)
        wait_writable(testnet, CONNECT_TIMEOUT_S)
    except BaseException as exc:  # Ctrl-C included: never leave a half-started testnet running
        for handle in handles:
            if handle.process is not None:
                procs.terminate(handle.process.pid, 5.0)
        for record in testnet.nodes:
            record.state, record.pid = "stopped", None
        if plan is not None:
            netns.destroy(plan)
            testnet.netns_id = ""  # nothing of it is left to take down
        save_testnet(testnet)
        if isinstance(exc, LocalNodeError | RpcError | RpcUnavailable | TestnetError | ConfigError):
            raise TestnetError(f"testnet did not come up: {exc}") from None
        raise
    save_testnet(testnet)
    append_event(testnet, "up", nodes=[r.name for r in testnet.nodes], ready_s=round(time.monotonic() - started, 3))
    progress(f"ready after {time.monotonic() - started:.1f} s")
    return testnet


def _netns_plan(options: UpOptions) -> netns.NetnsPlan | None:
    """With --netns: check that namespaces can be made here and the subnet is free, and name them (a fresh id,
    so two netns testnets never share a name); before anything is created."""
    if not options.netns:
        return None
    netns.preflight()
    plan = netns.NetnsPlan(testnet_id=secrets.token_hex(3), subnet=options.subnet, nodes=options.nodes)
    netns.check_subnet_free(plan.subnet)
    return plan


def netns_plan(testnet: Testnet) -> netns.NetnsPlan | None:
    """The namespaces of a --netns testnet (None for one on the host's network)."""
    if not testnet.netns_id:
        return None
    return netns.NetnsPlan(testnet_id=testnet.netns_id, subnet=testnet.netns_subnet, nodes=len(testnet.nodes))


def netns_exec_prefix(testnet: Testnet, record: NodeRecord) -> list[str]:
    """What runs the node's command in its namespace ([] on the host's network)."""
    plan = netns_plan(testnet)
    return netns.exec_prefix(plan, record.index) if plan is not None and record.netns else []


def _record(cluster: Cluster, directory: Path, seed: str, options: UpOptions, edges: set[tuple[int, int]],
            plan: netns.NetnsPlan | None) -> Testnet:
    nodes = []
    for index, node in enumerate(cluster.nodes):
        config = load_config(node.datadir)
        nodes.append(NodeRecord(index=index, name=node.name, datadir=str(node.datadir), log=str(node.log_path),
                                admin_token=node.admin_token, mining=config.mining.enabled,
                                hashrate_hps=round(config.mining.hashrate_hps, 3),
                                netns=plan.namespace(index) if plan else ""))
    genesis = cluster.genesis
    return Testnet(dir=str(directory), seed=seed, chain_id=genesis.chain_id, genesis=genesis.hash.hex(),
                   consensus=genesis.consensus, topology=options.topology, edges=[list(e) for e in sorted(edges)],
                   nodes=nodes, load_accounts=len(cluster.load_keys),
                   block_interval_s=float(genesis.param("block_interval_s")),
                   finality_threshold=genesis.finality_threshold, created=iso_now(),
                   netns_id=plan.testnet_id if plan else "", netns_subnet=plan.subnet if plan else "")


def _write_node_config(testnet: Testnet, record: NodeRecord, *, first_start: bool) -> None:
    """First start: OS-chosen ports, no bootstrap (edges are dialed after every node is up). Afterwards: the
    bound ports pinned and every neighbour as a bootstrap peer, for restarts."""
    count = len(testnet.nodes)
    full = testnet.topology == "full"
    overrides: dict[str, Any] = {
        "node.name": record.name,
        # Every other node may dial this one, and inbound peers cannot take the 8 slots kept for our own dials
        # (P2PConfig.outbound_slots): room for all of them, so no honest node of the testnet is ever evicted.
        "p2p.max_peers": max(32, count + 4 + 8),
        # 0: dial only bootstrap peers, never addresses learnt by peer exchange, so a line stays a line
        "p2p.target_peers": count - 1 if full else 0,
    }
    plan = netns_plan(testnet)
    if plan is not None and record.netns:  # its own address: peers and the toolkit reach it over the bridge
        overrides.update({"p2p.host": plan.ip(record.index), "rpc.host": plan.ip(record.index)})
    if not first_start:
        neighbour_urls = [testnet.nodes[n].p2p_url for n in neighbours(_edges(testnet), record.index)]
        overrides.update({"p2p.port": port_of(record.p2p_url), "rpc.port": port_of(record.rpc_url),
                          "p2p.bootstrap": neighbour_urls})
    config = load_config(record.datadir).with_overrides(overrides)
    write_config(record.datadir, config)


def port_of(url: str) -> int:
    """The port of a node URL (ws://127.0.0.1:PORT/p2p, http://127.0.0.1:PORT)."""
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _edges(testnet: Testnet) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in testnet.edges]


def adopt_info(record: NodeRecord, handle: LocalNode) -> None:
    """Record a started node's process and the URLs and ids it published."""
    assert handle.process is not None
    record.pid = handle.process.pid
    record.rpc_url, record.p2p_url = handle.rpc_url, handle.p2p_url
    record.node_id, record.address = handle.node_id, str(handle.info.get("address", ""))
    record.state = "running"


def _client(record: NodeRecord, timeout_s: float = 5.0) -> RpcClient:
    return RpcClient(record.rpc_url, admin_token=record.admin_token or None, timeout_s=timeout_s)


def expected_peers(testnet: Testnet, index: int) -> int:
    """Peers node `index` should have when every node is up: its number of topology neighbours."""
    return len(neighbours(_edges(testnet), index))


def wait_writable(testnet: Testnet, timeout_s: float) -> None:
    """Until every running node accepts client writes (`write_refusal` null in its status): an engine that refuses
    them without a leader (Raft) has had its first election. Otherwise a load or lock command run right after `up`
    met `no-quorum`/`no-leader` on a network that looked ready."""
    deadline = time.monotonic() + timeout_s
    refused: dict[str, str] = {}
    while time.monotonic() < deadline:
        refused = {}
        for record in testnet.nodes:
            if record.state != "running":
                continue
            try:
                refusal = _client(record, 2.0).status().get("write_refusal")
            except (RpcError, RpcUnavailable) as exc:
                refused[record.name] = str(exc)
                continue
            if isinstance(refusal, dict):
                refused[record.name] = f"{refusal.get('code')}: {refusal.get('message')}"
        if not refused:
            return
        time.sleep(0.1)
    raise TestnetError("nodes refuse writes after start: " + ", ".join(f"{k} ({v})" for k, v in refused.items()))


def wait_connected(testnet: Testnet, timeout_s: float, indices: Sequence[int] | None = None) -> None:
    """Until each (running) node has at least its topology's number of peers among running nodes."""
    running = {n.index for n in testnet.nodes if n.state == "running"}
    wanted = {i: sum(1 for n in neighbours(_edges(testnet), i) if n in running)
              for i in (indices if indices is not None else sorted(running))}
    deadline = time.monotonic() + timeout_s
    missing: dict[str, str] = {}
    while time.monotonic() < deadline:
        missing = {}
        for index, count in wanted.items():
            record = testnet.nodes[index]
            try:
                peers = int(_client(record, 2.0).status()["peers"])
            except (RpcError, RpcUnavailable, KeyError, ValueError) as exc:
                missing[record.name] = str(exc)
                continue
            if peers < count:
                missing[record.name] = f"{peers}/{count} peers"
        if not missing:
            return
        time.sleep(0.1)
    raise TestnetError("nodes not connected in time: " + ", ".join(f"{k} ({v})" for k, v in missing.items()))


def start_node(testnet: Testnet, record: NodeRecord, wait_s: float = START_TIMEOUT_S) -> None:
    """Start a stopped node again from its data directory (its config pins its ports and neighbours)."""
    refuse_remote([record], "start")
    if procs.owned(record.pid, record.datadir):
        raise TestnetError(f"{record.name} is already running (pid {record.pid})")
    if record.netns and not netns.namespace_exists(record.netns):
        raise TestnetError(f"{record.name}'s network namespace {record.netns} is gone (`testnet down` or "
                           "`testnet doctor --fix` removed it): bring up a new testnet")
    handle = LocalNode(name=record.name, datadir=Path(record.datadir), log_path=Path(record.log),
                       admin_token=record.admin_token, exec_prefix=netns_exec_prefix(testnet, record))
    handle.launch()
    assert handle.process is not None
    procs.adopt(handle.process)
    try:
        handle.wait_started(wait_s)
    except LocalNodeError as exc:
        record.state, record.pid = "stopped", None
        raise TestnetError(str(exc).splitlines()[0] + f" (see {record.log})") from None
    except BaseException:  # Ctrl-C included: the pid is not recorded yet, so no one else could stop this node
        procs.terminate(handle.process.pid, 5.0)
        record.state, record.pid = "stopped", None
        raise
    adopt_info(record, handle)


def stop_nodes(records: Sequence[NodeRecord], timeout_s: float = 10.0, *, hard: bool = False,
               ) -> list[dict[str, Any]]:
    """Stop nodes in parallel: SIGTERM then SIGKILL of the group after `timeout_s` (`hard`: SIGKILL at once).
    Returns, per node, what happened and any process of its group left alive (must be none)."""
    refuse_remote(records, "stop")

    def one(record: NodeRecord) -> dict[str, Any]:
        pid = record.pid
        if not pid or not procs.owned(pid, record.datadir):
            left = procs.kill_group(pid) if pid and procs.group_members(pid) else []
            return {"node": record.name, "pid": pid, "outcome": "not running", "left": left}
        if hard:
            left = procs.kill_group(pid)
            return {"node": record.name, "pid": pid, "outcome": "killed", "left": left}
        outcome = procs.terminate(pid, timeout_s)
        return {"node": record.name, "pid": pid, "outcome": outcome, "left": procs.group_members(pid)}

    if not records:
        return []
    with ThreadPoolExecutor(max_workers=len(records)) as pool:
        return list(pool.map(one, records))


def down(directory: Path, timeout_s: float = 10.0) -> dict[str, Any]:
    """Stop every node of the testnet; the result lists each node's outcome and `ok` (no process left). Remote
    nodes are not touched but forgotten: a testnet of remote nodes only loses its testnet.json (`forgotten`), and
    in a mixed one they stay as they are while the local ones stop."""
    with locked(directory):
        testnet = load_testnet(directory)
        local = [record for record in testnet.nodes if not record.remote]
        results = stop_nodes(local, timeout_s) + forget(testnet)
        for record in local:
            record.state = "stopped"
            record.faults_applied = False
        plan = netns_plan(testnet)
        # After the processes: a namespace with a process in it outlives its name.
        netns_left = netns.destroy(plan) if plan is not None else []
        save_testnet(testnet)
        append_event(testnet, "down", nodes=[r.name for r in testnet.nodes])
        forgotten = not local
        if forgotten:
            (testnet.path / STATE_FILE).unlink()  # it holds the admin tokens; events, history and checks stay
    left = [pid for result in results for pid in result["left"]]
    return {"dir": str(directory), "nodes": results, "ok": not left and not netns_left, "left": left,
            "forgotten": forgotten, **({"netns": {"removed": plan.testnet_id, "failures": netns_left}} if plan else {})}


def node_status(record: NodeRecord, timeout_s: float = 2.0) -> dict[str, Any]:
    """The node's process state and, when it answers, its /v1/status (or the error)."""
    if record.remote:
        entry: dict[str, Any] = {"name": record.name, "index": record.index, "pid": None, "state": record.state,
                                 "remote": True, "rpc_url": record.rpc_url, "status": None, "error": None}
        try:
            entry["status"] = _client(record, timeout_s).status()
        except (RpcError, RpcUnavailable) as exc:
            entry["error"] = str(exc)
        return entry
    running = procs.owned(record.pid, record.datadir)
    entry = {"name": record.name, "index": record.index, "pid": record.pid if running else None, "remote": False,
                             "state": record.state if running else ("killed" if record.state == "killed"
                                                                    else "stopped"),
                             "rpc_url": record.rpc_url, "status": None, "error": None}
    if running and record.state != "paused":
        try:
            entry["status"] = _client(record, timeout_s).status()
        except (RpcError, RpcUnavailable) as exc:
            entry["error"] = str(exc)
    return entry


def status(directory: Path) -> dict[str, Any]:
    """The testnet record plus each node's live status (queried in parallel)."""
    testnet = load_testnet(directory)
    with ThreadPoolExecutor(max_workers=max(1, len(testnet.nodes))) as pool:
        nodes = list(pool.map(node_status, testnet.nodes))
    byzantine = testnet.byzantine()
    for entry in nodes:
        entry["byzantine"] = byzantine.get(entry["name"])  # why `testnet check` leaves it out (None: honest)
    return {"dir": testnet.dir, "chain_id": testnet.chain_id, "genesis": testnet.genesis,
            "consensus": testnet.consensus, "topology": testnet.topology, "nodes": nodes}


def pause_signal(pid: int, pause: bool) -> None:
    """SIGSTOP or SIGCONT a node's whole process group (the node and its workers: a frozen machine)."""
    procs.signal_group(pid, signal.SIGSTOP if pause else signal.SIGCONT)
