"""The nemesis: break a running testnet on purpose and put it back (docs/TESTNET.md, "Nemesis").

Process faults signal the node's process group (kill: SIGKILL, pause/resume: SIGSTOP/SIGCONT, stop: SIGTERM then
SIGKILL). Network faults go through each node's fault-injection hook (`POST /v1/admin/faults`, which replaces the
node's whole fault configuration), so the nemesis keeps the wanted configuration of every node in testnet.json:
setting netem keeps the node's blocked set and a partition keeps its netem. A node that is paused or down when its
faults change gets them when it is resumed or started again. Every action is appended to events.jsonl.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from node.client import RpcClient, RpcError, RpcUnavailable
from testnet import byzantine, launcher, netns, procs, remote
from testnet.latency import LatencyMatrix, delays_by_index
from testnet.state import NodeRecord, Testnet, TestnetError, append_event, load_testnet, locked, save_testnet
from testnet.topology import Blocked, TopologyError, blocked_from_groups, shape_blocked

RPC_TIMEOUT_S = 5.0


def fault_spec(testnet: Testnet, record: NodeRecord) -> dict[str, Any]:
    """The body of the node's `set_faults` call: the node ids it blocks plus its netem settings."""
    spec: dict[str, Any] = dict(record.faults.netem())
    if record.faults.blocked:
        blocked = [testnet.by_name(name) for name in record.faults.blocked]
        unknown = [node.name for node in blocked if not (node.p2p_node_id or node.node_id)]
        if unknown:
            raise TestnetError(f"no node id known for {', '.join(unknown)} (a remote node that has not answered "
                               "/v1/status yet): cannot tell the others whom to block")
        spec["blocked_peers"] = sorted(node.p2p_node_id or node.node_id for node in blocked)
    delays = testnet.latency_ms.get(record.name, {})
    if delays:
        peers = [testnet.by_name(name) for name in delays]
        unknown = [node.name for node in peers if not (node.p2p_node_id or node.node_id)]
        if unknown:
            raise TestnetError(f"no node id known for {', '.join(unknown)}: cannot give {record.name} its "
                               "latency to them")
        spec["peer_delay_ms"] = {(node.p2p_node_id or node.node_id): delays[node.name] for node in peers}
    return spec


