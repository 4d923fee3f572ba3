"""A latency matrix: per-pair one-way delays between a testnet's nodes, from regions (docs/TESTNET.md, "Latency
matrix").

```toml
[regions]            # every node in one region: node name (or index) = region
node0 = "eu"
node1 = "eu"
node2 = "us"
[latency_ms]         # one-way delay between two regions, both ways; same region: 0 unless given ("eu-eu" = 2)
"eu-us" = 80
```

`parse_matrix` checks a decoded document against the testnet's node names and returns a `LatencyMatrix`;
`delays()` is what the nemesis applies: for each node, the delay of its packets (or frames) to each other node.
A mistake is a `TestnetError` whose one line names the key. Nothing here reads a clock or does I/O except
`load_matrix`, which reads the file.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testnet.state import TestnetError

REGION_PATTERN = re.compile(r"^[A-Za-z0-9_.]{1,32}$")  # no '-': it separates the two regions of a pair key
MAX_DELAY_MS = 60_000.0
Delays = dict[str, dict[str, float]]  # node name -> peer name -> one-way delay in ms (only non-zero entries)


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyMatrix:
    """Each node's region and the one-way delay between two regions (a pair, either order)."""

    regions: dict[str, str]  # node name -> region
    pair_ms: dict[tuple[str, str], float]  # (region, region), sorted -> delay in ms

    def delay_ms(self, node: str, peer: str) -> float:
        """The one-way delay from `node` to `peer` (0 within a region unless the matrix gives one)."""
        first, second = sorted((self.regions[node], self.regions[peer]))
        return self.pair_ms.get((first, second), 0.0)

    def delays(self) -> Delays:
        """For every node, its non-zero delays to the others."""
        out: Delays = {}
        for node in self.regions:
            row = {peer: self.delay_ms(node, peer) for peer in self.regions if peer != node}
            out[node] = {peer: ms for peer, ms in row.items() if ms}
        return {node: row for node, row in out.items() if row}


def load_matrix(path: Path, node_names: Sequence[str]) -> LatencyMatrix:
    """Read and check a latency matrix file for a testnet whose nodes are `node_names`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TestnetError(f"--latency-matrix {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise TestnetError(f"--latency-matrix {path}: not UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TestnetError(f"--latency-matrix {path}: not valid TOML: {exc}") from None
    return parse_matrix(doc, node_names, where=f"--latency-matrix {path}")


def parse_matrix(doc: Mapping[str, Any], node_names: Sequence[str], *, where: str = "latency matrix",
                 ) -> LatencyMatrix:
    """Check a decoded matrix (`[regions]`, `[latency_ms]`) against the node names; TestnetError otherwise."""
    unknown = sorted(set(doc) - {"regions", "latency_ms"})
    if unknown:
        raise TestnetError(f"{where}: unknown key {unknown[0]!r} (known: regions, latency_ms)")
    regions_table, latency_table = doc.get("regions"), doc.get("latency_ms")
    if not isinstance(regions_table, Mapping) or not regions_table:
        raise TestnetError(f"{where}: [regions] is missing or empty (node = \"region\" for every node)")
    if not isinstance(latency_table, Mapping):
        raise TestnetError(f"{where}: [latency_ms] is missing (\"regionA-regionB\" = one-way delay in ms)")
    regions = _regions(regions_table, node_names, where)
    used = set(regions.values())
    pair_ms: dict[tuple[str, str], float] = {}
    for key, value in latency_table.items():
        first, second = _pair(key, used, where)
        pair = (first, second) if first <= second else (second, first)
        if pair in pair_ms:
            raise TestnetError(f"{where}: latency_ms.{key!r} gives the pair {pair[0]}-{pair[1]} a second time (a "
                               "pair's delay is one number, both ways)")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not 0 <= value <= MAX_DELAY_MS:
            raise TestnetError(f"{where}: latency_ms.{key!r} must be a number of ms in [0, {MAX_DELAY_MS:g}], "
                               f"got {value!r}")
        pair_ms[pair] = float(value)
    names = sorted(used)
    missing = [f"{a}-{b}" for i, a in enumerate(names) for b in names[i + 1:] if (a, b) not in pair_ms]
    if missing:
        raise TestnetError(f"{where}: no delay for {', '.join(missing)} in [latency_ms] (give every pair of "
                           "regions the nodes are in; within one region the default is 0)")
    return LatencyMatrix(regions=regions, pair_ms=pair_ms)


def _regions(table: Mapping[str, Any], node_names: Sequence[str], where: str) -> dict[str, str]:
    by_ref = {name: name for name in node_names} | {str(index): name for index, name in enumerate(node_names)}
    regions: dict[str, str] = {}
    for key, region in table.items():
        name = by_ref.get(str(key))
        if name is None:
            raise TestnetError(f"{where}: regions.{key}: not a node of this testnet ({', '.join(node_names)}, or "
                               f"0..{len(node_names) - 1})")
        if name in regions:
            raise TestnetError(f"{where}: regions.{key}: {name} is given a region twice")
        if not isinstance(region, str) or not REGION_PATTERN.match(region):
            raise TestnetError(f"{where}: regions.{key}: a region is a name of letters, digits, '_' or '.' (no "
                               f"'-'), got {region!r}")
        regions[name] = region
    unplaced = [name for name in node_names if name not in regions]
    if unplaced:
        raise TestnetError(f"{where}: no region for {', '.join(unplaced)} (every node needs one)")
    return {name: regions[name] for name in node_names}


def _pair(key: str, used: set[str], where: str) -> tuple[str, str]:
    parts = key.split("-")
    if len(parts) != 2 or not all(REGION_PATTERN.match(part) for part in parts):
        raise TestnetError(f"{where}: latency_ms.{key!r}: want \"regionA-regionB\", e.g. \"eu-us\"")
    unknown = [part for part in parts if part not in used]
    if unknown:
        raise TestnetError(f"{where}: latency_ms.{key!r}: no node is in region {unknown[0]!r} (regions: "
                           f"{', '.join(sorted(used))})")
    return parts[0], parts[1]


def delays_by_index(delays: Delays, node_names: Sequence[str]) -> dict[int, dict[int, float]]:
    """The same delays keyed by node index (what the kernel's per-destination filters need)."""
    index = {name: i for i, name in enumerate(node_names)}
    return {index[node]: {index[peer]: ms for peer, ms in row.items() if peer in index}
            for node, row in delays.items() if node in index}
