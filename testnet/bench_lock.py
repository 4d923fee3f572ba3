"""`chainlab bench lock`: acquire-to-granted latency and sustained lock operations per second of a real 3-node
Raft network (issue #18, "Performance"; docs/LOCKS.md, docs/PERFORMANCE.md).

The network and the closed loop are `bench consensus`'s (testnet/bench_consensus.py, testnet/bench_loop.py). Each
client is a funded account that competes for one of `locks` locks (client i for lock i mod locks): it acquires
the lock for `lease_blocks` blocks, writes `writes_per_lease` values through the fenced register with the token of
its grant, releases, and starts again. Every operation is one signed transaction the client submits with
`POST /v1/transactions?wait=final`, whose answer carries the outcome and the grant's position (so the token); the
next one goes out when it is final. A refused acquire (`lock-held`, at admission or in a block) is retried after a
short pause. Counted: every operation final inside the window (refused ones in a block included: they are
committed); the acquire-to-granted latency is the time from submitting an acquire to its final answer, for the
grants. After the window the `locks` checker runs on node0's chain: the figure holds only without a violation.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.crypto import PrivateKey
from chain.locks import KvPut, LockAcquire, LockRelease, Operation, fencing_token
from chain.tx import make_operation
from node import eventloop
from node.client import RpcClient
from testnet.bench_consensus import BenchError, bench_genesis
from testnet.bench_http import HttpError, LeanClient
from testnet.bench_loop import latency_summary, machine_info, processes_cpu_s, run_closed_loop
from testnet.cluster import Cluster
from testnet.collect import CollectError, rpc_view
from testnet.lockcheck import check_locks

COMMIT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LockBenchOptions:
    """What to run: `clients` closed-loop lock clients over `locks` locks on `nodes` Raft nodes."""

    nodes: int = 3
    clients: int = 64
    locks: int = 32
    lease_blocks: int = 500
    writes_per_lease: int = 8
    duration_s: float = 20.0
    warmup_s: float = 1.0
    genesis_params: dict[str, Any] = field(default_factory=dict)
    seed: str = "bench-lock"


@dataclass(kw_only=True)
class _Client:
    key: PrivateKey
    lock: str
    node: int
    connection: LeanClient
    nonce: int = 0
    token: int | None = None  # the token of the lease it holds, None while it has none
    writes_left: int = 0


class LockLoad:
    """The closed loop's operation: the client's next lock operation, submitted and waited for until final."""

    def __init__(self, cluster: Cluster, options: LockBenchOptions) -> None:
        self.chain_id = cluster.genesis.chain_id
        self.options = options
        self.clients = [_Client(key=key, lock=f"lock-{index % options.locks}", node=index % len(cluster.nodes),
                                connection=LeanClient(cluster.nodes[index % len(cluster.nodes)].rpc_url))
                        for index, key in enumerate(cluster.load_keys[:options.clients])]
        self.granted: list[tuple[float, float]] = []  # (when final, acquire-to-granted seconds)
        self.outcomes: dict[str, int] = {}  # committed operations by kind and outcome

    def _next_op(self, client: _Client) -> Operation:
        if client.token is None:
            return LockAcquire(name=client.lock, lease_blocks=self.options.lease_blocks)
        if client.writes_left > 0:
            return KvPut(key=f"key-of-{client.lock}", value=b"%d" % client.nonce, lock=client.lock,
                         token=client.token)
        return LockRelease(name=client.lock)

    async def __call__(self, index: int) -> str | None:
        client = self.clients[index]
        op = self._next_op(client)
        tx = make_operation(client.key, op, chain_id=self.chain_id, fee=1, nonce=client.nonce)
        begun = time.monotonic()
        try:
            reply = await client.connection.request("POST", "/v1/transactions?wait=final",
                                                    b'{"tx":"%s"}' % tx.encoded.hex().encode(),
                                                    timeout_s=COMMIT_TIMEOUT_S)
        except TimeoutError:
            return "commit-timeout"
        except HttpError:
            return "unavailable"
        answer = _json(reply.body)
        if reply.status != 200 or answer.get("status") != "final":
            code = str((answer.get("error") or {}).get("code") or f"http-{reply.status}")
            if code == "nonce-too-low":
                client.nonce += 1
            elif op.kind == "kv-put":  # the lease is gone (stale token, lock not held): take the lock again
                client.token = None
            return code
        client.nonce += 1
        result = str(answer.get("result", "unknown"))
        self.outcomes[f"{op.kind} {result}"] = self.outcomes.get(f"{op.kind} {result}", 0) + 1
        self._advance(client, op, result, answer, time.monotonic() - begun)
        return None

    def _advance(self, client: _Client, op: Operation, result: str, answer: dict[str, Any], took_s: float) -> None:
        if isinstance(op, LockAcquire):
            if result == "ok":
                client.token = fencing_token(int(answer["height"]), int(answer["index"]))
                client.writes_left = self.options.writes_per_lease
                self.granted.append((time.monotonic(), took_s))
        elif isinstance(op, KvPut):
            client.writes_left -= 1
            if result != "ok":
                client.token = None
        else:
            client.token = None

    def close(self) -> None:
        """Close every client's connection."""
        for client in self.clients:
            client.connection.close()


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def measure_locks(options: LockBenchOptions) -> dict[str, Any]:
    """Start a Raft network, run the lock load, check the chain, stop every node; the report."""
    if options.clients < 1 or options.locks < 1 or options.writes_per_lease < 0:
        raise BenchError("--clients and --locks must be at least 1, --writes-per-lease at least 0")
    top, params = bench_genesis("raft", options.nodes, options.genesis_params)
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-lock-") as workdir:
        try:
            cluster = Cluster.create(Path(workdir), options.nodes, consensus="raft", seed=options.seed,
                                     params=params, load_accounts=options.clients,
                                     chain_id=top.get("chain_id"))
        except ValueError as exc:
            raise BenchError(f"cannot create the network: {exc}") from None
        with cluster:
            cluster.start()
            if options.nodes > 1:
                cluster.wait_connected(min_peers=1)
            report = eventloop.run(_run(cluster, options))
            report["check"] = _check(cluster)
    report["genesis_params"] = {**params, **top}
    return report


