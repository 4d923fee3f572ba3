"""`chainlab testnet check`: run the safety and liveness checks of testnet/checks.py on a testnet, from the RPC of
its running nodes and the stores of its stopped ones, with the client history and the nemesis event log.

Liveness rule (docs/TESTNET.md): events.jsonl gives the network's state after every action, hence the periods
during which a quorum was connected: for PoW, nodes holding more than the partition threshold of the declared hash
power, up and mutually reachable over topology edges that neither end blocks; for primary-backup, the primary up.
For every such period long enough to judge (a grace for reconnection and the partition handler, plus a window of
at least ten block intervals), the network's best chain (the longest one read) must have grown: a block timestamped
inside the period after the grace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.crypto import address_from_text
from chain.genesis import Genesis
from consensus.registry import spec_named
from node.client import RpcClient, RpcError, RpcUnavailable
from node.config import write_private_text
from node.datadir import GENESIS_FILE, DatadirError, read_genesis_file
from testnet.checks import (
    CheckResult,
    certificate_heights,
    certificate_reader,
    certificates_of_headers,
    check_acknowledged_final,
    check_certificates,
    check_convergence,
    check_final_prefix,
    check_ledger,
    check_liveness,
    check_no_safety_alarm,
    quorum_size,
    tolerated_faults,
)
from testnet.collect import CollectError, NodeView, count_log_alarms, rpc_view, store_view, tip_snapshots
from testnet.consistency import analyse
from testnet.history import Op, acknowledged_final, read_history
from testnet.lockcheck import check_locks
from testnet.nemesis import refresh
from testnet.remote import attached_genesis, node_up
from testnet.state import CHECK_FILE, HISTORY_FILE, Testnet, TestnetError, iso_now, load_testnet, read_events
from testnet.topology import components
from testnet.tracecollect import read_node_traces
from testnet.tracelinks import link_failed_checks

CHECK_NAMES = ("final-prefix-agreement", "convergence", "ledger-invariants", "no-lost-acknowledged-tx", "liveness",
               "no-safety-alarm", "consistency", "certificates", "locks")
# `certificates` runs only for engines whose seals carry their parent's certificate (the spec's parent_certificate):
# it verifies those of the last CERTIFICATE_WINDOW final heights of each node and of every height where nodes
# disagree.
CERTIFICATE_WINDOW = 256
CONSISTENCY_TIMEOUT_S = 30.0
SOURCES = ("auto", "rpc", "stores")


@dataclass(kw_only=True)
class CheckOptions:
    """How to check: which checks, where from, and the time bounds."""

    checks: Sequence[str] = CHECK_NAMES
    source: str = "auto"
    converge_timeout_s: float = 30.0
    liveness_window_s: float | None = None  # default max(10 s, 10 block intervals)
    liveness_grace_s: float | None = None  # default 5 s (+ the PoW heartbeat timeout)


def testnet_genesis(testnet: Testnet) -> Genesis:
    """The genesis of the testnet (from its first node's data directory; an attached testnet's genesis.toml)."""
    if testnet.nodes[0].remote:
        return attached_genesis(testnet)
    try:
        return read_genesis_file(Path(testnet.nodes[0].datadir) / GENESIS_FILE)
    except DatadirError as exc:
        raise TestnetError(str(exc)) from None


def run_checks(directory: Path, options: CheckOptions | None = None) -> dict[str, Any]:
    """Every requested check on the testnet in `directory`: `{"ok", "checks": [...], "sources": {...}}`."""
    options = options or CheckOptions()
    unknown = [name for name in options.checks if name not in CHECK_NAMES]
    if unknown or options.source not in SOURCES:
        raise TestnetError(f"unknown check(s) {', '.join(unknown)} (known: {', '.join(CHECK_NAMES)})" if unknown
                           else f"source must be one of {', '.join(SOURCES)}")
    testnet = load_testnet(directory)
    refresh(testnet)
    genesis = testnet_genesis(testnet)
    # The safety checks are about honest nodes: what a Byzantine node (or a twin pair) holds proves nothing.
    excluded = testnet.byzantine()
    if options.source != "stores":
        excluded.update(reported_byzantine(testnet, excluded))
    running = [r for r in testnet.nodes if r.state == "running" and node_up(r)
               and r.name not in excluded]
    clients = [(r.name, RpcClient(r.rpc_url, timeout_s=10.0)) for r in running]
    use_rpc = options.source != "stores"
    results: dict[str, CheckResult] = {}
    if "convergence" in options.checks and use_rpc and clients:
        results["convergence"] = _converge(clients, options.converge_timeout_s)
    views, sources = _collect(testnet, genesis, options.source, "ledger-invariants" in options.checks, excluded)
    snapshots = [view.snapshot for view in views]
    if "convergence" in options.checks and "convergence" not in results:
        # From stopped nodes' stores the tips may be a race frozen by shutdown: compare where all are final.
        results["convergence"] = (check_convergence(snapshots, at_final=not clients) if snapshots
                                  else _fail("convergence", "no node could be read"))
    if "consistency" in options.checks:
        results["consistency"] = check_consistency(read_history(testnet.path / HISTORY_FILE))
    if not snapshots:
        for name in options.checks:
            results.setdefault(name, _fail(name, "no node could be read: " + "; ".join(sources.values())))
    else:
        results.update(_checks_on_views(testnet, genesis, views, options))
    ordered = [results[name] for name in CHECK_NAMES if name in options.checks and name in results]
    checks = [r.to_json() for r in ordered]
    out = {"ok": all(r.ok for r in ordered), "dir": testnet.dir, "checks": checks, "sources": sources,
           "excluded": excluded}
    beyond = beyond_tolerance(testnet, genesis, excluded)
    if beyond is not None:
        out["beyond_f"] = beyond
    if not out["ok"]:
        out["trace"] = _trace_links(testnet, checks)
    _save_result(testnet.path, out)
    return out


def reported_byzantine(testnet: Testnet, known: Mapping[str, str]) -> dict[str, str]:
    """Running nodes whose own status reports a behaviour the record does not know: switched over the admin API
    (`chainlab node admin byzantine`, curl) rather than `testnet byzantine`. A liar is a liar however it was made."""
    if not spec_named(testnet.consensus).byzantine_behaviours:
        return {}
    found: dict[str, str] = {}
    for record in testnet.nodes:
        if record.name in known or record.state != "running" or not node_up(record):
            continue
        try:
            behaviour = (RpcClient(record.rpc_url, timeout_s=5.0).status().get("engine") or {}).get("byzantine")
        except (RpcError, RpcUnavailable, AttributeError):
            continue  # unreadable: the checks say so when they read it
        if behaviour:
            found[record.name] = f"behaviour {behaviour}, reported by the node itself: set outside `testnet byzantine`"
    return found


def _save_result(directory: Path, result: dict[str, Any]) -> None:
    """Keep the result as <dir>/check.json (with the time), for the dashboard; a directory that cannot be written
    to (a copy on read-only media) is noted in the result's sources, not an error of the checks."""
    try:
        write_private_text(directory / CHECK_FILE, json.dumps({**result, "time": iso_now()}, indent=2) + "\n")
    except OSError as exc:
        result["sources"]["check.json"] = f"not saved: {exc.strerror or exc}"


