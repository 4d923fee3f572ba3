"""Network benchmarks with real node processes on 127.0.0.1: sync, RPC submission, block propagation.

Each measures against its limit in the same run: sync against importing the same blocks from a file, RPC
admission as an absolute rate (compared in docs/PERFORMANCE.md with etcd on the same machine), propagation as
the latency of a full block along a 4-node line whose transactions were already gossiped.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from chain.block import decode_block
from chain.devtools import dev_keys
from chain.tx import make_transfer
from consensus.pow.devtools import generate_pow_chain
from node.chainfile import write_chain_file
from node.config import MiningSection, NodeConfig, P2PSection, RpcSection, ValidationSection, write_config
from node.datadir import init_datadir, open_chain
from testnet.bench_loop import processes_cpu_s
from testnet.cluster import TRACE_FILE, Cluster
from testnet.local import LocalNode, wait_until


def measure_sync(blocks: int, txs: int) -> dict[str, Any]:
    """A fresh node syncing `blocks` from a peer over loopback against importing the same blocks from a file."""
    senders = dev_keys(max(1, min(txs * 4, 2000)), seed=b"bench-sync")
    from chain.devtools import dev_genesis

    genesis = dev_genesis(senders, params={"block_interval_s": 1.0})
    miner = dev_keys(1, seed=b"bench-sync/miner")[0].address
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-sync-") as workdir:
        root = Path(workdir)
        chain_file = root / "chain.bin"
        write_chain_file(chain_file, genesis.hash,
                         generate_pow_chain(genesis, senders, blocks=blocks, txs_per_block=txs, miner=miner))
        raws = []
        from node.chainfile import iter_blocks, read_header

        with open(chain_file, "rb") as stream:
            read_header(stream, str(chain_file))
            raws = [block.encoded for _, block in iter_blocks(stream, str(chain_file))]
        # 1. Import from the file into the serving node's data directory (this process, timed).
        server_dir = root / "server"
        init_datadir(server_dir, genesis)
        started = time.perf_counter()
        with open_chain(server_dir, create=True, sync_every_blocks=1) as opened:
            now_ms = int(time.time() * 1000) + 10**9
            for raw in raws:
                opened.tree.add_block(decode_block(raw), now_ms=now_ms, source="file")
            assert opened.tree.height == blocks
        import_s = time.perf_counter() - started
        # 2. Serve it from one node process; a fresh node process syncs it over loopback.
        client_dir = root / "client"
        init_datadir(client_dir, genesis)
        quiet = NodeConfig(p2p=P2PSection(port=0), rpc=RpcSection(port=0), mining=MiningSection(enabled=False),
                           validation=ValidationSection(workers=1))
        write_config(server_dir, quiet)
        write_config(client_dir, quiet)
        server = LocalNode(name="server", datadir=server_dir, log_path=root / "server.log")
        client = LocalNode(name="client", datadir=client_dir, log_path=root / "client.log")
        try:
            server.start()
            client.start(peers=[server.p2p_url])
            started = time.perf_counter()
            wait_until(lambda: int(client.client().status()["height"]) >= blocks, 600, "the sync", interval_s=0.02)
            sync_s = time.perf_counter() - started
        finally:
            client.stop()
            server.stop()
    sync_rate, import_rate = blocks / sync_s, blocks / import_s
    return {"blocks": blocks, "txs": txs, "sync_s": round(sync_s, 3), "import_s": round(import_s, 3),
            "sync_blocks_per_s": round(sync_rate, 2), "import_blocks_per_s": round(import_rate, 2),
            "ratio": round(sync_rate / import_rate, 4)}


def measure_rpc(tx_count: int, clients: int, *, peers: int = 0, trace: bool = False) -> dict[str, Any]:
    """`tx_count` signed transfers POSTed by `clients` concurrent HTTP clients to one node (mining off); with
    `peers`, that many more nodes connected to it, to which it gossips every transaction; with `trace`, every node
    writes a causal trace (docs/TRACING.md)."""
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-rpc-") as workdir:
        per_sender = 16
        cluster = Cluster.create(Path(workdir), 1 + peers, mining=False, load_accounts=-(-tx_count // per_sender),
                                 seed="bench-rpc", trace=trace)
        chain_id = cluster.genesis.chain_id
        bodies = [json.dumps({"tx": make_transfer(key, chain_id=chain_id, recipient=key.address[::-1], amount=1,
                                                  fee=1, nonce=nonce).encoded.hex()}).encode()
                  for nonce in range(per_sender) for key in cluster.load_keys][:tx_count]
        try:
            cluster.start()
            if peers:
                cluster.wait_connected(1)
            url = cluster.nodes[0].rpc_url + "/v1/transactions"
            pids = [node.process.pid if node.process is not None else None for node in cluster.nodes]
            cpu_before = processes_cpu_s(pids)
            latencies, accepted, elapsed = asyncio.run(_post_all(url, bodies, clients))
            if peers:  # the peer's share of the work: until it has every transaction
                wait_until(lambda: int(cluster.nodes[1].client().status().get("mempool_size", 0)) >= accepted, 30.0,
                           "the peer to receive every transaction")
            cpu_after = processes_cpu_s(pids)
        finally:
            cluster.stop()
        traced = sum(len((node.datadir / TRACE_FILE).read_bytes().splitlines()) for node in cluster.nodes
                     if (node.datadir / TRACE_FILE).exists())
    latencies.sort()
    return {"txs": tx_count, "clients": clients, "peers": peers, "trace": trace, "accepted": accepted,
            "seconds": round(elapsed, 3), "accepted_per_s": round(accepted / elapsed, 1),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
            "trace_events": traced,
            "nodes_cpu_us_per_tx": (round((cpu_after - cpu_before) / accepted * 1e6, 1)
                                    if cpu_before is not None and cpu_after is not None and accepted else None)}


def measure_rpc_trace_overhead(tx_count: int, clients: int, rounds: int) -> dict[str, Any]:
    """`bench rpc --trace`: the RPC benchmark with one peer (so every transaction is gossiped, and its messages
    traced), untraced and traced in turn `rounds` times; the medians and the traced run's cost in throughput."""
    runs: dict[str, list[dict[str, Any]]] = {"untraced": [], "traced": []}
    for _ in range(rounds):
        runs["untraced"].append(measure_rpc(tx_count, clients, peers=1))
        runs["traced"].append(measure_rpc(tx_count, clients, peers=1, trace=True))
    medians = {name: statistics.median(run["accepted_per_s"] for run in results) for name, results in runs.items()}
    cpu = {name: statistics.median(run["nodes_cpu_us_per_tx"] or 0.0 for run in results)
           for name, results in runs.items()}
    return {"txs": tx_count, "clients": clients, "peers": 1, "rounds": rounds,
            "untraced_per_s": medians["untraced"], "traced_per_s": medians["traced"],
            "overhead_pct": round(100 * (1 - medians["traced"] / medians["untraced"]), 1),
            "untraced_cpu_us_per_tx": cpu["untraced"], "traced_cpu_us_per_tx": cpu["traced"],
            "cpu_overhead_pct": round(100 * (cpu["traced"] / cpu["untraced"] - 1), 1) if cpu["untraced"] else None,
            "trace_events_per_run": statistics.median(run["trace_events"] for run in runs["traced"]),
            "runs": runs}


