"""Session guarantees, staleness and convergence of a load history (pure: the caller reads the file and passes a stop
callback for the linearizability search).

A *session* is one client process of the load (`client-N`, the process that owns load account N: it sends that
account's transfers and reads accounts, one operation at a time). A write is one transfer, on its sender's account;
it is *complete* for its session when the observer saw it final (the moment the client could know it took effect),
and its place in the chain is (height, index in the block) of that final block. A read returns an account's
(nonce, balance); the nonce tells which of the account's transfers it reflects (nonce k: transfers 0..k-1).

The guarantees, after Terry et al. ("Session guarantees for weakly consistent replicated data", 1994), in those
terms; each is checked per read level (`latest`, `final`, `linearizable`):

- **read-your-writes**: a read of the session's own account, invoked after one of its transfers was final,
  reflects that transfer (nonce above the transfer's);
- **monotonic reads**: a session's successive reads of one account never see a smaller nonce;
- **monotonic writes**: a session's transfers are placed in the chain in the order the session sent them;
- **writes-follow-reads**: a transfer sent after a read that reflected another account's transfer W is placed
  after W (a transfer never lands before something its sender had already seen);
- **linearizable**: the account model's linearizability check (testnet/linearizability.py), reads of that level
  and every transfer;
- **eventual convergence** (not per level): the `quiescence` reads the load makes after settling, every account
  read from every node at the end, agree across nodes.

A read is *stale* when the account already had transfers final (as seen by the observer) before the read was
invoked that the read does not reflect; its staleness is how many.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from testnet.history import Op
from testnet.linearizability import READ_LEVELS, AccountModel, check, read_level

GuaranteeVerdict = Literal["holds", "violated", "not-measured", "unknown"]
GUARANTEES = ("linearizable", "read-your-writes", "monotonic-reads", "monotonic-writes", "writes-follow-reads")
QUIESCENCE_PREFIX = "quiescence"
# What each read level promises a client whose session reads from one node (docs/CONSISTENCY.md, "What each level
# promises"); `testnet check` and `check consistency` fail only when a promise is broken, and report the rest.
PROMISES: dict[str, tuple[str, ...]] = {
    "linearizable": GUARANTEES,
    "final": ("monotonic-reads", "monotonic-writes", "writes-follow-reads"),
    "latest": ("monotonic-writes",),
}
LINEARIZABLE_LEVELS = tuple(level for level, promised in PROMISES.items() if "linearizable" in promised)
EXAMPLES = 5  # violations kept per guarantee


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """One transfer of the history."""

    tx: str
    process: str
    account: str
    nonce: int
    invoke: int  # history index of its first invoke
    final: int | None  # history index of its final observation
    place: tuple[int, int] | None  # (height, index in block) where it is final


@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    """One completed (ok) read of the history."""

    process: str
    node: str
    account: str
    level: str
    invoke: int
    complete: int
    nonce: int
    balance: int


@dataclass(kw_only=True)
class Guarantee:
    """The verdict on one guarantee at one read level."""

    name: str
    verdict: GuaranteeVerdict = "not-measured"
    checked: int = 0  # reads or writes it looked at
    violations: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)  # {text, indices}
    detail: str = ""

    def violate(self, text: str, indices: Sequence[int]) -> None:
        """Count one violation; keep the first few as examples."""
        self.violations += 1
        self.verdict = "violated"
        if len(self.examples) < EXAMPLES:
            self.examples.append({"text": text, "indices": list(indices)})

    def close(self) -> None:
        """`holds` when something was checked and nothing broke."""
        if self.verdict == "not-measured" and self.checked:
            self.verdict = "holds"

    def to_json(self) -> dict[str, Any]:
        """The guarantee as `check consistency --json` prints it."""
        out: dict[str, Any] = {"verdict": self.verdict, "checked": self.checked, "violations": self.violations}
        if self.examples:
            out["examples"] = self.examples
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(kw_only=True)
class LevelReport:
    """Everything measured about one read level."""

    level: str
    reads_ok: int = 0
    reads_failed: int = 0
    reads_unknown: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    stale_reads: int = 0
    max_staleness: int = 0
    guarantees: dict[str, Guarantee] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The level as `check consistency --json` prints it."""
        return {"reads": {"ok": self.reads_ok, "failed": self.reads_failed, "unknown": self.reads_unknown,
                          "errors": dict(sorted(self.errors.items()))},
                "stale_reads": self.stale_reads, "max_staleness": self.max_staleness,
                "guarantees": {name: g.to_json() for name, g in self.guarantees.items()}}


