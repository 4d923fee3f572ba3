"""`chainlab bench consensus`: committed transfers per second of a real N-node network, closed loop.

A network of the engine's nodes runs on 127.0.0.1 (testnet/cluster.py, durable writes as always); genesis funds
one account per client. Each client signs transfers to its own sink account, submits one to a node (clients are
spread over the nodes), waits until it is committed, then submits the next (testnet/bench_loop.py).

How a client learns its transfer is committed: it asks `POST /v1/transactions?wait=final`, which answers
`{"hash", "height", "block_hash", "status": "final"}` once a final block holds it. A node without that long-poll
answers 202 at admission (the query is ignored); the client then waits on `FinalWatcher`, which follows every
node's event stream and reads the transactions of each newly final block once (final blocks are the same on every
node, so whichever node reports finality first settles the transfer).

`--failover-kills N` (engines whose status `engine.role` names a leader or primary): SIGKILL the leader, time
until a surviving node commits a block, restart it, time until it caught up; N times, while the load runs on.

`--compare ENGINE` (`compare_engine`): then the same load on a fresh network of another engine, in the same run, so
that two engines' rates are measured on the machine in the same state (`bench consensus --consensus pbft
--compare raft`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from chain.crypto import PrivateKey
from chain.genesis import CHAIN_PARAMETERS, TOP_LEVEL
from chain.tx import Transaction, make_transfer
from consensus.registry import spec_named
from node import eventloop
from testnet.bench_http import HttpError, LeanClient, json_object
from testnet.bench_loop import LoopResult, latency_summary, machine_info, processes_cpu_s, run_closed_loop
from testnet.cluster import Cluster
from testnet.local import LocalNode

log = logging.getLogger("chainlab.testnet.bench")

LEADER_ROLES = ("leader", "primary")
DEFAULT_BLOCK_INTERVAL_S = 0.1  # EngineSpec.bench_block_interval_s's default
# The load is signed before the window, as load generators prepare their workload: signing costs ~50 us of the
# machine the nodes share, and a client's signing is not the network's work. Enough for PRESIGN_RATE commits per
# second over the run (at most PRESIGN_MAX signatures, a few seconds); any beyond are signed inside the window
# and counted in the report's `late_signed`.
PRESIGN_RATE = 4_000
PRESIGN_MAX = 100_000
COMMIT_TIMEOUT_S = 30.0
BLOCKS_PAGE = 100


class BenchError(RuntimeError):
    """A bench that cannot run as asked (bad option for this engine, a node that did not come up)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsensusBenchOptions:
    """What to run: `nodes` nodes of `consensus`, `clients` closed-loop clients for `duration_s` after a warm-up."""

    consensus: str
    nodes: int = 3
    clients: int = 64
    duration_s: float = 20.0
    warmup_s: float = 1.0
    genesis_params: dict[str, Any] = field(default_factory=dict)
    failover_kills: int = 0
    failover_timeout_s: float = 10.0
    seed: str = "bench-consensus"


