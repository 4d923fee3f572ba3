"""pytest-benchmark suite (`make bench`): each benchmark times the hot path and records, in `extra_info`, the
measurement against its limit taken in the same run (the ratio the issue targets).

The same measurements are drawn (cli/plots.py) into $CHAINLAB_BENCH_PLOTS (default bench-out/, not committed) at
the end of the run: bench-validate.svg, bench-rpc.svg, bench-store.svg, bench-reorg.svg, bench-sync.svg,
bench-mine.svg, for those benchmarks that ran. docs/PERFORMANCE.md "Plots" shows the committed pictures, drawn by
`chainlab bench ... --plot` at the parameters it gives.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli import plots

PLOTS_DIR_ENV = "CHAINLAB_BENCH_PLOTS"
# figure name -> (draw, whether it takes every recorded result or the last one)
_DRAWN: dict[str, tuple[Callable[..., None], bool]] = {
    "validate": (plots.validation, True), "rpc": (plots.rpc, True), "store": (plots.store, False),
    "reorg": (plots.reorg, False), "sync": (plots.sync, False), "mine": (plots.mining, False),
}
_recorded: dict[str, list[dict[str, Any]]] = {}


@pytest.fixture
def figures() -> Callable[[str, dict[str, Any]], None]:
    """`figures(name, result)` records a measurement for the end-of-run plot `name` (a key of _DRAWN)."""
    def record(name: str, result: dict[str, Any]) -> None:
        assert name in _DRAWN, name
        _recorded.setdefault(name, []).append(dict(result))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Draw what the run recorded, and say where (or why not)."""
    if not _recorded:
        return
    directory = Path(os.environ.get(PLOTS_DIR_ENV) or "bench-out")
    try:
        plots.require_matplotlib()
    except plots.PlotError as exc:
        terminalreporter.write_line(f"bench plots not drawn: {exc}")
        return
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, results in sorted(_recorded.items()):
        draw, takes_all = _DRAWN[name]
        target = directory / f"bench-{name}.svg"
        draw(results if takes_all else results[-1], target)
        written.append(target.name)
    terminalreporter.write_line(f"bench plots in {directory}/: {', '.join(written)}")
