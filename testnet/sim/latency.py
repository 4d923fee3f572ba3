"""A latency matrix (pure): nodes placed in world regions, each pair of regions with its own one-way delay.

A message from a node in region A to a node in region B takes the matrix's base delay for (A, B) plus the
network model's draw (networks.py), which then plays the jitter and queueing on top of the propagation delay.
Nodes are placed in regions by their weights, spread over the node indices so that every region holds
miners and relays alike (node i goes to the region its golden-ratio point falls in): no random draw, so a run
with a matrix draws exactly what the same run without one draws.

The matrix comes from a TOML table (`chainlab sim --latency FILE`):

    regions = ["eu", "us", "asia"]
    weights = [0.4, 0.35, 0.25]          # shares of the nodes (normalised; default: equal)
    [delay_ms]                          # one-way, symmetric; the diagonal is the delay within a region
    eu   = [10, 45, 110]
    us   = [45, 10, 90]
    asia = [110, 90, 15]

or the built-in `WORLD`, five regions with delays of the order public round-trip tables give (half the
round trip between well-connected data centres). `LatencyError` names what is wrong in one line.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_DELAY_MS = 10_000.0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


class LatencyError(ValueError):
    """A latency table that does not describe a matrix (code `bad-latency-matrix`)."""

    code = "bad-latency-matrix"


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyMatrix:
    """Regions, their weights (summing to 1) and one-way delays in seconds (square, symmetric)."""

    name: str
    regions: tuple[str, ...]
    weights: tuple[float, ...]
    delay_s: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        count = len(self.regions)
        if count == 0 or len(self.weights) != count or len(self.delay_s) != count:
            raise LatencyError("a latency matrix needs one weight and one row of delays per region")
        if any(len(row) != count for row in self.delay_s):
            raise LatencyError(f"every row of delays needs {count} entries (one per region)")

    def placement(self, nodes: int) -> list[int]:
        """The region index of every node 0..n-1 (by weight, spread over the indices; no draw)."""
        bounds = []
        total = 0.0
        for weight in self.weights:
            total += weight
            bounds.append(total)
        placed = []
        for node in range(nodes):
            point = (node * _GOLDEN) % 1.0
            placed.append(next((i for i, bound in enumerate(bounds) if point < bound), len(bounds) - 1))
        return placed

    def describe(self) -> str:
        """One line for the report."""
        return f"{self.name}: " + ", ".join(f"{r} {w:.0%}" for r, w in zip(self.regions, self.weights, strict=True))

    def to_json(self) -> dict[str, object]:
        """JSON values."""
        return {"name": self.name, "regions": list(self.regions), "weights": [round(w, 4) for w in self.weights],
                "delay_ms": [[round(d * 1000, 3) for d in row] for row in self.delay_s]}


def matrix_of(name: str, table: Mapping[str, Any]) -> LatencyMatrix:
    """The matrix a parsed TOML table describes; LatencyError for anything else."""
    unknown = set(table) - {"regions", "weights", "delay_ms"}
    if unknown:
        raise LatencyError(f"unknown key(s) {', '.join(sorted(unknown))} (known: regions, weights, delay_ms)")
    regions = table.get("regions")
    if not isinstance(regions, list) or not regions or not all(isinstance(r, str) and r for r in regions):
        raise LatencyError("regions must be a non-empty list of region names")
    if len(set(regions)) != len(regions):
        raise LatencyError("regions must be distinct")
    weights = table.get("weights", [1.0] * len(regions))
    if not isinstance(weights, list) or len(weights) != len(regions) or not all(_number(w) for w in weights):
        raise LatencyError(f"weights must be a list of {len(regions)} numbers (one per region)")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise LatencyError("weights must not be negative, and not all zero")
    rows = table.get("delay_ms")
    if not isinstance(rows, dict):
        raise LatencyError("delay_ms must be a table with one row per region")
    missing = [r for r in regions if r not in rows]
    extra = sorted(set(rows) - set(regions))
    if missing or extra:
        raise LatencyError(f"delay_ms rows must be exactly the regions (missing: {', '.join(missing) or '-'}; "
                           f"unknown: {', '.join(extra) or '-'})")
    delays: list[tuple[float, ...]] = []
    for region in regions:
        row = rows[region]
        if not isinstance(row, list) or len(row) != len(regions) or not all(_number(d) for d in row):
            raise LatencyError(f"delay_ms.{region} must be a list of {len(regions)} numbers (milliseconds)")
        if any(not 0 <= d <= MAX_DELAY_MS for d in row):
            raise LatencyError(f"delay_ms.{region}: delays must be within 0..{MAX_DELAY_MS:g} ms")
        delays.append(tuple(float(d) / 1000.0 for d in row))
    for i, a in enumerate(regions):
        for j, b in enumerate(regions):
            if delays[i][j] != delays[j][i]:
                raise LatencyError(f"delay_ms is not symmetric: {a}->{b} {delays[i][j] * 1000:g} ms, "
                                   f"{b}->{a} {delays[j][i] * 1000:g} ms")
    total = float(sum(weights))
    return LatencyMatrix(name=name, regions=tuple(regions), weights=tuple(float(w) / total for w in weights),
                         delay_s=tuple(delays))


def parse_latency(name: str, text: str) -> LatencyMatrix:
    """A matrix from TOML text (`name` names it in reports and errors); LatencyError otherwise."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LatencyError(f"{name}: not TOML: {exc}") from None
    try:
        return matrix_of(name, table)
    except LatencyError as exc:
        raise LatencyError(f"{name}: {exc}") from None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _world() -> LatencyMatrix:
    # One-way delays (ms), half the round trips commonly measured between well-connected data centres
    # (e.g. Frankfurt-Virginia ~90 ms RTT, Virginia-Oregon ~70, Frankfurt-Singapore ~160, Virginia-Sao Paulo ~120).
    regions = ("europe", "us-east", "us-west", "asia", "south-america")
    rows: Sequence[Sequence[float]] = (
        (8, 45, 75, 85, 100),
        (45, 8, 35, 110, 60),
        (75, 35, 8, 80, 90),
        (85, 110, 80, 10, 160),
        (100, 60, 90, 160, 10),
    )
    return LatencyMatrix(name="world", regions=regions, weights=(0.3, 0.25, 0.15, 0.2, 0.1),
                         delay_s=tuple(tuple(d / 1000.0 for d in row) for row in rows))


WORLD = _world()
BUILT_IN = {"world": WORLD}
