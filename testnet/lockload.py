"""`chainlab testnet load --workload lock`: clients competing for a few locks on a running testnet, writing through
the fenced register with their tokens, some pausing past their lease (docs/LOCKS.md, docs/TESTNET.md "Load").

The clients are `bench lock`'s (testnet/bench_lock.py: acquire, fenced writes, release, each waited for until
final; a client refused `lock-held` waits for the lock's free event), driven by the same closed loop, with two
additions a shared testnet needs: each client starts from its account's nonce on the chain, and with probability
`pause_chance` a holder sleeps past its lease before a write and then writes with its old token, which the
register must refuse. Nothing here judges the run: `chainlab testnet check` (the `locks` check) re-derives every
lease from the chain afterwards.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from testnet.bench_lock import ClientPauses, LockBenchOptions, LockLoad, LockWatch
from testnet.bench_loop import run_closed_loop
from testnet.cluster import load_key
from testnet.nemesis import refresh
from testnet.state import Testnet, TestnetError


@dataclass(frozen=True, slots=True, kw_only=True)
class LockLoadOptions:
    """`clients` clients over `locks` locks for `duration_s`; leases of `lease_blocks` blocks; a holder pauses
    before a write with probability `pause_chance`, for `pause_leases` times its lease."""

    duration_s: float
    clients: int = 8
    locks: int = 2
    lease_blocks: int = 10
    writes_per_lease: int = 4
    pause_chance: float = 0.05
    pause_leases: float = 1.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clients < 1 or self.locks < 1 or self.lease_blocks < 1 or self.writes_per_lease < 0:
            raise TestnetError("--clients, --locks and --lease-blocks must be at least 1")
        if not 0 <= self.pause_chance <= 1 or self.pause_leases <= 0:
            raise TestnetError("--pause-chance must be in 0..1 and --pause-leases positive")


async def run_lock_load(testnet: Testnet, options: LockLoadOptions) -> dict[str, Any]:
    """Run the lock clients against the running nodes of `testnet`; a summary of what they did."""
    if options.clients > testnet.load_accounts:
        raise TestnetError(f"--clients {options.clients}: the testnet has {testnet.load_accounts} load accounts")
    refresh(testnet)
    urls = [record.rpc_url for record in testnet.nodes if record.state == "running" and record.rpc_url]
    if not urls:
        raise TestnetError("no running node: start the testnet first")
    keys = [load_key(testnet.seed, index) for index in range(options.clients)]
    bench = LockBenchOptions(clients=options.clients, locks=options.locks, lease_blocks=options.lease_blocks,
                             writes_per_lease=options.writes_per_lease, duration_s=options.duration_s)
    pause_s = options.pause_leases * options.lease_blocks * testnet.block_interval_s
    pauses = ClientPauses(chance=options.pause_chance, pause_s=pause_s, rng=random.Random(options.seed))
    watch = LockWatch(urls[0])
    watch.start()
    load = LockLoad(testnet.chain_id, urls, keys, bench, watch, pauses)
    try:
        await load.sync_nonces()
        result = await run_closed_loop(options.clients, load, duration_s=options.duration_s, warmup_s=0.0)
    finally:
        load.close()
        await watch.stop()
    ops = sum(1 for done, _ in load.finished if result.window_start <= done <= result.window_end)
    return {
        "workload": "lock", "clients": options.clients, "locks": options.locks, "lease_blocks": options.lease_blocks,
        "duration_s": round(result.window_s, 3), "lock_ops": ops, "grants": len(load.granted),
        "pauses": pauses.taken, "pause_s": round(pause_s, 3), "outcomes": dict(sorted(load.outcomes.items())),
        "refused_at_admission": dict(sorted(load.refusal_codes.items())), "errors": dict(sorted(result.errors.items())),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def format_lock_load(summary: dict[str, Any]) -> list[str]:
    """The human lines of a lock load's summary."""
    def tally(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"

    return [
        f"lock load: {summary['clients']} clients over {summary['locks']} locks, leases of "
        f"{summary['lease_blocks']} blocks, {summary['duration_s']:g} s: {summary['lock_ops']} operations final, "
        f"{summary['grants']} grants, {summary['pauses']} pauses of {summary['pause_s']:g} s",
        f"outcomes in blocks: {tally(summary['outcomes'])}",
        f"refused at admission: {tally(summary['refused_at_admission'])}",
        f"errors: {tally(summary['errors'])}",
        "judge it with `chainlab testnet check` (the locks check)",
    ]