class Nemesis:
    """Fault actions on the testnet in `directory`; each returns the event it appended to events.jsonl."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextmanager
    def _testnet(self) -> Iterator[Testnet]:
        with locked(self.directory):
            testnet = load_testnet(self.directory)
            refresh(testnet)
            yield testnet
            save_testnet(testnet)

    # -- processes -----------------------------------------------------------------------------------------------

    def kill(self, ref: str | int) -> dict[str, Any]:
        """SIGKILL the node and its workers (a crash: nothing is flushed, no goodbye to peers)."""
        with self._testnet() as testnet:
            record = _running(testnet, ref, allow_paused=True, action="kill")
            assert record.pid is not None
            left = procs.kill_group(record.pid)
            if left:
                raise TestnetError(f"{record.name}: processes {left} survived SIGKILL")
            record.state, record.faults_applied = "killed", False
            return append_event(testnet, "kill", nodes=[record.name], pid=record.pid)

    def stop(self, ref: str | int, timeout_s: float = 10.0) -> dict[str, Any]:
        """SIGTERM (graceful shutdown), SIGKILL after `timeout_s`."""
        with self._testnet() as testnet:
            record = _running(testnet, ref, allow_paused=True, action="stop")
            [result] = launcher.stop_nodes([record], timeout_s)
            record.state, record.faults_applied = "stopped", False
            return append_event(testnet, "stop", nodes=[record.name], pid=record.pid, outcome=result["outcome"])

    def start(self, ref: str | int) -> dict[str, Any]:
        """Start a stopped or killed node again; it gets its recorded faults back."""
        with self._testnet() as testnet:
            record = testnet.node(ref)
            remote.refuse_remote([record], "start")
            if record.state in ("running", "paused"):
                raise TestnetError(f"{record.name} is {record.state}")
            launcher.start_node(testnet, record)
            _push(testnet, [record])
            if record.twin_of:
                record.byzantine = byzantine.TWINS  # a retired twin started again is a twin again
            return append_event(testnet, "start", nodes=[record.name], pid=record.pid,
                                **_behaviour_back(record))

    def restart(self, ref: str | int, *, hard: bool = False, timeout_s: float = 10.0) -> dict[str, Any]:
        """Stop (or with `hard`, kill) and start again; a node that is already down is just started (as systemd's
        restart does)."""
        with self._testnet() as testnet:
            record = testnet.node(ref)
            remote.refuse_remote([record], "restart")
            old_pid = record.pid if record.state in ("running", "paused") else None
            if old_pid is not None:
                launcher.stop_nodes([record], timeout_s, hard=hard)
            record.state = "stopped"
            launcher.start_node(testnet, record)
            _push(testnet, [record])
            return append_event(testnet, "restart", nodes=[record.name], old_pid=old_pid, pid=record.pid, hard=hard,
                                **_behaviour_back(record))

    def pause(self, ref: str | int) -> dict[str, Any]:
        """SIGSTOP the node's process group: it neither computes nor answers, and its peers time it out."""
        with self._testnet() as testnet:
            record = _running(testnet, ref, action="pause")
            assert record.pid is not None
            launcher.pause_signal(record.pid, True)
            record.state = "paused"
            return append_event(testnet, "pause", nodes=[record.name], pid=record.pid)

    def resume(self, ref: str | int) -> dict[str, Any]:
        """SIGCONT a paused node (it gets the faults decided while it was paused)."""
        with self._testnet() as testnet:
            record = testnet.node(ref)
            remote.refuse_remote([record], "resume")
            if record.state != "paused" or record.pid is None:
                raise TestnetError(f"{record.name} is not paused (it is {record.state})")
            launcher.pause_signal(record.pid, False)
            record.state = "running"
            if not record.faults_applied:
                _push(testnet, [record])
            return append_event(testnet, "resume", nodes=[record.name], pid=record.pid)

    # -- network -------------------------------------------------------------------------------------------------

    def partition(self, *, groups: Sequence[Sequence[int]] | None = None, shape: str | None = None,
                  order: Sequence[int] | None = None) -> dict[str, Any]:
        """Cut the network into `groups` (each node blocks every node outside its group) or a named `shape`;
        replaces any current partition and keeps netem settings."""
        with self._testnet() as testnet:
            count = len(testnet.nodes)
            try:
                if shape is not None:
                    blocked: Blocked = shape_blocked(shape, count, order)
                elif groups is not None:
                    blocked = blocked_from_groups(groups, count)
                else:
                    raise TestnetError("give groups or a shape")
            except TopologyError as exc:
                raise TestnetError(str(exc)) from None
            for record in testnet.nodes:
                record.faults.blocked = sorted(testnet.nodes[i].name for i in blocked.get(record.index, set()))
            failures = _push(testnet, testnet.nodes, layers=("partition",))
            detail: dict[str, Any] = {"shape": shape} if shape else {"groups": [list(g) for g in groups or []]}
            if order is not None:
                detail["order"] = list(order)
            return append_event(testnet, "partition", nodes=[r.name for r in testnet.nodes], failures=failures,
                                **detail)

    def heal(self, *, partition: bool = True, netem: bool = True) -> dict[str, Any]:
        """Clear the partition and/or the netem settings on every node."""
        with self._testnet() as testnet:
            for record in testnet.nodes:
                if partition:
                    record.faults.blocked = []
                if netem:
                    record.faults.delay_ms = record.faults.jitter_ms = 0.0
                    record.faults.loss = record.faults.duplicate = 0.0
                    record.faults.reorder = record.faults.rate_kbit = 0.0
            layers = ("partition",) * partition + ("netem",) * netem
            failures = _push(testnet, testnet.nodes, force=True, layers=layers)
            return append_event(testnet, "heal", nodes=[r.name for r in testnet.nodes], partition=partition,
                                netem=netem, failures=failures)

    def netem(self, refs: Sequence[str | int] | None, *, delay_ms: float = 0.0, jitter_ms: float = 0.0,
              loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0,
              rate_kbit: float = 0.0) -> dict[str, Any]:
        """Delay (+- jitter), loss and duplication of every outgoing frame of the given nodes (all by default);
        keeps their blocked sets. All zeros clears netem on those nodes. On a --netns testnet this is the
        kernel's netem on each node's link, which also reorders and limits the rate (`reorder`, `rate_kbit`)."""
        for name, value in (("delay_ms", delay_ms), ("jitter_ms", jitter_ms), ("loss", loss),
                            ("duplicate", duplicate), ("reorder", reorder), ("rate_kbit", rate_kbit)):
            if value < 0:
                raise TestnetError(f"{name} must not be negative")
        for name, value in (("loss", loss), ("duplicate", duplicate), ("reorder", reorder)):
            if value > 1:
                raise TestnetError(f"{name} is a probability in [0, 1]")
        with self._testnet() as testnet:
            if (reorder or rate_kbit) and not testnet.netns_id:
                raise TestnetError("--reorder and --rate-kbit need the kernel's netem: a testnet started with "
                                   "`testnet up --netns`")
            if reorder and not delay_ms:
                raise TestnetError("--reorder needs --delay-ms (netem reorders by sending some packets at once "
                                   "and delaying the rest)")
            records = [testnet.node(ref) for ref in refs] if refs else list(testnet.nodes)
            for record in records:
                record.faults.delay_ms, record.faults.jitter_ms = float(delay_ms), float(jitter_ms)
                record.faults.loss, record.faults.duplicate = float(loss), float(duplicate)
                record.faults.reorder, record.faults.rate_kbit = float(reorder), float(rate_kbit)
            failures = _push(testnet, records, force=True, layers=("netem",))
            kernel = {"reorder": reorder, "rate_kbit": rate_kbit} if testnet.netns_id else {}
            return append_event(testnet, "netem", nodes=[r.name for r in records], delay_ms=delay_ms,
                                jitter_ms=jitter_ms, loss=loss, duplicate=duplicate, failures=failures, **kernel)


    def latency(self, matrix: LatencyMatrix | None) -> dict[str, Any]:
        """Give the network a latency matrix (None: take it away): each node's packets (frames) to each peer are
        delayed by the one-way delay between their regions, in the kernel on a --netns testnet, else by the
        nodes' own fault hooks. It is the network's geography, not a fault: `heal` keeps it."""
        with self._testnet() as testnet:
            if matrix is not None:
                names = [record.name for record in testnet.nodes]
                if sorted(matrix.regions) != sorted(names):
                    raise TestnetError(f"the latency matrix places {', '.join(sorted(matrix.regions))}, not this "
                                       f"testnet's nodes ({', '.join(names)})")
            testnet.regions = dict(matrix.regions) if matrix is not None else {}
            testnet.latency_ms = matrix.delays() if matrix is not None else {}
            failures = _push(testnet, testnet.nodes, force=True, layers=("netem",))
            pairs = {f"{a}-{b}": ms for (a, b), ms in sorted(matrix.pair_ms.items())} if matrix is not None else {}
            return append_event(testnet, "latency", nodes=[r.name for r in testnet.nodes], regions=testnet.regions,
                                latency_ms=pairs, failures=failures)

    # -- Byzantine validators ------------------------------------------------------------------------------------

    def byzantine(self, ref: str | int, behaviour: str) -> dict[str, Any]:
        """Switch a validator to one of its engine's Byzantine behaviours, `honest` again, or `twins`: start a
        second process holding its key (testnet/byzantine.py). Remembered in testnet.json: a node that starts
        again gets its behaviour back, and the checks leave Byzantine nodes out."""
        with self._testnet() as testnet:
            byzantine.check_behaviour(testnet.consensus, behaviour)
            record = testnet.node(ref)
            if record.twin_of:
                raise TestnetError(f"{record.name} is a twin of {record.twin_of}: give behaviours to validators "
                                   f"(`--behaviour honest` on {record.twin_of} stops the twin)")
            if behaviour == byzantine.TWINS:
                remote.refuse_remote([record], "a twin (a second process with the node's key)")
                if testnet.netns_id:
                    raise TestnetError("twins are not supported on a --netns testnet yet (a twin would need a "
                                       "namespace of its own)")
                return self._start_twin(testnet, record)
            if behaviour == byzantine.HONEST:
                return self._honest(testnet, record)
            if record.state != "running" or not remote.node_up(record):
                how = "resume" if record.state == "paused" else "start"  # a frozen process answers nothing
                raise TestnetError(f"{record.name} is not running (it is {record.state}); {how} it first")
            answer = byzantine.switch(record, behaviour)
            record.byzantine = behaviour
            return append_event(testnet, "byzantine", nodes=[record.name], behaviour=behaviour, answer=answer)

    def _honest(self, testnet: Testnet, record: NodeRecord) -> dict[str, Any]:
        """Behaviour off (a stopped node simply starts honest) and any twin stopped: a retired twin stays in the
        record, and the pair stays out of the checks, since their chains may hold what both signed."""
        detail: dict[str, Any] = {}
        if record.state == "paused" and record.byzantine and procs.owned(record.pid, record.datadir):
            # A frozen process cannot be told, and once resumed it would go on lying while the record (and so the
            # checks) took it for honest.
            raise TestnetError(f"{record.name} is paused with behaviour {record.byzantine}; resume it first")
        twin = _twin_of(testnet, record)
        if twin is not None:
            if twin.state in ("running", "paused"):
                [result] = launcher.stop_nodes([twin])
                detail["twin_stopped"] = result["outcome"]
            twin.state, twin.faults_applied, twin.byzantine = "stopped", False, ""
        if record.state == "running" and remote.node_up(record):
            detail["answer"] = byzantine.switch(record, byzantine.HONEST)
        if record.byzantine:
            detail["was"] = record.byzantine
        record.byzantine = ""
        nodes = [record.name] + ([twin.name] if twin is not None else [])
        return append_event(testnet, "byzantine", nodes=nodes, behaviour=byzantine.HONEST, **detail)

    def _start_twin(self, testnet: Testnet, record: NodeRecord) -> dict[str, Any]:
        twin = _twin_of(testnet, record)
        if twin is not None and twin.state in ("running", "paused") and remote.node_up(twin):
            raise TestnetError(f"{record.name} already has a running twin ({twin.name})")
        if twin is None:
            twin = byzantine.create_twin(testnet, record)
            first = True
        else:
            first = False
        twin.state, twin.byzantine = "stopped", byzantine.TWINS
        launcher.start_node(testnet, twin)
        if first:
            byzantine.pin_twin_config(testnet, twin)
        failures = _push(testnet, testnet.nodes if first else [twin])
        return append_event(testnet, "byzantine", nodes=[record.name, twin.name], behaviour=byzantine.TWINS,
                            twin=twin.name, pid=twin.pid, failures=failures)


