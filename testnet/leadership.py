"""Leader-based engines seen from outside: who leads, who takes writes, what a deposed leader may still serve.

These read only the generic fields of `/v1/status`'s `engine` document (`role`, `term`, or `view` for a `primary`)
and the RPC's refusal codes, so they apply to any engine that has a leader and terms (Raft's leader, PBFT's primary
of a view); an engine without them simply never shows a leader. Used by the scenario runner's `leader` node
reference and its leader expectations (docs/TESTNET.md). Each expectation returns `(ok, detail)`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from node.client import RpcClient, RpcError, RpcUnavailable
from testnet.remote import node_up
from testnet.state import NodeRecord, Testnet, TestnetError

POLL_S = 0.1
STATUS_TIMEOUT_S = 1.0
# Refusal codes of a node that takes no writes now (node/rpc.py answers them with 503 before decoding the body).
WRITE_REFUSALS = ("no-leader", "no-quorum")


@dataclass(frozen=True, slots=True, kw_only=True)
class Leader:
    """A node that reported itself leader, with its term."""

    index: int
    term: int


def _running(testnet: Testnet) -> list[NodeRecord]:
    return [r for r in testnet.nodes if r.state == "running" and node_up(r)]


def _engine(record: NodeRecord) -> dict[str, Any] | None:
    try:
        engine = RpcClient(record.rpc_url, timeout_s=STATUS_TIMEOUT_S).status().get("engine")
    except (RpcError, RpcUnavailable):
        return None
    return engine if isinstance(engine, dict) else None


def leads(engine: dict[str, Any]) -> bool:
    """The engine document says its node leads: Raft's `leader`, or the `primary` of a view (PBFT), whose view
    stands for the term. (Primary-backup's fixed primary has no view: it never changes, so it is no leader here.)"""
    role = engine.get("role")
    return role == "leader" or (role == "primary" and "view" in engine)


def leaders(testnet: Testnet, indices: Sequence[int] | None = None) -> tuple[list[Leader], int]:
    """The running nodes (of `indices`, default all) that say they lead, and the highest term any of them
    reports."""
    chosen = set(indices) if indices is not None else None
    found: list[Leader] = []
    highest = 0
    for record in _running(testnet):
        if chosen is not None and record.index not in chosen:
            continue
        engine = _engine(record)
        if engine is None:
            continue
        term = int(engine.get("term", engine.get("view", 0)) or 0)
        highest = max(highest, term)
        if leads(engine):
            found.append(Leader(index=record.index, term=term))
    return found, highest


def find_leader(testnet: Testnet, timeout_s: float = 10.0) -> Leader:
    """The leader of the highest term among the running nodes, waiting up to `timeout_s` for one (TestnetError
    if none shows up: a scenario cannot target the leader of a network that has none)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found, highest = leaders(testnet)
        current = [leader for leader in found if leader.term == highest]
        if current:
            return current[0]
        if time.monotonic() >= deadline:
            raise TestnetError(f"no running node reports role leader after {timeout_s:g} s (highest term {highest})")
        time.sleep(POLL_S)


def expect_new_leader(testnet: Testnet, nodes: Sequence[int], *, deposed: Leader | None,
                      within_s: float) -> tuple[bool, str]:
    """One of `nodes` leads, in a term above the deposed leader's and on another node, within `within_s`."""
    started = time.monotonic()
    deadline = started + within_s
    while True:
        found, highest = leaders(testnet, nodes)
        fresh = [leader for leader in found if deposed is None
                 or (leader.index != deposed.index and leader.term > deposed.term)]
        if fresh:
            leader = max(fresh, key=lambda f: f.term)
            was = f" (was node{deposed.index} in term {deposed.term})" if deposed is not None else ""
            return True, (f"node{leader.index} leads in term {leader.term}{was} after "
                          f"{time.monotonic() - started:.1f} s")
        if time.monotonic() >= deadline:
            return False, f"no new leader among {list(nodes)} within {within_s:g} s (highest term seen {highest})"
        time.sleep(POLL_S)


def write_probe(record: NodeRecord) -> str:
    """Ask `record` to take a transaction that is not one (no bytes at all): a node that takes writes refuses it
    with a 400 and nothing reaches any ledger; one that does not answers 503 with its refusal code (checked before
    the body is decoded). Returns `accepts`, the refusal code, or `unreachable`."""
    client = RpcClient(record.rpc_url, timeout_s=STATUS_TIMEOUT_S * 3)
    try:
        client.submit_tx(b"")
    except RpcError as exc:
        if exc.http_status == 503:
            return exc.code
        return "accepts"
    except RpcUnavailable:
        return "unreachable"
    raise AssertionError("a node took an invalid transaction: write probe answered 2xx")


def expect_writes(testnet: Testnet, nodes: Sequence[int], *, refused_with: str | None,
                  within_s: float) -> tuple[bool, str]:
    """Every one of `nodes` refuses writes with `refused_with` (e.g. `no-quorum`), or with None: takes them;
    polled until it holds or `within_s` passes."""
    records = [testnet.nodes[i] for i in nodes]
    wanted = refused_with if refused_with is not None else "accepts"
    deadline = time.monotonic() + within_s
    while True:
        answers = {record.name: write_probe(record) for record in records}
        if all(answer == wanted for answer in answers.values()):
            return True, f"writes: {answers}"
        if time.monotonic() >= deadline:
            return False, f"wanted {wanted} within {within_s:g} s, got {answers}"
        time.sleep(POLL_S)


def expect_no_stale_read(testnet: Testnet, nodes: Sequence[int], account: str) -> tuple[bool, str]:
    """A linearizable read at each of `nodes` (typically a deposed leader just resumed) either fails or carries a
    proof of the current term (the highest any other running node reports): a leader of an old term must not
    answer from its own, possibly stale, state."""
    others = [r.index for r in _running(testnet) if r.index not in set(nodes)]
    _, current = leaders(testnet, others)
    outcomes: dict[str, str] = {}
    ok = True
    for index in nodes:
        record = testnet.nodes[index]
        try:
            answer = RpcClient(record.rpc_url, timeout_s=10.0).account(account, at="linearizable")
        except RpcError as exc:
            outcomes[record.name] = f"refused {exc.http_status} {exc.code}"
            continue
        except RpcUnavailable as exc:
            outcomes[record.name] = f"unreachable ({exc.reason})"
            continue
        term = int(answer.get("read_proof", {}).get("term", -1))
        fresh = term >= current
        ok = ok and fresh
        outcomes[record.name] = f"served with proof term {term} ({'current' if fresh else 'STALE'})"
    return ok, f"linearizable reads {outcomes}; current term {current} on nodes {others}"
