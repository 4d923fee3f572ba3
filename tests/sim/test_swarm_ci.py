"""CI swarm: seeds derived from the commit under test, run for a bounded wall-clock time; any failure lists the
exact command that replays it.

The swarm seed is `CHAINLAB_SIM_SWARM_SEED` if set, else the first 64 bits of `git rev-parse HEAD`, else a
constant; the budget is `CHAINLAB_SIM_SWARM_BUDGET_S` (default 16 s; the run in flight finishes, so the test
ends within one run of it). The Byzantine swarm (PBFT with up to f liars and twins) gets
`CHAINLAB_SIM_BYZANTINE_BUDGET_S` (default 10 s) with the same seed, and the lock swarm (lock sessions on Raft,
PBFT, primary-backup and PoW, judged by the `locks` check) `CHAINLAB_SIM_LOCK_BUDGET_S` (default 6 s).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from testnet.sim.simulator import Simulator
from testnet.sim.swarm import BYZANTINE_SPACE, LOCK_SPACE, SwarmSpace, swarm_configs
from tests.sim.helpers import node_core_factory

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUDGET_S = 16.0
BYZANTINE_BUDGET_S = 10.0
LOCK_BUDGET_S = 6.0
FALLBACK_SEED = 0x636861696E6C6162  # "chainlab"


def swarm_seed() -> int:
    """From the environment, else from the commit hash."""
    configured = os.environ.get("CHAINLAB_SIM_SWARM_SEED")
    if configured:
        return int(configured, 0)
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
        return int(head[:16], 16)
    except (OSError, subprocess.SubprocessError, ValueError):
        return FALLBACK_SEED


def run_swarm(space: SwarmSpace | None, budget_s: float) -> list[dict[str, object]]:
    seed = swarm_seed()
    started = time.monotonic()
    runs, failures, stats = 0, [], []
    for config in swarm_configs(seed, space):
        if runs and time.monotonic() - started >= budget_s:
            break
        result = Simulator(config, node_core_factory).run()
        runs += 1
        stats.append(dict(result.stats))
        if not result.ok:
            failures.append(f"seed {config.seed}: {', '.join(result.failed_checks())} "
                            f"({result.first_violation}); replay: {config.command()}")
    print(f"SWARM_SEED={seed}: {runs} runs in {time.monotonic() - started:.1f} s")
    assert runs >= 1
    assert not failures, f"swarm {seed} ({runs} runs) failed:\n" + "\n".join(failures)
    return stats


def test_commit_swarm_finds_no_failure() -> None:
    run_swarm(None, float(os.environ.get("CHAINLAB_SIM_SWARM_BUDGET_S", DEFAULT_BUDGET_S)))


def test_byzantine_swarm_finds_no_failure() -> None:
    """PBFT networks where up to f validators lie (each documented behaviour) or run twins."""
    run_swarm(BYZANTINE_SPACE, float(os.environ.get("CHAINLAB_SIM_BYZANTINE_BUDGET_S", BYZANTINE_BUDGET_S)))


def test_lock_swarm_finds_no_failure() -> None:
    """Lock sessions under the sim's faults; the runs together must have granted, written and refused a late
    write, so a swarm that exercised nothing does not pass unnoticed."""
    stats = run_swarm(LOCK_SPACE, float(os.environ.get("CHAINLAB_SIM_LOCK_BUDGET_S", LOCK_BUDGET_S)))
    totals = {name: sum(int(s.get(name, 0)) for s in stats)  # type: ignore[call-overload]
              for name in ("lock_grants", "lock_writes_accepted", "lock_late_writes_refused")}
    print(f"lock swarm: {totals}")
    assert all(totals.values()), totals
