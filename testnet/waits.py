"""Scenario waits and expectations: poll the running nodes until a condition holds or a time bound passes.

Waits (`height +N`, `height N`, `converged`, `all final`) block a timeline until the network got there;
expectations (`mining`, `not mining`, `stalled`, `not stalled`, `progress`, `no progress`) state what the
scenario claims about some nodes, and fail the run when the nodes do not behave so. Each returns
`(ok, detail)`. They run in a worker thread (blocking RPC calls), beside the load's event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from node.client import RpcClient, RpcError, RpcUnavailable
from testnet.checks import check_convergence
from testnet.collect import tip_snapshots
from testnet.remote import node_up
from testnet.scenario import parse_wait
from testnet.state import NodeRecord, Testnet, load_testnet

POLL_S = 0.25


def _running(testnet: Testnet, indices: Sequence[int] | None) -> list[NodeRecord]:
    chosen = [testnet.nodes[i] for i in indices] if indices is not None else testnet.nodes
    return [r for r in chosen if r.state == "running" and node_up(r)]


def _status(record: NodeRecord) -> dict[str, Any] | None:
    try:
        return RpcClient(record.rpc_url, timeout_s=3.0).status()
    except (RpcError, RpcUnavailable):
        return None


def _heights(records: Sequence[NodeRecord]) -> dict[str, int]:
    heights = {}
    for record in records:
        status = _status(record)
        if status is not None:
            heights[record.name] = int(status["height"])
    return heights


def _poll(predicate: Callable[[], tuple[bool, str]], timeout_s: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout_s
    ok, detail = predicate()
    while not ok and time.monotonic() < deadline:
        time.sleep(POLL_S)
        ok, detail = predicate()
    return ok, detail


def wait_for(directory: Any, condition: str, *, timeout_s: float, nodes: Sequence[int] | None = None,
             all_final: Callable[[], tuple[bool, str]] | None = None) -> tuple[bool, str]:
    """Block until `condition` holds on the running nodes (or the listed ones), at most `timeout_s`."""
    testnet = load_testnet(directory)
    kind, number = parse_wait(condition, "wait")
    records = _running(testnet, nodes)
    if kind == "all final":
        if all_final is None:
            return True, "no load: nothing to wait for"
        return _poll(all_final, timeout_s)
    if not records:
        return False, "no running node to wait on"
    if kind == "converged":
        def converged() -> tuple[bool, str]:
            try:
                result = check_convergence(tip_snapshots([(r.name, RpcClient(r.rpc_url, timeout_s=3.0))
                                                          for r in records]))
            except (RpcError, RpcUnavailable, KeyError, ValueError) as exc:
                return False, f"cannot read a node: {exc}"
            return result.ok, result.detail

        return _poll(converged, timeout_s)
    assert number is not None
    start = _heights(records)
    if kind == "height+" and nodes is None:
        target = max(start.values(), default=0) + number

        def grown() -> tuple[bool, str]:
            best = max(_heights(records).values(), default=0)
            return best >= target, f"best height {best}, waiting for {target}"

        return _poll(grown, timeout_s)
    targets = {name: (height + number if kind == "height+" else number) for name, height in start.items()}

    def reached() -> tuple[bool, str]:
        now = _heights(records)
        short = {name: h for name, h in now.items() if h < targets.get(name, 0)}
        return not short and bool(now), (f"heights {now}, targets {targets}" if short else f"heights {now}")

    return _poll(reached, timeout_s)


def expect(directory: Any, expectation: str, nodes: Sequence[int], *, within_s: float | None = None,
           for_s: float | None = None) -> tuple[bool, str]:
    """Check a claim about the listed nodes (docs/TESTNET.md lists them)."""
    testnet = load_testnet(directory)
    records = [testnet.nodes[i] for i in nodes]
    names = ", ".join(r.name for r in records)
    if expectation in ("mining", "not mining", "stalled", "not stalled"):
        key = "mining" if expectation.endswith("mining") else "stalled"
        wanted = not expectation.startswith("not")

        def engine_state() -> tuple[bool, str]:
            seen = {}
            for record in records:
                status = _status(record)
                seen[record.name] = None if status is None else status.get("engine", {}).get(key)
            return all(v is wanted for v in seen.values()), f"{key}: {seen}"

        return _poll(engine_state, within_s if within_s is not None else 15.0)
    start = _heights(records)
    if expectation == "progress":
        def advanced() -> tuple[bool, str]:
            now = _heights(records)
            return all(now.get(n, -1) > h for n, h in start.items()) and bool(start), f"{start} -> {now}"

        return _poll(advanced, within_s if within_s is not None else 30.0)
    hold = for_s if for_s is not None else 5.0
    time.sleep(hold)
    now = _heights(records)
    moved = {n: (h, now.get(n)) for n, h in start.items() if now.get(n, h) != h}
    if moved:
        return False, f"{names} advanced in {hold:g} s: {moved}"
    return True, f"{names} stayed at {start} for {hold:g} s"
