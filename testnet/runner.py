"""`chainlab testnet run SCENARIO.toml`: setup -> start -> load -> perturb -> heal -> wait -> check -> down.

The timeline, the waits and the nemesis run in worker threads (they block on RPC and processes); the load runs on
the event loop beside them, so perturbations land while transactions flow. Whatever happens (a failed step, an
exception, Ctrl-C), the testnet is taken down in a `finally`, and a report is written to `<dir>/report.json`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testnet import launcher
from testnet.audit import CheckOptions, run_checks
from testnet.history import HistoryWriter
from testnet.leadership import Leader, expect_new_leader, expect_no_stale_read, expect_writes, find_leader, leaders
from testnet.load import LoadGenerator, LoadOptions, exclusive_load
from testnet.lockactors import LockActors
from testnet.nemesis import Nemesis
from testnet.netns import DEFAULT_SUBNET
from testnet.scenario import ManifestError, Scenario, Step, check_attached, parse_wait, plan
from testnet.state import HISTORY_FILE, REPORT_FILE, STATE_FILE, Testnet, TestnetError, iso_now, load_testnet
from testnet.waits import expect, wait_for

Progress = Callable[[str], None]
LEADERSHIP_EXPECTATIONS = ("new leader", "no quorum", "accepts writes", "no stale read")


@dataclass
class Targets:
    """What the run-time references refer to: the node the last node action acted on (`previous`), the leader that
    action deposed, if it was one (the `new leader` expectation wants someone else in a later term), and the lock
    clients with the leases they hold."""

    previous: int | None = None
    deposed: Leader | None = None
    lock_clients: LockActors = field(default_factory=LockActors)  # the `lock` steps' clients and their leases


@dataclass
class StepResult:
    """What one step did."""

    index: int
    step: dict[str, Any]
    started_s: float
    duration_s: float = 0.0
    ok: bool = True
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """For the report."""
        return {"index": self.index, "step": self.step, "started_s": round(self.started_s, 3),
                "duration_s": round(self.duration_s, 3), "ok": self.ok, "detail": self.detail}


@dataclass
class Run:
    """The state of one scenario run (what goes into the report)."""

    scenario: Scenario
    seed: int
    directory: Path | None = None
    steps: list[StepResult] = field(default_factory=list)
    load: dict[str, Any] | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    down: dict[str, Any] | None = None
    attached: bool = False  # driven an attached network: nothing started, nothing taken down
    started: str = field(default_factory=iso_now)
    started_at: float = field(default_factory=time.monotonic)

    def ok(self) -> bool:
        """Every step held, every check passed, nothing went wrong, no process left behind."""
        return (self.error is None and all(s.ok for s in self.steps)
                and all(c.get("ok", False) for c in self.checks.values())
                and bool(self.down and self.down.get("ok")))

    def failed_checks(self) -> dict[str, str]:
        """Each failed check with its first detail (`[source] detail`)."""
        failed: dict[str, str] = {}
        for source, result in self.checks.items():
            for check in result.get("checks", []):
                if not check["ok"]:
                    failed.setdefault(check["name"], f"[{source}] {check['detail']}")
        return failed

    def as_expected(self) -> bool:
        """The run came out as the manifest expects: passed, or (`expect = "fail"`) ran to the end, went down
        cleanly, and failed with every check of `expect_failed_checks` (any check when it names none)."""
        if self.scenario.expect == "pass":
            return self.ok()
        if self.error is not None or not (self.down and self.down.get("ok")):
            return False
        failed = self.failed_checks()
        wanted = self.scenario.expect_failed_checks
        return all(name in failed for name in wanted) if wanted else bool(failed)

    def report(self) -> dict[str, Any]:
        """The report document."""
        return {
            "scenario": self.scenario.name, "manifest": self.scenario.path, "seed": self.seed, "ok": self.ok(),
            "expect": self.scenario.expect, "as_expected": self.as_expected(),
            "expected_failures": ({name: detail for name, detail in self.failed_checks().items()
                                   if name in self.scenario.expect_failed_checks or not
                                   self.scenario.expect_failed_checks} if self.scenario.expect == "fail" else {}),
            "dir": str(self.directory) if self.directory else None, "started": self.started,
            "duration_s": round(time.monotonic() - self.started_at, 3), "error": self.error,
            "plan": [s.to_json() for s in plan(self.scenario, self.seed)],
            "steps": [s.to_json() for s in self.steps], "load": self.load, "checks": self.checks,
            "down": self.down,
        }


def choose_seed(scenario: Scenario, seed: int | None) -> int:
    """--seed, else the manifest's seed, else a fresh random one."""
    if seed is not None:
        return seed
    if scenario.seed is not None:
        return scenario.seed
    return secrets.randbelow(2**31)


