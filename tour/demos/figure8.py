"""Raft's Figure 8 (Raft paper, section 5.4.2), played message by message on the real engine: why a leader may
not commit an entry of an earlier term by counting the nodes that hold it.

Three nodes in a hand-stepped network (testnet/sim/raftnet.py: the real node cores, the network and the clock
moved by the demonstration):

(a) A leads term t1 and takes an entry X at index i while cut off from both others: X is on A alone.
(b) B and C, without A, elect C in a higher term t2; C's first entry, its no-op Y, lands at the same index i and
    stays on C (blocks at i and above are held back from B).
(c) C is cut off. A comes back with B and is elected in term t3 (its last entry, of t1, is newer than B's). X
    reaches B: X is now on a majority (A and B). The entry of A's own term (its no-op at i + 1) is held back.
    A correct leader does not commit X: X is of an earlier term, and counting replicas of it proves nothing.
(d) A crashes. C comes back with B: C's last entry is of t2, newer than B's X (t1), so B votes for C, and C
    overwrites X on B with its own Y. Nothing committed was lost, because X never was committed.

A leader that counts earlier-term entries commits X in (c); in (d) the new leader C does not hold X: a committed
entry is missing from a leader's log (Raft would overwrite it on B; chainlab's B, holding X final, refuses the
leader's branch with a safety alarm, and the cluster is stuck). The checks see both: `figure-8-no-
commit-by-counting` (X on a majority in (c), yet not committed) and `leader-completeness` (every entry any node
held final is in the log of every later leader). tests/tour/test_raft.py plants that leader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chain.block import Block
from consensus.raft.engine import Role
from consensus.raft.seal import seal_term
from testnet.checks import CheckResult
from testnet.sim.core import CoreFactory
from testnet.sim.raftnet import NoLeaderError, Packet, RaftNet
from tour.model import Picture
from tour.svg import COLOURS, table


class Figure8Error(Exception):
    """The network did not reach a step of the schedule (a leader not elected in time, an entry missing)."""


@dataclass(slots=True)
class Snapshot:
    """What each node held at index i after a step: the entry's name (X, Y or -) and term, and whether it was
    final there."""

    step: str
    held: dict[str, tuple[str, int | None, bool]]


@dataclass(slots=True)
class Figure8Run:
    """The schedule's record: the roles, the entries, each step's snapshot and what the checks read."""

    a: str = ""
    b: str = ""
    c: str = ""
    index: int = 0
    terms: dict[str, int] = field(default_factory=dict)  # t1, t2, t3, t4: the leaders' terms, in order
    snapshots: list[Snapshot] = field(default_factory=list)
    x_on_majority: bool = False  # after (c): X on A and B
    committed_x: bool = False  # after (c): A's commit index reached i
    ever_final: dict[str, set[bytes]] = field(default_factory=dict)  # node -> every block it held final
    last_leader_log: list[bytes] = field(default_factory=list)  # C's log after (d)
    safety_alarms: int = 0  # after (d): branches the live nodes refused because they conflict with a final block
    lines: list[str] = field(default_factory=list)


def _hold_back(from_height: int) -> Callable[[Packet], list[Packet]]:
    """A filter that drops every block at `from_height` or above (engine messages pass)."""
    def keep(packet: Packet) -> list[Packet]:
        if packet.kind == "block" and isinstance(packet.payload, Block) and packet.payload.height >= from_height:
            return []
        return [packet]
    return keep


def _until_leader(net: RaftNet, among: tuple[str, ...], above_term: int, seconds: float = 10.0) -> str:
    def elected() -> bool:
        return any(net.engine(n).role is Role.LEADER and net.engine(n).term > above_term for n in among)
    if not net.run(seconds, until=elected):
        raise Figure8Error(f"no leader among {', '.join(among)} above term {above_term} within {seconds:g} s: "
                           f"{net.describe()}")
    return next(n for n in among if net.engine(n).role is Role.LEADER and net.engine(n).term > above_term)


def _record_finals(net: RaftNet, run: Figure8Run) -> None:
    for name in net.live():
        run.ever_final.setdefault(name, set()).update(net.final(name))


def _snapshot(net: RaftNet, run: Figure8Run, step: str, names: dict[bytes, str]) -> None:
    held: dict[str, tuple[str, int | None, bool]] = {}
    for node in net.names:
        if node not in net.cores:
            held[node] = ("down", None, False)
            continue
        tree = net.cores[node].tree
        block_hash = tree.hash_at(run.index) if tree.height >= run.index else None
        meta = tree.meta(block_hash) if block_hash is not None else None
        term = seal_term(meta.header) if meta is not None else None
        held[node] = (names.get(block_hash, "?") if block_hash is not None else "-", term,
                      tree.final_height >= run.index)
    run.snapshots.append(Snapshot(step=step, held=held))
    _record_finals(net, run)


def play(core_factory: CoreFactory, seed: int) -> Figure8Run:
    """The four steps on three nodes; Figure8Error when the network does not get where a step needs it."""
    net = RaftNet(3, core_factory, seed=seed, block_interval_s=0.1)
    run = Figure8Run()
    try:
        a = net.elect()
    except NoLeaderError as exc:
        raise Figure8Error(str(exc)) from exc
    b, c = (n for n in net.names if n != a)
    run.terms["t1"] = net.engine(a).term
    run.index = index = net.cores[a].tree.height + 1
    names: dict[bytes, str] = {}
    # (a) X at index i on A alone
    net.partition([a], [b], [c])
    net.submit_transfer(a)
    net.run(0.3)
    if net.cores[a].tree.height < index:
        raise Figure8Error(f"(a) {a} proposed nothing at index {index}: {net.describe()}")
    names[net.chain(a)[index]] = "X"
    _snapshot(net, run, "(a) X on A alone", names)
    net.run(2.5)  # A hears no majority and steps down
    # (b) B and C elect a leader; its no-op Y at index i stays with it
    net.recover()
    net.isolate(a)
    net.filter = _hold_back(index)
    c = _until_leader(net, (b, c), run.terms["t1"])
    b = next(n for n in net.names if n not in (a, c))
    run.terms["t2"] = net.engine(c).term
    net.run(0.3)
    if net.cores[c].tree.height < index:
        raise Figure8Error(f"(b) {c} proposed nothing at index {index}: {net.describe()}")
    names[net.chain(c)[index]] = "Y"
    _snapshot(net, run, "(b) C elected, Y on C alone", names)
    # (c) A and B; A elected; X reaches B; A's own no-op is held back
    net.recover()
    net.isolate(c)
    net.filter = _hold_back(index + 1)
    _until_leader(net, (a,), run.terms["t2"])
    run.terms["t3"] = net.engine(a).term
    net.run(1.0)
    run.x_on_majority = all(len(net.chain(n)) > index and names.get(net.chain(n)[index]) == "X" for n in (a, b))
    run.committed_x = net.engine(a).commit >= index
    _snapshot(net, run, "(c) A elected again, X on A and B", names)
    # (d) A crashes; C and B
    net.crash(a)
    net.recover()
    _until_leader(net, (c,), run.terms["t3"])
    run.terms["t4"] = net.engine(c).term
    net.run(1.0)
    run.safety_alarms = sum(net.cores[n].tree.safety_alarms for n in net.live())
    run.last_leader_log = net.chain(c)
    _snapshot(net, run, "(d) A down, C elected again", names)
    run.a, run.b, run.c = a, b, c
    return run


def checks(run: Figure8Run) -> tuple[CheckResult, CheckResult]:
    """X on a majority yet not committed; every entry ever final in the last leader's log."""
    lost = sorted({h.hex()[:12] for node, final in run.ever_final.items() for h in final
                   if h not in run.last_leader_log})
    return (
        CheckResult(name="figure-8-no-commit-by-counting", ok=run.x_on_majority and not run.committed_x, detail=(
            f"X (term {run.terms['t1']}) on {run.a} and {run.b}, a majority, and not committed by {run.a}, leader "
            f"of term {run.terms['t3']}" if run.x_on_majority and not run.committed_x else
            f"X was committed by {run.a} in term {run.terms['t3']} by counting the nodes that hold it"
            if run.committed_x else "X never reached a majority: the schedule did not play out")),
        CheckResult(name="leader-completeness", ok=not lost and run.safety_alarms == 0, detail=(
            f"every entry any node held final is in the log of {run.c}, leader of term {run.terms['t4']}"
            if not lost and run.safety_alarms == 0 else
            f"{len(lost)} final entries missing from the log of {run.c}, leader of term {run.terms['t4']} "
            f"({', '.join(lost)}); {run.safety_alarms} safety alarms: {run.b} keeps X final and refuses the "
            "leader's log")),
    )


