"""CAP, side by side (`chainlab testnet cap`): a Raft and a PoW network through the same partition with the same
read/write load, and one table of what each side of the partition did.

The two halves are the shipped scenarios `cap-raft` and `cap-pow` (testnet/scenarios/), run one after the other
with `testnet run`'s machinery (`run_cap`). `cap_rows` is pure: it takes a history, the partition's time window
and its sides, and measures per side what clients saw while the network was cut: writes accepted, reads
answered per level, how stale the answers were, and the checker's verdict per level on the reads that side served
(every transfer of the run plus those reads: a subset of a linearizable history's reads is linearizable, so a
violation there is real).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from testnet.consistency import QUIESCENCE_PREFIX, analyse, level_order, reads_of
from testnet.history import Op, read_history
from testnet.linearizability import AccountModel, check, read_level
from testnet.report import render_consistency_report
from testnet.state import HISTORY_FILE, load_testnet, read_events

CAP_ENGINES = ("raft", "pow")


@dataclass(kw_only=True)
class SideRow:
    """What the clients of one side of the partition saw while it lasted."""

    engine: str
    side: str  # "majority" / "minority"
    nodes: list[str]
    writes_sent: int = 0
    writes_accepted: int = 0
    write_errors: Counter[str] = field(default_factory=Counter)
    reads: dict[str, dict[str, Any]] = field(default_factory=dict)  # level -> {sent, answered, stale, max_staleness,
    #                                                                  errors, linearizable}

    def to_json(self) -> dict[str, Any]:
        """The row as `testnet cap --json` prints it."""
        return {"engine": self.engine, "side": self.side, "nodes": self.nodes,
                "writes": {"sent": self.writes_sent, "accepted": self.writes_accepted,
                           "errors": dict(self.write_errors)},
                "reads": self.reads}


def partition_window(events: Sequence[Mapping[str, Any]], names: Sequence[str],
                     ) -> tuple[int, int, list[list[str]]] | None:
    """The first partition of events.jsonl: (start ns, end ns: the heal after it, or the last event), and its
    groups as node names (from the event's `groups` detail, node indices)."""
    start: Mapping[str, Any] | None = None
    for event in events:
        if start is None and event.get("action") == "partition":
            start = event
        elif start is not None and event.get("action") == "heal":
            return int(start["time_ns"]), int(event["time_ns"]), _groups(start, names)
    if start is None:
        return None
    return int(start["time_ns"]), int(events[-1]["time_ns"]), _groups(start, names)


def _groups(event: Mapping[str, Any], names: Sequence[str]) -> list[list[str]]:
    groups = event.get("detail", {}).get("groups") or []
    return [[names[i] for i in group if 0 <= i < len(names)] for group in groups]


def cap_rows(engine: str, ops: Sequence[Op], window: tuple[int, int], sides: Sequence[Sequence[str]], *,
             should_stop: Callable[[], bool] | None = None) -> list[SideRow]:
    """One row per side (the biggest group is the majority) of what happened to operations invoked inside
    `window` (ns), and the per-level linearizability verdict on the reads each side served over the whole run."""
    start, end = window
    ordered = sorted(sides, key=len, reverse=True)
    invokes: dict[str, Op] = {}
    rows = []
    for number, nodes in enumerate(ordered):
        row = SideRow(engine=engine, side="majority" if number == 0 and len(nodes) * 2 > sum(map(len, sides))
                      else "minority", nodes=list(nodes))
        members = set(nodes)
        # writes: each client send (not rebroadcasts) invoked in the window at a node of this side
        for record in ops:
            if record.op == "transfer" and record.process.startswith("client-") and record.node in members:
                if record.type == "invoke":
                    invokes[record.process] = record
                    continue
                invoke = invokes.pop(record.process, None)
                if invoke is None or not start <= invoke.time_ns <= end:
                    continue
                row.writes_sent += 1
                if record.type == "ok":
                    row.writes_accepted += 1
                else:
                    row.write_errors[(record.error or record.type).split(":")[0]] += 1
        row.reads = _side_reads(ops, members, start, end, should_stop)
        rows.append(row)
    return rows


def _side_reads(ops: Sequence[Op], members: set[str], start: int, end: int,
                should_stop: Callable[[], bool] | None) -> dict[str, dict[str, Any]]:
    _, pairs = reads_of(ops)
    ours = [(invoke, done) for invoke, done in pairs
            if invoke.node in members and not invoke.process.startswith(QUIESCENCE_PREFIX)]
    in_window = [(invoke, done) for invoke, done in ours if start <= invoke.time_ns <= end]
    served = {op.index for pair in ours for op in pair if op is not None}
    served_in_window = {op.index for pair in in_window for op in pair if op is not None}
    # every transfer, and this side's reads: the whole run's for the verdict, the window's for staleness
    side_ops = [op for op in ops if op.op != "read" or op.index in served]
    window_report = analyse([op for op in ops if op.op != "read" or op.index in served_in_window],
                            should_stop=should_stop)
    levels = sorted({read_level(invoke) for invoke, _ in pairs
                     if not invoke.process.startswith(QUIESCENCE_PREFIX)}, key=level_order)
    out: dict[str, dict[str, Any]] = {}
    for level in levels:
        mine = [(invoke, done) for invoke, done in in_window if read_level(invoke) == level]
        errors: Counter[str] = Counter()
        for _, done in mine:
            if done is None or done.type != "ok":
                errors[((done.error if done is not None else None) or "unknown").split(":")[0]] += 1
        stale = window_report.levels.get(level)
        result = check(side_ops, AccountModel([level]), should_stop=should_stop)
        checked = sum(1 for op in result.operations if op.op == "read")
        out[level] = {"sent": len(mine), "answered": sum(1 for _, d in mine if d is not None and d.type == "ok"),
                      "errors": dict(errors), "stale": stale.stale_reads if stale else 0,
                      "max_staleness": stale.max_staleness if stale else 0,
                      "linearizable": result.verdict if checked else "no reads", "reads_checked": checked}
    return out


def monotonic_final_reads(ops: Sequence[Op]) -> str:
    """The monotonic-reads verdict of the history's `final` reads (sessions read from one node)."""
    level = analyse(ops, levels=["final"]).levels["final"]
    return level.guarantees["monotonic-reads"].verdict


def run_cap(directory: Path, seed: int, progress: Callable[[str], None],
            engines: Sequence[str] = CAP_ENGINES) -> dict[str, Any]:
    """Run the CAP scenario of each engine into `directory/<engine>` and measure both sides of its partition:
    `{"seed", "runs": {engine: {"ok", "dir", "error"}}, "rows": [...], "final_monotonic": {engine: verdict}}`."""
    from testnet.runner import run_scenario
    from testnet.scenario import load_manifest

    scenarios = resources.files("testnet").joinpath("scenarios")
    out: dict[str, Any] = {"seed": seed, "runs": {}, "rows": [], "final_monotonic": {}}
    for engine in engines:
        manifest = load_manifest(Path(str(scenarios.joinpath(f"cap-{engine}.toml"))))
        target = directory / engine
        progress(f"cap: {engine} half ({manifest.name}) in {target}")
        report = run_scenario(manifest, seed, target, progress).report()
        out["runs"][engine] = {"ok": report["ok"], "dir": str(target), "error": report["error"],
                               "failed": [c["name"] for result in report["checks"].values()
                                          for c in result["checks"] if not c["ok"]]
                               + [f"step {s['index']}" for s in report["steps"] if not s["ok"]]}
        ops = read_history(target / HISTORY_FILE)
        names = [record.name for record in load_testnet(target).nodes]
        window = partition_window(read_events(target), names)
        if window is None:
            out["runs"][engine]["error"] = out["runs"][engine]["error"] or "no partition in events.jsonl"
            continue
        start, end, groups = window
        out["rows"].extend(row.to_json() for row in cap_rows(engine, ops, (start, end), groups))
        out["final_monotonic"][engine] = monotonic_final_reads(ops)
        page = target / "consistency.html"
        page.write_text(render_consistency_report(title=f"CAP, {engine}: consistency", ops=ops, report=analyse(ops),
                                                  events=read_events(target), engine=engine), encoding="utf-8")
        out["runs"][engine]["report"] = str(page)
    return out