def attached_network(directory: Path | None) -> Testnet | None:
    """The record in `directory` when it is an attached network (every node remote: `testnet attach` or a
    hand-written testnet.json), which a run drives as it is; None when the run starts its own network there.
    TestnetError for a directory holding a testnet the toolkit started (a run never reuses one)."""
    if directory is None or not (directory / STATE_FILE).is_file():
        return None
    testnet = load_testnet(directory)
    if not all(record.remote for record in testnet.nodes):
        raise TestnetError(f"{directory} already holds a testnet this machine started: `testnet run` starts its "
                           "own in a new --dir, or drives an attached network (`testnet attach`)")
    return testnet


def run_scenario(scenario: Scenario, seed: int, directory: Path | None, progress: Progress) -> Run:
    """Run the scenario end to end; never leaves a process behind; the report is in `<dir>/report.json`. On an
    attached network (docs/TESTNET.md, "Scenarios on an attached network") nothing is started or taken down: the
    run drives the nodes through RPC, heals them at the end and checks from RPC."""
    run = Run(scenario=scenario, seed=seed)
    network = scenario.network
    if directory is None:
        directory = launcher.default_directory(f"{scenario.name}-{seed}")
    run.directory = directory
    options = launcher.UpOptions(nodes=network.nodes, consensus=network.consensus, directory=directory,
                                 topology=network.topology, hashrate_shares=network.hashrate_shares,
                                 hashrate_hps=network.hashrate_hps, genesis_params=dict(network.params),
                                 seed=f"s{seed}", load_accounts=network.load_accounts, netns=network.netns,
                                 subnet=network.subnet or DEFAULT_SUBNET)
    try:
        attached = attached_network(directory)
        run.attached = attached is not None
        if attached is not None:
            ignored = check_attached(scenario, attached)
            progress(f"attached network in {directory}: {len(attached.nodes)} remote {attached.consensus} nodes, "
                     "nothing started" + (f"; ignored: {', '.join(ignored)} (it runs as it was started)"
                                          if ignored else ""))
        else:
            launcher.up(options, progress)
        if network.latency is not None:
            event = Nemesis(directory).latency(network.latency)
            if event["detail"].get("failures"):
                reasons = "; ".join(dict.fromkeys(event["detail"]["failures"].values()))
                raise TestnetError(f"the latency matrix could not be applied: {reasons}")
        with exclusive_load(directory):
            asyncio.run(_drive(run, directory, progress))
        run.checks["rpc"] = run_checks(directory, CheckOptions(
            checks=scenario.checks, converge_timeout_s=scenario.converge_timeout_s))
        progress(checks_line("from RPC", run.checks["rpc"]))
    except (TestnetError, ManifestError, OSError) as exc:
        run.error = str(exc)
    except KeyboardInterrupt:
        run.error = "interrupted"
    finally:
        _teardown(run, directory, progress)
    return run


