"""Networks the toolkit did not start: `chainlab testnet attach` and what a remote node can and cannot do.

A remote node is a record in testnet.json with `remote: true`, an RPC URL and an admin token, and no pid, data
directory or log (docs/TESTNET.md, "Attaching to a network the toolkit did not start"). Everything the toolkit does
through RPC works on it unchanged: status, the live table and dashboard, partitions and netem (the node's own
fault hook), Byzantine behaviours, load, and the checks from RPC. What needs a local process (kill, stop, start,
restart, pause, resume, logs, twins) is refused in one line that names the remote nodes: a node's own
`/v1/admin/...` routes cannot start a node again once it stopped, so offering `stop` without `start` would leave
the nemesis unable to undo its faults.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.genesis import Genesis, GenesisError, parse_genesis
from node.client import RpcClient, RpcError, RpcUnavailable, normalize_base_url
from testnet import procs
from testnet.cluster import load_key
from testnet.state import (
    STATE_FILE,
    NodeRecord,
    Testnet,
    TestnetError,
    append_event,
    iso_now,
    save_testnet,
)

GENESIS_FILE = "genesis.toml"  # an attached network's genesis, as its first node served it
RPC_TIMEOUT_S = 5.0
MAX_LOAD_ACCOUNTS = 100_000


def node_up(record: NodeRecord) -> bool:
    """The node is up as far as the toolkit can tell: a process it started that is alive and is that node, or a
    remote node the record says is running (its process is not ours to see; RPC says whether it answers)."""
    if record.remote:
        return record.state == "running"
    return procs.owned(record.pid, record.datadir)


def refuse_remote(records: Sequence[NodeRecord], what: str, needs: str = "a process this machine started") -> None:
    """TestnetError naming the remote nodes among `records`, for an action (`what`) that needs a local process (or
    what `needs` says)."""
    remote = [record for record in records if record.remote]
    if remote:
        named = ", ".join(f"{r.name} ({r.rpc_url})" for r in remote)
        raise TestnetError(f"{what} needs {needs}; remote node{'s' if len(remote) > 1 else ''} {named}: do it "
                           "where the node runs (partition, heal, netem, byzantine, load and check work here)")


@dataclass(kw_only=True)
class AttachOptions:
    """What `testnet attach` was given."""

    directory: Path
    rpc_urls: Sequence[str]
    admin_token_file: Path
    name_prefix: str = "node"
    seed: str = ""  # the seed whose load keys (testnet/cluster.py: load_key) the genesis funds, if any


def read_admin_tokens(path: Path, names: Sequence[str]) -> dict[str, str]:
    """The admin token of each node from `path`: one line holding one token for every node, or lines of
    `NAME TOKEN` (blank lines and `#` comments skipped). TestnetError saying what is wrong otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TestnetError(f"--admin-token-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TestnetError(f"--admin-token-file {path}: cannot read it ({reason})") from None
    lines = [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise TestnetError(f"--admin-token-file {path} is empty: write the admin token in it (one for all nodes, "
                           "or `NAME TOKEN` lines)")
    if len(lines) == 1 and len(lines[0]) == 1:
        return {name: lines[0][0] for name in names}
    tokens: dict[str, str] = {}
    for number, fields in enumerate(lines, start=1):
        if len(fields) != 2:
            raise TestnetError(f"--admin-token-file {path}: line {number} is not `NAME TOKEN` (a file of one token "
                               "is shared by all nodes)")
        tokens[fields[0]] = fields[1]
    missing = [name for name in names if name not in tokens]
    unknown = sorted(set(tokens) - set(names))
    if missing or unknown:
        raise TestnetError(f"--admin-token-file {path}: " + "; ".join(
            part for part in (f"no token for {', '.join(missing)}" if missing else "",
                              f"unknown node {', '.join(unknown)}" if unknown else "") if part)
            + f" (the nodes are {', '.join(names)})")
    return tokens


def _status(name: str, url: str) -> dict[str, Any]:
    try:
        return RpcClient(url, timeout_s=RPC_TIMEOUT_S).status()
    except RpcUnavailable as exc:
        raise TestnetError(f"{name} ({url}) does not answer /v1/status: {exc}") from None
    except RpcError as exc:
        raise TestnetError(f"{name} ({url}) refused /v1/status: {exc.code}: {exc.message}") from None


def _check_admin_token(record: NodeRecord) -> None:
    """The token opens the node's admin API. `POST /v1/admin/peers` with an empty URL is refused as a bad request
    once authenticated (the token is checked before the body), so the probe changes nothing on the node."""
    client = RpcClient(record.rpc_url, admin_token=record.admin_token, timeout_s=RPC_TIMEOUT_S)
    try:
        client.connect_peer("")
    except RpcError as exc:
        if exc.code in ("unauthorized", "admin-disabled"):
            raise TestnetError(f"{record.name} ({record.rpc_url}) refuses the admin token: {exc.code}: "
                               f"{exc.message}") from None
    except RpcUnavailable as exc:
        raise TestnetError(f"{record.name} ({record.rpc_url}) does not answer: {exc}") from None


def fetch_genesis(record: NodeRecord, expected_hash: str) -> Genesis:
    """The network's genesis as the node serves it (`GET /v1/genesis`), checked against the hash it reports."""
    try:
        answer = RpcClient(record.rpc_url, timeout_s=RPC_TIMEOUT_S).genesis()
        genesis = parse_genesis(str(answer["toml"]))
    except (RpcError, RpcUnavailable, KeyError, GenesisError) as exc:
        raise TestnetError(f"{record.name} ({record.rpc_url}) did not serve its genesis (GET /v1/genesis): "
                           f"{exc}") from None
    if genesis.hash.hex() != expected_hash:
        raise TestnetError(f"{record.name} served a genesis of hash {genesis.hash.hex()[:16]}, not the "
                           f"{expected_hash[:16]} its status reports")
    return genesis


def attached_genesis(testnet: Testnet) -> Genesis:
    """The genesis of a testnet whose first node is remote: `<dir>/genesis.toml` (written by attach), else asked
    of a node (a hand-written record) and kept there for the next time."""
    path = testnet.path / GENESIS_FILE
    if path.is_file():
        try:
            genesis = parse_genesis(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, GenesisError) as exc:
            raise TestnetError(f"{path}: {exc}") from None
        if genesis.hash.hex() == testnet.genesis:
            return genesis
    errors = []
    for record in testnet.remote_nodes():
        try:
            genesis = fetch_genesis(record, testnet.genesis)
        except TestnetError as exc:
            errors.append(str(exc))
            continue
        path.write_text(genesis.to_toml(), encoding="utf-8")
        return genesis
    raise TestnetError("no genesis: " + "; ".join(errors))


def fill_identity(testnet: Testnet) -> None:
    """A remote node written by hand may leave out its ids and P2P URL: ask its status for them (partitions name
    peers by id). A node that does not answer keeps its blanks; the action that needs them says so."""
    for record in testnet.remote_nodes():
        if record.node_id and record.p2p_url:
            continue
        try:
            status = RpcClient(record.rpc_url, timeout_s=RPC_TIMEOUT_S).status()
        except (RpcError, RpcUnavailable):
            continue
        _adopt_status(record, status)


def _adopt_status(record: NodeRecord, status: dict[str, Any]) -> None:
    record.node_id = str(status.get("node_id") or record.node_id)
    record.p2p_node_id = str(status.get("p2p_node_id") or record.p2p_node_id)
    record.p2p_url = str(status.get("p2p_url") or record.p2p_url)
    record.address = str(status.get("address") or record.address)
    engine = status.get("engine")
    record.mining = bool(engine.get("mining")) if isinstance(engine, dict) else False


def _edges(records: Sequence[NodeRecord]) -> list[list[int]]:
    """Who is connected to whom now (each node's /v1/peers), as topology edges: the liveness rule's graph."""
    index_of = {(r.p2p_node_id or r.node_id): r.index for r in records}
    edges: set[tuple[int, int]] = set()
    for record in records:
        try:
            peers = RpcClient(record.rpc_url, timeout_s=RPC_TIMEOUT_S).peers()
        except (RpcError, RpcUnavailable):
            continue
        for peer in peers:
            other = index_of.get(str(peer.get("node_id", "")))
            if other is not None and other != record.index:
                edges.add((min(record.index, other), max(record.index, other)))
    return [list(edge) for edge in sorted(edges)]


def _load_accounts(seed: str, genesis: Genesis) -> int:
    """How many of the seed's load accounts the genesis funds (0, 1, ... without a gap)."""
    count = 0
    while seed and count < MAX_LOAD_ACCOUNTS and genesis.balances.get(load_key(seed, count).address):
        count += 1
    return count


def attach(options: AttachOptions) -> Testnet:
    """Record the nodes at `options.rpc_urls` as a testnet of remote nodes in `<directory>/testnet.json`, after
    checking that each answers, that they are one network (one genesis) and distinct nodes, and that the admin
    token opens each one's admin API. TestnetError (one line) otherwise; nothing is written then."""
    urls = [normalize_base_url(url.strip()) for url in options.rpc_urls if url.strip()]
    if not urls:
        raise TestnetError("--rpc: give at least one node URL, e.g. http://10.0.0.5:8545")
    if len(set(urls)) != len(urls):
        raise TestnetError("--rpc lists a URL twice")
    directory = options.directory.resolve()
    if (directory / STATE_FILE).exists():
        raise TestnetError(f"{directory} already holds a testnet ({STATE_FILE}); use another --dir (`testnet down` "
                           "forgets an attached one)")
    names = [f"{options.name_prefix}{index}" for index in range(len(urls))]
    tokens = read_admin_tokens(options.admin_token_file, names)
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        statuses = list(pool.map(_status, names, urls))
    networks = {(str(s.get("chain_id")), str(s.get("genesis"))) for s in statuses}
    if len(networks) > 1:
        listing = "; ".join(f"{name} chain {s.get('chain_id')} genesis {str(s.get('genesis'))[:12]}"
                            for name, s in zip(names, statuses, strict=True))
        raise TestnetError(f"the nodes are not one network: {listing}")
    records = [NodeRecord(index=index, name=name, rpc_url=url, admin_token=tokens[name], remote=True,
                          state="running") for index, (name, url) in enumerate(zip(names, urls, strict=True))]
    for record, status in zip(records, statuses, strict=True):
        _adopt_status(record, status)
    ids = [r.p2p_node_id or r.node_id for r in records]
    if len(set(ids)) != len(ids):
        raise TestnetError("two of the URLs reach the same node (same node id): list each node once")
    with ThreadPoolExecutor(max_workers=min(16, len(records))) as pool:
        list(pool.map(_check_admin_token, records))
    [(chain_id, genesis_hash)] = networks
    genesis = fetch_genesis(records[0], genesis_hash)
    testnet = Testnet(dir=str(directory), seed=options.seed, chain_id=chain_id, genesis=genesis_hash,
                      consensus=genesis.consensus, topology="attached", edges=_edges(records), nodes=records,
                      load_accounts=_load_accounts(options.seed, genesis),
                      block_interval_s=float(genesis.param("block_interval_s")),
                      finality_threshold=genesis.finality_threshold, created=iso_now())
    directory.mkdir(parents=True, exist_ok=True)
    (directory / GENESIS_FILE).write_text(genesis.to_toml(), encoding="utf-8")
    save_testnet(testnet)
    append_event(testnet, "attach", nodes=names, urls=urls)
    return testnet


def forget(testnet: Testnet) -> list[dict[str, Any]]:
    """`down` on the remote nodes: leave them as they are and take them out of the toolkit's hands. Each result says
    so, and names faults the nemesis left on the node (`heal` before `down` clears them)."""
    results = []
    for record in testnet.remote_nodes():
        left = {k: v for k, v in (("blocked", record.faults.blocked), *record.faults.netem().items()) if v}
        results.append({"node": record.name, "pid": None, "outcome": "forgotten (remote: not touched)", "left": [],
                        "faults_left": json.loads(json.dumps(left))})
    return results
