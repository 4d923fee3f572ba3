"""Build the checkers' inputs (testnet/checks.py) from a running node's RPC or a stopped node's store.

A `NodeView` is everything the checks need of one node: its chain snapshot (best-chain hash per height, final
height, safety alarms), the transactions in its final blocks, its best chain's block timestamps (for liveness) and
its ledger view. From RPC the ledger is read at the final height: the node's accounts `?at=final` for every
address that can hold funds (genesis balances, every sender, recipient and proposer of a final block), retried
until all reads report the same final height, and the supply minted by the final blocks (the engine's block
reward, computed from each header). From a store it is the same: the final block's state (`ledger_of_tree`
with `at_final`), so both sources give the same figures on the same chain. The lock and register operations of
the final blocks come with their recorded outcomes: from RPC the `result` of each operation in the full blocks,
from a store its outcome records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chain.block import BlockHeader
from chain.crypto import address_from_text, address_to_text
from chain.genesis import Genesis
from consensus.registry import chain_policy
from node.client import RpcClient, RpcError, RpcUnavailable
from node.datadir import DatadirError, open_chain
from testnet.checks import ChainSnapshot, LedgerView, ledger_of_tree, snapshot_of_tree
from testnet.lockcheck import LockOp, lock_op_of_json, lock_ops_of_blocks

PAGE_TXS = 5000  # aim for pages of about this many full transactions
LEDGER_ATTEMPTS = 6


class CollectError(Exception):
    """A node whose view could not be read (unreachable, or its answers kept moving)."""


@dataclass(kw_only=True)
class NodeView:
    """What the checks need of one node."""

    node: str
    source: str  # "rpc" or "store"
    snapshot: ChainSnapshot
    final_txs: set[str] = field(default_factory=set)
    block_times_ms: dict[int, int] = field(default_factory=dict)
    ledger: LedgerView | None = None
    headers: dict[int, BlockHeader] = field(default_factory=dict)  # best-chain headers (seals: the certificates)
    lock_ops: list[LockOp] = field(default_factory=list)  # the lock and register operations of the final blocks


def iter_blocks(client: RpcClient, start: int, stop: int, *, full_txs: bool) -> Iterator[dict[str, Any]]:
    """Best-chain blocks start..stop (inclusive) in pages; with full transactions the page size follows the
    blocks' transaction counts so one answer stays around PAGE_TXS transactions."""
    height, limit = start, 100
    while height <= stop:
        page = client.blocks(height, min(limit, stop - height + 1), full_txs=full_txs)
        if not page:
            return
        yield from page
        height = int(page[-1]["height"]) + 1
        if full_txs:
            per_block = max(1, sum(int(b.get("tx_count", len(b["txs"]))) for b in page) // len(page))
            limit = max(1, min(100, PAGE_TXS // per_block))


def header_of(block: dict[str, Any]) -> BlockHeader:
    """The header of a block's RPC JSON (checked against its hash)."""
    header = BlockHeader(
        version=int(block["version"]), height=int(block["height"]), parent=bytes.fromhex(block["parent"]),
        timestamp_ms=int(block["timestamp_ms"]), tx_root=bytes.fromhex(block["tx_root"]),
        state_root=bytes.fromhex(block["state_root"]), proposer=address_from_text(block["proposer"]),
        seal=bytes.fromhex(block["seal"]),
    )
    if header.hash.hex() != block["hash"]:
        raise CollectError(f"block {block['height']}: header does not hash to {block['hash'][:16]}")
    return header


@dataclass
class _Scan:
    hashes: dict[int, str] = field(default_factory=dict)
    times: dict[int, int] = field(default_factory=dict)
    txs: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    rewards: dict[int, int] = field(default_factory=dict)
    proposers: dict[int, str] = field(default_factory=dict)
    headers: dict[int, BlockHeader] = field(default_factory=dict)


def rpc_view(name: str, client: RpcClient, genesis: Genesis, *, with_ledger: bool = True) -> NodeView:
    """The NodeView of a running node, from its RPC."""
    try:
        status = client.status()
        tip, final = int(status["height"]), int(status["final_height"])
        scan = _Scan()
        _extend(scan, client, genesis, 0, tip)
        tip = max(scan.hashes) if scan.hashes else 0
        snapshot = ChainSnapshot(node=name, height=tip, head=scan.hashes.get(tip, str(status["head"])),
                                 final_height=min(final, tip), hashes=dict(scan.hashes),
                                 safety_alarms=int(status.get("safety_alarms", 0)))
        ledger = _rpc_ledger(name, client, genesis, scan, final) if with_ledger else None
    except (RpcError, RpcUnavailable, KeyError, ValueError) as exc:
        raise CollectError(f"{name}: {exc}") from None
    final_txs = {str(tx["hash"]) for height in range(snapshot.final_height + 1) for tx in scan.txs.get(height, [])}
    try:
        lock_ops = [op for height in range(snapshot.final_height + 1)
                    for index, tx in enumerate(scan.txs.get(height, []))
                    if (op := lock_op_of_json(height, index, tx)) is not None]
    except (KeyError, ValueError, TypeError) as exc:
        raise CollectError(f"{name}: a lock operation it served is malformed: {exc}") from None
    return NodeView(node=name, source="rpc", snapshot=snapshot, final_txs=final_txs,
                    block_times_ms=dict(scan.times), ledger=ledger,
                    headers={h: header for h, header in scan.headers.items() if h <= tip}, lock_ops=lock_ops)


def _extend(scan: _Scan, client: RpcClient, genesis: Genesis, start: int, stop: int) -> None:
    policy = chain_policy(genesis)
    for block in iter_blocks(client, start, stop, full_txs=True):
        height = int(block["height"])
        scan.hashes[height] = str(block["hash"])
        scan.times[height] = int(block["timestamp_ms"])
        scan.txs[height] = list(block["txs"])
        scan.proposers[height] = str(block["proposer"])
        header = scan.headers[height] = header_of(block)
        scan.rewards[height] = policy.block_reward(header) if height > 0 else 0


def _rpc_ledger(name: str, client: RpcClient, genesis: Genesis, scan: _Scan, final: int) -> LedgerView:
    """The ledger at the final height, read so that every account answer is at that same height."""
    for _ in range(LEDGER_ATTEMPTS):
        if final > max(scan.hashes, default=0):
            _extend(scan, client, genesis, max(scan.hashes, default=-1) + 1, final)
        addresses = {address_to_text(a) for a in genesis.balances}
        sent: dict[str, list[int]] = {}
        for height in range(1, final + 1):
            if height in scan.proposers:
                addresses.add(scan.proposers[height])
            for tx in scan.txs.get(height, []):
                addresses.update((str(tx["from"]), str(tx["to"])))
                sent.setdefault(str(tx["from"]), []).append(int(tx["nonce"]))
        ordered = sorted(addresses)
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda address: client.account(address, at="final"), ordered))
        heights = {int(answer["height"]) for answer in answers}
        if heights == {final}:
            # An account that reads as empty is left out, as the store's view leaves it out: it holds nothing and
            # may not exist at all (a proposer of an engine without block rewards).
            kept = [(a, answer) for a, answer in zip(ordered, answers, strict=True)
                    if int(answer["balance"]) or int(answer["nonce"])]
            return LedgerView(
                node=name, genesis_supply=sum(genesis.balances.values()),
                minted=sum(scan.rewards.get(h, 0) for h in range(1, final + 1)),
                balances={a: int(answer["balance"]) for a, answer in kept},
                nonces={a: int(answer["nonce"]) for a, answer in kept},
                sent_nonces=sent)
        final = max(heights)  # finality moved while we read: read again at the new height
    raise CollectError(f"{name}: the final height kept moving while its accounts were read")


def store_view(name: str, datadir: str | Path) -> NodeView:
    """The NodeView of a stopped node, from its data directory (the store must not be in use)."""
    try:
        with open_chain(datadir) as opened:
            tree = opened.tree
            snapshot = snapshot_of_tree(name, tree)
            ledger = ledger_of_tree(name, tree, at_final=True)
            final_txs: set[str] = set()
            times: dict[int, int] = {}
            headers: dict[int, BlockHeader] = {}
            final_blocks = []
            for height in range(tree.height + 1):
                block_hash = tree.hash_at(height)
                block = tree.get_block(block_hash) if block_hash is not None else None
                if block is None:
                    continue
                times[height] = block.header.timestamp_ms
                headers[height] = block.header
                if height <= tree.final_height:
                    final_txs.update(tx.hash.hex() for tx in block.txs)
                    final_blocks.append(block)
            lock_ops = lock_ops_of_blocks(final_blocks, tree.store.tx_outcome)
    except DatadirError as exc:
        raise CollectError(f"{name}: {exc}") from None
    return NodeView(node=name, source="store", snapshot=snapshot, final_txs=final_txs, block_times_ms=times,
                    ledger=ledger, headers=headers, lock_ops=lock_ops)


def tip_snapshots(named_clients: Sequence[tuple[str, RpcClient]]) -> list[ChainSnapshot]:
    """Light snapshots for a convergence poll: each node's tip, final height, and its block at the lowest tip
    height among them (what `check_convergence` compares)."""
    statuses = [(name, client, client.status()) for name, client in named_clients]
    if not statuses:
        return []
    lowest = min(int(s["height"]) for _, _, s in statuses)
    snapshots = []
    for name, client, status in statuses:
        at_lowest = str(client.block(lowest)["hash"])
        snapshots.append(ChainSnapshot(node=name, height=int(status["height"]), head=str(status["head"]),
                                       final_height=int(status["final_height"]), hashes={lowest: at_lowest},
                                       safety_alarms=int(status.get("safety_alarms", 0))))
    return snapshots


def count_log_alarms(log_path: str | Path) -> int:
    """`SAFETY ALARM` lines in a node's log."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as stream:
            return sum(1 for line in stream if "SAFETY ALARM" in line)
    except FileNotFoundError:
        return 0