def checks_line(source: str, result: dict[str, Any]) -> str:
    """The progress line after the checks of one source ran: `checks (from RPC): 6 ok` or with the failed ones
    named (a header alone said nothing: `testnet cap` prints no per-check lines after it)."""
    failed = [check["name"] for check in result["checks"] if not check["ok"]]
    passed = len(result["checks"]) - len(failed)
    return f"checks ({source}): {passed} ok" + (f", FAILED {', '.join(failed)}" if failed else "")


def _teardown(run: Run, directory: Path, progress: Progress) -> None:
    """Down (always), the store checks (unless the run broke), and the report. An attached network is left
    running (its record too): there is no process to stop and no store to check here."""
    if run.attached:
        faults = {r.name: r.faults.netem() | ({"blocked": r.faults.blocked} if r.faults.blocked else {})
                  for r in load_testnet(directory).nodes if not r.faults.is_clear()}
        run.down = {"dir": str(directory), "ok": True, "attached": True, "nodes": [], "left": [],
                    "faults_left": faults}
        progress("attached network left running" + (f"; faults left on it (end.heal = false): {faults}"
                                                     if faults else ""))
    elif (directory / STATE_FILE).exists():
        progress("down")
        try:
            run.down = launcher.down(directory)
        except TestnetError as exc:
            run.error = run.error or str(exc)
        if run.down is not None and not run.down["ok"]:
            run.error = run.error or f"processes left after down: {run.down['left']}"
        if run.scenario.check_stores and run.error is None:
            try:
                run.checks["stores"] = run_checks(directory, CheckOptions(checks=run.scenario.checks,
                                                                          source="stores"))
                progress(checks_line("from the stores", run.checks["stores"]))
            except TestnetError as exc:
                run.error = str(exc)
    if directory.exists():
        (directory / REPORT_FILE).write_text(json.dumps(run.report(), indent=2) + "\n", encoding="utf-8")


async def _drive(run: Run, directory: Path, progress: Progress) -> None:
    scenario = run.scenario
    steps = plan(scenario, run.seed)
    t0 = time.monotonic()
    generator: LoadGenerator | None = None
    load_task: asyncio.Task[dict[str, Any]] | None = None
    stop_load = asyncio.Event()
    history: HistoryWriter | None = None
    if scenario.load is not None:
        spec = scenario.load
        testnet = load_testnet(directory)
        history = HistoryWriter(directory / HISTORY_FILE)
        generator = LoadGenerator(testnet, LoadOptions(tps=spec.tps, duration_s=spec.duration_s,
                                                       accounts=spec.accounts, settle_timeout_s=spec.settle_timeout_s,
                                                       seed=run.seed, reads=tuple(spec.reads),
                                                       read_ratio=spec.read_ratio if spec.reads else 0.0), history)

        async def delayed_load() -> dict[str, Any]:
            assert generator is not None
            await asyncio.sleep(spec.start_at_s)
            progress(f"load: {spec.tps:g} tx/s for {spec.duration_s:g} s")
            return await generator.run(stop_load)

        load_task = asyncio.ensure_future(delayed_load())
    all_final = _all_final(generator) if generator is not None else None
    targets = Targets()
    try:
        for index, step in enumerate(steps):
            await _sleep_until(step, t0)
            result = StepResult(index=index, step=step.to_json(), started_s=time.monotonic() - t0)
            try:
                result.ok, result.detail = await asyncio.to_thread(_execute, step, directory, all_final,
                                                                           targets)
            except TestnetError as exc:
                result.ok, result.detail = False, str(exc)
            result.duration_s = time.monotonic() - t0 - result.started_s
            run.steps.append(result)
            # Details of passing steps only where they carry figures: whom a run-time reference chose, how long
            # an election took, what a refusal said.
            shown = not result.ok or step.kind == "action" or step.spec.get("expect") in LEADERSHIP_EXPECTATIONS
            progress(f"[{result.started_s:6.1f}s] {_describe(step)}: {'ok' if result.ok else 'FAILED'}"
                     f"{' - ' + result.detail if result.detail and shown else ''}")
        if generator is not None and load_task is not None:
            progress(f"[{time.monotonic() - t0:6.1f}s] timeline done; waiting for the load to finish sending")
            await asyncio.wait({load_task, asyncio.ensure_future(generator.sent.wait())},
                               return_when=asyncio.FIRST_COMPLETED)
        await _finish(run, directory, progress, all_final, t0)
        if load_task is not None:
            run.load = await load_task
            progress(f"load: {run.load['accepted']} accepted, {run.load['final']} final, "
                     f"{run.load['accepted_not_final']} accepted but not final")
    finally:
        stop_load.set()
        if load_task is not None and not load_task.done():
            load_task.cancel()
            await asyncio.gather(load_task, return_exceptions=True)
        if history is not None:
            history.close()


