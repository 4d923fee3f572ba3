"""Event model, causality and vector clocks (事件模型、因果关系与向量时钟), shown on a PoW fork.

Three PoW miners with block times close to their message delays fork now and then: two of them mine a block at
the same height, each before hearing of the other's. The simulator traces the run (testnet/sim/causal.py: every
send, receive and decision with its vector clock, the format of causality/events.py), and the trace is read back
with causality/graph.py, the code behind `chainlab trace`. Three questions about the fork, answered by the clocks
and cross-checked against the chains of messages the trace holds:

- the two fork blocks were mined concurrently (neither clock is below the other, and no chain of messages links
  them): the cause of the fork;
- a block's arrival anywhere happened after its mining (the clocks say before, and a chain of messages proves it);
- the node that resolved the fork (its reorg) had both blocks in its causal past: it chose knowing both.

The checks fail on clocks that do not merge what a message carries (each node counting only its own events): the
run is the same, but the clocks no longer see across nodes.
"""

from __future__ import annotations

from collections.abc import Callable

from causality.clocks import Order
from causality.diagram import Filters, render_html, render_svg, select
from causality.events import TraceEvent, parse_trace
from causality.formatter import TraceFormatter
from causality.graph import TraceGraph
from testnet.checks import CheckResult
from testnet.sim.causal import CausalTracer
from testnet.sim.config import SimConfig
from testnet.sim.core import CoreFactory
from testnet.sim.simulator import SimResult, Simulator
from tour.model import Outcome, Picture, TourContext, seeds_from

ATTEMPTS = 5  # seeds tried (from --seed up) until a run forks and a node reorganises
DRAWN_KINDS = ("block", "block-inv", "getblocks", "blocks", "block-mined", "block-connected", "reorg")

EventRewrite = Callable[[TraceEvent], TraceEvent]


def _config(seed: int) -> SimConfig:
    return SimConfig(seed=seed, consensus="pow", nodes=3, duration_s=60.0, faults=frozenset(), model="synchronous",
                     block_interval_s=2.0, finality_threshold=4, max_delay_s=1.0, tx_rate_per_s=0.0,
                     liveness_budget_s=30.0)


def _traced_run(seed: int, core_factory: CoreFactory) -> tuple[SimResult, list[str]]:
    """The run and its trace's lines (made in memory: the tracer's formatter writes to a list)."""
    chunks: list[str] = []
    tracer = CausalTracer(sink=TraceFormatter(chunks.append).feed)
    result = Simulator(_config(seed), core_factory, tracer=tracer).run()
    return result, "".join(chunks).splitlines()


def _fork(graph: TraceGraph) -> tuple[int, int, int] | None:
    """The first fork that a node resolved: two block-mined events at one height that the trace links by no chain of
    messages, and the first reorg whose node learned of both (by the chains of messages, not the clocks)."""
    mined: dict[int, list[int]] = {}
    for index, event in enumerate(graph.events):
        height = event.detail.get("height")
        if event.what == "block-mined" and isinstance(height, int):
            mined.setdefault(height, []).append(index)
    reorgs = [i for i, e in enumerate(graph.events) if e.what == "reorg"]
    for height in sorted(mined):
        for a in mined[height]:
            for b in mined[height]:
                if a >= b or graph.chain(a, b) is not None or graph.chain(b, a) is not None:
                    continue
                for reorg in reorgs:
                    if graph.chain(a, reorg) is not None and graph.chain(b, reorg) is not None:
                        return a, b, reorg
    return None


def _arrivals(graph: TraceGraph, mined: int) -> list[int]:
    block = graph.events[mined].detail.get("block")
    return [i for i, e in enumerate(graph.events)
            if e.what == "block-connected" and e.detail.get("block") == block and e.node != graph.events[mined].node]


def _mined(graph: TraceGraph, index: int) -> str:
    event = graph.events[index]
    return (f"{graph.name(index)} mined {str(event.detail.get('block'))[:12]} with clock "
            f"{dict(sorted(event.vc.items()))}")


def run(context: TourContext, *, rewrite: EventRewrite | None = None) -> Outcome:
    """The demonstration; `rewrite` changes every trace event before the graph is built (a test plants clocks
    that do not merge on receive)."""
    for seed in seeds_from(context.seed, ATTEMPTS):
        result, lines = _traced_run(seed, context.core_factory)
        graph = TraceGraph(rewrite(e) if rewrite else e for e in parse_trace(lines, source="simulated run"))
        found = _fork(graph)
        if found is not None:
            return _judge(context, seed, result, graph, *found)
    return Outcome(concept="causality", seed=context.seed, lines=(f"no fork resolved in {ATTEMPTS} seeds",),
                   checks=(CheckResult(name="fork-found", ok=False, detail=f"no run of {ATTEMPTS} seeds forked"),))