def _trace_links(testnet: Testnet, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """On a traced testnet, the trace events of each failure (docs/TRACING.md); {} when the nodes do not trace."""
    try:
        events = read_node_traces(testnet).events
    except TestnetError as exc:
        return {"error": str(exc)}
    if not events:
        return {}
    ops = read_history(testnet.path / HISTORY_FILE) if any(c["name"] == "consistency" and not c["ok"]
                                                           for c in checks) else []
    return link_failed_checks(checks, events, testnet.path, ops)


def check_consistency(ops: Sequence[Op]) -> CheckResult:
    """The guarantees the read levels of the load's reads promise (testnet/consistency.py PROMISES), eventual
    convergence included; passes with a note when the load made no reads."""
    started = time.monotonic()
    report = analyse(ops, should_stop=lambda: time.monotonic() > started + CONSISTENCY_TIMEOUT_S)
    if not report.levels:
        return CheckResult(name="consistency", ok=True, detail="no reads in the history (load with --reads to check "
                                                               "read guarantees)")
    broken = report.broken_promises()
    measured = ", ".join(f"{level}: {r.reads_ok} reads, linearizable {r.guarantees['linearizable'].verdict}"
                         for level, r in report.levels.items())
    if broken:
        first = next((g.examples[0]["text"] for r in report.levels.values() for g in r.guarantees.values()
                      if g.examples and f"{g.name} ({r.level} reads)" in broken), "")
        if not first and report.convergence.examples:
            first = report.convergence.examples[0]["text"]
        return CheckResult(name="consistency", ok=False, detail=f"broken: {', '.join(broken)}; {first}")
    return CheckResult(name="consistency", ok=True, detail=f"every promised guarantee holds ({measured}; "
                                                           f"convergence {report.convergence.verdict})")


def _fail(name: str, detail: str) -> CheckResult:
    return CheckResult(name=name, ok=False, detail=detail)


def _converge(clients: Sequence[tuple[str, RpcClient]], timeout_s: float) -> CheckResult:
    """Poll the running nodes until their tips are on one chain, or the timeout."""
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    result = _fail("convergence", "not polled")
    while True:
        try:
            result = check_convergence(tip_snapshots(clients))
        except (RpcError, RpcUnavailable, KeyError, ValueError) as exc:
            result = _fail("convergence", f"cannot read a node: {exc}")
        if result.ok or time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    waited = time.monotonic() - started
    suffix = f" after {waited:.1f} s" if result.ok else f" (gave up after {timeout_s:g} s)"
    return CheckResult(name=result.name, ok=result.ok, detail=result.detail + suffix)


def _collect(testnet: Testnet, genesis: Genesis, source: str, with_ledger: bool, excluded: Mapping[str, str],
             ) -> tuple[list[NodeView], dict[str, str]]:
    views: list[NodeView] = []
    sources: dict[str, str] = {}
    for record in testnet.nodes:
        if record.name in excluded:
            continue  # `excluded` in the result says why
        up = node_up(record)
        try:
            if up and record.state == "running" and source != "stores":
                client = RpcClient(record.rpc_url, timeout_s=10.0)
                views.append(rpc_view(record.name, client, genesis, with_ledger=with_ledger))
                sources[record.name] = "rpc"
            elif record.remote:  # its store is on its host
                sources[record.name] = ("unavailable (remote: its store is on its host; checked from RPC only)"
                                        if source == "stores" else f"unavailable (remote, {record.state})")
            elif not up and source != "rpc":
                views.append(store_view(record.name, record.datadir))
                sources[record.name] = "store"
            else:
                sources[record.name] = f"unavailable ({'paused' if record.state == 'paused' else record.state}" + (
                    ", its store is in use)" if up else ")")
        except CollectError as exc:
            sources[record.name] = f"unavailable: {exc}"
    return views, sources


def _checks_on_views(testnet: Testnet, genesis: Genesis, views: Sequence[NodeView], options: CheckOptions,
                     ) -> dict[str, CheckResult]:
    results: dict[str, CheckResult] = {}
    snapshots = [view.snapshot for view in views]
    wanted = set(options.checks)
    if "final-prefix-agreement" in wanted:
        results["final-prefix-agreement"] = check_final_prefix(snapshots)
    if "ledger-invariants" in wanted:
        results["ledger-invariants"] = merge("ledger-invariants",
                                             [check_ledger(v.ledger) for v in views if v.ledger is not None])
    if "no-lost-acknowledged-tx" in wanted:
        acked = acknowledged_final(read_history(testnet.path / HISTORY_FILE))
        results["no-lost-acknowledged-tx"] = check_acknowledged_per_node(acked, views)
    if "liveness" in wanted:
        results["liveness"] = check_liveness_periods(testnet, genesis, views, options)
    if "no-safety-alarm" in wanted:
        judged = {view.node for view in views}
        log_alarms = {record.name: count_log_alarms(record.log) for record in testnet.nodes
                      if record.name in judged and not record.remote}  # a remote node's status counts its alarms
        results["no-safety-alarm"] = check_no_safety_alarm(snapshots, log_alarms)
    if "locks" in wanted:
        results["locks"] = merge("locks", [CheckResult(name="locks", ok=ok, detail=detail)
                                           for ok, detail in (check_locks(v.node, v.lock_ops) for v in views)])
    if "certificates" in wanted and spec_named(testnet.consensus).parent_certificate is not None:
        results["certificates"] = check_final_certificates(testnet, genesis, views)
    return results


def beyond_tolerance(testnet: Testnet, genesis: Genesis, excluded: Mapping[str, str]) -> dict[str, int] | None:
    """`{"byzantine", "f", "validators"}` when more validators are Byzantine (a behaviour, or a key two processes
    hold: a twin pair is one validator) than the engine tolerates for both safety and liveness; None within the
    fault model. Beyond f the engine promises nothing: checks that pass prove nothing, and the certificate oracle
    shows what broke."""
    if not excluded:
        return None
    validators = {record.twin_of or record.name for record in testnet.nodes if record.name in excluded}
    spec = spec_named(testnet.consensus)
    # Safety needs two quorums to share an honest validator, liveness a quorum of honest ones (PBFT: f of 3f+1).
    f = min(tolerated_faults(genesis, spec), len(genesis.validators) - quorum_size(genesis, spec))
    if len(validators) <= f:
        return None
    return {"byzantine": len(validators), "f": f, "validators": len(genesis.validators)}


def validator_names(testnet: Testnet) -> dict[bytes, str]:
    """Each validator address with the nodes holding its key (`node1+node1-twin` for a twin pair)."""
    names: dict[bytes, str] = {}
    for record in testnet.nodes:
        if record.address:
            address = address_from_text(record.address)
            names[address] = f"{names[address]}+{record.name}" if address in names else record.name
    return names


def check_final_certificates(testnet: Testnet, genesis: Genesis, views: Sequence[NodeView]) -> CheckResult:
    """`check_certificates` on the honest nodes' final blocks (bounded by CERTIFICATE_WINDOW)."""
    spec = spec_named(testnet.consensus)
    read = certificate_reader(genesis, spec)  # nodes share most blocks: each certificate is verified once
    heights = certificate_heights([view.snapshot for view in views], window=CERTIFICATE_WINDOW)
    proofs = {view.node: certificates_of_headers(view.headers, view.snapshot.final_height, heights, read)
              for view in views}
    return check_certificates(proofs, f=tolerated_faults(genesis, spec), names=validator_names(testnet))


def merge(name: str, results: Sequence[CheckResult]) -> CheckResult:
    """One verdict from per-node verdicts: the first failure, or every node's detail."""
    if not results:
        return _fail(name, "no node could be checked")
    for result in results:
        if not result.ok:
            return CheckResult(name=name, ok=False, detail=result.detail)
    return CheckResult(name=name, ok=True, detail="; ".join(r.detail for r in results))


def check_acknowledged_per_node(acked: Mapping[str, int], views: Sequence[NodeView]) -> CheckResult:
    """Every transaction a client saw final at height h is in the final chain of every node whose final height
    reached h (a node that was down, and stayed behind, is only held to what it finalized)."""
    per_node = []
    behind = []
    for view in views:
        reached = {tx for tx, height in acked.items() if height <= view.snapshot.final_height}
        if len(reached) < len(acked):
            behind.append(view.node)
        per_node.append(check_acknowledged_final(reached, {view.node: view.final_txs}))
    result = merge("no-lost-acknowledged-tx", per_node)
    if result.ok:
        detail = f"{len(acked)} acknowledged-final transactions, none missing on {len(views)} nodes"
        if behind:
            detail += f" ({', '.join(behind)} not final that far yet)"
        return CheckResult(name=result.name, ok=True, detail=detail)
    return result


def quorum_predicate(testnet: Testnet, genesis: Genesis) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a network state (an event's `network`) has a quorum connected, by the engine's rule."""
    names = [r.name for r in testnet.nodes]
    edges = [(int(a), int(b)) for a, b in testnet.edges]
    spec = spec_named(testnet.consensus)
    address_of = {r.index: address_from_text(r.address) for r in testnet.nodes}

    def has_quorum(state: Mapping[str, Any]) -> bool:
        # A Byzantine validator (a behaviour, a twin pair) may withhold its vote: the engine owes progress only to
        # a quorum of honest ones, so a silent validator and a crashed one of four leave no quorum to judge.
        liars = set(state.get("byzantine") or ())
        return any(spec.has_quorum(genesis, {address_of[i] for i in component if names[i] not in liars})
                   for component in _components(state, names, edges))

    return has_quorum


def _components(state: Mapping[str, Any], names: list[str], edges: list[tuple[int, int]]) -> list[set[int]]:
    index = {name: i for i, name in enumerate(names)}
    up = [index[n] for n in state.get("running", []) if n in index]
    blocked = {index[n]: {index[b] for b in blocks if b in index}
               for n, blocks in state.get("blocked", {}).items() if n in index}
    return components(len(names), edges, blocked, up)


def quorum_periods(events: Sequence[Mapping[str, Any]], has_quorum: Callable[[Mapping[str, Any]], bool],
                   end_ns: int) -> list[tuple[int, int]]:
    """[start_ns, end_ns) intervals during which the network state (after each event) had a quorum; the last
    state lasts until `end_ns`."""
    periods: list[tuple[int, int]] = []
    for position, event in enumerate(events):
        start = int(event["time_ns"])
        stop = int(events[position + 1]["time_ns"]) if position + 1 < len(events) else end_ns
        if stop <= start or not has_quorum(event.get("network", {})):
            continue
        if periods and periods[-1][1] == start:
            periods[-1] = (periods[-1][0], stop)  # one connected stretch across actions that kept the quorum
        else:
            periods.append((start, stop))
    return periods


def liveness_bounds(testnet: Testnet, genesis: Genesis, options: CheckOptions) -> tuple[float, float]:
    """(grace_s, window_s) of the liveness rule."""
    grace = options.liveness_grace_s
    if grace is None:
        grace = 5.0
        grace += spec_named(testnet.consensus).detection_delay_s(genesis)
    window = options.liveness_window_s
    if window is None:
        window = max(10.0, 10 * testnet.block_interval_s)
    return grace, window


def check_liveness_periods(testnet: Testnet, genesis: Genesis, views: Sequence[NodeView], options: CheckOptions,
                           *, now_ns: int | None = None) -> CheckResult:
    """The liveness rule of this module's docstring, judged with `check_liveness` per period."""
    events = read_events(testnet.path)
    end_ns = now_ns or time.time_ns()
    periods = quorum_periods(events, quorum_predicate(testnet, genesis), end_ns)
    grace_s, window_s = liveness_bounds(testnet, genesis, options)
    return judge_periods(periods, views, grace_s, window_s)


def judge_periods(periods: Sequence[tuple[int, int]], views: Sequence[NodeView], grace_s: float, window_s: float,
                  ) -> CheckResult:
    """For each period of at least grace + window: the longest chain grew between start + grace and the end."""
    if not views:
        return _fail("liveness", "no node could be read")
    chain = max(views, key=lambda v: v.snapshot.height)
    times = sorted(chain.block_times_ms.items())
    judged = 0
    for start_ns, stop_ns in periods:
        if (stop_ns - start_ns) / 1e9 < grace_s + window_s:
            continue
        judged += 1
        from_ms, to_ms = start_ns // 1_000_000 + int(grace_s * 1000), stop_ns // 1_000_000
        before = max((h for h, t in times if t <= from_ms), default=0)
        after = max((h for h, t in times if t <= to_ms), default=0)
        verdict = check_liveness({chain.node: before}, {chain.node: after})
        if not verdict.ok:
            return _fail("liveness", f"quorum connected for {(stop_ns - start_ns) / 1e9:.1f} s from "
                                     f"{_clock(start_ns)}, but {verdict.detail} after a {grace_s:g} s grace")
    if not judged:
        return CheckResult(name="liveness", ok=True,
                           detail=f"no quorum-connected period of {grace_s + window_s:g} s or more to judge "
                                  f"({len(periods)} shorter)")
    return CheckResult(name="liveness", ok=True,
                       detail=f"the chain grew in each of {judged} quorum-connected period(s) "
                              f"(longest chain: {chain.node}, height {chain.snapshot.height})")


def _clock(time_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(time_ns / 1e9))