@dataclass(kw_only=True)
class Report:
    """`chainlab check consistency`'s answer for one history."""

    levels: dict[str, LevelReport]
    convergence: Guarantee
    writes: int
    writes_final: int
    sessions: int
    violating_indices: dict[int, str]  # history index of an invoke -> the first guarantee it broke

    def broken_promises(self, *, converged: bool = True) -> list[str]:
        """The promised guarantees (PROMISES) this history violates, as `guarantee (level reads)`; with
        `converged`, eventual convergence is promised too (the history ends after the faults are healed)."""
        broken = [f"{name} ({level} reads)" for level, report in self.levels.items()
                  for name in PROMISES.get(level, ()) if report.guarantees[name].verdict == "violated"]
        if converged and self.convergence.verdict == "violated":
            broken.append("eventual-convergence")
        return broken

    def to_json(self) -> dict[str, Any]:
        """The whole report as JSON."""
        return {"writes": self.writes, "writes_final": self.writes_final, "sessions": self.sessions,
                "levels": {level: report.to_json() for level, report in self.levels.items()},
                "convergence": self.convergence.to_json()}


def writes_of(ops: Iterable[Op]) -> dict[str, Write]:
    """Every transfer of the history by hash, with its first invoke and its final place."""
    firsts: dict[str, Op] = {}
    finals: dict[str, Op] = {}
    for record in ops:
        if record.op == "transfer" and record.type == "invoke" and not record.process.startswith("rebroadcast"):
            firsts.setdefault(record.key, record)
        elif record.op == "final" and record.type == "ok":
            finals.setdefault(record.key, record)
    writes: dict[str, Write] = {}
    for tx, invoke in firsts.items():
        value = invoke.value if isinstance(invoke.value, dict) else {}
        if not isinstance(value.get("from"), str) or not isinstance(value.get("nonce"), int):
            continue
        done = finals.get(tx)
        place: tuple[int, int] | None = None
        if done is not None and isinstance(done.value, dict) and isinstance(done.value.get("height"), int):
            index = done.value.get("index")  # None when the observer could not find it in the block's list
            place = (done.value["height"], index if isinstance(index, int) else 0)
        writes[tx] = Write(tx=tx, process=invoke.process, account=value["from"], nonce=value["nonce"],
                           invoke=invoke.index, final=None if done is None else done.index, place=place)
    return writes


def reads_of(ops: Iterable[Op]) -> tuple[list[Read], list[tuple[Op, Op | None]]]:
    """The completed reads (ok), and every read's (invoke, completion or None) pair."""
    open_reads: dict[str, Op] = {}
    pairs: list[tuple[Op, Op | None]] = []
    for record in ops:
        if record.op != "read":
            continue
        if record.type == "invoke":
            if record.process in open_reads:
                pairs.append((open_reads.pop(record.process), None))
            open_reads[record.process] = record
        else:
            invoke = open_reads.pop(record.process, None)
            if invoke is not None:
                pairs.append((invoke, record))
    pairs.extend((invoke, None) for invoke in open_reads.values())
    pairs.sort(key=lambda pair: pair[0].index)
    reads = []
    for invoke, done in pairs:
        if done is None or done.type != "ok" or not isinstance(done.value, dict):
            continue
        nonce, balance = done.value.get("nonce"), done.value.get("balance")
        if not isinstance(nonce, int) or not isinstance(balance, int):
            continue
        reads.append(Read(process=invoke.process, node=invoke.node, account=invoke.key, level=read_level(invoke),
                          invoke=invoke.index, complete=done.index, nonce=nonce, balance=balance))
    return reads, pairs