async def _run(cluster: Cluster, options: LockBenchOptions) -> dict[str, Any]:
    load = LockLoad(cluster, options)
    try:
        result = await run_closed_loop(options.clients, load, duration_s=options.duration_s,
                                       warmup_s=options.warmup_s,
                                       server_cpu=lambda: processes_cpu_s([node.pid for node in cluster.nodes]))
    finally:
        load.close()
    summary = result.summary()
    granted = [took for done, took in load.granted if result.window_start <= done <= result.window_end]
    acquire = latency_summary(granted)
    return {
        "consensus": "raft", "nodes": options.nodes, "clients": options.clients, "locks": options.locks,
        "lease_blocks": options.lease_blocks, "writes_per_lease": options.writes_per_lease,
        "duration_s": round(result.window_s, 3), "lock_ops": summary["ops"], "lock_ops_per_s": summary["ops_per_s"],
        "op_p50_ms": summary["p50_ms"], "op_p99_ms": summary["p99_ms"], "grants": len(granted),
        "acquire_p50_ms": acquire["p50_ms"], "acquire_p99_ms": acquire["p99_ms"], "acquire_max_ms": acquire["max_ms"],
        "outcomes": dict(sorted(load.outcomes.items())), "errors": summary["errors"],
        "client": {k: summary[k] for k in ("client_cpu_s", "client_cpu_share", "client_cpu_per_op_us")},
        "nodes_cpu": {"cpu_share": summary["server_cpu_share"], "cpu_per_op_us": summary["server_cpu_per_op_us"]},
        "machine": machine_info(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _check(cluster: Cluster) -> dict[str, Any]:
    """The `locks` checker on node0's final chain after the run."""
    client = RpcClient(cluster.nodes[0].rpc_url, timeout_s=30.0)
    try:
        view = rpc_view("node0", client, cluster.genesis, with_ledger=False)
    except CollectError as exc:
        return {"ok": False, "detail": f"cannot read node0: {exc}", "operations": 0}
    ok, detail = check_locks("node0", view.lock_ops)
    return {"ok": ok, "detail": detail, "operations": len(view.lock_ops)}


def format_lock_report(report: dict[str, Any]) -> list[str]:
    """The human lines of a `bench lock` report."""
    check = report["check"]
    return [
        f"raft: {report['nodes']} nodes, {report['clients']} clients over {report['locks']} locks, leases of "
        f"{report['lease_blocks']} blocks, {report['writes_per_lease']} fenced writes per lease, "
        f"{report['duration_s']:g} s",
        f"lock operations: {report['lock_ops']} final, {report['lock_ops_per_s']:.1f}/s (each op p50 "
        f"{report['op_p50_ms']} ms, p99 {report['op_p99_ms']} ms)",
        f"acquire to granted: {report['grants']} grants, p50 {report['acquire_p50_ms']} ms, p99 "
        f"{report['acquire_p99_ms']} ms, max {report['acquire_max_ms']} ms",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()),
        "errors: " + (", ".join(f"{k} {v}" for k, v in report["errors"].items()) or "none"),
        f"nodes' CPU: {report['nodes_cpu']['cpu_share']} cores, {report['nodes_cpu']['cpu_per_op_us']} us per op; "
        f"the load {report['client']['client_cpu_share']} of a core",
        f"locks check: {'ok' if check['ok'] else 'FAILED'} ({check['detail']})",
    ]