def _push_kernel(testnet: Testnet, plan: netns.NetnsPlan, records: Sequence[NodeRecord],
                 layers: Sequence[str]) -> dict[str, str]:
    wanted = [(record.index, [testnet.by_name(name).index for name in record.faults.blocked], record.faults)
              for record in records]
    delays = delays_by_index(testnet.latency_ms, [record.name for record in testnet.nodes])
    failures = netns.apply_all(plan, wanted, partition="partition" in layers, netem="netem" in layers,
                               delays=delays)
    for record in records:
        record.faults_applied = True
    by_namespace = {plan.namespace(record.index): record.name for record in records}
    return {by_namespace[name]: error for name, error in failures.items()}


def _twin_of(testnet: Testnet, record: NodeRecord) -> NodeRecord | None:
    return next((node for node in testnet.nodes if node.twin_of == record.name), None)


def _behaviour_back(record: NodeRecord) -> dict[str, Any]:
    """A started node's recorded behaviour, given again; the event's detail (with the failure, if any)."""
    if not record.byzantine or record.byzantine == byzantine.TWINS:
        return {}
    error = byzantine.reapply(record)
    return {"byzantine": record.byzantine, **({"failures": {record.name: error}} if error else {})}


def refresh(testnet: Testnet) -> None:
    """Mark nodes whose process is gone (exited or killed outside the nemesis) as stopped; learn the ids of remote
    nodes written by hand without them."""
    for record in testnet.nodes:
        if record.state in ("running", "paused") and not remote.node_up(record):
            record.state, record.faults_applied = "stopped", False
    remote.fill_identity(testnet)


