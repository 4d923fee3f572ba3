"""Every Prometheus metric a chainlab node exports, created in one registry.

A `NodeMetrics` binds itself to its registry: `NodeMetrics.of(registry)` returns the one already created there
(by `NodeMetrics(registry)` or an earlier `of`), creating it only on first use, so the node runtime and the RPC
server (which both hold the registry) share the same metric objects instead of failing on a duplicate
registration. Constructing a second `NodeMetrics` on one registry is an error (ValueError).

The attributes are plain prometheus_client objects: `.inc()`, `.set()`, `.labels(...)`, `.observe()`. All names
start with `chainlab_`; docs/RPC.md lists them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from consensus.spec import StatusMetric
from p2p.listener import ListenerCounters
from p2p.protocol.metrics import P2PMetrics

_BOUND: weakref.WeakKeyDictionary[CollectorRegistry, NodeMetrics] = weakref.WeakKeyDictionary()
_RPC_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REORG_DEPTH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128)


class NodeMetrics:
    """The node's metrics in `registry` (one instance per registry; `NodeMetrics.of` finds it)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        if registry in _BOUND:
            raise ValueError("this registry already has its NodeMetrics: use NodeMetrics.of(registry)")
        self.registry = registry
        # --- RPC (node/rpc.py updates these) -------------------------------------------------------------
        self.rpc_requests = Counter(
            "chainlab_rpc_requests", "RPC requests answered, by method, route template and HTTP status",
            ["method", "route", "status"], registry=registry,
        )
        self.rpc_request_seconds = Histogram(
            "chainlab_rpc_request_seconds", "Time to answer an RPC request (streams: until the stream starts)",
            ["route"], buckets=_RPC_SECONDS_BUCKETS, registry=registry,
        )
        self.rpc_internal_errors = Counter(
            "chainlab_rpc_internal_errors", "RPC requests that failed with a bug (HTTP 500)", registry=registry,
        )
        self.rpc_event_streams = Gauge(
            "chainlab_rpc_event_streams", "Open /v1/events streams", registry=registry,
        )
        self.tx_submissions = Counter(
            "chainlab_tx_submissions", "Transactions submitted over RPC, by result (accepted or the reject code)",
            ["result"], registry=registry,
        )
        # --- chain -----------------------------------------------------------------------------------------
        self.chain_height = Gauge("chainlab_chain_height", "Height of the best chain's tip", registry=registry)
        self.final_height = Gauge("chainlab_final_height", "Height of the highest final block", registry=registry)
        self.blocks_connected = Counter(
            "chainlab_blocks_connected", "Blocks connected to the best chain", registry=registry,
        )
        self.blocks_disconnected = Counter(
            "chainlab_blocks_disconnected", "Blocks disconnected from the best chain by reorgs", registry=registry,
        )
        self.blocks_rejected = Counter(
            "chainlab_blocks_rejected", "Blocks refused, by reject code", ["code"], registry=registry,
        )
        self.orphans = Gauge("chainlab_orphans", "Blocks waiting in the orphan pool", registry=registry)
        self.reorgs = Counter("chainlab_reorgs", "Reorganizations of the best chain", registry=registry)
        self.reorg_depth = Histogram(
            "chainlab_reorg_depth", "Blocks disconnected per reorganization", buckets=_REORG_DEPTH_BUCKETS,
            registry=registry,
        )
        self.signatures_preverified = Counter(
            "chainlab_signatures_preverified",
            "Block transaction signatures verified in the worker pool ahead of validation (`validation.workers` > 1)",
            registry=registry,
        )
        self.safety_alarms = Counter(
            "chainlab_safety_alarms",
            "Better branches refused because they fork below the final height (must stay 0)", registry=registry,
        )
        # --- mempool ---------------------------------------------------------------------------------------
        self.mempool_size = Gauge("chainlab_mempool_size", "Transactions in the mempool", registry=registry)
        self.mempool_bytes = Gauge(
            "chainlab_mempool_bytes", "Encoded bytes of the mempool's transactions", registry=registry,
        )
        self.mempool_dropped = Counter(
            "chainlab_mempool_dropped", "Transactions that left the mempool, by reason (docs/MEMPOOL.md)",
            ["reason"], registry=registry,
        )
        # --- network and sync ------------------------------------------------------------------------------
        self.peers = Gauge("chainlab_peers", "Connected peers", registry=registry)
        self.syncing = Gauge("chainlab_syncing", "1 while the node is catching up with its peers", registry=registry)
        self.sync_height = Gauge(
            "chainlab_sync_height", "Best height announced by the node's peers", registry=registry,
        )
        # --- engine ----------------------------------------------------------------------------------------
        self.mining = Gauge("chainlab_mining", "1 while this node mines (PoW)", registry=registry)
        self.reachable_hash_share = Gauge(
            "chainlab_reachable_hash_share",
            "Share of the network's hash power this node can reach (PoW partition handler), 0..1",
            registry=registry,
        )
        # --- the engine's own (EngineSpec.metrics, fed from its status document) ------------------------------
        self._engine_metrics: dict[str, tuple[StatusMetric, Gauge | Counter]] = {}
        self._engine_counted: dict[str, float] = {}
        self._p2p_collector: _P2PCollector | None = None
        self._listener_collector: _ListenerCollector | None = None
        self.before_scrape: Callable[[], None] | None = None  # refreshes the gauges the owner keeps lazily
        _BOUND[registry] = self

    @classmethod
    def of(cls, registry: CollectorRegistry) -> NodeMetrics:
        """The NodeMetrics of `registry`, created (and its metrics registered) on the first call."""
        bound = _BOUND.get(registry)
        return bound if bound is not None else cls(registry)

    def add_engine_metrics(self, metrics: Sequence[StatusMetric]) -> None:
        """Register the engine's status metrics (once each: a second call with the same names changes nothing)."""
        for metric in metrics:
            if metric.name in self._engine_metrics:
                continue
            kind = Gauge if metric.kind == "gauge" else Counter
            self._engine_metrics[metric.name] = (metric, kind(metric.name, metric.help, registry=self.registry))

    def observe_engine_status(self, status: Mapping[str, object]) -> None:
        """Feed the engine's metrics from its status document (a missing or non-numeric field is left alone)."""
        for name, (metric, exported) in self._engine_metrics.items():
            value = status.get(metric.status_field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if isinstance(exported, Gauge):
                exported.set(value)
                continue
            counted = self._engine_counted.get(name, 0.0)
            if value > counted:
                exported.inc(value - counted)
                self._engine_counted[name] = float(value)

    def refresh(self) -> None:
        """Bring lazily kept gauges up to date (the RPC server calls it before rendering /metrics)."""
        if self.before_scrape is not None:
            self.before_scrape()

    def watch_p2p(self, p2p: P2PMetrics) -> None:
        """Export the P2P service's counters (read when scraped: the hot path only bumps plain counters); a
        later call switches to the new service's counters."""
        if self._p2p_collector is None:
            self._p2p_collector = _P2PCollector(p2p)
            self.registry.register(self._p2p_collector)
        self._p2p_collector.p2p = p2p

    def watch_listener(self, port: str, counters: ListenerCounters) -> None:
        """Export a listening port's TCP-level counters (p2p/listener.py) as chainlab_connections_* with
        port=`port` ("p2p", "rpc"); a later call for the same port switches to the new counters."""
        if self._listener_collector is None:
            self._listener_collector = _ListenerCollector()
            self.registry.register(self._listener_collector)
        self._listener_collector.ports[port] = counters

    def set_mining(self, enabled: bool, reachable_share: float | None = None) -> None:
        """Record the PoW engine's mining switch and, when known, the reachable hash share."""
        self.mining.set(1 if enabled else 0)
        if reachable_share is not None:
            self.reachable_hash_share.set(reachable_share)

    def observe_reorg(self, disconnected: int, connected: int) -> None:
        """Count one reorganization: its depth (blocks disconnected) and the disconnected blocks.

        `blocks_connected` is left alone: the caller counts every connected block where it connects it, a reorg's
        new branch included, so it would count twice here. `connected` is taken for symmetry and not recorded.
        """
        del connected
        self.reorgs.inc()
        self.reorg_depth.observe(disconnected)
        self.blocks_disconnected.inc(disconnected)

    def observe_mempool(self, size: int, size_bytes: int, dropped: dict[str, int] | None = None) -> None:
        """Set the mempool gauges and count drops by reason (e.g. from PoolUpdate.counts())."""
        self.mempool_size.set(size)
        self.mempool_bytes.set(size_bytes)
        for reason, count in (dropped or {}).items():
            self.mempool_dropped.labels(reason=reason).inc(count)


class _P2PCollector(Collector):
    """chainlab_p2p_*: messages and bytes by direction, drops, disconnects and dials, from a P2PMetrics."""

    def __init__(self, p2p: P2PMetrics) -> None:
        self.p2p = p2p

    def collect(self) -> Iterator[CounterMetricFamily]:
        p2p = self.p2p
        messages = CounterMetricFamily("chainlab_p2p_messages", "P2P messages by direction and kind",
                                       labels=["direction", "kind"])
        for direction, counts in (("in", p2p.messages_in), ("out", p2p.messages_out)):
            for kind, count in sorted(counts.items()):
                messages.add_metric([direction, kind], count)
        yield messages
        traffic = CounterMetricFamily("chainlab_p2p_bytes", "P2P frame bytes by direction", labels=["direction"])
        traffic.add_metric(["in"], p2p.bytes_in)
        traffic.add_metric(["out"], p2p.bytes_out)
        yield traffic
        for name, help_text, label, counts in (
            ("chainlab_p2p_frames_dropped", "P2P frames dropped, by cause", "cause", p2p.frames_dropped),
            ("chainlab_p2p_disconnects", "P2P connections ended, by reason code", "reason", p2p.disconnects),
            ("chainlab_p2p_engine_rejects", "P2P engine messages refused, by reject code", "code", p2p.engine_rejects),
        ):
            family = CounterMetricFamily(name, help_text, labels=[label])
            for key, count in sorted(counts.items()):
                family.add_metric([key], count)
            yield family
        for name, help_text, value in (("chainlab_p2p_bans", "Peers banned", p2p.bans),
                                       ("chainlab_p2p_dials", "Outbound connections tried", p2p.dials),
                                       ("chainlab_p2p_dial_failures", "Outbound connections that failed",
                                        p2p.dial_failures)):
            yield CounterMetricFamily(name, help_text, value=value)


class _ListenerCollector(Collector):
    """chainlab_connections_*: TCP connections open, refused by cap and timed out, per listening port."""

    def __init__(self) -> None:
        self.ports: dict[str, ListenerCounters] = {}

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        opened = GaugeMetricFamily("chainlab_connections_open", "TCP connections open, by listening port",
                                   labels=["port"])
        refused = CounterMetricFamily("chainlab_connections_refused",
                                      "TCP connections closed at accept for a cap, by listening port and cap",
                                      labels=["port", "reason"])
        timed_out = CounterMetricFamily("chainlab_connections_timed_out",
                                        "TCP connections closed for request headers not complete in time",
                                        labels=["port"])
        for port, counters in sorted(self.ports.items()):
            opened.add_metric([port], counters.open)
            timed_out.add_metric([port], counters.timed_out)
            for reason in ("per-address", "total"):
                refused.add_metric([port, reason], counters.refused[reason])
        yield opened
        yield refused
        yield timed_out