def analyse(ops: Sequence[Op], *, levels: Sequence[str] | None = None, max_states: int = 2_000_000,
            should_stop: Callable[[], bool] | None = None) -> Report:
    """Measure every guarantee at every read level present in `ops` (or the given `levels`)."""
    writes = writes_of(ops)
    reads, pairs = reads_of(ops)
    client_reads = [r for r in reads if not r.process.startswith(QUIESCENCE_PREFIX)]
    present = sorted({read_level(invoke) for invoke, _ in pairs if not invoke.process.startswith(QUIESCENCE_PREFIX)},
                     key=level_order)
    chosen = list(levels) if levels is not None else present
    by_account: dict[str, list[Write]] = {}
    for write in writes.values():
        by_account.setdefault(write.account, []).append(write)
    for account_writes in by_account.values():
        account_writes.sort(key=lambda w: w.nonce)
    flagged: dict[int, str] = {}
    reports: dict[str, LevelReport] = {}
    for level in chosen:
        report = LevelReport(level=level)
        for invoke, done in pairs:
            if invoke.process.startswith(QUIESCENCE_PREFIX) or read_level(invoke) != level:
                continue
            if done is None or done.type == "info":
                report.reads_unknown += 1
            elif done.type == "fail":
                report.reads_failed += 1
                code = (done.error or "?").split(":")[0]
                report.errors[code] = report.errors.get(code, 0) + 1
            else:
                report.reads_ok += 1
        mine = [r for r in client_reads if r.level == level]
        _staleness(report, mine, by_account)
        for guarantee in (_read_your_writes(mine, writes), _monotonic_reads(mine), _monotonic_writes(writes),
                          _writes_follow_reads(mine, writes, by_account)):
            guarantee.close()
            report.guarantees[guarantee.name] = guarantee
        report.guarantees = {"linearizable": _linearizable(ops, level, max_states, should_stop),
                             **report.guarantees}
        for guarantee in report.guarantees.values():
            for example in guarantee.examples:
                for index in example["indices"]:
                    flagged.setdefault(index, f"{guarantee.name} ({level} reads): {example['text']}")
        reports[level] = report
    sessions = {w.process for w in writes.values()} | {r.process for r in client_reads}
    return Report(levels=reports, convergence=_convergence(reads), writes=len(writes),
                  writes_final=sum(1 for w in writes.values() if w.final is not None), sessions=len(sessions),
                  violating_indices=flagged)


def level_order(level: str) -> tuple[int, str]:
    return (READ_LEVELS.index(level) if level in READ_LEVELS else len(READ_LEVELS), level)


def _final_before(account_writes: list[Write], index: int) -> Write | None:
    """The account's transfer of highest nonce that was seen final before history index `index`."""
    best: Write | None = None
    for write in account_writes:
        if write.final is not None and write.final < index and (best is None or write.nonce > best.nonce):
            best = write
    return best


def _staleness(report: LevelReport, reads: list[Read], by_account: dict[str, list[Write]]) -> None:
    for read in reads:
        latest = _final_before(by_account.get(read.account, []), read.invoke)
        if latest is not None and read.nonce <= latest.nonce:
            report.stale_reads += 1
            report.max_staleness = max(report.max_staleness, latest.nonce + 1 - read.nonce)


def _read_your_writes(reads: list[Read], writes: dict[str, Write]) -> Guarantee:
    guarantee = Guarantee(name="read-your-writes")
    own: dict[tuple[str, str], list[Write]] = {}
    for write in writes.values():
        own.setdefault((write.process, write.account), []).append(write)
    for read in reads:
        done = _final_before(own.get((read.process, read.account), []), read.invoke)
        if done is None:
            continue
        guarantee.checked += 1
        if read.nonce <= done.nonce:
            guarantee.violate(f"{read.process} read {read.account} from {read.node} (index {read.invoke}): nonce "
                              f"{read.nonce}, after its own transfer of nonce {done.nonce} was final (index "
                              f"{done.final})", [read.invoke, done.invoke])
    return guarantee


def _monotonic_reads(reads: list[Read]) -> Guarantee:
    guarantee = Guarantee(name="monotonic-reads")
    last: dict[tuple[str, str], Read] = {}
    for read in sorted(reads, key=lambda r: r.invoke):
        before = last.get((read.process, read.account))
        if before is not None and before.complete < read.invoke:
            guarantee.checked += 1
            if read.nonce < before.nonce:
                guarantee.violate(f"{read.process} read {read.account} from {read.node} (index {read.invoke}): nonce "
                                  f"{read.nonce}, after reading nonce {before.nonce} from {before.node} (index "
                                  f"{before.invoke})", [read.invoke, before.invoke])
        if before is None or read.nonce >= before.nonce:
            last[(read.process, read.account)] = read
    return guarantee


