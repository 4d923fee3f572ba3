"""Consistency levels (强一致性、弱一致性与最终一致性) and linearizability (线性一致性), from the simulated clients'
reads of one Raft run with partitions, crashes and loss.

The simulator's clients (`chainlab sim --read-rate`, testnet/sim/clients.py) send transfers and read accounts at
three levels: `latest` (the node's best chain: weak), `final` (its final chain: what a finalised ledger gives,
eventually consistent) and `linearizable` (Raft's ReadIndex: strong). The run's history has the load's format,
and the consistency lab judges it: testnet/consistency.py measures staleness and the session guarantees per level
against what each level promises (docs/CONSISTENCY.md), testnet/linearizability.py searches for a linearization
of the transfers and the linearizable reads in the account model (Wing and Gong, with Lowe's memo).

`levels` shows the levels differ and that each keeps its promises; `linearizability` shows the linearizable
reads pass the checker, and that the checker refuses the same history with one read made stale by one transfer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from testnet.checks import CheckResult
from testnet.consistency import Report, analyse, reads_of, writes_of
from testnet.history import Op
from testnet.linearizability import AccountModel, check, pair_operations
from testnet.report import render_consistency_report, render_history_report
from testnet.sim.config import SimConfig, parse_faults
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext, seeds_from

MAX_STATES = 2_000_000
ATTEMPTS = 3  # seeds tried (from --seed up) for a run in which some weak read was stale (4 of 25 --fast seeds: none)
WEAK = ("latest", "final")


def _run(context: TourContext, seed: int | None = None) -> SimResult:
    config = SimConfig(seed=context.seed if seed is None else seed, consensus="raft", nodes=3,
                       duration_s=40.0 if context.fast else 120.0,
                       block_interval_s=1.0, faults=parse_faults("partition,crash,loss"), tx_rate_per_s=2.0,
                       read_rate_per_s=4.0)
    return Simulator(config, context.core_factory).run()


def _level_line(level: str, report: Report) -> str:
    measured = report.levels[level]
    verdicts = ", ".join(f"{name} {g.verdict}" for name, g in measured.guarantees.items())
    return (f"{level:>12}: {measured.reads_ok} answered, {measured.reads_failed} refused, {measured.stale_reads} "
            f"stale (at most {measured.max_staleness} transfers behind); {verdicts}")


def levels(context: TourContext) -> Outcome:
    """One run's reads at the three levels, measured and judged against each level's promises. A run whose faults
    left no weak read stale shows no difference: the next seed is run instead (up to ATTEMPTS), and a line says so."""
    missed: list[int] = []
    for seed in seeds_from(context.seed, ATTEMPTS):
        result = _run(context, seed)
        report = analyse(result.history, max_states=MAX_STATES)
        if any(report.levels[level].stale_reads for level in WEAK if level in report.levels):
            break
        missed.append(seed)
    present: list[str] = [level for level in ("latest", "final", "linearizable") if level in report.levels]
    lines = [f"Raft, 3 nodes, partitions, crashes and loss; {report.writes} transfers ({report.writes_final} seen "
             f"final), {report.sessions} client sessions reading at {', '.join(present)}"]
    if missed and result.config.seed not in missed:
        lines.append(f"seed {', '.join(map(str, missed))}: no latest or final read was stale (the drawn faults "
                     f"missed the reads); seed {result.config.seed} used instead")
    lines += [_level_line(level, report) for level in present]
    lines.append(f"replay: {result.config.command()}")
    broken = report.broken_promises(converged=False)
    stale = {level: report.levels[level].stale_reads for level in present}
    weak_stale = [level for level in WEAK if stale.get(level, 0) > 0]
    strong_fresh = "linearizable" in stale and stale["linearizable"] == 0 and \
        report.levels["linearizable"].reads_ok > 0
    checks = (
        CheckResult(name="promises-kept", ok=len(present) == 3 and not broken, detail=(
            "every level kept what it promises (linearizable: every guarantee; final: monotonic reads and writes, "
            "writes follow reads; latest: monotonic writes)" if len(present) == 3 and not broken else
            f"broken: {', '.join(broken)}" if broken else f"only {', '.join(present)} reads were made")),
        CheckResult(name="levels-differ", ok=bool(weak_stale) and strong_fresh, detail=(
            f"{' and '.join(f'{level} ({stale[level]})' for level in weak_stale)} reads returned stale values, "
            "no linearizable read did" if weak_stale and strong_fresh else
            f"stale reads per level: {stale}: the levels were not told apart")),
    )
    figures = {"levels": {level: report.levels[level].to_json() for level in present}, "writes": report.writes}
    picture = Picture(name="consistency.html", text=render_consistency_report(
        title=f"Consistency levels, Raft, seed {result.config.seed}", ops=result.history, report=report,
        events=result.events,
        engine="raft"), caption="the consistency report of the run's history: one summary row per guarantee and "
        "read level (the weak levels' broken guarantees in red, the linearizable level's all green), one lane per "
        "client session, the nemesis's partitions shaded and its crashes and restarts marked on the time axis")
    return Outcome(concept="consistency-levels", seed=context.seed, lines=tuple(lines), checks=checks,
                   figures=figures, pictures=(picture,))


def plant_stale_read(history: list[Op]) -> tuple[list[Op], int] | None:
    """The history with one answered linearizable read made stale: it reports the nonce before a transfer of its
    account that was seen final before the read was invoked (so every linearization places the transfer first).
    With the history index of the read's answer; None when no read qualifies."""
    writes = writes_of(history)
    reads, _ = reads_of(history)
    for read in reads:
        if read.level != "linearizable":
            continue
        before = [w for w in writes.values() if w.account == read.account and w.final is not None
                  and w.final < read.invoke and w.nonce < read.nonce]
        if not before:
            continue
        stale_nonce = max(w.nonce for w in before)
        done = history[read.complete]
        planted = replace(done, value={**done.value, "nonce": stale_nonce})
        return [*history[:read.complete], planted, *history[read.complete + 1:]], read.complete
    return None