def _judge(context: TourContext, seed: int, result: SimResult, graph: TraceGraph, a: int, b: int,
           reorg: int) -> Outcome:
    ea, eb = graph.events[a], graph.events[b]
    height = ea.detail.get("height")
    fork = graph.relation(a, b)
    # The fork block that lost may never be connected anywhere else (seed 5): follow the one that travelled.
    shown = a if _arrivals(graph, a) or not _arrivals(graph, b) else b
    arrivals = _arrivals(graph, shown)
    hb = [graph.relation(shown, i) for i in arrivals]
    knew = [graph.order(x, reorg) for x in (a, b)]
    trace_file = "run.jsonl"
    lines = [
        f"3 PoW miners, 2 s blocks, delays up to 1 s; seed {seed}: {len(graph):,} trace events",
        f"fork at height {height}: {_mined(graph, a)}, {_mined(graph, b)}",
        f"  vector clocks: {fork.order.value} (Lamport times {ea.lamport} and {eb.lamport} would order them, "
        "wrongly)",
        (f"  {graph.name(shown)}'s block reached the other nodes at "
         + ", ".join(f"{graph.name(i)} (mining {'happened before' if r.order is Order.BEFORE else r.order.value} "
                     f"it, through a chain of {len(r.chain or ())} events)"
                     for i, r in zip(arrivals, hb, strict=True))
         if arrivals else "  neither fork block was connected on another node"),
        f"  {graph.name(reorg)}, the reorg that settled the fork: "
        + ("both fork blocks happened before it" if all(o is Order.BEFORE for o in knew) else
           "the fork blocks are " + " and ".join(order.value for order in knew) + " it"),
        f"replay: {result.config.command()} --trace {trace_file}",
        f"then: chainlab trace concurrent {trace_file} --what block-mined --same height; "
        f"chainlab trace hb {trace_file} {graph.name(a)} {graph.name(b)}",
    ]
    checks = (
        CheckResult(name="fork-blocks-concurrent", ok=fork.order is Order.CONCURRENT and fork.complete, detail=(
            f"{graph.name(a)} ‖ {graph.name(b)}: neither clock is below the other and no chain of messages links "
            "them" if fork.order is Order.CONCURRENT and fork.complete else
            f"the clocks say {fork.order.value} for two blocks no chain of messages links")),
        CheckResult(name="delivery-happens-after-mining",
                    ok=bool(hb) and all(r.order is Order.BEFORE and r.complete for r in hb), detail=(
            f"{len(hb)} arrivals of {graph.name(shown)}'s block, each after its mining by the clocks, with a chain of "
            "messages" if hb and all(r.order is Order.BEFORE and r.complete for r in hb) else
            "neither fork block was connected on another node: no arrival to judge" if not hb else
            "an arrival the chain of messages puts after the mining is not after it by the clocks: "
            + "; ".join(r.note or r.order.value for r in hb))),
        CheckResult(name="resolution-knows-both", ok=all(order is Order.BEFORE for order in knew), detail=(
            f"both fork blocks happened before {graph.name(reorg)}'s reorg" if all(o is Order.BEFORE for o in knew)
            else f"the clocks put the fork blocks {', '.join(o.value for o in knew)} the reorg that chose between "
                 "them")),
    )
    # The diagram's window counts from the trace's first event (as `chainlab trace diagram --from`), not from 0.
    origin = min(event.time_ns for event in graph.events)
    start = (min(ea.time_ns, eb.time_ns) - origin) / 1e9 - 1.0
    end = (graph.events[reorg].time_ns - origin) / 1e9 + 0.5
    drawing = select(graph, Filters(from_s=start, to_s=end, kinds=DRAWN_KINDS))
    pictures = (
        Picture(name="spacetime.svg", caption="the fork's space-time diagram: block messages and decisions",
                text=render_svg(graph, drawing)),
        Picture(name="spacetime.html", caption="the same, interactive: click an event to see its past and future",
                text=render_html(graph, drawing, title=f"PoW fork at height {height}")),
    )
    figures = {"seed": seed, "events": len(graph), "fork": [graph.name(a), graph.name(b)], "height": height,
               "reorg": graph.name(reorg), "lamport": [ea.lamport, eb.lamport],
               "arrivals": [graph.name(i) for i in arrivals], "simulator_ok": result.ok}
    return Outcome(concept="causality", seed=context.seed, lines=tuple(lines), checks=checks, figures=figures,
                   pictures=pictures)
