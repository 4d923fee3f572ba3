"""The blockchain as a distributed system (区块链作为分布式系统): a real PoW testnet seen through RPC.

Three node processes on this machine (testnet/tourreal.py `observe_blockchain`): 1 s blocks, a block final
three deep. One node is stopped while the other two mine, then started again. What the RPC answers show:

- mining: blocks proposed by more than one node are on the chain (hash power is shared, not one leader's);
- gossip: every node holds the same blocks up to their common final height, the others' blocks included;
- sync: the stopped node came back behind and caught up with the network within a bound;
- finality: every node finalised blocks, no node's final height went back, and all agree on the final blocks;
- cleanup: no process of the run was left alive.

The judging here is pure (`judge` takes the observations as JSON values), so a test plants a bad observation
(a late node that never catches up, a final block two nodes disagree on) and sees the check fail.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from testnet.checks import CheckResult
from tour import svg
from tour.model import Outcome, Picture, TourContext, count

CONCEPT = "blockchain"


def _common_chain(nodes: Mapping[str, Mapping[str, Any]]) -> tuple[int, list[str]]:
    """The common final height, and the nodes whose chain up to it differs from the first node's."""
    common = min(int(view["final_height"]) for view in nodes.values())
    chains = {name: [block["hash"] for block in view["chain"][:common]] for name, view in nodes.items()}
    first = next(iter(chains.values()))
    return common, [name for name, chain in chains.items() if chain != first or len(chain) < common]


def _final_went_back(samples: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    back = []
    for name in names:
        finals = [sample[name]["final"] for sample in samples if sample.get(name)]
        if any(later < earlier for earlier, later in itertools.pairwise(finals)):
            back.append(name)
    return back


def _checks(observed: Mapping[str, Any]) -> list[CheckResult]:
    nodes: Mapping[str, Mapping[str, Any]] = observed["nodes"]
    common, differing = _common_chain(nodes)
    chain = next(iter(nodes.values()))["chain"][:common]
    names_by_address = {view["address"]: name for name, view in nodes.items()}
    proposers = sorted({names_by_address.get(block["proposer"], block["proposer"]) for block in chain})
    late = observed["late"]
    back = _final_went_back(observed["samples"], list(nodes))
    left = observed["left"]
    finals = ", ".join(f"{name} {view['final_height']}" for name, view in nodes.items())
    return [
        CheckResult(name="mining", ok=len(proposers) >= 2, detail=(
            f"the {common} final blocks were mined by {len(proposers)} nodes ({', '.join(proposers)})")),
        CheckResult(name="gossip", ok=common >= 1 and not differing, detail=(
            f"every node holds the same {common} final blocks, each node's blocks on the others' chains"
            if common >= 1 and not differing else
            "no block is final on every node" if common < 1 else
            f"{', '.join(differing)} hold other blocks up to height {common}")),
        CheckResult(name="sync", ok=late["behind"] >= 1 and late["caught_up"], detail=(
            f"{late['name']} came back {count(late['behind'], 'block')} behind and caught up in {late['catch_up_s']} s"
            if late["behind"] >= 1 and late["caught_up"] else
            f"{late['name']} came back level with the network: nothing to sync" if late["behind"] < 1 else
            f"{late['name']} came back {count(late['behind'], 'block')} behind and had not caught up after "
            f"{late['bound_s']} s")),
        CheckResult(name="finality", ok=common >= 1 and not differing and not back, detail=(
            f"final heights {finals}, never lowered, the "
            "final blocks the same on every node" if common >= 1 and not differing and not back else
            f"final height lowered on {', '.join(back)}" if back else
            "the nodes disagree on final blocks" if differing else "nothing final on every node")),
        CheckResult(name="cleanup", ok=not left, detail=(
            "every node process started was stopped" if not left else f"processes left alive: {left}")),
    ]


def _picture(observed: Mapping[str, Any]) -> Picture:
    samples: Sequence[Mapping[str, Any]] = observed["samples"]
    names = list(observed["nodes"])
    series: dict[str, list[float]] = {}
    for name in names:
        last, values = 0.0, []
        for sample in samples:
            if sample.get(name):
                last = float(sample[name]["height"])
            values.append(last)
        series[f"{name} height"] = values
    times = [float(sample["t_s"]) for sample in samples]
    late = observed["late"]["name"]
    down = [float(s["t_s"]) for s in samples if not s.get(late)]
    shaded = [(min(down), max(down), f"{late} stopped")] if down else []
    text = svg.lines_chart("Heights of the three PoW nodes (real processes)", times=times, series=series,
                           shaded=shaded, x_label="seconds", y_label="height")
    return Picture(name="heights.svg", text=text, caption=f"each node's height over the run; {late} stopped, "
                   "then catching up")


def judge(observed: Mapping[str, Any]) -> Outcome:
    """The verdict on `observe_blockchain`'s observations (the seed is the run's)."""
    seed = int(observed.get("seed", 0))
    if observed.get("error") or not observed.get("nodes") or not observed.get("late"):
        failed = CheckResult(name="testnet", ok=False,
                             detail=f"the testnet run did not complete: {observed.get('error') or 'no observations'}")
        cleanup = CheckResult(name="cleanup", ok=not observed.get("left"),
                              detail=f"processes left alive: {observed.get('left') or 'none'}")
        return Outcome(concept=CONCEPT, seed=seed, lines=(f"testnet directory {observed.get('dir')}",),
                       checks=(failed, cleanup))
    nodes: Mapping[str, Mapping[str, Any]] = observed["nodes"]
    late = observed["late"]
    lines = [f"{len(nodes)} PoW nodes, real processes on 127.0.0.1, {observed['block_interval_s']} s blocks, final "
             f"{observed['finality_threshold']} deep; explorer {observed['explorer']} (gone when the run ended)",
             f"{late['name']} stopped at height {late['stopped_at_height']}; started again at network height "
             f"{late['network_height']}, {count(late['behind'], 'block')} behind",
             *(f"{name}: height {view['height']}, final {view['final_height']} ({view['final_hash'][:12]}), head "
               f"{view['head'][:12]}" for name, view in nodes.items()),
             f"run {observed['elapsed_s']} s, testnet directory {observed['dir']}"]
    figures = {"elapsed_s": observed["elapsed_s"], "catch_up_s": late["catch_up_s"], "behind": late["behind"],
               "heights": {name: view["height"] for name, view in nodes.items()},
               "final_heights": {name: view["final_height"] for name, view in nodes.items()}}
    return Outcome(concept=CONCEPT, seed=seed, lines=tuple(lines), checks=tuple(_checks(observed)),
                   figures=figures, pictures=(_picture(observed),))


def run(context: TourContext) -> Outcome:
    """Start the testnet through the shell's real runner, then judge what it observed."""
    if context.real is None:
        return Outcome(concept=CONCEPT, seed=context.seed, lines=(),
                       checks=(CheckResult(name="testnet", ok=False, detail="no real-process runner was given"),))
    return judge({**context.real.blockchain(context.seed, context.fast), "seed": context.seed})
