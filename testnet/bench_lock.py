"""`chainlab bench lock`: acquire-to-granted latency and sustained lock operations per second of a real 3-node
Raft network (issue #18, "Performance"; docs/LOCKS.md, docs/PERFORMANCE.md).

The network and the closed loop are `bench consensus`'s (testnet/bench_consensus.py, testnet/bench_loop.py). Each
client is a funded account that competes for one of `locks` locks (client i for lock i mod locks): it acquires
the lock for `lease_blocks` blocks, writes `writes_per_lease` values through the fenced register with the token of
its grant, releases, and starts again. Every operation is one signed transaction the client submits with
`POST /v1/transactions?wait=final`, whose answer carries the outcome and the grant's position (so the token).
The client's next operation goes out when the previous one is final, except that a holder may have `pipeline`
fenced writes in flight at once under its grant (consecutive nonces, each waited for until final); it releases
only after all of them. An acquire refused at admission (`lock-held`: another client holds the lock) does not
poll: the client waits for the lock's `released` or `expired` event on node0's `/v1/events` stream (`LockWatch`),
with a short fallback timeout in case the event was missed, and tries again; one refused in a block is retried at
once. Counted: every operation final inside the window (refused ones in a block included: they are committed);
the acquire-to-granted latency is the time from submitting the granted acquire to its final answer. After the
window the `locks` checker runs on node0's chain: the figure holds only without a violation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from chain.crypto import PrivateKey, address_to_text
from chain.locks import KvPut, LockAcquire, LockRelease, Operation, fencing_token
from chain.tx import make_operation
from node import eventloop
from node.client import RpcClient
from testnet.bench_consensus import BenchError, bench_cluster, bench_genesis
from testnet.bench_http import HttpError, LeanClient, json_object
from testnet.bench_loop import latency_summary, machine_info, processes_cpu_s, run_closed_loop
from testnet.cluster import Cluster
from testnet.collect import CollectError, rpc_view
from testnet.lockcheck import check_locks

log = logging.getLogger("chainlab.testnet.bench")

COMMIT_TIMEOUT_S = 30.0
# How long a client refused with `lock-held` waits for the lock's release event before it tries again anyway (the
# event can be missed: a stream reconnecting, a `dropped` event); a lease that runs out also sends `expired`.
FREE_WAIT_FALLBACK_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class LockBenchOptions:
    """What to run: `clients` closed-loop lock clients over `locks` locks on `nodes` Raft nodes."""

    nodes: int = 3
    clients: int = 64
    locks: int = 32
    lease_blocks: int = 500
    writes_per_lease: int = 8
    pipeline: int = 1  # fenced writes a holder has in flight at once under one grant
    duration_s: float = 20.0
    warmup_s: float = 1.0
    genesis_params: dict[str, Any] = field(default_factory=dict)
    seed: str = "bench-lock"


@dataclass(kw_only=True)
class _Client:
    key: PrivateKey
    lock: str
    node: int
    connections: list[LeanClient]  # the first for every operation, the rest for pipelined writes
    nonce: int = 0
    token: int | None = None  # the token of the lease it holds, None while it has none
    writes_left: int = 0


class LockWatch:
    """Follows one node's `/v1/events` and tells waiting clients when a lock becomes free (`released` or `expired`).

    Each lock has a generation that a free event advances; a client reads it before its acquire and, refused with
    `lock-held`, waits only while it is unchanged, so an event that arrives between the refusal and the wait is not
    lost."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.generation: dict[str, int] = {}
        self._freed: dict[str, asyncio.Event] = {}
        self.events = 0  # free events seen
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin following the stream (reconnecting until `stop`)."""
        self._task = asyncio.ensure_future(self._follow())

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_free(self, name: str, generation: int, timeout_s: float) -> None:
        """Return when lock `name` was freed after `generation` was read, or after `timeout_s`."""
        if self.generation.get(name, 0) != generation:
            return
        event = self._freed.setdefault(name, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    def _free(self, name: str) -> None:
        self.events += 1
        self.generation[name] = self.generation.get(name, 0) + 1
        event = self._freed.pop(name, None)
        if event is not None:
            event.set()

    async def _follow(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=3, sock_read=60)
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(self.url + "/v1/events", timeout=timeout) as stream:
                        async for line in stream.content:
                            if line.startswith(b"data:") and b'"lock"' in line:
                                event = json.loads(line[5:])
                                if event.get("type") == "lock" and event.get("event") in ("released", "expired"):
                                    self._free(str(event["name"]))
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                    log.debug("lock event stream ended: %s", exc)
                await asyncio.sleep(0.1)


@dataclass(kw_only=True)
class ClientPauses:
    """Kleppmann's paused holder, for `testnet load --workload lock`: before a write under its grant a client
    sleeps `pause_s` (longer than its lease) with probability `chance`, then writes with its old token."""

    chance: float
    pause_s: float
    rng: random.Random
    taken: int = 0


class LockLoad:
    """The closed loop's operation: the client's next lock operation, submitted and waited for until final."""

    def __init__(self, chain_id: str, urls: list[str], keys: list[PrivateKey], options: LockBenchOptions,
                 watch: LockWatch, pauses: ClientPauses | None = None) -> None:
        self.watch = watch
        self.pauses = pauses
        self.refused_at_admission: list[float] = []  # when an acquire was refused `lock-held` before any block
        self.refusal_codes: dict[str, int] = {}  # every operation refused at admission (HTTP 422), by code
        self.chain_id = chain_id
        self.options = options
        self.urls = urls
        self.clients = [_Client(key=key, lock=f"lock-{index % options.locks}", node=index % len(urls),
                                connections=[LeanClient(urls[index % len(urls)]) for _ in range(options.pipeline)])
                        for index, key in enumerate(keys[:options.clients])]
        self.granted: list[tuple[float, float]] = []  # (when final, acquire-to-granted seconds)
        # (when final, submit-to-final seconds) of every operation: an acquire's time waiting for a free lock is
        # not the operation's latency, so the loop's own per-call times are not used
        self.finished: list[tuple[float, float]] = []
        self.outcomes: dict[str, int] = {}  # committed operations by kind and outcome

    def _next_op(self, client: _Client) -> Operation:
        if client.token is None:
            return LockAcquire(name=client.lock, lease_blocks=self.options.lease_blocks)
        if client.writes_left > 0:
            return KvPut(key=f"key-of-{client.lock}", value=b"%d" % client.nonce, lock=client.lock,
                         token=client.token)
        return LockRelease(name=client.lock)

    async def sync_nonces(self) -> None:
        """Read each client's account nonce (a testnet's load accounts may have sent before)."""
        for client in self.clients:
            client.nonce = await self._account_nonce(client, client.nonce)

    async def __call__(self, index: int) -> str | None:
        client = self.clients[index]
        if client.token is not None and client.writes_left > 0 and self.pauses is not None \
                and self.pauses.rng.random() < self.pauses.chance:
            self.pauses.taken += 1
            await asyncio.sleep(self.pauses.pause_s)  # the lease runs out meanwhile; the write below is late
        error = await self._next(client)
        if error in ("unavailable", "commit-timeout"):
            await self._fail_over(client)
        return error

    async def _fail_over(self, client: _Client) -> None:
        """The client's node failed it: move to the next node and read the nonce back (the lost transaction may or
        may not have been taken)."""
        for connection in client.connections:
            connection.close()
        client.node = (client.node + 1) % len(self.urls)
        client.connections = [LeanClient(self.urls[client.node]) for _ in client.connections]
        client.nonce = await self._account_nonce(client, client.nonce)

    async def _next(self, client: _Client) -> str | None:
        if client.token is not None and client.writes_left > 1 and len(client.connections) > 1:
            return await self._write_batch(client)
        op = self._next_op(client)
        while True:
            generation = self.watch.generation.get(client.lock, 0)
            error = await self._submit(client, op, client.nonce, client.connections[0])
            if error is None or error == "nonce-too-low":
                client.nonce += 1
            if error != "lock-held":
                return error
            # Held by another client: wait for the lock's free event rather than polling the node.
            self.refused_at_admission.append(time.monotonic())
            await self.watch.wait_free(client.lock, generation, FREE_WAIT_FALLBACK_S)

    async def _write_batch(self, client: _Client) -> str | None:
        """Up to `pipeline` fenced writes under the client's grant at once (consecutive nonces, one connection
        each), every one waited for until final; the release goes out only after all of them."""
        assert client.token is not None
        count = min(client.writes_left, len(client.connections))
        first = client.nonce
        ops = [KvPut(key=f"key-of-{client.lock}", value=b"%d" % (first + i), lock=client.lock, token=client.token)
               for i in range(count)]
        errors = await asyncio.gather(*(self._submit(client, op, first + i, client.connections[i])
                                        for i, op in enumerate(ops)))
        failed = [error for error in errors if error is not None]
        if not failed:
            client.nonce = first + count
            return None
        # Some write never reached a block: the nonces after it are stuck or spent in an unknown order, so read
        # the account's nonce back and take the lock again.
        client.token = None
        client.nonce = await self._account_nonce(client, first)
        return failed[0]

    async def _account_nonce(self, client: _Client, fallback: int) -> int:
        try:
            reply = await client.connections[0].request(
                "GET", f"/v1/accounts/{address_to_text(client.key.address)}", timeout_s=COMMIT_TIMEOUT_S)
        except (TimeoutError, HttpError):
            return fallback
        nonce = json_object(reply.body).get("nonce")
        return nonce if reply.status == 200 and isinstance(nonce, int) else fallback

    async def _submit(self, client: _Client, op: Operation, nonce: int, connection: LeanClient) -> str | None:
        """Submit `op` with `nonce` and wait until it is final; None when it is (whatever its outcome), else the
        error code. The caller moves the client's nonce."""
        tx = make_operation(client.key, op, chain_id=self.chain_id, fee=1, nonce=nonce)
        begun = time.monotonic()
        try:
            reply = await connection.request("POST", "/v1/transactions?wait=final",
                                             b'{"tx":"%s"}' % tx.encoded.hex().encode(), timeout_s=COMMIT_TIMEOUT_S)
        except TimeoutError:
            return "commit-timeout"
        except HttpError:
            return "unavailable"
        answer = json_object(reply.body)
        if reply.status != 200 or answer.get("status") != "final":
            code = str((answer.get("error") or {}).get("code") or f"http-{reply.status}")
            if reply.status == 422:
                self.refusal_codes[code] = self.refusal_codes.get(code, 0) + 1
            if reply.status == 422 and op.kind in ("kv-put", "lock-release") and code != "nonce-too-low":
                client.token = None  # the lease is gone (ran out, or another client holds the lock): take it again
            return code
        self.finished.append((time.monotonic(), time.monotonic() - begun))
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
            for connection in client.connections:
                connection.close()


