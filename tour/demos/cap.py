"""The CAP theorem (CAP 定理): in a partition, Raft keeps consistency and PoW keeps availability.

The demonstration is `chainlab testnet cap` (testnet/cap.py, docs/CONSISTENCY.md), asked of the shell's real
runner: a 5-node Raft and a 5-node PoW testnet of real processes through the same 3 | 2 partition under the same
read/write load, about 20 s each. Its rows say, per engine and side, what clients saw while the network was cut;
`judge` reads them (pure) and checks the theorem's two choices:

- Raft chooses consistency: its minority refuses writes (`no-quorum`) and serves no linearizable read, and every
  linearizable read either side served is linearizable;
- PoW chooses availability: its minority accepts every write and answers every `latest` and `final` read.

What PoW pays is said in a line, not checked: its minority's reads are stale only when they ask about accounts the
majority changed meanwhile, and a run may find none (the recorded run of tests/tour/data/cap-run.json found none;
the one in docs/CONSISTENCY.md found 12). Its minority's accepted writes are final only after the heal.

It is not in `tour run --all --fast` (it takes about 40 s of real processes): run it by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from testnet.checks import CheckResult
from tour import svg
from tour.model import Outcome, Picture, TourContext

CONCEPT = "cap"
WEAK_LEVELS = ("latest", "final")


def _row(rows: Sequence[Mapping[str, Any]], engine: str, side: str) -> Mapping[str, Any] | None:
    return next((row for row in rows if row["engine"] == engine and row["side"] == side), None)


def _answered(row: Mapping[str, Any], level: str) -> tuple[int, int]:
    reads = row["reads"].get(level) or {"answered": 0, "sent": 0}
    return int(reads["answered"]), int(reads["sent"])


def _raft_consistent(rows: Sequence[Mapping[str, Any]]) -> CheckResult:
    minority, majority = _row(rows, "raft", "minority"), _row(rows, "raft", "majority")
    if minority is None or majority is None:
        return CheckResult(name="raft-keeps-consistency", ok=False, detail="no raft rows")
    refused = int(minority["writes"]["errors"].get("no-quorum", 0))
    lin_answered, lin_sent = _answered(minority, "linearizable")
    verdicts = {side["side"]: (side["reads"].get("linearizable") or {}).get("linearizable", "no reads")
                for side in (minority, majority)}
    broken = [side for side, verdict in verdicts.items() if verdict not in ("linearizable", "no reads")]
    ok = refused >= 1 and lin_answered == 0 and lin_sent >= 1 and not broken
    return CheckResult(name="raft-keeps-consistency", ok=ok, detail=(
        f"the minority refused {refused} writes (no-quorum) and all {lin_sent} linearizable reads; linearizable reads "
        "linearizable on both sides" if ok else
        f"linearizable reads not linearizable on the {', '.join(broken)} side" if broken else
        f"the minority answered {lin_answered} of {lin_sent} linearizable reads and refused {refused} writes for "
        "want of a quorum"))


def _pow_available(rows: Sequence[Mapping[str, Any]]) -> CheckResult:
    minority = _row(rows, "pow", "minority")
    if minority is None:
        return CheckResult(name="pow-keeps-availability", ok=False, detail="no pow rows")
    sent, accepted = int(minority["writes"]["sent"]), int(minority["writes"]["accepted"])
    reads = [_answered(minority, level) for level in WEAK_LEVELS]
    ok = sent >= 1 and accepted == sent and all(answered == asked for answered, asked in reads)
    return CheckResult(name="pow-keeps-availability", ok=ok, detail=(
        f"the minority accepted {accepted} of {sent} writes and answered every latest and final read" if ok else
        f"the minority accepted {accepted} of {sent} writes, answered "
        + ", ".join(f"{level} {a}/{s}" for level, (a, s) in zip(WEAK_LEVELS, reads, strict=True))))


def _pow_price(rows: Sequence[Mapping[str, Any]]) -> str:
    minority = _row(rows, "pow", "minority")
    if minority is None:
        return "pow: no minority row"
    stale = {level: int((minority["reads"].get(level) or {}).get("stale", 0)) for level in WEAK_LEVELS}
    return (f"pow minority's price: stale reads {', '.join(f'{k} {v}' for k, v in stale.items())} (stale only when a "
            "read asks about an account the majority changed; a run may find none)")


def _runs_ok(result: Mapping[str, Any]) -> CheckResult:
    runs: Mapping[str, Mapping[str, Any]] = result["runs"]
    bad = {engine: run.get("error") or ", ".join(run.get("failed") or []) for engine, run in runs.items()
           if not run["ok"]}
    ok = set(runs) == {"raft", "pow"} and not bad
    return CheckResult(name="scenarios", ok=ok, detail=(
        "both halves (cap-raft, cap-pow) ran and passed their own checks" if ok else
        f"runs {sorted(runs)}; failed: {bad}"))


def _picture(rows: Sequence[Mapping[str, Any]]) -> Picture:
    panels: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        bars = panels.setdefault(str(row["engine"]), [])
        writes = row["writes"]
        share = writes["accepted"] / writes["sent"] if writes["sent"] else 0.0
        bars.append((f"{row['side']} writes", round(100 * share, 1)))
        answered, sent = _answered(row, "linearizable")
        bars.append((f"{row['side']} lin. reads", round(100 * answered / sent, 1) if sent else 0.0))
    text = svg.bar_panels("During the partition: share of writes and linearizable reads answered (%)",
                          [(engine, bars) for engine, bars in panels.items()],
                          note="% of those sent that were answered, per side of the cut; each panel on its own scale")
    return Picture(name="cap.svg", text=text, caption="per engine and side, the share of writes and linearizable "
                   "reads answered while the network was cut")


def judge(result: Mapping[str, Any]) -> Outcome:
    """The verdict on `run_cap`'s result: the theorem's two choices, and both halves' own checks."""
    rows: Sequence[Mapping[str, Any]] = result.get("rows") or []
    lines = ["a 5-node Raft and a 5-node PoW testnet (real processes), the same load, the same 3 | 2 partition"]
    for row in rows:
        writes, reads = row["writes"], row["reads"]
        answered = ", ".join(f"{level} {r['answered']}/{r['sent']} ({r['stale']} stale, {r['linearizable']})"
                             for level, r in reads.items())
        lines.append(f"{row['engine']} {row['side']} ({','.join(row['nodes'])}): writes {writes['accepted']}/"
                     f"{writes['sent']} accepted; reads {answered}")
    for engine, run in (result.get("runs") or {}).items():
        lines.append(f"{engine}: history {run['dir']}/history.jsonl; report {run.get('report', 'none')}")
    lines.append(_pow_price(rows))
    checks = (_runs_ok(result), _raft_consistent(rows), _pow_available(rows))
    return Outcome(concept=CONCEPT, seed=int(result.get("seed", 0)), lines=tuple(lines), checks=checks,
                   figures={"rows": list(rows), "final_monotonic": dict(result.get("final_monotonic") or {})},
                   pictures=(_picture(rows),) if rows else ())


def run(context: TourContext) -> Outcome:
    """Run `chainlab testnet cap` through the shell's real runner and judge its rows."""
    if context.real is None:
        return Outcome(concept=CONCEPT, seed=context.seed, lines=(),
                       checks=(CheckResult(name="scenarios", ok=False, detail="no real-process runner was given"),))
    return judge(context.real.cap(context.seed))
