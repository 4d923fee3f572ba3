"""The deterministic simulator (pure): N real node cores in one process, one virtual clock, one seed.

`Simulator(config, core_factory).run()` builds the network the config describes (one in-memory store per node),
then pops events off one queue until the run is over:

1. **Safety phase** (`config.duration_s` virtual seconds): the nemesis partitions and crashes, links lose and
   duplicate messages, clocks drift, the network model draws every delay; clients send transfers and read
   accounts (clients.py), which they record as a client history (`SimResult.history`).
2. **Liveness phase**: everything heals at once (faults.py). Every `probe_s` the simulator asks whether every pair
   of nodes is connected again, the nodes agree on their chain, and every node has gained
   `config.min_progress_blocks` blocks and some finality since the heal. It stops as soon as they have, or fails
   when `config.effective_liveness_budget_s` runs out.

Then the testnet's own checks (testnet/checks.py) judge the final state of every node: final-prefix agreement,
no safety alarm, convergence, ledger invariants and liveness; plus two of the simulator's: finality progressed
after the heal, and no honest node was punished as misbehaving; with reads, the clients' linearizable reads
are linearizable (`linearizable-reads`).

Every random draw comes from one `Random(config.seed)`, in event order; events at the same instant pop in the
order they were pushed; nodes iterate their peers sorted. So the trace (trace.py) of a seed is the same on every
re-run, and so is its digest, `SimResult.trace_hash`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from random import Random
from typing import Any

from chain.crypto import sha256
from chain.housekeeping import HOUSEKEEPING_S
from chain.tx import make_transfer
from consensus.engine import ReadResult
from consensus.envelope import VerifiedSignatures
from consensus.pow.seal import MAX_TARGET, work_of_target
from consensus.registry import spec_named
from storage.memory import MemoryStore
from testnet.checks import (
    CheckResult,
    certificate_reader,
    certificates_of_tree,
    check_certificates,
    check_convergence,
    check_final_prefix,
    check_ledger,
    check_liveness,
    check_no_safety_alarm,
    check_one_leader_per_term,
    ledger_of_tree,
    snapshot_of_tree,
    tolerated_faults,
)
from testnet.history import Op
from testnet.sim.causal import DECISIONS, CausalTracer, Stamp
from testnet.sim.clients import READ_TIMEOUT_S, SimClients
from testnet.sim.clock import EventQueue
from testnet.sim.config import SimConfig
from testnet.sim.core import CoreFactory, CoreSpec, MiningWorkView
from testnet.sim.events import (
    BlockFound,
    Deliver,
    EndSafety,
    Event,
    HealPartition,
    Housekeeping,
    LinkTimeout,
    LinkUp,
    NemesisStep,
    Observe,
    Probe,
    Read,
    ReadTimeout,
    Restart,
    SplitEnd,
    SplitProbe,
    SplitStart,
    Submit,
    Tick,
)
from testnet.sim.faults import CrashNode, Nemesis, draw_clocks, draw_link_faults, draw_shares
from testnet.sim.links import PEER_TIMEOUT_S, PING_INTERVAL_S, RECONNECT_MAX_S, RECONNECT_MIN_S, Links
from testnet.sim.lockclients import LockClients, lock_check
from testnet.sim.metrics import Propagation, stale_rate
from testnet.sim.network import NO_LINK_FAULTS, LinkFaults, NetworkModel, make_model
from testnet.sim.node import SimNode
from testnet.sim.overlay import full_mesh_pairs, hop_distances, random_regular
from testnet.sim.shapes import Topology, groups_topology, whole_network
from testnet.sim.split import SplitStudy, split_sides
from testnet.sim.trace import Trace
from testnet.sim.wire import EngineCarrier, SimCodec, Wire

PROBE_S = 1.0
SUPPRESS_MAX_INFLIGHT_S = 5.0  # longest in-flight time for which a copy of a seen envelope is not scheduled
FINAL_WATCH_HEIGHTS = 4096  # final heights remembered for spotting the first conflict as it happens
MAX_FEE = 5
Observer = Callable[[float, "Simulator"], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimResult:
    """The outcome of one run."""

    config: SimConfig
    virtual_s: float
    trace_hash: str
    trace_events: int
    ok: bool
    checks: tuple[CheckResult, ...]
    params: Mapping[str, object]  # what the seed drew for the run as a whole
    stats: Mapping[str, object]
    first_violation: str | None  # when and where safety first broke, if it did
    history: tuple[Op, ...] = ()  # the simulated clients' history (clients.py), for `--history`
    first_violation_t: float | None = None  # its virtual time
    violation_events: tuple[str, ...] = ()  # with --trace: the ids of the trace events of the first violation
    scale: Mapping[str, object] | None = None  # overlay, propagation, stale rate, split (docs/SCALE.md)
    events: tuple[Mapping[str, Any], ...] = ()  # the nemesis actions as events.jsonl records (time_ns virtual)

    def failed_checks(self) -> list[str]:
        """Names of the checks that failed."""
        return [check.name for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        """JSON values (the CLI adds wall_s and speedup)."""
        return {
            "seed": self.config.seed, "virtual_s": round(self.virtual_s, 3), "trace_hash": self.trace_hash,
            "trace_events": self.trace_events, "ok": self.ok, "checks": [c.to_json() for c in self.checks],
            "first_violation": self.first_violation, "config": self.config.to_json(), "params": dict(self.params),
            "stats": dict(self.stats), "scale": dict(self.scale) if self.scale is not None else None,
            "replay": self.config.command(),
        }


@dataclass(slots=True)
class _Pending:
    """The earliest scheduled copy (`lead`, arriving at `arrival`) of one envelope on its way to one node, and the
    later copies that wait for its verdict (each with the arrival time it drew) instead of being scheduled."""

    arrival: float
    lead: Deliver
    deferred: list[tuple[float, Deliver]]


class Simulator:
    """One run of `config`, with cores built by `core_factory` (node.core.NodeCore.over_store, or a test's)."""

    def __init__(self, config: SimConfig, core_factory: CoreFactory, *, observer: Observer | None = None,
                 observe_every_s: float = 0.0, tracer: CausalTracer | None = None) -> None:
        self.config = config
        self.tracer = tracer
        self._labelled: tuple[object, str, str] = (None, "", "")  # the last message sent, its kind and hash (hex)
        self.core_factory = core_factory
        self.observer = observer
        self.observe_every_s = observe_every_s
        self.rng = Random(config.seed)
        self.queue: EventQueue[Event] = EventQueue()
        self.trace = Trace()
        self.events: list[dict[str, Any]] = []  # the nemesis actions, as events.jsonl records (_network_event)
        self.verified_signatures = VerifiedSignatures()
        self.t = 0.0
        self.phase = "safety"
        self._stopped = False
        self._horizon = config.duration_s + config.effective_liveness_budget_s
        self.stats: dict[str, int] = {"sent": 0, "delivered": 0, "lost": 0, "duplicated": 0, "cut": 0,
                                      "stale": 0, "partitions": 0, "crashes": 0, "txs_submitted": 0,
                                      "txs_refused": 0, "suppressed": 0, "rescheduled": 0}
        # The earliest scheduled copy of each envelope on its way to each node, with the later copies that wait
        # for it rather than being scheduled (send, _settle).
        self._pending: dict[tuple[int, tuple[bytes, int]], _Pending] = {}
        self._final_seen: dict[int, tuple[str, bytes]] = {}
        self.first_violation: str | None = None
        self.first_violation_t: float | None = None
        self.violation_events: tuple[str, ...] = ()  # with a tracer: the trace events of the first violation
        self._liveness_met = False
        self._heal_heights: dict[str, int] = {}
        self._heal_finals: dict[str, int] = {}
        self._partition_serial = 0
        rng = self.rng
        n = config.nodes
        # The run-wide draws, always in this order (docs/SIMULATOR.md).
        # Hash-rate shares matter to engines that seal with workers (PoW); the others propose by turn or role.
        self.spec = spec_named(config.consensus)
        # Only the first `mining_nodes` nodes mine (all of them unless --miners says otherwise); the rest relay.
        miners = config.mining_nodes if self.spec.seals_with_workers else n
        self.shares = (draw_shares(rng, miners) + [0.0] * (n - miners) if self.spec.seals_with_workers
                       else [1.0 / n] * n)
        self.clocks = draw_clocks(rng, n, "drift" in config.faults)
        if config.twins:  # drawn only for runs with twins, so every other seed keeps its draws
            self.clocks += draw_clocks(rng, config.twins, "drift" in config.faults)
        self.safety_link_faults = draw_link_faults(rng, loss="loss" in config.faults, duplicate="dup" in config.faults)
        self.gst_s = rng.uniform(0.0, config.duration_s) if config.model == "partial-sync" else 0.0
        self.model: NetworkModel = make_model(config.model, max_delay_s=config.max_delay_s, gst_s=self.gst_s,
                                              async_scale_s=config.async_scale_s)
        self.link_faults: LinkFaults = self.safety_link_faults
        self.size = size = config.size  # validators and their twins
        self.topology: Topology = whole_network(size)
        self._partitioned = False  # fast path: with no partition on, every established link carries messages
        # The overlay (drawn only when a degree is given, so full-mesh runs keep their draws) and the latency matrix.
        self.overlay = random_regular(size, config.degree, rng) if config.degree else full_mesh_pairs(size)
        self.links = Links(size, self.overlay)
        latency = config.latency
        self.region: list[int] | None = latency.placement(size) if latency is not None else None
        self.base_delay_s = latency.delay_s if latency is not None else ()
        self.max_base_delay_s = max((max(row) for row in self.base_delay_s), default=0.0)
        self.genesis = config.genesis(self.shares[:miners])
        target = int(str(self.genesis.param("initial_target")), 16) if self.spec.seals_with_workers else MAX_TARGET
        if target != MAX_TARGET:
            raise AssertionError("the simulator draws block times; it needs a genesis at the maximum target")
        # With twins, the twin split is the partition of the safety phase (see _split_twins).
        self.nemesis = Nemesis(nodes=n, partition="partition" in config.faults and not config.twins,
                               crash="crash" in config.faults,
                               interval_s=3.0 * config.block_interval_s, block_interval_s=config.block_interval_s,
                               finality_threshold=config.finality_threshold)
        self.codec = SimCodec()  # one for the whole network: a block relayed to every node is decoded once
        self.load_keys = config.load_keys()
        # With reads, transfers go to sink accounts, so each load account changes only by its own transfers.
        self.sinks = config.sink_addresses() if config.read_rate_per_s > 0 else []
        self.clients = SimClients(self.load_keys, chain_id=self.genesis.chain_id,
                                  rebroadcast_after_s=3 * config.block_interval_s + 2.0)  # as testnet/load.py
        depth = config.finality_threshold if self.spec.confirmation_finality else 0  # where final is k deep
        self.lock_clients = LockClients(
            self.load_keys, chain_id=self.genesis.chain_id, locks=config.locks, finality_blocks=depth,
            block_interval_s=config.block_interval_s, resend_after_s=(3 + depth) * config.block_interval_s + 2.0,
        ) if config.workload == "lock" else None
        keys = config.node_keys()
        self.nodes = [
            SimNode(index=i, name=f"node{i}", key=keys[i], store=MemoryStore(), clock=self.clocks[i],
                    hashrate_hps=self.shares[i] / config.block_interval_s * work_of_target(MAX_TARGET), hooks=self,
                    codec=self.codec)
            for i in range(n)
        ] + [
            SimNode(index=n + j, name=f"twin{j}", key=keys[j], store=MemoryStore(), clock=self.clocks[n + j],
                    hashrate_hps=0.0, hooks=self, codec=self.codec)
            for j in range(config.twins)
        ]
        self._index = {node.name: node.index for node in self.nodes}
        directory = {node.key.address: node.name for node in self.nodes[:n]}
        for node in self.nodes:
            node.peer_of_address = directory
        self._handlers: dict[type, Callable[[Any], None]] = {
            Deliver: self._on_deliver, Tick: self._on_tick, Housekeeping: self._on_housekeeping,
            BlockFound: self._on_block_found, LinkUp: self._on_link_up, LinkTimeout: self._on_link_timeout,
            NemesisStep: self._on_nemesis, HealPartition: self._on_heal_partition, Restart: self._on_restart,
            Submit: self._on_submit, Read: self._on_read, ReadTimeout: self._on_read_timeout,
            EndSafety: self._on_end_safety, Probe: self._on_probe, Observe: self._on_observe,
        }
        # Byzantine validators: drawn last, and only when asked for, so every other seed keeps its draws.
        self.byzantine: dict[int, str] = config.byzantine_nodes()
        if config.byzantine == "random":  # 1..f liars in all, twins counted, none of them a twinned validator
            behaviours = self.spec.byzantine_behaviours
            spare = (n - 1) // 3 - config.twins
            count = rng.randint(1, spare) if spare > 0 else 0
            chosen = sorted(rng.sample(range(config.twins, n), count))
            self.byzantine = {i: rng.choice(behaviours) for i in chosen}
        # Who the safety checks judge: not a Byzantine validator, not a twin nor the validator it doubles.
        self.faulty = set(self.byzantine) | set(range(config.twins)) | set(range(n, size))
        # Scale figures (metrics.py, split.py): propagation to 90% of the nodes, the blocks mined, who mines.
        self.propagation = Propagation(size)
        self.mined_blocks: list[bytes] = []
        self.mining_active = [False] * size
        self.split: SplitStudy | None = None
        self._handlers.update({SplitStart: self._on_split_start, SplitEnd: self._on_split_end,
                               SplitProbe: self._on_split_probe})

    # -- running -------------------------------------------------------------------------------------------------

    def run(self) -> SimResult:
        """Run both phases and judge the outcome."""
        for node in self.nodes:
            self._boot(node)
        config = self.config
        if config.twins:
            self._split_twins()
        self._reconcile_links()
        if self.nemesis.enabled:
            self.queue.push(self.nemesis.next_delay(self.rng), NemesisStep())
        if config.tx_rate_per_s > 0:
            self.queue.push(self.rng.expovariate(config.tx_rate_per_s), Submit())
        if config.read_rate_per_s > 0:
            self.clients.initial_reads(self.nodes, self.t)
            self.queue.push(self.rng.expovariate(config.read_rate_per_s), Read())
        if self.observer is not None and self.observe_every_s > 0:
            self.queue.push(0.0, Observe())
        if config.split_share:
            self.queue.push(config.split_at_s, SplitStart())
            self.queue.push(config.split_at_s + config.split_for_s, SplitEnd())
        self.queue.push(config.duration_s, EndSafety())
        handlers, queue = self._handlers, self.queue
        while queue and not self._stopped:
            t, event = queue.pop()
            if t > self._horizon:
                break
            self.t = t
            handlers[type(event)](event)
        result = self._verdict()
        if self.tracer is not None:
            self.tracer.flush()
        return result

    def _boot(self, node: SimNode) -> None:
        spec = CoreSpec(name=node.name, index=node.index, genesis=self.genesis, store=node.store, key=node.key,
                        verified_signatures=self.verified_signatures,
                        mining=not self.spec.seals_with_workers or self.shares[node.index % self.config.nodes] > 0,
                        rng_seed=(self.config.seed * 1_000_003 + node.index * 7_919 + node.incarnation) % (1 << 64))
        node.boot(self.core_factory(spec), self.t)
        core = node.core
        assert core is not None
        behaviour = self.byzantine.get(node.index)
        if behaviour is not None:
            node.admin("byzantine", behaviour, self.t)
        phase = self.rng.uniform(0.0, core.engine.tick_interval_s)  # nodes do not tick in lockstep
        self.queue.push(self.t + node.clock.virtual_interval(phase), Tick(node=node.index,
                                                                        incarnation=node.incarnation))
        self.queue.push(self.t + node.clock.virtual_interval(HOUSEKEEPING_S),
                        Housekeeping(node=node.index, incarnation=node.incarnation))

    # -- node hooks ----------------------------------------------------------------------------------------------

    def send(self, node: SimNode, peer: str, message: Wire, t: float) -> None:
        """Put a message on the wire: partition, loss, duplication and the model's delay apply."""
        dst = self._index[peer]
        state = self.links.state(node.index, dst)
        if not state.up:
            return
        self.stats["sent"] += 1
        if self._partitioned and not self.topology.connected(node.index, dst):
            self.stats["cut"] += 1
            return
        # A copy `dst` already holds, or will hold before it arrives (_Pending), is neither traced nor scheduled,
        # but its draws are made all the same, so that suppressing it changes no later draw of the run.
        ident = message.ident if type(message) is EngineCarrier else None
        exact = ident is not None and self._suppression_exact(t)
        suppress = exact and self._suppress_seen(dst, ident, t)  # type: ignore[arg-type]
        copies = self.link_faults.copies(self.rng)
        if copies == 0:
            self.stats["lost"] += 1
            self._trace_send(node, peer, message, t, suppress)  # a lost message is a send without a receive
            return
        if copies == 2:
            self.stats["duplicated"] += 1
        base = self.base_delay_s[self.region[node.index]][self.region[dst]] if self.region is not None else 0.0
        arrivals = [t + base + self.model.delay(self.rng, t) for _ in range(copies)]
        if suppress:
            return
        stamp = None
        traced = False
        for arrival in arrivals:
            if arrival > self._horizon:
                continue
            if ident is None:  # not an envelope: scheduled as it is
                if not traced:
                    stamp, traced = self._trace_send(node, peer, message, t, False), True
                self.queue.push(arrival, Deliver(src=node.index, dst=dst, epoch=state.epoch, message=message,
                                                 stamp=stamp))
                continue
            key = (dst, ident)
            pending = self._pending.get(key)
            if exact and pending is not None and arrival >= pending.arrival:
                # An earlier copy is on its way to dst: this one waits for its verdict (_settle).
                pending.deferred.append((arrival, Deliver(src=node.index, dst=dst, epoch=state.epoch,
                                                          message=message, stamp=stamp)))
                continue
            if not traced:
                stamp, traced = self._trace_send(node, peer, message, t, False), True
            deliver = Deliver(src=node.index, dst=dst, epoch=state.epoch, message=message, stamp=stamp)
            self.queue.push(arrival, deliver)
            if pending is None:
                self._pending[key] = _Pending(arrival=arrival, lead=deliver, deferred=[])
            elif arrival < pending.arrival:  # the new earliest copy leads; the old lead is an ordinary event now
                pending.arrival, pending.lead = arrival, deliver

    def _trace_send(self, node: SimNode, peer: str, message: Wire, t: float, suppress: bool) -> Stamp | None:
        """The causal tracer's send event (none for a suppressed copy, nor without a tracer)."""
        if self.tracer is None or suppress:
            return None
        if message is not self._labelled[0]:  # a broadcast is one message sent to every peer: label it once
            kind, ident = self.codec.label(message)
            self._labelled = (message, kind, ident[:8].hex())
        _, kind, ident_hex = self._labelled
        return self.tracer.send(node.name, peer, kind, t, ident_hex)

    def _suppression_exact(self, t: float) -> bool:
        """True while a copy sent now arrives within SUPPRESS_MAX_INFLIGHT_S: a receiver that holds an envelope
        then still holds it when the copy arrives (docs/SIMULATOR.md, "Copies of a flood that are not scheduled")."""
        bound = self.model.bound(t)
        return bound is not None and bound + self.max_base_delay_s <= SUPPRESS_MAX_INFLIGHT_S

    def _suppress_seen(self, dst: int, ident: tuple[bytes, int], t: float) -> bool:
        """True (and counted) when `dst` already holds this envelope: the copy would be dropped on arrival with no
        effect, so it is not scheduled (most copies of a flood are such). Exact while the copy could not outlive
        the envelope in `dst`'s seen-set: done only when in-flight time is bounded by SUPPRESS_MAX_INFLIGHT_S
        (evicting it in that time takes SEEN_CAPACITY = 65,536 fresh envelopes), and a crash of `dst` ends the
        connection epoch, which drops the copy anyway."""
        core = self.nodes[dst].core
        if core is None or not core.envelope_seen(ident):
            return False
        self.stats["suppressed"] += 1
        return True

    def _settle(self, dst: int, ident: tuple[bytes, int], pending: _Pending) -> None:
        """The lead copy of an envelope reached `dst` (or was dropped on the way): the copies that waited for it
        are dropped if `dst` now holds the envelope (each would be dropped on arrival with no effect), else
        scheduled at the arrival times they drew (all at or after now)."""
        if not pending.deferred:
            return
        core = self.nodes[dst].core
        if core is not None and core.envelope_seen(ident):
            self.stats["suppressed"] += len(pending.deferred)
            return
        self.stats["rescheduled"] += len(pending.deferred)
        for arrival, deliver in pending.deferred:
            self.queue.push(arrival, deliver)

    def mining(self, node: SimNode, work: MiningWorkView, t: float) -> None:
        """Draw when the node's miners find a block: exponential with rate hash rate / expected hashes."""
        if work.active != self.mining_active[node.index]:
            self.mining_active[node.index] = work.active
            if self.split is not None:
                self.split.mining_changed(node.index, work.active, t)
        if not work.active:
            return
        rate = node.hashrate_hps / work_of_target(work.target)
        if rate <= 0:
            return
        self.queue.push(t + self.rng.expovariate(rate), BlockFound(node=node.index, generation=node.mining_generation,
                                                                   job_id=work.job_id))

    def note_event(self, node: SimNode, kind: str, ident: bytes, height: int, t: float) -> None:
        """Trace what the core reported; watch finality for the first conflict between nodes."""
        self.trace.record(t, node.name, kind, ident)
        if kind == "block":
            self.propagation.connected(ident, node.index, t)
        if self.tracer is not None:
            detail: dict[str, object] = {"block": ident.hex()}
            if height >= 0:
                detail["height"] = height
            self.tracer.internal(node.name, DECISIONS.get(kind, kind), t, detail)
        if kind != "final" or height < 0:
            return
        self.clients.on_final(node, t)
        if self.lock_clients is not None:
            self.lock_clients.on_final(node, t)
        if node.index in self.faulty:
            return  # the oracle judges honest nodes
        first = self._final_seen.setdefault(height, (node.name, ident))
        if len(self._final_seen) > FINAL_WATCH_HEIGHTS:
            del self._final_seen[next(iter(self._final_seen))]  # oldest first: memory stays flat on long runs
        if first[1] != ident and self.first_violation is None:
            self.first_violation_t = t
            if self.tracer is not None:
                self.violation_events = tuple(
                    i for i in (self.tracer.finals.get((first[0], height)), self.tracer.finals.get((node.name, height)))
                    if i is not None)
            self.first_violation = (f"t={t:.3f}s: {node.name} finalized {ident.hex()[:16]} at height {height}, "
                                    f"{first[0]} finalized {first[1].hex()[:16]}")

    def reorged(self, node: SimNode, depth: int, t: float) -> None:
        """A reorg: the split study counts those after its heal."""
        if self.split is not None:
            self.split.reorg(node.index, depth)

    def decision(self, node: SimNode, what: str, detail: dict[str, object], t: float) -> None:
        """An engine decision (leader elected, vote cast): an internal event of the trace."""
        if self.tracer is not None:
            self.tracer.internal(node.name, what, t, detail)

    def made_block(self, node: SimNode, block_hash: bytes, height: int, t: float) -> None:
        """A block of the node's own: mined (PoW) or proposed (the others), traced before its pushes."""
        self.propagation.mined(block_hash, t)
        self.mined_blocks.append(block_hash)
        if self.split is not None:
            self.split.block_mined(node.index)
        if self.tracer is not None:
            what = "block-mined" if self.spec.seals_with_workers else "block-proposed"
            self.tracer.internal(node.name, what, t, {"block": block_hash.hex(), "height": height})

    def read_answers(self, node: SimNode, answers: Sequence[ReadResult], t: float) -> None:
        """The node's engine answered linearizable reads: its clients carry on."""
        self.clients.on_answers(node, answers, t)

    # -- events --------------------------------------------------------------------------------------------------

    def _on_deliver(self, event: Deliver) -> None:
        message = event.message
        ident = message.ident if type(message) is EngineCarrier else None
        pending = None
        if ident is not None:
            pending = self._pending.get((event.dst, ident))
            if pending is not None:
                if pending.lead is event:
                    del self._pending[(event.dst, ident)]
                else:
                    pending = None
        self._deliver(event, message)
        if pending is not None:
            self._settle(event.dst, ident, pending)  # type: ignore[arg-type]

    def _deliver(self, event: Deliver, message: Wire) -> None:
        dst = self.nodes[event.dst]
        state = self.links.state(event.src, event.dst)
        if dst.core is None or not state.up or state.epoch != event.epoch or (
                self._partitioned and not self.topology.connected(event.src, event.dst)):
            self.stats["stale"] += 1
            return
        self.stats["delivered"] += 1
        kind, ident = self.codec.label(message)
        self.trace.record(self.t, dst.name, kind, ident)
        if event.stamp is not None and self.tracer is not None:
            self.tracer.receive(dst.name, self.nodes[event.src].name, event.stamp, self.t)
        alarms = dst.core.tree.safety_alarms
        dst.receive(self.nodes[event.src].name, message, self.t)
        if dst.core is not None and dst.core.tree.safety_alarms > alarms and dst.index not in self.faulty:
            self._violation(dst, "raised a safety alarm")

    def _violation(self, node: SimNode, what: str) -> None:
        if self.first_violation is None:
            self.first_violation_t = self.t
            last = self.tracer.last_event(node.name) if self.tracer is not None else None
            if last is not None:
                self.violation_events = (last,)
            self.first_violation = f"t={self.t:.3f}s: {node.name} {what}"

    def _on_tick(self, event: Tick) -> None:
        node = self.nodes[event.node]
        if node.core is None or node.incarnation != event.incarnation:
            return
        node.tick(self.t)
        core = node.core
        if core is not None:
            self.queue.push(self.t + node.clock.virtual_interval(core.engine.tick_interval_s), event)

    def _on_housekeeping(self, event: Housekeeping) -> None:
        node = self.nodes[event.node]
        if node.core is None or node.incarnation != event.incarnation:
            return
        node.housekeeping(self.t)
        self.queue.push(self.t + node.clock.virtual_interval(HOUSEKEEPING_S), event)
        if self.tracer is not None:  # the trace's lines wait in memory until here: bounded by one round's
            self.tracer.flush()

    def _on_block_found(self, event: BlockFound) -> None:
        node = self.nodes[event.node]
        if node.core is None or event.generation != node.mining_generation:
            return
        self.trace.record(self.t, node.name, "mined", event.job_id.to_bytes(8, "big"))
        alarms = node.core.tree.safety_alarms
        node.block_found(event.generation, event.job_id, self.t)
        if node.core is not None and node.core.tree.safety_alarms > alarms and node.index not in self.faulty:
            self._violation(node, "raised a safety alarm")

    def _on_link_up(self, event: LinkUp) -> None:
        state = self.links.state(event.a, event.b)
        state.dialing = False
        a, b = self.nodes[event.a], self.nodes[event.b]
        if state.up or a.core is None or b.core is None or not self.topology.connected(event.a, event.b):
            return
        state.up = True
        state.epoch += 1
        self.trace.record(self.t, a.name, "link-up", b.name.encode())
        height_a, height_b = a.core.tree.height, b.core.tree.height
        a.link_up(b.name, height_b, self.t)
        if b.core is not None:
            b.link_up(a.name, height_a, self.t)

    def _on_link_timeout(self, event: LinkTimeout) -> None:
        state = self.links.state(event.a, event.b)
        state.timing_out = False
        if state.up and not self.topology.connected(event.a, event.b):
            self._close_link(event.a, event.b)

    def _close_link(self, a: int, b: int) -> None:
        state = self.links.state(a, b)
        state.up = False
        state.epoch += 1
        self.trace.record(self.t, self.nodes[a].name, "link-down", self.nodes[b].name.encode())
        for here, there in ((a, b), (b, a)):
            node = self.nodes[here]
            if node.core is not None:
                node.link_down(self.nodes[there].name, self.t)

    def _reconcile_links(self) -> None:
        """Dial every allowed link that is down; time out every established link the topology cuts."""
        for a, b in self.links.pairs():
            state = self.links.state(a, b)
            allowed = self.topology.connected(a, b)
            if allowed and not state.up and not state.dialing and self.nodes[a].alive and self.nodes[b].alive:
                state.dialing = True
                self.queue.push(self.t + self.rng.uniform(RECONNECT_MIN_S, RECONNECT_MAX_S), LinkUp(a=a, b=b))
            elif state.up and not allowed and not state.timing_out:
                state.timing_out = True
                delay = PEER_TIMEOUT_S + self.rng.uniform(0.0, PING_INTERVAL_S)
                self.queue.push(self.t + delay, LinkTimeout(a=a, b=b))

    def _on_nemesis(self, event: NemesisStep) -> None:
        if self.phase != "safety":
            return
        down = [node.index for node in self.nodes if not node.alive]
        action = self.nemesis.next_action(self.rng, partitioned=self.topology.shape != "healed", down=down)
        if isinstance(action, CrashNode):
            self._crash(self.nodes[action.node])
            self.queue.push(self.t + action.downtime_s, Restart(node=action.node,
                                                                incarnation=self.nodes[action.node].incarnation))
        elif action is not None:
            self._partition_serial += 1
            self.stats["partitions"] += 1
            self.topology = action.topology
            self._partitioned = True
            self.trace.record(self.t, "nemesis", "partition", sha256(action.topology.describe().encode()))
            groups = [[self.nodes[i].name for i in g] for g in action.topology.components()]
            self._network_event("partition", {"shape": action.topology.describe(), "groups": groups})
            self._reconcile_links()
            self.queue.push(self.t + action.duration_s, HealPartition(serial=self._partition_serial))
        self.queue.push(self.t + self.nemesis.next_delay(self.rng), event)

    def _split_twins(self) -> None:
        """The twin split, for the whole safety phase: one side holds the twinned validators and the first half of
        the others, the other side their twins and the rest."""
        n, twins = self.config.nodes, self.config.twins
        others = list(range(twins, n))
        half = (len(others) + 1) // 2
        sides = [list(range(twins)) + others[:half], list(range(n, n + twins)) + others[half:]]
        self.topology = groups_topology("twins", self.size, sides)
        self._partitioned = True
        self.stats["partitions"] += 1
        self.trace.record(self.t, "nemesis", "partition", sha256(self.topology.describe().encode()))
        groups = [[self.nodes[i].name for i in side] for side in sides]
        self._network_event("partition", {"shape": self.topology.describe(), "groups": groups})

    def _on_split_start(self, event: SplitStart) -> None:
        """The scripted split: side A with config.split_share of the hash power, side B the rest."""
        sides = split_sides(self.rng, self.shares, self.config.split_share)
        self.split = SplitStudy(sides, self.shares, self.mining_active, self.t)
        self._partition_serial += 1
        self.stats["partitions"] += 1
        self.topology = groups_topology("split", self.size, sides)
        self._partitioned = True
        self.trace.record(self.t, "nemesis", "partition", sha256(self.topology.describe().encode()))
        self._network_event("partition", {"shape": "split",
                                          "groups": [[self.nodes[i].name for i in side] for side in sides]})
        self._reconcile_links()

    def _on_split_end(self, event: SplitEnd) -> None:
        if self.split is None or self.topology.shape != "split":
            return
        self.split.healed(self.t)
        self._heal_topology()
        self.queue.push(self.t + PROBE_S, SplitProbe())

    def _on_split_probe(self, event: SplitProbe) -> None:
        assert self.split is not None
        tips = {node.core.tree.tip.hash for node in self.nodes if node.core is not None}
        if len(tips) == 1:
            self.split.converged(self.t)
        else:
            self.queue.push(self.t + PROBE_S, event)

    def _on_heal_partition(self, event: HealPartition) -> None:
        if event.serial != self._partition_serial or self.topology.shape == "healed":
            return
        self._heal_topology()

    def _heal_topology(self) -> None:
        self.topology = whole_network(self.size)
        self._partitioned = False
        self.trace.record(self.t, "nemesis", "heal", b"")
        self._network_event("heal")
        self._reconcile_links()

    def _crash(self, node: SimNode) -> None:
        self.stats["crashes"] += 1
        self.trace.record(self.t, node.name, "crash", b"")
        node.crash()
        if self.tracer is not None:
            self.tracer.internal(node.name, "crash", self.t, {})
        self._network_event("kill", nodes=[node.name])
        self.clients.on_crash(node, self.t)
        for a, b in self.links.pairs_of(node.index):
            if self.links.state(a, b).up:
                self._close_link(a, b)

    def _on_restart(self, event: Restart) -> None:
        node = self.nodes[event.node]
        if node.alive or node.incarnation != event.incarnation:
            return
        self._restart(node)

    def _restart(self, node: SimNode) -> None:
        self.trace.record(self.t, node.name, "restart", b"")
        if self.tracer is not None:
            self.tracer.internal(node.name, "node-start", self.t, {})
        self._boot(node)
        self._network_event("start", nodes=[node.name])
        self._reconcile_links()

    def _network_event(self, action: str, detail: dict[str, object] | None = None, *,
                       nodes: list[str] | None = None) -> None:
        """Record a nemesis action with who is cut off from whom and who is down after it, as a testnet's
        events.jsonl record: kept for the result (`SimResult.events`, drawn by the consistency report) and handed
        to the tracer, which writes it beside the trace."""
        n = self.size
        blocked = {self.nodes[a].name: [self.nodes[b].name for b in range(n) if not self.topology.connected(a, b)]
                   for a in range(n)} if self._partitioned else {}
        record: dict[str, Any] = {"time_ns": round(self.t * 1e9), "action": action, "nodes": nodes or [],
                                  "network": {"blocked": {k: v for k, v in blocked.items() if v},
                                              "down": [node.name for node in self.nodes if not node.alive],
                                              "paused": []}}
        if detail:
            record["detail"] = dict(detail)
        self.events.append(record)
        if self.tracer is not None:
            self.tracer.network(record)

    def _on_submit(self, event: Submit) -> None:
        rng = self.rng
        if self.lock_clients is not None:  # the lock workload: a session's turn instead of a transfer
            self.lock_clients.turn(rng, self.nodes, self.t, self.trace)
            self.queue.push(self.t + rng.expovariate(self.config.tx_rate_per_s), event)
            return
        running = [node for node in self.nodes if node.core is not None]
        if running:
            node = rng.choice(running)
            core = node.core
            assert core is not None
            sender = rng.choice(self.load_keys)
            account = self.load_keys.index(sender)
            if self.sinks:
                recipient = rng.choice(self.sinks)
            else:
                recipient = rng.choice([k for k in self.load_keys if k is not sender]).address
            amount, fee = rng.randint(1, 1000), rng.randint(1, MAX_FEE)
            if self.clients.busy(account):  # its session waits for a read; one operation at a time
                self.clients.stats["txs_skipped"] += 1
            else:
                if self.sinks:  # clients that read keep their nonces as the testnet load does
                    tx, rebroadcast = self.clients.next_transfer(account, recipient=recipient, amount=amount,
                                                                 fee=fee, t=self.t)
                    self.trace.record(self.t, node.name, "submit", tx.hash)
                    code = self.clients.session_transfer(account, node, tx, rebroadcast, self.t)
                else:  # the nonce the node's mempool expects, as a wallet asking `?at=latest` would
                    tx = make_transfer(sender, chain_id=self.genesis.chain_id, recipient=recipient, amount=amount,
                                       fee=fee, nonce=core.mempool.pending_nonce(sender.address, core.tree.state))
                    self.trace.record(self.t, node.name, "submit", tx.hash)
                    code = self.clients.transfer(account, node, tx, self.t)
                self.stats["txs_submitted"] += 1
                if code is not None:
                    self.stats["txs_refused"] += 1
        self.queue.push(self.t + rng.expovariate(self.config.tx_rate_per_s), event)

    def _on_read(self, event: Read) -> None:
        request_id = self.clients.read(self.rng, self.nodes, self.t)
        if request_id is not None:
            self.trace.record(self.t, "client", "read", request_id.to_bytes(8, "big"))
            self.queue.push(self.t + READ_TIMEOUT_S, ReadTimeout(request_id=request_id))
        self.queue.push(self.t + self.rng.expovariate(self.config.read_rate_per_s), event)

    def _on_read_timeout(self, event: ReadTimeout) -> None:
        self.clients.on_timeout(event.request_id, self.nodes, self.t)

    def _on_end_safety(self, event: EndSafety) -> None:
        """Heal everything: partitions, loss and duplication, crashed nodes; delays become bounded."""
        self.phase = "liveness"
        self.trace.record(self.t, "nemesis", "end-safety", b"")
        self.link_faults = NO_LINK_FAULTS
        self.model = self.model.healed()
        self.topology = whole_network(self.size)
        self._partitioned = False
        self._network_event("heal", {"why": "the safety phase ended"})
        for node in self.nodes:
            if not node.alive:
                self._restart(node)
        self._reconcile_links()
        for node in self.nodes:
            assert node.core is not None
            self._heal_heights[node.name] = node.core.tree.height
            self._heal_finals[node.name] = node.core.tree.final_height
        self._horizon = self.t + self.config.effective_liveness_budget_s
        self.queue.push(self.t + PROBE_S, Probe())

    def _on_probe(self, event: Probe) -> None:
        if self._liveness_reached():
            self._liveness_met = True
            self._stopped = True
            return
        self.queue.push(self.t + PROBE_S, event)

    def _liveness_reached(self) -> bool:
        if not self.links.all_up():
            return False
        if any(node.core is None for node in self.nodes):
            return False
        trees = self._honest_trees()
        progress = self.config.min_progress_blocks
        for name, tree in trees:
            if tree.height - self._heal_heights[name] < progress or tree.final_height <= self._heal_finals[name]:
                return False
        return check_convergence([snapshot_of_tree(name, tree) for name, tree in trees]).ok

    def _on_observe(self, event: Observe) -> None:
        assert self.observer is not None
        self.observer(self.t, self)
        self.queue.push(self.t + self.observe_every_s, event)

    # -- the verdict ---------------------------------------------------------------------------------------------

    def _honest_trees(self) -> list[tuple[str, Any]]:
        """(name, block tree) of every running node the checks judge: not Byzantine, not a twin pair."""
        return [(node.name, node.core.tree) for node in self.nodes
                if node.core is not None and node.index not in self.faulty]

    def _verdict(self) -> SimResult:
        trees = self._honest_trees()
        snapshots = [snapshot_of_tree(name, tree) for name, tree in trees]
        checks = [check_final_prefix(snapshots), check_no_safety_alarm(snapshots), check_convergence(snapshots),
                  self._ledger_check(trees)]
        if self.phase == "liveness":
            heights = {name: tree.height for name, tree in trees}
            finals = {name: tree.final_height for name, tree in trees}
            heal_heights = {k: v for k, v in self._heal_heights.items() if k in heights}
            checks.append(check_liveness(heal_heights, heights, min_progress=self.config.min_progress_blocks))
            checks.append(replace(check_liveness({k: v for k, v in self._heal_finals.items() if k in finals}, finals,
                                                 min_progress=1),
                                  name="finality-progress"))
        else:
            checks.append(CheckResult(name="liveness", ok=False, detail="the run ended before the liveness phase"))
        checks.append(self._misbehaviour_check())
        block_term = spec_named(self.config.consensus).block_term
        if block_term is not None:
            headers = [meta.header for _, tree in trees for meta in tree.known_blocks() if meta.height > 0]
            headers.extend(header for node in self.nodes for header in node.proposed)
            checks.append(check_one_leader_per_term((block_term(h), h.proposer.hex()) for h in headers))
        if self.spec.parent_certificate is not None:
            read = certificate_reader(self.genesis, self.spec)
            proofs = {name: certificates_of_tree(tree, read) for name, tree in trees}
            names = {node.key.address: node.name for node in self.nodes[:self.config.nodes]}
            checks.append(check_certificates(proofs, f=tolerated_faults(self.genesis, self.spec), names=names))
        if self.config.read_rate_per_s > 0:
            checks.append(self.clients.linearizable_check())
        lock_counts: dict[str, int] = {}
        if self.lock_clients is not None:
            locks, lock_counts = lock_check(trees)
            checks.append(locks)
        ok = all(check.ok for check in checks)
        return SimResult(config=self.config, virtual_s=self.t, trace_hash=self.trace.hexdigest(),
                         trace_events=self.trace.events, ok=ok, checks=tuple(checks), params=self._params(),
                         stats={**self._stats(trees), **lock_counts}, first_violation=self.first_violation,
                         first_violation_t=self.first_violation_t, violation_events=self.violation_events,
                         history=tuple(self.clients.history), scale=self._scale(trees), events=tuple(self.events))

    @staticmethod
    def _ledger_check(trees: list[tuple[str, Any]]) -> CheckResult:
        results = [check_ledger(ledger_of_tree(name, tree)) for name, tree in trees]
        for result in results:
            if not result.ok:
                return result
        return CheckResult(name="ledger-invariants", ok=True, detail=f"{len(results)} nodes: " + (
            results[0].detail.split(": ", 1)[1] if results else "no node"))

    def _misbehaviour_check(self) -> CheckResult:
        faulty = {self.nodes[i].name for i in self.faulty}
        honest = [node for node in self.nodes if node.name not in faulty]
        count = sum(c for node in honest for peer, c in node.stats.punished.items() if peer not in faulty)
        if count:
            first = next(p for node in honest for p in node.stats.punishments
                         if p.split(" <- ", 1)[1].split(":", 1)[0] not in faulty)
            return CheckResult(name="no-misbehaviour", ok=False,
                               detail=f"{count} penalties between honest nodes, first: {first}")
        caught = sum(c for node in honest for peer, c in node.stats.punished.items() if peer in faulty)
        return CheckResult(name="no-misbehaviour", ok=True, detail="no honest node was punished" + (
            f"; {caught} penalties of Byzantine nodes" if caught else ""))

    def _params(self) -> dict[str, object]:
        return {
            "hashrate_shares": [round(s, 4) for s in self.shares],
            "clock_rates": [round(c.rate, 5) for c in self.clocks],
            "clock_offsets_ms": [c.offset_ms for c in self.clocks],
            "loss": round(self.safety_link_faults.loss, 4), "duplicate": round(self.safety_link_faults.duplicate, 4),
            "gst_s": round(self.gst_s, 3) if self.config.model == "partial-sync" else None,
        }

    def _scale(self, trees: list[tuple[str, Any]]) -> dict[str, object]:
        """The network-wide figures: the overlay, block propagation to 90% of the nodes, the stale-block rate
        against the best chain of the first judged node, and the split's report."""
        hops = hop_distances(self.size, self.overlay, 0)
        reached = [h for h in hops if h >= 0]
        overlay = {"degree": self.config.degree or self.size - 1, "links": len(self.overlay),
                   "hops_from_node0_max": max(reached), "hops_from_node0_mean": round(sum(reached) / len(reached), 3)}
        best: list[bytes] = []
        if trees:
            tree = trees[0][1]
            best = [h for h in (tree.hash_at(height) for height in range(1, tree.height + 1)) if h is not None]
        scale: dict[str, object] = {"overlay": overlay, "propagation": self.propagation.summary(),
                                    "stale": stale_rate(self.mined_blocks, best),
                                    "miners": sum(1 for share in self.shares if share > 0)}
        if self.config.latency is not None:
            scale["latency"] = self.config.latency.describe()
        if self.split is not None:
            scale["split"] = self.split.summary()
        return scale

    def _stats(self, trees: list[tuple[str, Any]]) -> dict[str, object]:
        stats: dict[str, object] = dict(self.stats)
        stats["blocks_mined"] = sum(node.stats.blocks_mined for node in self.nodes)
        stats["reorgs"] = sum(node.stats.reorgs for node in self.nodes)
        stats["heights"] = {name: tree.height for name, tree in trees}
        stats["final_heights"] = {name: tree.final_height for name, tree in trees}
        stats["liveness_reached"] = self._liveness_met
        n = self.config.nodes
        not_judged = {self.nodes[i].name: self.byzantine[i] for i in sorted(self.byzantine)}
        for j in range(self.config.twins):
            not_judged[self.nodes[j].name] = f"twin {self.nodes[n + j].name} holds its key"
            not_judged[self.nodes[n + j].name] = f"holds {self.nodes[j].name}'s key"
        if not_judged:
            stats["not_judged"] = not_judged
        if self.config.byzantine or self.config.twins:  # how many validators lie, against what the quorums tolerate
            stats["byzantine_validators"] = len(set(self.byzantine) | set(range(self.config.twins)))
            stats["f"] = (n - 1) // 3
        rejected: dict[str, int] = {}
        for node in self.nodes:
            for code, count in node.stats.rejected.items():
                rejected[code] = rejected.get(code, 0) + count
        stats["rejected"] = dict(sorted(rejected.items()))
        if self.config.read_rate_per_s > 0:
            stats.update(self.clients.stats)
        if self.lock_clients is not None:
            stats.update(self.lock_clients.stats)
        return stats
