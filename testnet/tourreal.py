"""The theory tour's real-process runs (tour/model.py `RealRuns`): the shell that starts node processes for the
`cap` and `blockchain` demonstrations, observes them through RPC and takes everything down again.

`observe_blockchain` brings up three PoW nodes on 127.0.0.1 (free ports, 1 s blocks, finality after 3), stops
one of them while the other two mine, starts it again and times its catch-up, then reads every node's chain and
finality through RPC. Whatever happens, every node it started is stopped by pid before it returns; the processes
still alive after that are part of the result (there must be none). The judging is pure (tour/demos/blockchain.py).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.client import RpcClient, RpcError, RpcUnavailable
from testnet import launcher
from testnet.state import NodeRecord, Testnet, TestnetError, save_testnet
from tour.model import count

BLOCK_INTERVAL_S = 1.0
FINALITY_THRESHOLD = 3
NODES = 3
LATE = 2  # the node that is stopped while the others mine
MINE_S = {False: 6.0, True: 4.0}  # how long the late node stays down (by `fast`)
SETTLE_S = {False: 4.0, True: 2.0}  # after it is back and caught up
CATCH_UP_BOUND_S = 15.0
LEAD_BLOCKS = 3  # the others mine at least this many blocks while the late node is down
FINAL_MINERS = 2  # the run settles until the final blocks come from this many nodes (what `mining` judges)
PHASE_BOUND_S = 20.0  # the longest any phase waits for its blocks (a loaded machine mines slower)
RPC_TIMEOUT_S = 3.0

Progress = Callable[[str], None]


def _client(record: NodeRecord) -> RpcClient:
    return RpcClient(record.rpc_url, timeout_s=RPC_TIMEOUT_S)


def _height(record: NodeRecord, field: str = "height") -> int | None:
    """The node's `height` (or `final_height`) from its status; None when it does not answer."""
    try:
        return int(_client(record).status()[field])
    except (RpcError, RpcUnavailable, KeyError, TypeError, ValueError):
        return None


def _sample(testnet: Testnet, started: float, samples: list[dict[str, Any]]) -> None:
    """One sample of every running node's height and final height (a stopped node: None)."""
    row: dict[str, Any] = {"t_s": round(time.monotonic() - started, 2)}
    for record in testnet.nodes:
        try:
            status = _client(record).status() if record.state == "running" else None
        except (RpcError, RpcUnavailable):
            status = None
        row[record.name] = None if status is None else {"height": status["height"], "final": status["final_height"]}
    samples.append(row)


def _chain_of(record: NodeRecord, up_to: int) -> list[dict[str, Any]]:
    client = _client(record)
    blocks: list[dict[str, Any]] = []
    while len(blocks) < up_to:
        page = client.blocks(from_height=len(blocks) + 1, limit=min(50, up_to - len(blocks)))
        if not page:
            break
        blocks += [{"height": b["height"], "hash": b["hash"], "proposer": b["proposer"]} for b in page]
    return blocks


def _final_view(testnet: Testnet) -> dict[str, Any]:
    """Every node's status and its best chain up to its final height."""
    nodes: dict[str, Any] = {}
    for record in testnet.nodes:
        status = _client(record).status()
        nodes[record.name] = {"height": status["height"], "head": status["head"],
                              "final_height": status["final_height"], "final_hash": status["final_hash"],
                              "address": status["address"],
                              "chain": _chain_of(record, int(status["final_height"]))}
    return nodes


def _final_miners(record: NodeRecord) -> int:
    """How many nodes mined the node's final blocks (0 when it does not answer)."""
    final = _height(record, "final_height")
    try:
        return len({block["proposer"] for block in _chain_of(record, final)}) if final else 0
    except (RpcError, RpcUnavailable):
        return 0