async def _post_all(url: str, bodies: list[bytes], clients: int) -> tuple[list[float], int, float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    accepted = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker() -> None:
            nonlocal accepted
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as reply:
                    await reply.read()
                    if reply.status == 202:
                        accepted += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return latencies, accepted, elapsed


def measure_propagation(tx_count: int, rounds: int) -> dict[str, Any]:
    """Latency of a block of `tx_count` pre-gossiped transactions from its miner to the far end of a 4-node line."""
    with tempfile.TemporaryDirectory(prefix="chainlab-bench-prop-") as workdir:
        per_sender = 16
        senders = -(-tx_count * rounds // per_sender)
        cluster = Cluster.create(Path(workdir), 4, mining=True, load_accounts=senders, seed="bench-propagation",
                                 params={"block_interval_s": 0.2, "retarget_window": 100000},
                                 hashrate_shares=[1, 1, 1, 1], hashrate_hps=5000, finality_threshold=100)
        chain_id = cluster.genesis.chain_id
        nonces = {key.address: 0 for key in cluster.load_keys}
        try:
            for index, node in enumerate(cluster.nodes):  # a line: each node knows only the one before it
                _line_config(node)
                node.extra_args = ["--no-mining"] if index else []
                node.start(peers=[cluster.nodes[index - 1].p2p_url] if index else [])
            first, last = cluster.nodes[0].client(), cluster.nodes[-1].client()
            first.set_mining(False)
            wait_until(lambda: int(last.status()["peers"]) >= 1, 30, "the line to form")
            latencies = []
            key_cursor = 0
            for _ in range(rounds):
                for _ in range(tx_count):
                    key = cluster.load_keys[key_cursor % len(cluster.load_keys)]
                    key_cursor += 1
                    tx = make_transfer(key, chain_id=chain_id, recipient=key.address[::-1], amount=1, fee=1,
                                       nonce=nonces[key.address])
                    nonces[key.address] += 1
                    first.submit_tx(tx.encoded)
                wait_until(lambda: int(last.status()["mempool_size"]) >= tx_count, 60,
                           "the transactions to reach the far end")
                latencies.append(_mine_one_and_time(cluster.nodes, tx_count))
        finally:
            cluster.stop()
    latencies.sort()
    far = sorted(hops[-1] for hops in latencies)
    return {"txs": tx_count, "rounds": rounds, "hops": 3, "p50_ms": round(statistics.median(far), 2),
            "max_ms": round(far[-1], 2), "latencies_ms": [round(x, 2) for x in far],
            "per_hop_ms": [[round(x, 1) for x in hops] for hops in latencies]}


def _line_config(node: LocalNode) -> None:
    """Dial only the bootstrap peer, never addresses learnt by peer exchange: the line stays a line."""
    from node.config import load_config

    config = load_config(node.datadir).with_overrides({"p2p.target_peers": 0})
    write_config(node.datadir, config)


def _mine_one_and_time(line: list[LocalNode], tx_count: int) -> list[float]:
    """Let the first node mine until a block with the pooled transactions appears; ms until each later node of
    the line connected it."""
    miner = line[0]
    arrivals: dict[str, dict[str, int]] = {}

    async def watch(node: LocalNode, name: str, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session, session.get(node.rpc_url + "/v1/events") as stream:
            async for raw in stream.content:
                text = raw.decode().strip()
                if text.startswith("data:"):
                    event = json.loads(text[5:])
                    if event.get("type") == "block" and int(event.get("txs", 0)) >= tx_count:
                        arrivals.setdefault(event["hash"], {})[name] = int(event["time_ms"])
                        if len(arrivals[event["hash"]]) == len(line):
                            stop.set()
                            return

    async def run() -> list[float]:
        stop = asyncio.Event()
        watchers = [asyncio.create_task(watch(node, node.name, stop)) for node in line]
        await asyncio.sleep(0.3)  # every stream open before the block exists
        await asyncio.to_thread(miner.client().set_mining, True)
        try:
            await asyncio.wait_for(stop.wait(), 20)
        except TimeoutError as exc:
            raise RuntimeError(f"block did not reach every node: {arrivals}") from exc
        finally:
            await asyncio.to_thread(miner.client().set_mining, False)
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        times = next(t for t in arrivals.values() if len(t) == len(line))
        return [float(times[node.name] - times[miner.name]) for node in line[1:]]

    return asyncio.run(run())
