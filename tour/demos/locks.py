"""A distributed lock with fencing tokens (分布式锁): a paused holder's stale write is refused.

The simulator's lock workload (`chainlab sim --workload lock`, testnet/sim/lockclients.py; docs/LOCKS.md) runs
client sessions that acquire a lease on a lock through the chain, write under it with the lease's fencing token,
renew, release, and now and then pause past their lease (Kleppmann's paused client: a GC pause, a swapped-out
VM), then write with the old token as if nothing had happened. Meanwhile another session may have been granted
the lock with a larger token. The register applies a write only when its token is the lock's newest grant; the
`locks` check (testnet/lockcheck.py) replays every honest node's final blocks and fails on a stale write accepted,
two overlapping grants or tokens that do not grow.

The demonstration runs the workload on Raft (3 nodes) and PBFT (4 validators), the engines that finalise each
block, and reads what happened: grants, fenced writes, the paused sessions' late writes and their outcome. A
seed whose sessions never pause past a lease shows nothing; the next seed (up to `ATTEMPTS`) is run instead, and
the lines say so.
"""

from __future__ import annotations

from chain.crypto import address_to_text
from testnet.checks import CheckResult
from testnet.lockcheck import LockOp, lock_ops_of_blocks
from testnet.sim.config import SimConfig
from testnet.sim.lockclients import final_blocks
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext, count, seeds_from
from tour.svg import lanes

ENGINES = (("raft", 3), ("pbft", 4))
ATTEMPTS = 3  # seeds tried (seed, seed + 1, ...) for a run in which a paused session wrote late


def _config(context: TourContext, consensus: str, nodes: int, seed: int) -> SimConfig:
    return SimConfig(seed=seed, consensus=consensus, nodes=nodes, faults=frozenset(),
                     duration_s=60.0 if context.fast else 120.0, block_interval_s=1.0, model="synchronous",
                     max_delay_s=0.05, async_scale_s=0.01, tx_rate_per_s=3.0, workload="lock", locks=1)


def _count(result: SimResult, name: str) -> int:
    value = result.stats.get(name, 0)
    return value if isinstance(value, int) else 0


def _judge(consensus: str, result: SimResult) -> tuple[list[str], list[CheckResult]]:
    late, refused, in_lease = (_count(result, f"lock_late_writes{suffix}") for suffix in ("", "_refused",
                                                                                         "_in_lease"))
    locks = next(check for check in result.checks if check.name == "locks")
    lines = [f"{consensus}: {_count(result, 'lock_grants')} grants, {_count(result, 'lock_writes_accepted')} fenced "
             f"writes accepted, {_count(result, 'lock_pauses')} pauses past a lease, {count(late, 'late write')} "
             f"with an old token: {refused} refused, {in_lease} accepted",
             f"{consensus}: {'ok' if locks.ok else 'FAIL'} locks: {locks.detail}",
             f"replay: {result.config.command()}"]
    others = [check.name for check in result.checks if not check.ok and check.name != "locks"]
    refused_all = late >= 1 and refused == late and in_lease == 0
    checks = [
        CheckResult(name=f"{consensus}-stale-write-refused", ok=refused_all, detail=(
            f"every one of the {late} writes made with a lapsed lease's token was refused" if refused_all else
            "no paused session wrote with an old token: nothing shown" if late == 0 else
            f"{in_lease} of {count(late, 'late write')} were accepted")),
        CheckResult(name=f"{consensus}-fenced-register-safe", ok=locks.ok and not others, detail=(
            locks.detail if locks.ok and not others else
            "; ".join(f"{c.name}: {c.detail}" for c in result.checks if not c.ok))),
    ]
    return lines, checks