def linearizability(context: TourContext) -> Outcome:
    """The run's linearizable reads judged by the checker, and the checker shown a planted stale read. A run with
    no linearizable read after a final transfer of its account leaves nothing to plant: the next seed is run
    instead (up to ATTEMPTS), and a line says so."""
    missed: list[int] = []
    for seed in seeds_from(context.seed, ATTEMPTS):
        result = _run(context, seed)
        history = list(result.history)
        if plant_stale_read(history) is not None:
            break
        missed.append(seed)
    verdict = next(c for c in result.checks if c.name == "linearizable-reads")
    lines = ["Raft, 3 nodes, partitions, crashes and loss; clients read at `linearizable` through ReadIndex",
             f"the checker on the transfers and the linearizable reads: {verdict.detail}",
             f"replay: {result.config.command()}"]
    if missed and result.config.seed not in missed:
        lines.insert(1, f"seed {', '.join(map(str, missed))}: no linearizable read came after a final transfer of "
                        f"its account (nothing to plant a stale read on); seed {result.config.seed} used instead")
    checks = [CheckResult(name="linearizable-reads", ok=verdict.ok and "linearizable (" in verdict.detail,
                          detail=verdict.detail)]
    planted = plant_stale_read(history)
    pictures: tuple[Picture, ...] = ()
    if planted is None:
        checks.append(CheckResult(name="stale-read-caught", ok=False,
                                  detail="no linearizable read came after a final transfer of its account"))
    else:
        doctored, index = planted
        found = check(doctored, AccountModel(levels=["linearizable"]), max_states=MAX_STATES)
        stale_nonce = doctored[index].value["nonce"]
        lines.append(f"the same history with the read answered at index {index} reporting nonce {stale_nonce} (was "
                     f"{history[index].value['nonce']}), though the account's transfer of nonce {stale_nonce} was "
                     f"final before the read began: {found.verdict}")
        checks.append(CheckResult(name="stale-read-caught", ok=found.verdict == "not-linearizable", detail=(
            f"a read missing a transfer final before it (history index {index}) makes the history "
            f"{found.verdict}")))
        pictures = (_planted_picture(result.config.seed, doctored, index, checks[0], found.verdict,
                                     result.events),)
    return Outcome(concept="linearizability", seed=context.seed, lines=tuple(lines), checks=tuple(checks),
                   figures={"linearizable_reads": verdict.to_json()}, pictures=pictures)


def _planted_picture(seed: int, doctored: list[Op], index: int, honest: CheckResult, planted: str,
                     events: Sequence[Mapping[str, Any]]) -> Picture:
    """The doctored history's report: the run's operations and nemesis actions, the planted stale read
    highlighted."""
    operations = pair_operations(doctored, keep=lambda invoke, done: True)
    read = next(op for op in operations if op.ret == index)
    reason = (f"planted stale read: reports nonce {doctored[index].value['nonce']} though a transfer of that nonce "
              "was final before it began")
    text = render_history_report(
        title=f"Linearizability, Raft, seed {seed}: the history with one planted stale read", operations=operations,
        highlighted={read.id: reason}, events=events,
        summary=[("linearizable-reads, the run's history", "linearizable" if honest.ok else "failed", honest.detail),
                 ("linearizable-reads, one read made stale", planted, reason)])
    return Picture(name="linearizability.html", text=text, caption="the report of the doctored history: the "
                   "checker's verdicts on the run (linearizable) and on the doctored copy (not-linearizable), the "
                   "planted stale read highlighted in red in its client's lane")