async def _sleep_until(step: Step, t0: float) -> None:
    if step.at_s is not None:
        await asyncio.sleep(max(0.0, t0 + step.at_s - time.monotonic()))
    elif step.after_s:
        await asyncio.sleep(step.after_s)


async def _finish(run: Run, directory: Path, progress: Progress, all_final: Callable[[], tuple[bool, str]] | None,
                  t0: float) -> None:
    """The end phase: put everything back (heal, resume, start), then the end waits."""
    scenario = run.scenario
    if scenario.end_heal:
        started = time.monotonic() - t0
        detail = await asyncio.to_thread(_restore, directory)
        run.steps.append(StepResult(index=len(run.steps), step={"kind": "end", "action": "restore"},
                                    started_s=started, duration_s=time.monotonic() - t0 - started, detail=detail))
        progress(f"[{started:6.1f}s] end: {detail}")
    deadline = time.monotonic() + scenario.end_timeout_s
    for condition in scenario.end_wait:
        started = time.monotonic() - t0
        left = max(1.0, deadline - time.monotonic())
        ok, detail = await asyncio.to_thread(wait_for, directory, condition, timeout_s=left, all_final=all_final)
        run.steps.append(StepResult(index=len(run.steps), step={"kind": "end", "wait": condition},
                                    started_s=started, duration_s=time.monotonic() - t0 - started, ok=ok,
                                    detail=detail))
        progress(f"[{started:6.1f}s] end: wait {condition}: {'ok' if ok else 'FAILED - ' + detail}")


def _restore(directory: Path) -> str:
    """Heal every fault, resume paused nodes, start stopped ones."""
    nemesis = Nemesis(directory)
    nemesis.heal()
    done = ["healed"]
    for record in load_testnet(directory).nodes:
        if record.state == "paused":
            nemesis.resume(record.name)
            done.append(f"resumed {record.name}")
        elif record.state in ("stopped", "killed") and not (record.twin_of and not record.byzantine):
            nemesis.start(record.name)  # not a twin stopped by `honest`: it is retired, not down
            done.append(f"started {record.name}")
    return ", ".join(done)


def _all_final(generator: LoadGenerator) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        accepted = [t for t in generator.tracked.values() if t.accepted_ns is not None]
        waiting = sum(1 for t in accepted if t.final_ns is None)
        return waiting == 0, f"{len(accepted) - waiting}/{len(accepted)} accepted transactions final"

    return check


def _resolve_node(ref: Any, directory: Path, targets: Targets) -> int:
    """A node action's target: an index, or a run-time reference (the current leader, the previous target)."""
    if ref == "previous":
        if targets.previous is None:
            raise TestnetError("node = \"previous\": no node action came before")
        return targets.previous
    if ref == "leader":
        leader = find_leader(load_testnet(directory))
        targets.previous, targets.deposed = leader.index, leader
        return leader.index
    index = int(ref)
    targets.previous = index
    found, _ = leaders(load_testnet(directory), [index])
    targets.deposed = found[0] if found else None
    return index