def measure_locks(options: LockBenchOptions) -> dict[str, Any]:
    """Start a Raft network, run the lock load, check the chain, stop every node; the report."""
    if options.clients < 1 or options.locks < 1 or options.writes_per_lease < 0 or options.pipeline < 1:
        raise BenchError("--clients, --locks and --pipeline must be at least 1, --writes-per-lease at least 0")
    top, params = bench_genesis("raft", options.nodes, options.genesis_params)
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-lock-") as workdir, \
            bench_cluster(Path(workdir), "raft", nodes=options.nodes, seed=options.seed, clients=options.clients,
                          params=params, top=top) as cluster:
        report = eventloop.run(_run(cluster, options))
        report["check"] = _check(cluster)
    report["genesis_params"] = {**params, **top}
    return report


async def _run(cluster: Cluster, options: LockBenchOptions) -> dict[str, Any]:
    watch = LockWatch(cluster.nodes[0].rpc_url)
    watch.start()
    load = LockLoad(cluster.genesis.chain_id, [node.rpc_url for node in cluster.nodes], cluster.load_keys, options,
                    watch)
    try:
        result = await run_closed_loop(options.clients, load, duration_s=options.duration_s,
                                       warmup_s=options.warmup_s,
                                       server_cpu=lambda: processes_cpu_s([node.pid for node in cluster.nodes]))
    finally:
        load.close()
        await watch.stop()
    summary = result.summary()
    def inside(moment: float) -> bool:
        return result.window_start <= moment <= result.window_end

    granted = [took for done, took in load.granted if inside(done)]
    acquire = latency_summary(granted)
    each_op = latency_summary([took for done, took in load.finished if inside(done)])
    refused = sum(1 for moment in load.refused_at_admission if inside(moment))
    ops = sum(1 for done, _ in load.finished if inside(done))
    return {
        "consensus": "raft", "nodes": options.nodes, "clients": options.clients, "locks": options.locks,
        "lease_blocks": options.lease_blocks, "writes_per_lease": options.writes_per_lease,
        "pipeline": options.pipeline,
        "duration_s": round(result.window_s, 3), "lock_ops": ops, "lock_ops_per_s": round(ops / result.window_s, 1),
        "op_p50_ms": each_op["p50_ms"], "op_p99_ms": each_op["p99_ms"], "grants": len(granted),
        "admission_refusals": refused, "free_events": watch.events,
        "acquire_p50_ms": acquire["p50_ms"], "acquire_p99_ms": acquire["p99_ms"], "acquire_max_ms": acquire["max_ms"],
        "outcomes": dict(sorted(load.outcomes.items())), "errors": summary["errors"],
        # per final operation, not per loop call (a pipelined batch is one call)
        "client": {"client_cpu_s": summary["client_cpu_s"], "client_cpu_share": summary["client_cpu_share"],
                   "client_cpu_per_op_us": round(result.cpu_s / ops * 1e6, 1) if ops else None},
        "nodes_cpu": {"cpu_share": summary["server_cpu_share"],
                      "cpu_per_op_us": (round(result.server_cpu_s / ops * 1e6, 1)
                                        if result.server_cpu_s is not None and ops else None)},
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
        f"{report['lease_blocks']} blocks, {report['writes_per_lease']} fenced writes per lease "
        f"({report['pipeline']} at once), "
        f"{report['duration_s']:g} s",
        f"lock operations: {report['lock_ops']} final, {report['lock_ops_per_s']:.1f}/s (each op p50 "
        f"{report['op_p50_ms']} ms, p99 {report['op_p99_ms']} ms)",
        f"acquire to granted: {report['grants']} grants, p50 {report['acquire_p50_ms']} ms, p99 "
        f"{report['acquire_p99_ms']} ms, max {report['acquire_max_ms']} ms",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()),
        f"acquires refused at admission (lock-held): {report['admission_refusals']}, each then waiting for the "
        f"lock's free event ({report['free_events']} seen)",
        "errors: " + (", ".join(f"{k} {v}" for k, v in report["errors"].items()) or "none"),
        f"nodes' CPU: {report['nodes_cpu']['cpu_share']} cores, {report['nodes_cpu']['cpu_per_op_us']} us per op; "
        f"the load {report['client']['client_cpu_share']} of a core",
        f"locks check: {'ok' if check['ok'] else 'FAILED'} ({check['detail']})",
    ]
