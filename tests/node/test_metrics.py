"""Engine metrics (node/metrics.py): declared by the engine's spec, fed from its status document."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from consensus.registry import spec_named
from node.metrics import NodeMetrics


def _exported(registry: CollectorRegistry) -> dict[str, float]:
    values = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("chainlab_raft_") and "_created" not in line:
            name, value = line.split()
            values[name] = float(value)
    return values


def test_raft_status_fields_become_gauges_and_a_counter() -> None:
    metrics = NodeMetrics(CollectorRegistry())
    metrics.add_engine_metrics(spec_named("raft").metrics)
    metrics.add_engine_metrics(spec_named("raft").metrics)  # idempotent: no duplicate registration
    metrics.observe_engine_status({"term": 3, "leader_changes": 2, "commit_lag": 5, "role": "leader"})
    metrics.observe_engine_status({"term": 4, "leader_changes": 3, "commit_lag": 0})
    metrics.observe_engine_status({"term": 4})  # a field missing: left alone
    assert _exported(metrics.registry) == {"chainlab_raft_term": 4.0, "chainlab_raft_leader_changes_total": 3.0,
                                           "chainlab_raft_commit_lag": 0.0}


def test_an_engine_without_status_metrics_exports_none() -> None:
    metrics = NodeMetrics(CollectorRegistry())
    metrics.add_engine_metrics(spec_named("pow").metrics)
    metrics.observe_engine_status({"term": 4, "mining": True})
    assert _exported(metrics.registry) == {}


def test_p2p_counters_are_exported_when_scraped() -> None:
    from p2p.protocol.metrics import P2PMetrics

    metrics = NodeMetrics(CollectorRegistry())
    first, second = P2PMetrics(), P2PMetrics()
    metrics.watch_p2p(first)
    first.messages_out["TxMsg"] += 3
    first.frames_dropped["loss"] += 1
    text = generate_latest(metrics.registry).decode()
    assert 'chainlab_p2p_messages_total{direction="out",kind="TxMsg"} 3.0' in text
    assert 'chainlab_p2p_frames_dropped_total{cause="loss"} 1.0' in text
    metrics.watch_p2p(second)  # a restarted service: its counters replace the old ones, no duplicate registration
    second.messages_in["Inv"] += 2
    text = generate_latest(metrics.registry).decode()
    assert 'chainlab_p2p_messages_total{direction="in",kind="Inv"} 2.0' in text and "TxMsg" not in text


def test_listener_counters_are_exported_per_port() -> None:
    from p2p.listener import ListenerCounters

    metrics = NodeMetrics(CollectorRegistry())
    p2p, rpc = ListenerCounters(), ListenerCounters()
    metrics.watch_listener("p2p", p2p)
    metrics.watch_listener("rpc", rpc)
    p2p.refused["per-address"] += 7
    rpc.timed_out += 2
    rpc.open = 3
    text = generate_latest(metrics.registry).decode()
    assert 'chainlab_connections_refused_total{port="p2p",reason="per-address"} 7.0' in text
    assert 'chainlab_connections_refused_total{port="rpc",reason="total"} 0.0' in text
    assert 'chainlab_connections_timed_out_total{port="rpc"} 2.0' in text
    assert 'chainlab_connections_open{port="rpc"} 3.0' in text