def _running(testnet: Testnet, ref: str | int, *, allow_paused: bool = False, action: str) -> NodeRecord:
    record = testnet.node(ref)
    remote.refuse_remote([record], action)
    states = ("running", "paused") if allow_paused else ("running",)
    if record.state not in states or not remote.node_up(record):
        raise TestnetError(f"{record.name} is not running (it is {record.state})")
    return record


def _push(testnet: Testnet, records: Sequence[NodeRecord], *, force: bool = False,
          layers: Sequence[str] = ("partition", "netem")) -> dict[str, str]:
    """Send each running node its fault configuration (in parallel, so a partition cuts at once); paused and
    stopped nodes are marked to receive theirs later. Returns the nodes that could not be reached.
    On a --netns testnet the kernel applies the changed `layers` instead, whatever state the node is in (its
    namespace outlives its process), and the nodes' own fault hooks stay unused."""
    plan = launcher.netns_plan(testnet)
    if plan is not None:
        return _push_kernel(testnet, plan, records, layers)
    def one(record: NodeRecord) -> tuple[str, str | None]:
        if record.state != "running":
            record.faults_applied = False
            return record.name, None
        if record.faults.is_clear() and not testnet.latency_ms.get(record.name) and record.faults_applied \
                and not force:
            return record.name, None
        client = RpcClient(record.rpc_url, admin_token=record.admin_token or None, timeout_s=RPC_TIMEOUT_S)
        try:
            client.set_faults(fault_spec(testnet, record))
        except (RpcError, RpcUnavailable) as exc:
            record.faults_applied = False
            return record.name, str(exc)
        record.faults_applied = True
        return record.name, None

    if not records:
        return {}
    with ThreadPoolExecutor(max_workers=len(records)) as pool:
        results = list(pool.map(one, records))
    return {name: error for name, error in results if error is not None}

