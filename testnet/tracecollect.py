"""`chainlab testnet trace`: the causal traces of a testnet's nodes gathered into one file (docs/TRACING.md).

Each node that traces writes its own file (`[node] trace_file`, `trace.jsonl` in its data directory under
`testnet up --trace`). The collector reads them all, names peers that a node knew only by node id (before their
first stamp reached it) by their names from the `node-start` events, orders the events by wall-clock time (one
host: one clock; the tools order by the clocks, not by this), and writes one trace. The testnet's events.jsonl is
copied beside it as `OUT.events.jsonl`, so `chainlab trace diagram` shades the faults without further options. A
node without a trace, or a trace that cannot be read, is reported and the rest is collected; a bad line in the
middle of a file is an error naming the file and line (a torn last line, from a crash, is skipped).
A remote node's trace (an attached network) comes over RPC, `GET /v1/admin/trace` with its admin token: the same
file, read where the node runs. Across hosts the wall clocks differ, so the merged order by time is only a
layout; the tools order by the vector clocks, which need no common clock.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from causality.events import TraceError, TraceEvent, parse_trace
from node.client import RpcClient, RpcError, RpcUnavailable
from node.config import ConfigError, load_config
from testnet.cluster import TRACE_FILE
from testnet.state import EVENTS_FILE, NodeRecord, Testnet, TestnetError, load_testnet, trace_events_path

REMOTE_TIMEOUT_S = 10.0


def node_trace_path(datadir: Path) -> Path:
    """The trace file a node of a testnet writes: its configured `trace_file`, else the testnet default."""
    try:
        configured = load_config(datadir).node.trace_file
    except ConfigError:
        configured = ""
    return datadir / (configured or TRACE_FILE)


@dataclass(frozen=True, slots=True)
class NodeTraces:
    """The nodes' traces read together."""

    events: list[TraceEvent]  # ordered by time, peers named
    per_node: dict[str, int]  # events per node
    missing: dict[str, str]  # nodes without a trace, and why
    renamed: int  # peer fields that held a node id


def read_node_traces(testnet: Testnet) -> NodeTraces:
    """Every event of the nodes' traces; TestnetError for a bad line in the middle of a file."""
    events: list[TraceEvent] = []
    per_node: dict[str, int] = {}
    missing: dict[str, str] = {}
    for record in testnet.nodes:
        if record.remote:
            text, why = _remote_trace(record)
            if text is None:
                missing[record.name] = why
                continue
            try:
                found = list(parse_trace(io.StringIO(text), f"{record.name}'s trace (GET {record.rpc_url}"
                                                            "/v1/admin/trace)"))
            except TraceError as exc:
                raise TestnetError(str(exc)) from None
            per_node[record.name] = len(found)
            events.extend(found)
            continue
        path = node_trace_path(Path(record.datadir))
        if not path.is_file():
            missing[record.name] = f"no trace at {path} (start the testnet with `testnet up --trace`)"
            continue
        try:
            with path.open(encoding="utf-8") as lines:
                found = list(parse_trace(lines, str(path)))
        except (OSError, UnicodeDecodeError) as exc:
            missing[record.name] = f"cannot read {path}: {exc}"
            continue
        except TraceError as exc:
            raise TestnetError(str(exc)) from None
        per_node[record.name] = len(found)
        events.extend(found)
    names = {str(e.detail.get("node_id")): e.node for e in events
             if e.what == "node-start" and isinstance(e.detail.get("node_id"), str) and e.detail.get("node_id")}
    merged = []
    renamed = 0
    for event in sorted(events, key=lambda e: (e.time_ns, e.node, e.seq)):
        if event.peer is not None and event.peer in names:
            event = dataclasses.replace(event, peer=names[event.peer])
            renamed += 1
        merged.append(event)
    return NodeTraces(merged, per_node, missing, renamed)


def _remote_trace(record: NodeRecord) -> tuple[str | None, str]:
    """A remote node's trace as it serves it (`GET /v1/admin/trace`, with its admin token), or None and why not."""
    client = RpcClient(record.rpc_url, admin_token=record.admin_token or None, timeout_s=REMOTE_TIMEOUT_S)
    try:
        return client.trace(), ""
    except RpcUnavailable as exc:
        return None, f"remote node does not answer ({exc})"
    except RpcError as exc:
        if exc.code == "no-trace":
            return None, f"remote node does not trace: {exc.message} (set [node] trace_file where it runs)"
        if exc.http_status == 404:
            return None, "remote node serves no trace (GET /v1/admin/trace: a node older than that route)"
        return None, f"remote node refused GET /v1/admin/trace: {exc.code}: {exc.message}"


def collect(directory: Path, out: Path) -> dict[str, Any]:
    """Write the merged trace of the testnet in `directory` to `out`; a summary: events per node, nodes without
    a trace (and why), peers renamed. TestnetError when no node has a trace or `out` cannot be written."""
    testnet = load_testnet(directory)
    traces = read_node_traces(testnet)
    merged = traces.events
    if not merged:
        raise TestnetError(f"no node of {directory} has a trace: " +
                           "; ".join(f"{n}: {w}" for n, w in traces.missing.items()))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle:
            handle.writelines(event.to_line() for event in merged)
        faults = Path(directory) / EVENTS_FILE
        if faults.is_file():
            shutil.copyfile(faults, trace_events_path(out))
    except OSError as exc:
        raise TestnetError(f"cannot write {exc.filename or out}: {exc.strerror or exc}") from None
    return {"out": str(out), "events": len(merged), "per_node": traces.per_node, "missing": traces.missing,
            "peers_renamed": traces.renamed, "faults": str(trace_events_path(out)) if faults.is_file() else None}