def _wait_caught_up(record: NodeRecord, target: int, bound_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < bound_s:
        height = _height(record)
        if height is not None and height >= target:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def observe_blockchain(directory: Path, seed: int, fast: bool, progress: Progress,
                       on_explorer: Callable[[str], None]) -> dict[str, Any]:
    """Run the blockchain demonstration's testnet in `directory` (which must not hold one) and return what was
    observed: `{"explorer", "block_interval_s", "finality_threshold", "elapsed_s", "samples", "late", "nodes",
    "left", "error"}`. Every node started is stopped before it returns."""
    options = launcher.UpOptions(nodes=NODES, consensus="pow", directory=directory, seed=f"tour-{seed}",
                                 genesis_params={"block_interval_s": BLOCK_INTERVAL_S,
                                                 "finality_threshold": FINALITY_THRESHOLD}, load_accounts=4)
    observed: dict[str, Any] = {"block_interval_s": BLOCK_INTERVAL_S, "finality_threshold": FINALITY_THRESHOLD,
                                "samples": [], "late": None, "nodes": {}, "left": [], "error": None,
                                "explorer": None, "dir": str(directory)}
    started = time.monotonic()
    testnet: Testnet | None = None
    try:
        testnet = launcher.up(options, progress)
        explorer = testnet.nodes[0].rpc_url.rstrip("/") + "/explorer/"
        observed["explorer"] = explorer
        progress(f"explorer: {explorer} (while the testnet runs, about {MINE_S[fast] + SETTLE_S[fast] + 4:.0f} s)")
        on_explorer(explorer)
        _observe(testnet, fast, progress, started, observed)
    except (TestnetError, RpcError, RpcUnavailable) as exc:
        observed["error"] = str(exc).splitlines()[0]
    finally:
        if testnet is not None:
            results = launcher.stop_nodes([r for r in testnet.nodes if r.pid], timeout_s=5.0)
            observed["left"] = [pid for result in results for pid in result["left"]]
            for record in testnet.nodes:
                record.state, record.pid = "stopped", None
            save_testnet(testnet)
        observed["elapsed_s"] = round(time.monotonic() - started, 2)
    return observed


def _observe(testnet: Testnet, fast: bool, progress: Progress, started: float, observed: dict[str, Any]) -> None:
    late = testnet.nodes[LATE]
    others = [record for record in testnet.nodes if record is not late]
    _sample(testnet, started, observed["samples"])
    stopped_at = _height(late) or 0
    launcher.stop_nodes([late], timeout_s=5.0)
    late.state, late.pid = "stopped", None
    progress(f"{late.name} stopped at height {stopped_at}; the other two mine for {MINE_S[fast]:.0f} s "
             f"and at least {LEAD_BLOCKS} blocks")
    # At least MINE_S, and until the others are LEAD_BLOCKS ahead (bounded): a loaded machine mines slower.
    floor, bound = time.monotonic() + MINE_S[fast], time.monotonic() + PHASE_BOUND_S
    while time.monotonic() < bound:
        time.sleep(0.5)
        _sample(testnet, started, observed["samples"])
        ahead = max(_height(record) or 0 for record in others) - stopped_at
        if time.monotonic() >= floor and ahead >= LEAD_BLOCKS:
            break
    launcher.start_node(testnet, late)
    late.state = "running"
    target = max(_height(record) or 0 for record in testnet.nodes if record is not late)
    # From the height it stopped at (it mines nothing while down): read after the start, its height may already
    # be the network's, when the sync was quicker than this request.
    behind = target - stopped_at
    progress(f"{late.name} started again, {count(behind, 'block')} behind (network at {target}); syncing")
    catch_up_s = _wait_caught_up(late, target, CATCH_UP_BOUND_S)
    observed["late"] = {"name": late.name, "stopped_at_height": stopped_at, "network_height": target,
                        "behind": behind, "caught_up": catch_up_s is not None,
                        "catch_up_s": None if catch_up_s is None else round(catch_up_s, 2),
                        "bound_s": CATCH_UP_BOUND_S}
    # At least SETTLE_S, and until a block mined while the late node was away is final on every node and the final
    # blocks come from FINAL_MINERS nodes (bounded): with 1 s blocks a short run's three or four final blocks were
    # sometimes all one miner's, and `mining` failed on a chance, not on the network.
    floor, bound = time.monotonic() + SETTLE_S[fast], time.monotonic() + PHASE_BOUND_S
    while time.monotonic() < bound:
        time.sleep(0.5)
        _sample(testnet, started, observed["samples"])
        finals = [_height(record, "final_height") for record in testnet.nodes]
        if (time.monotonic() >= floor and all(f is not None and f > stopped_at for f in finals)
                and _final_miners(testnet.nodes[0]) >= FINAL_MINERS):
            break
    observed["nodes"] = _final_view(testnet)


@dataclass(frozen=True, slots=True)
class TourRealRuns:
    """The `RealRuns` cli/tour.py gives the demonstrations: runs go under `out/<concept>/`, progress lines to
    `progress`, and `open_explorer` is called with the explorer's URL while the blockchain testnet runs."""

    out: Path
    progress: Progress
    open_explorer: Callable[[str], None]

    def _fresh(self, concept: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{concept}-run-", dir=self.out))

    def cap(self, seed: int) -> Mapping[str, Any]:
        """`chainlab testnet cap` (both engines) into a fresh directory under `out`."""
        from testnet.cap import run_cap

        return run_cap(self._fresh("cap"), seed, self.progress)

    def blockchain(self, seed: int, fast: bool) -> Mapping[str, Any]:
        """`observe_blockchain` into a fresh directory under `out`."""
        return observe_blockchain(self._fresh("blockchain") / "testnet", seed, fast, self.progress,
                                  self.open_explorer)