def _monotonic_writes(writes: dict[str, Write]) -> Guarantee:
    guarantee = Guarantee(name="monotonic-writes")
    by_process: dict[str, list[Write]] = {}
    for write in writes.values():
        if write.place is not None:
            by_process.setdefault(write.process, []).append(write)
    for session in by_process.values():
        session.sort(key=lambda w: w.invoke)
        for before, after in itertools.pairwise(session):
            guarantee.checked += 1
            assert before.place is not None and after.place is not None
            if after.place <= before.place:
                guarantee.violate(f"{after.process}'s transfer nonce {after.nonce} (sent at index {after.invoke}) "
                                  f"is final at {after.place}, not after its earlier transfer nonce {before.nonce} at "
                                  f"{before.place}", [after.invoke, before.invoke])
    return guarantee


def _writes_follow_reads(reads: list[Read], writes: dict[str, Write],
                         by_account: dict[str, list[Write]]) -> Guarantee:
    """A transfer sent after a read that reflected transfer W (the read account's nonce k: W has nonce k-1) is
    placed after W. Reads whose W is not in the history (made before the load) constrain nothing."""
    guarantee = Guarantee(name="writes-follow-reads")
    nonce_index: dict[tuple[str, int], Write] = {(w.account, w.nonce): w for ws in by_account.values() for w in ws}
    events: list[tuple[int, int, Any]] = [(r.complete, 0, r) for r in reads]
    events.extend((w.invoke, 1, w) for w in writes.values())
    events.sort(key=lambda e: (e[0], e[1]))
    seen: dict[str, tuple[Write, Read]] = {}  # process -> the latest-placed write its reads reflected, and the read
    unresolved = 0
    for _, kind, item in events:
        if kind == 0:
            read: Read = item
            reflected = nonce_index.get((read.account, read.nonce - 1))
            if reflected is None:
                continue
            if reflected.place is None:
                unresolved += 1
                continue
            current = seen.get(read.process)
            if current is None or reflected.place > current[0].place:  # type: ignore[operator]
                seen[read.process] = (reflected, read)
            continue
        write: Write = item
        dependency = seen.get(write.process)
        if dependency is None or write.place is None:
            continue
        guarantee.checked += 1
        reflected, read = dependency
        assert reflected.place is not None
        if write.place <= reflected.place:
            guarantee.violate(f"{write.process}'s transfer nonce {write.nonce} (sent at index {write.invoke}) is final "
                              f"at {write.place}, before {reflected.account}'s transfer nonce {reflected.nonce} at "
                              f"{reflected.place} that its read at index {read.invoke} had seen",
                              [write.invoke, read.invoke])
    if unresolved:
        guarantee.detail = f"{unresolved} read(s) reflected a transfer that was never seen final"
    return guarantee


def _linearizable(ops: Sequence[Op], level: str, max_states: int,
                  should_stop: Callable[[], bool] | None) -> Guarantee:
    guarantee = Guarantee(name="linearizable")
    model = AccountModel(levels=[level])
    result = check(ops, model, max_states=max_states, should_stop=should_stop)
    guarantee.checked = sum(1 for op in result.operations if op.op == "read")
    if not guarantee.checked:
        return guarantee
    if model.partial:
        guarantee.detail = (f"{len(model.partial)} account(s) also receive transfers from other load accounts: "
                            f"only their nonces are compared (run the load with sink accounts to compare balances)")
    if result.verdict == "unknown":
        guarantee.verdict = "unknown"
        guarantee.detail = result.reason
        return guarantee
    failed = result.failed_key
    if failed is None or failed.stuck is None:
        guarantee.verdict = "holds"
        return guarantee
    stuck = result.operations[failed.stuck]
    guarantee.violate(f"no linearization places {stuck.describe()} (index {stuck.call})", [stuck.call])
    return guarantee


def _convergence(reads: list[Read]) -> Guarantee:
    guarantee = Guarantee(name="eventual-convergence")
    final_reads: dict[tuple[str, str], dict[str, Read]] = {}
    for read in reads:
        if read.process.startswith(QUIESCENCE_PREFIX):
            final_reads.setdefault((read.account, read.level), {})[read.node] = read
    for (account, level), per_node in sorted(final_reads.items()):
        if len(per_node) < 2:
            continue
        guarantee.checked += 1
        states = {(r.nonce, r.balance) for r in per_node.values()}
        if len(states) > 1:
            shown = ", ".join(f"{node}: nonce {r.nonce} balance {r.balance}" for node, r in sorted(per_node.items()))
            guarantee.violate(f"after quiescence, {account} at {level} differs across nodes ({shown})",
                              [r.invoke for r in per_node.values()])
    guarantee.close()
    return guarantee