def _expect(spec: dict[str, Any], directory: Path, targets: Targets) -> tuple[bool, str]:
    nodes = [targets.previous if ref == "previous" else int(ref) for ref in spec["nodes"]]
    if any(n is None for n in nodes):
        raise TestnetError("nodes = [\"previous\"]: no node action came before")
    chosen = [int(n) for n in nodes if n is not None]
    expectation = str(spec["expect"])
    within_s = spec.get("within_s")
    if expectation == "new leader":
        return expect_new_leader(load_testnet(directory), chosen, deposed=targets.deposed,
                                 within_s=float(within_s or 15.0))
    if expectation in ("no quorum", "accepts writes"):
        return expect_writes(load_testnet(directory), chosen,
                             refused_with="no-quorum" if expectation == "no quorum" else None,
                             within_s=float(within_s or 10.0))
    if expectation == "no stale read":
        testnet = load_testnet(directory)
        return expect_no_stale_read(testnet, chosen, testnet.nodes[chosen[0]].address)
    return expect(directory, expectation, chosen, within_s=within_s, for_s=spec.get("for_s"))


def _execute(step: Step, directory: Path, all_final: Callable[[], tuple[bool, str]] | None,
             targets: Targets) -> tuple[bool, str]:
    spec = step.spec
    if step.kind == "wait":
        condition = str(spec["wait"])
        parse_wait(condition, step.origin)
        return wait_for(directory, condition, timeout_s=float(spec.get("timeout_s", 60.0)), nodes=spec.get("nodes"),
                        all_final=all_final)
    if step.kind == "expect":
        return _expect(spec, directory, targets)
    if spec["action"] == "lock":
        return targets.lock_clients.run(spec, load_testnet(directory))
    nemesis = Nemesis(directory)
    action = spec["action"]
    node = _resolve_node(spec["node"], directory, targets) if "node" in spec else None
    if action in ("kill", "stop", "start", "pause", "resume"):
        event = getattr(nemesis, action)(node)
    elif action == "restart":
        assert node is not None, "a restart step names its node (checked by the manifest parser)"
        event = nemesis.restart(node, hard=bool(spec.get("hard", False)))
    elif action == "partition":
        event = nemesis.partition(groups=spec.get("groups"), shape=spec.get("shape"), order=spec.get("order"))
    elif action == "heal":
        event = nemesis.heal(partition=bool(spec.get("partition", True)), netem=bool(spec.get("netem", True)))
    elif action == "byzantine":
        assert node is not None, "a byzantine step names its node (checked by the manifest parser)"
        event = nemesis.byzantine(node, str(spec["behaviour"]))
    elif action == "netem":
        event = nemesis.netem(spec.get("nodes"), delay_ms=float(spec.get("delay_ms", 0)),
                              jitter_ms=float(spec.get("jitter_ms", 0)), loss=float(spec.get("loss", 0)),
                              duplicate=float(spec.get("duplicate", 0)))
    else:
        raise TestnetError(f"unknown action {action!r}")
    failures = event["detail"].get("failures")
    acted_on = f"node{node}" if node is not None and not isinstance(spec.get("node"), int) else ""
    return (not failures), (f"failed on {failures}" if failures else acted_on)


def _describe(step: Step) -> str:
    spec = step.spec
    if step.kind == "wait":
        return f"wait {spec['wait']}"
    if step.kind == "expect":
        return f"expect {spec['expect']} on {spec['nodes']}"
    if spec["action"] == "lock":
        return " ".join([f"lock client={spec['client']} {spec['op']} {spec['lock']}",
                         *(f"{k}={spec[k]}" for k in ("lease_blocks", "key", "value", "expect_result") if k in spec)])
    words = [str(spec["action"])]
    for key in ("node", "behaviour", "groups", "shape", "nodes", "delay_ms", "jitter_ms", "loss", "hard"):
        if spec.get(key) is not None and spec[key] is not False:
            words.append(f"{key}={spec[key]}")
    return " ".join(words)