def bench_genesis(consensus: str, nodes: int, given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(top-level genesis fields, params) for the bench: the engine's testnet defaults, a short block interval,
    and, for an engine that counts acknowledgements, one acknowledgement (a commit then means a second node holds
    the block on disk), unless given."""
    spec = spec_named(consensus)
    top = {k: v for k, v in given.items() if k in TOP_LEVEL}
    params = {k: v for k, v in given.items() if k not in TOP_LEVEL}
    if "consensus" in top or "timestamp_ms" in top:
        raise BenchError("set the engine with --consensus; timestamp_ms is not settable for a bench")
    params.setdefault("block_interval_s", spec.bench_block_interval_s)
    for key, value in spec.testnet_defaults(params).items():
        params.setdefault(key, value)
    if "acks_required" in spec.parameters and nodes > 1:
        params.setdefault("acks_required", 1)
    return top, params


def comparison_params(engine: str, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the given genesis parameters `engine` knows, the names of those it does not): a comparison run takes the
    chain-level and top-level ones, and its own engine's defaults for the rest."""
    known = {**CHAIN_PARAMETERS, **spec_named(engine).parameters}
    kept = {k: v for k, v in given.items() if k in TOP_LEVEL or k in known}
    return kept, sorted(set(given) - set(kept))


def compare_engine(options: ConsensusBenchOptions, first: dict[str, Any], engine: str) -> dict[str, Any]:
    """The same load (nodes, clients, duration, no fail-over) on a network of `engine`, as the `compare` entry of
    the report `first`: its rate, latencies, errors, CPU and genesis, and the ratio of `first`'s rate to it."""
    params, dropped = comparison_params(engine, options.genesis_params)
    other = measure_consensus(ConsensusBenchOptions(
        consensus=engine, nodes=options.nodes, clients=options.clients, duration_s=options.duration_s,
        warmup_s=options.warmup_s, genesis_params=params, seed=options.seed))
    rate = other["committed_tx_per_s"]
    return {"system": "chainlab", "consensus": engine, "version": f"chainlab {engine}", "nodes": options.nodes,
            "clients": options.clients, "duration_s": other["duration_s"], "writes": other["committed_tx"],
            "writes_per_s": rate, "p50_ms": other["commit_p50_ms"], "p99_ms": other["commit_p99_ms"],
            "max_ms": other["commit_max_ms"], "blocks": other["blocks"], "errors": other["errors"],
            "client_cpu_share": other["client"]["client_cpu_share"],
            "server_cpu_share": other["nodes_cpu"]["cpu_share"],
            "server_cpu_per_op_us": other["nodes_cpu"]["cpu_per_commit_us"],
            "genesis_params": other["genesis_params"], "params_not_taken": dropped,
            "ratio_tx_per_s": round(first["committed_tx_per_s"] / rate, 4) if rate else None}


class FinalWatcher:
    """Resolves waiters when their transaction is in a final block, following every node's event stream."""

    def __init__(self, nodes: Sequence[LocalNode], sessions: Sequence[aiohttp.ClientSession]) -> None:
        self.nodes = list(nodes)
        self.sessions = list(sessions)
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.node_final = [-1] * len(self.nodes)  # the final height each node last reported
        self.processed = -1  # final blocks up to here have been read (and their waiters resolved)
        self.history: list[tuple[float, int]] = []  # (monotonic, final height) at each advance
        self.advanced = asyncio.Condition()
        self._fetch = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, indices: Sequence[int] | None = None) -> None:
        """Follow the nodes at `indices` (default: every node), reconnecting when one goes away."""
        chosen = range(len(self.nodes)) if indices is None else indices
        self._tasks = [asyncio.ensure_future(self._follow(index)) for index in chosen]

    async def close(self) -> None:
        """Stop following."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def ready(self, timeout_s: float) -> None:
        """Until some node reported its final height (what was final before that is not the bench's): a transfer
        sent earlier could be final before the watcher knew where to start. BenchError on timeout."""
        async def first_report() -> None:
            async with self.advanced:
                await self.advanced.wait_for(lambda: self.processed >= 0)

        try:
            await asyncio.wait_for(first_report(), timeout_s)
        except TimeoutError:
            raise BenchError(f"no node's event stream answered within {timeout_s:.0f} s") from None

    def expect(self, tx_hash: str) -> asyncio.Future[float]:
        """A future set to the time.monotonic() at which `tx_hash` was seen final (register before submitting)."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[tx_hash] = future
        return future

    def forget(self, tx_hash: str) -> None:
        """Stop waiting for `tx_hash`."""
        self.waiters.pop(tx_hash, None)

    def final_height_at(self, moment: float) -> int:
        """The highest final height seen at time.monotonic() `moment`."""
        height = -1
        for seen, final in self.history:
            if seen > moment:
                break
            height = final
        return height

    async def _follow(self, index: int) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=3, sock_read=60)
        while True:
            node = self.nodes[index]
            if not node.running() or not node.info:
                await asyncio.sleep(0.1)
                continue
            try:
                session = self.sessions[index]
                async with session.get(node.rpc_url + "/v1/events", timeout=timeout) as stream:
                    if stream.status != 200:
                        raise ValueError(f"events: HTTP {stream.status}")
                    await self._advance(index, int((await self._get(index, "/v1/status"))["final_height"]))
                    async for line in stream.content:
                        if not line.startswith(b"data:"):
                            continue
                        event = json.loads(line[5:])
                        if event.get("type") == "final":
                            await self._advance(index, int(event["height"]))
                        elif event.get("type") == "dropped":  # this stream lost events: read where the node is
                            await self._advance(index, int((await self._get(index, "/v1/status"))["final_height"]))
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                log.debug("event stream of %s ended: %s", node.name, exc)
            await asyncio.sleep(0.1)

    async def _advance(self, index: int, final_height: int) -> None:
        """Node `index` says blocks up to `final_height` are final: read the ones nobody has read yet."""
        self.node_final[index] = max(self.node_final[index], final_height)
        async with self._fetch:
            if self.processed < 0:  # the first report: blocks final before the bench began are not ours
                self.processed = final_height
            while self.processed < final_height:
                limit = min(BLOCKS_PAGE, final_height - self.processed)
                page = await self._get(index, f"/v1/blocks?from={self.processed + 1}&limit={limit}")
                blocks = page["blocks"]
                if not blocks:
                    break
                now = time.monotonic()
                for block in blocks:
                    for tx_hash in block["txs"]:
                        waiter = self.waiters.pop(str(tx_hash), None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(now)
                    self.processed = max(self.processed, int(block["height"]))
            if not self.history or self.history[-1][1] < self.processed:
                self.history.append((time.monotonic(), self.processed))
        async with self.advanced:
            self.advanced.notify_all()

    async def _get(self, index: int, path: str) -> Any:
        async with self.sessions[index].get(self.nodes[index].rpc_url + path,
                                            timeout=aiohttp.ClientTimeout(total=10)) as reply:
            body = await reply.read()
            if reply.status != 200:
                raise ValueError(f"GET {path}: HTTP {reply.status}")
            return json.loads(body)


@dataclass(kw_only=True)
class BenchClient:
    """One closed-loop client: its funded key, sink, next nonce, presigned transfers and current node."""

    key: PrivateKey
    sink: bytes
    node: int
    nonce: int = 0
    signed: dict[int, Transaction] = field(default_factory=dict)
    signed_in_window: int = 0
    connections: dict[int, LeanClient] = field(default_factory=dict)  # by node index, opened on first use

    def connection(self, node: LocalNode) -> LeanClient:
        """The keep-alive connection to the client's current node (a restarted node gets a new one)."""
        lean = self.connections.get(self.node)
        if lean is None or (lean.host, lean.port) != _host_port(node.rpc_url):
            if lean is not None:
                lean.close()
            lean = self.connections[self.node] = LeanClient(node.rpc_url)
        return lean

    def close(self) -> None:
        """Close every connection."""
        for lean in self.connections.values():
            lean.close()


class TransferLoad:
    """The chainlab operation: submit the client's next transfer, wait until it is committed."""

    def __init__(self, cluster: Cluster, sessions: Sequence[aiohttp.ClientSession], watcher: FinalWatcher,
                 clients: int, run_s: float = 0.0) -> None:
        self.cluster = cluster
        self.sessions = list(sessions)
        self.watcher = watcher
        self.chain_id = cluster.genesis.chain_id
        self.clients = [BenchClient(key=key, sink=PrivateKey.from_seed(b"chainlab-bench-sink/%d" % index).address,
                                    node=index % len(cluster.nodes))
                        for index, key in enumerate(cluster.load_keys[:clients])]
        self.answered_final = 0  # commits the node reported itself (the long-poll API)
        self.watched_final = 0  # commits learnt from the event streams (nodes without it)
        self.late_signed = 0
        for client in self.clients:
            for nonce in range(presigned_per_client(len(self.clients), run_s)):
                client.signed[nonce] = self._sign(client, nonce)

    def _sign(self, client: BenchClient, nonce: int) -> Transaction:
        return make_transfer(client.key, chain_id=self.chain_id, recipient=client.sink, amount=1, fee=1, nonce=nonce)

    async def __call__(self, index: int) -> str | None:
        client = self.clients[index]
        tx = client.signed.get(client.nonce)
        if tx is None:
            self.late_signed += 1
            tx = client.signed[client.nonce] = self._sign(client, client.nonce)
        tx_hash = tx.hash.hex()
        committed = self.watcher.expect(tx_hash)
        node = self.cluster.nodes[client.node]
        try:
            if not node.info:
                raise HttpError("node not started")
            reply = await client.connection(node).request(
                "POST", "/v1/transactions?wait=final", b'{"tx":"%s"}' % tx.encoded.hex().encode(),
                timeout_s=COMMIT_TIMEOUT_S)
            status = reply.status
            answer = json_object(reply.body)
            if 200 <= status < 300 and answer.get("status") == "final":
                self.answered_final += 1
            else:
                code = _error_code(answer, status)
                if code not in (None, "already-known", "wait-timeout"):
                    if code == "nonce-too-low":  # an earlier try of this nonce made it into the chain
                        self._advance(client)
                    return code
                await asyncio.wait_for(committed, COMMIT_TIMEOUT_S)
                self.watched_final += 1
        except TimeoutError:
            return "commit-timeout"
        except HttpError:
            client.node = (client.node + 1) % len(self.cluster.nodes)  # that node is down: use the next one
            return "unavailable"
        finally:
            self.watcher.forget(tx_hash)
        self._advance(client)
        return None

    def close(self) -> None:
        """Close every client's connections."""
        for client in self.clients:
            client.close()

    @staticmethod
    def _advance(client: BenchClient) -> None:
        client.signed.pop(client.nonce, None)
        client.nonce += 1


def presigned_per_client(clients: int, run_s: float) -> int:
    """Transfers each client signs before the run: enough for PRESIGN_RATE commits/s over `run_s`, at least 64,
    at most PRESIGN_MAX in all."""
    wanted = int(PRESIGN_RATE * run_s / max(clients, 1)) + 1
    return max(64, min(wanted, PRESIGN_MAX // max(clients, 1)))


def _host_port(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def _error_code(answer: dict[str, Any], status: int) -> str | None:
    """None for an admission (202), else the reject code of the answer (http-NNN when it has none)."""
    if status == 202:
        return None
    error = answer.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return str(error["code"])
    return f"http-{status}"


async def _status(session: aiohttp.ClientSession, node: LocalNode) -> dict[str, Any] | None:
    try:
        async with session.get(node.rpc_url + "/v1/status", timeout=aiohttp.ClientTimeout(total=2)) as reply:
            return json_object(await reply.read()) if reply.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


async def find_leader(cluster: Cluster, sessions: Sequence[aiohttp.ClientSession], wait_s: float) -> int:
    """Index of the node whose status `engine.role` is a leader or primary; BenchError when none shows up
    within `wait_s` (naming the roles the engine does report)."""
    deadline = time.monotonic() + wait_s
    roles: set[str] = set()
    while True:
        for index, node in enumerate(cluster.nodes):
            if not node.running() or not node.info:
                continue
            status = await _status(sessions[index], node)
            engine = (status or {}).get("engine")
            role = engine.get("role") if isinstance(engine, dict) else None
            if role in LEADER_ROLES:
                return index
            roles.add(str(role))
        if time.monotonic() >= deadline:
            raise BenchError(f"--failover-kills: no {cluster.genesis.consensus} node reports a leader or primary "
                             f"role in /v1/status (roles seen: {', '.join(sorted(roles)) or 'none'})")
        await asyncio.sleep(0.2)


async def _final_above(watcher: FinalWatcher, nodes: Sequence[int], height: int, timeout_s: float) -> bool:
    """Until one of `nodes` reports a final height above `height` (checked at each report); False on timeout."""
    async def wait() -> None:
        async with watcher.advanced:
            await watcher.advanced.wait_for(lambda: max(watcher.node_final[i] for i in nodes) > height)

    try:
        await asyncio.wait_for(wait(), timeout_s)
        return True
    except TimeoutError:
        return False


async def _kill_leader_once(cluster: Cluster, sessions: Sequence[aiohttp.ClientSession], watcher: FinalWatcher,
                            timeout_s: float) -> tuple[float | None, float]:
    """SIGKILL the leader; (seconds to a commit on a survivor or None past `timeout_s`, seconds from its restart
    until it reports a commit made after it came back)."""
    leader = await find_leader(cluster, sessions, wait_s=timeout_s)
    survivors = [i for i in range(len(cluster.nodes)) if i != leader and cluster.nodes[i].running()]
    before = max(watcher.node_final)
    killed_at = time.monotonic()
    await asyncio.to_thread(cluster.nodes[leader].kill)
    committed = await _final_above(watcher, survivors, before, timeout_s) if survivors else False
    to_commit = time.monotonic() - killed_at if committed else None
    restarted_at = time.monotonic()
    watcher.node_final[leader] = -1
    await asyncio.to_thread(cluster.start, [leader])
    if not await _final_above(watcher, [leader], max(watcher.node_final), 3 * timeout_s):
        raise BenchError(f"{cluster.nodes[leader].name} did not catch up within {3 * timeout_s:.0f} s of its "
                         f"restart; log {cluster.nodes[leader].log_path}")
    return to_commit, time.monotonic() - restarted_at


async def run_failover(cluster: Cluster, sessions: Sequence[aiohttp.ClientSession], watcher: FinalWatcher,
                       kills: int, timeout_s: float) -> dict[str, Any]:
    """Kill the leader `kills` times (one second apart): ms from the SIGKILL to a commit on a surviving node, and
    from the restart to the restarted node's reporting a commit newer than any before it came back."""
    to_commit: list[float] = []
    to_recover: list[float] = []
    for _ in range(kills):
        commit_s, recover_s = await _kill_leader_once(cluster, sessions, watcher, timeout_s)
        if commit_s is not None:
            to_commit.append(commit_s)
        to_recover.append(recover_s)
        await asyncio.sleep(1.0)
    commit = latency_summary(to_commit)
    recover = latency_summary(to_recover)
    return {"kills": kills, "commit_after_kill_p50_ms": commit["p50_ms"], "commit_after_kill_max_ms": commit["max_ms"],
            "no_commit_within_timeout": kills - len(to_commit), "timeout_s": timeout_s,
            "recovery_p50_ms": recover["p50_ms"], "recovery_max_ms": recover["max_ms"]}


@contextlib.contextmanager
def bench_cluster(workdir: Path, consensus: str, *, nodes: int, seed: str, clients: int, params: dict[str, Any],
                  top: dict[str, Any], **genesis: Any) -> Iterator[Cluster]:
    """A started network of `nodes` real processes for a bench (connected when there are several; stopped on
    leaving), `clients` funded load accounts; BenchError when its genesis is refused."""
    try:
        cluster = Cluster.create(workdir, nodes, consensus=consensus, seed=seed, params=params, load_accounts=clients,
                                 chain_id=top.get("chain_id"), **genesis)
    except ValueError as exc:  # GenesisError among them
        raise BenchError(f"cannot create the network: {exc}") from None
    with cluster:
        cluster.start()
        if nodes > 1:
            cluster.wait_connected(min_peers=1)
        yield cluster


def measure_consensus(options: ConsensusBenchOptions) -> dict[str, Any]:
    """Start the network, run the closed loop (and the fail-over phase), stop every node; the report."""
    if options.clients < 1 or options.nodes < 1:
        raise BenchError("--clients and --nodes must be at least 1")
    top, params = bench_genesis(options.consensus, options.nodes, options.genesis_params)
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-consensus-") as workdir, \
            bench_cluster(Path(workdir), options.consensus, nodes=options.nodes, seed=options.seed,
                          clients=options.clients, params=params, top=top,
                          finality_threshold=int(top.get("finality_threshold", 6)),
                          block_reward=int(top.get("block_reward", 50))) as cluster:
        report = eventloop.run(_run(cluster, options))
    report.update({"genesis_params": {**params, **top}})
    return report


async def _run(cluster: Cluster, options: ConsensusBenchOptions) -> dict[str, Any]:
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=options.clients + 8), trust_env=False)
                for _ in cluster.nodes]
    watcher = FinalWatcher(cluster.nodes, sessions)
    failover: dict[str, Any] | None = None
    load: TransferLoad | None = None
    try:
        if options.failover_kills:
            await find_leader(cluster, sessions, wait_s=options.failover_timeout_s)  # refuse before the load
        # Final blocks are the same on every node: one stream is enough unless nodes are killed on purpose (each
        # stream costs its node a little for every block).
        watcher.start(None if options.failover_kills else [0])
        await watcher.ready(timeout_s=10.0)
        load = TransferLoad(cluster, sessions, watcher, options.clients, run_s=options.warmup_s + options.duration_s)

        async def failover_phase() -> None:
            nonlocal failover
            if options.failover_kills:
                failover = await run_failover(cluster, sessions, watcher, options.failover_kills,
                                              options.failover_timeout_s)

        result = await run_closed_loop(options.clients, load, duration_s=options.duration_s,
                                       warmup_s=options.warmup_s, after_window=failover_phase,
                                       server_cpu=lambda: processes_cpu_s([node.pid for node in cluster.nodes]))
    finally:
        if load is not None:
            load.close()
        await watcher.close()
        for session in sessions:
            await session.close()
    report = consensus_report(options, result, watcher)
    assert load is not None, "the closed loop ran"
    report["commit_source"] = {"node_answer": load.answered_final, "event_stream": load.watched_final}
    report["late_signed"] = load.late_signed
    if failover is not None:
        report["failover"] = failover
    return report


def consensus_report(options: ConsensusBenchOptions, result: LoopResult, watcher: FinalWatcher) -> dict[str, Any]:
    """The report's JSON (see docs/PERFORMANCE.md "Consensus throughput")."""
    summary = result.summary()
    blocks = watcher.final_height_at(result.window_end) - watcher.final_height_at(result.window_start)
    return {
        "consensus": options.consensus, "nodes": options.nodes, "clients": options.clients,
        "duration_s": round(result.window_s, 3), "committed_tx": summary["ops"],
        "committed_tx_per_s": summary["ops_per_s"], "commit_p50_ms": summary["p50_ms"],
        "commit_p99_ms": summary["p99_ms"], "commit_max_ms": summary["max_ms"], "blocks": max(0, blocks),
        "errors": summary["errors"],
        "client": {k: summary[k] for k in ("client_cpu_s", "client_cpu_share", "client_cpu_per_op_us")},
        "nodes_cpu": {"cpu_s": summary["server_cpu_s"], "cpu_share": summary["server_cpu_share"],
                      "cpu_per_commit_us": summary["server_cpu_per_op_us"]},
        "machine": machine_info(), "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