def describe(run: Figure8Run) -> list[str]:
    """The schedule as the demonstration prints it: one line per step, what each node held at index i."""
    roles = {run.a: "A", run.b: "B", run.c: "C"}
    out = [f"Figure 8 on three real Raft cores, stepped by hand: A = {run.a}, B = {run.b}, C = {run.c}; "
           f"index i = {run.index}; leaders' terms {', '.join(f'{k} = {v}' for k, v in run.terms.items())}"]
    for snap in run.snapshots:
        held = "; ".join(f"{roles.get(node, node)}: {entry}" + (f" (term {term})" if term is not None else "")
                         + (" final" if final else "") for node, (entry, term, final) in sorted(
                             snap.held.items(), key=lambda item: roles.get(item[0], item[0])))
        out.append(f"  {snap.step}: {held}")
    return out


def picture(run: Figure8Run) -> Picture:
    """The table of the four steps: what A, B and C hold at index i (entry, term, final), X and Y in their own
    colours."""
    roles = {run.a: "A", run.b: "B", run.c: "C"}
    order = sorted(roles, key=lambda node: roles[node])
    rows = []
    for snap in run.snapshots:
        cells = []
        for node in order:
            entry, term, final = snap.held[node]
            cells.append(entry + (f" term {term}" if term is not None else "") + (" final" if final else ""))
        rows.append([snap.step, *cells])
    fills = {cell: COLOURS[1] + "50" if cell.startswith("X") else COLOURS[0] + "40"
             for row in rows for cell in row[1:] if cell[:1] in ("X", "Y")}
    text = table(f"Raft's Figure 8: what each node holds at index {run.index}", ["step",
                 *(f"{roles[node]} ({node})" for node in order)], rows, shaded=fills,
                 note="X: A's entry of term " + str(run.terms.get("t1")) + "; Y: C's no-op of term "
                 + str(run.terms.get("t2")) + "; final: committed on that node")
    return Picture(name="figure-8.svg", text=text, caption="Figure 8 step by step: X reaches a majority in (c) "
                   "and is still not committed, so C may replace it in (d) without losing anything committed")