def run(context: TourContext) -> Outcome:
    """Run the lock workload on each finalising engine and judge the fencing."""
    lines = ["sessions take one lock through the chain, write under its fencing token, and pause past the lease"]
    checks: list[CheckResult] = []
    figures: dict[str, object] = {}
    pictures: list[Picture] = []
    for consensus, nodes in ENGINES:
        for seed in seeds_from(context.seed, ATTEMPTS):
            simulator = Simulator(_config(context, consensus, nodes, seed), context.core_factory)
            result = simulator.run()
            if _count(result, "lock_late_writes") or not result.ok:
                break
            lines.append(f"{consensus}: seed {seed}: no session paused past its lease and wrote; the next seed")
        engine_lines, engine_checks = _judge(consensus, result)
        lines += engine_lines
        checks += engine_checks
        figures[consensus] = {name: value for name, value in result.stats.items() if name.startswith("lock_")}
        tree = next((node.core.tree for node in simulator.nodes if node.core is not None), None)
        if tree is not None:
            ops = lock_ops_of_blocks(final_blocks(tree), tree.store.tx_outcome)
            late = simulator.lock_clients.late_writes if simulator.lock_clients is not None else []
            pictures += [_picture(consensus, lock, ops, late) for lock in sorted({op.lock for op in ops})]
    return Outcome(concept="distributed-lock", seed=context.seed, lines=tuple(lines), checks=tuple(checks),
                   figures=figures, pictures=tuple(pictures))


Spans = dict[str, list[tuple[float, float]]]
Marks = list[tuple[str, float, str, bool]]


def _token(token: int) -> str:
    """A fencing token as grant height.index (chain/locks.py's layout)."""
    return f"{token >> 32}.{token & 0xFFFFFFFF}"


def holders(ops: list[LockOp], lock: str, late: list[tuple[bytes, str, int, int, str]]) -> tuple[Spans, Marks]:
    """One lock's history from a final chain's operations: per holder (address text, shortened) the heights its
    leases held (grant to expiry or release, by docs/LOCKS.md's rules), and every write as a mark (refused ones
    bad, labelled with the refusal); `late` adds the paused sessions' late writes refused before any block
    (LockClients.late_writes: at admission, at the height they were sent for)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    marks: list[tuple[str, float, str, bool]] = []
    current: tuple[str, int, int] | None = None  # holder, start, end
    for op in sorted((op for op in ops if op.lock == lock), key=lambda o: (o.height, o.index)):
        name = address_to_text(op.sender)[:10]
        if op.kind == "kv-put":
            marks.append((name, float(op.height), f"{op.outcome} (token {_token(op.token)})" if op.outcome != "ok"
                           else f"write {op.key} token {_token(op.token)}", op.outcome != "ok"))
            continue
        if op.outcome != "ok":
            continue
        if op.kind == "lock-acquire":
            if current is not None:
                spans.setdefault(current[0], []).append((current[1], min(current[2], op.height)))
            current = (name, op.height, op.height + op.lease_blocks)
        elif current is not None and op.kind == "lock-renew":
            current = (current[0], current[1], op.height + op.lease_blocks)
        elif current is not None:  # lock-release
            spans.setdefault(current[0], []).append((current[1], op.height))
            current = None
    if current is not None:
        spans.setdefault(current[0], []).append((current[1], current[2]))
    in_blocks = {(op.sender, op.token, op.height) for op in ops if op.kind == "kv-put" and op.outcome != "ok"}
    for sender, late_lock, token, height, code in late:
        if late_lock == lock and code != "ok" and (sender, token, height) not in in_blocks:
            marks.append((address_to_text(sender)[:10], float(height), f"late write {code} (token {_token(token)})",
                          True))
    return spans, marks


def _picture(consensus: str, lock: str, ops: list[LockOp], late: list[tuple[bytes, str, int, int, str]]) -> Picture:
    spans, marks = holders(ops, lock, late)
    refused = sum(1 for *_, bad in marks if bad)
    text = lanes(f"{consensus}: lock {lock!r}, its holders over the final chain's heights", spans, marks=marks,
                 note=f"bars: leases; dots: accepted writes; red crosses: {count(refused, 'refused write')}")
    return Picture(name=f"{consensus}-{lock}.svg", text=text, caption=f"{consensus}, lock {lock}: one lane per "
                   "client, a bar for each lease it held (never two at one height), its accepted writes as dots, "
                   "the refused ones (a paused holder's old token) as red crosses with the refusal")
