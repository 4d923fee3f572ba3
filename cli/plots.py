"""Pictures of `chainlab bench` figures: `--plot FILE.svg` on the bench commands, and `make bench`'s plots.

Each plot draws a measurement next to the limit it is measured against in the same run (bare signature checks, the
in-memory validation, a file import, one core's worth of CPU, a real peer), with a title, axis labels with units
and a caption that names the machine and the date. matplotlib is an optional extra (`pip install
'chainlab[plot]'`): it is imported here only when a plot is drawn, so the CLI starts without it, and a missing one
is a one-line `PlotError`. Figures are drawn on `matplotlib.figure.Figure` directly (no pyplot: no interactive
backend, no global figure state) and written as SVG with a fixed hash salt, no date and text kept as text, so the
same figures give the same bytes and the committed pictures diff as text.
"""

from __future__ import annotations

import datetime
import importlib
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.common import fail
from testnet.bench_loop import machine_info

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'chainlab[plot]'"
# svg.hashsalt fixes the ids matplotlib derives for clip paths and glyphs (random otherwise); svg.fonttype "none"
# writes text as <text> (smaller, searchable, and stable across font versions) rather than glyph outlines.
_RC = {"svg.hashsalt": "chainlab-bench", "svg.fonttype": "none", "font.size": 9.0, "axes.titlesize": 10.0,
       "axes.spines.top": False, "axes.spines.right": False, "legend.fontsize": 8.0, "legend.frameon": False}
MEASURED, LIMIT, PEER = "#2f6db5", "#9a9a9a", "#d9822b"


class PlotError(Exception):
    """A plot cannot be made, for a reason the user can fix: matplotlib is missing, or the file cannot be written."""


def _matplotlib() -> Any:
    """The matplotlib package, or PlotError saying how to install it."""
    try:
        return importlib.import_module("matplotlib")
    except ImportError:
        raise PlotError(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}") from None


def require_matplotlib() -> None:
    """Return if matplotlib can be imported, else raise PlotError saying how to install it."""
    _matplotlib()


def check_target(path: str) -> Path:
    """`path` as the SVG file to write, or PlotError: checked before measuring, so that minutes of benchmark are
    not lost to a typo or a missing matplotlib."""
    target = Path(path)
    if target.suffix.lower() != ".svg":
        raise PlotError(f"--plot {path}: the file name must end in .svg (plots are written as SVG)")
    if target.is_dir():
        raise PlotError(f"--plot {path}: is a directory")
    if not target.parent.is_dir():
        raise PlotError(f"--plot {path}: directory {target.parent} does not exist")
    _matplotlib()
    return target


def option(function: Callable[..., Any]) -> Callable[..., Any]:
    """`--plot FILE.svg`: the command also draws its figures (cli/plots.py; needs the `plot` extra)."""
    return click.option("--plot", "plot_path", metavar="FILE.svg", default=None,
                        help="also draw the figures against their limit into this SVG file (needs matplotlib: "
                             f"{INSTALL_HINT})")(function)


def target_or_fail(path: str | None) -> Path | None:
    """The checked --plot file, or a one-line error now, before the measuring starts."""
    if path is None:
        return None
    try:
        return check_target(path)
    except PlotError as exc:
        fail(str(exc))


def draw_or_fail(target: Path | None, draw: Callable[[Path], None]) -> None:
    """Draw into `target` when --plot was given, saying where on stderr (stdout stays the figures or the JSON)."""
    if target is None:
        return
    try:
        draw(target)
    except PlotError as exc:
        fail(str(exc))
    click.echo(f"plot written to {target}", err=True)


def caption(machine: Mapping[str, Any] | None = None, date: str | None = None) -> str:
    """What a figure was measured on, and when: CPUs, CPU model, platform, Python, date (UTC)."""
    info = machine_info() if machine is None else machine
    when = date or datetime.datetime.now(datetime.UTC).date().isoformat()
    usable = info.get("cpus_usable")
    cpus = f"{info['cpu_count']} CPUs" + (f" ({usable} usable)" if usable not in (None, info["cpu_count"]) else "")
    return f"{cpus}, {info['cpu_model']}, {info.get('platform', '?')}, Python {info.get('python', '?')}; {when}"


@contextmanager
def _figure(path: Path, title: str, setup: str, *, columns: int = 1, rows: int = 1, date: str | None = None,
            width_in: float = 7.0, height_in: float = 4.2) -> Iterator[tuple[Figure, list[Axes]]]:
    """A figure of `rows` x `columns` axes titled `title`, with `setup` (the run's parameters) and the caption
    under it; written to `path` as SVG when the block ends."""
    matplotlib = _matplotlib()
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(width_in, height_in), layout="constrained")
        grid = figure.subplots(rows, columns, squeeze=False)
        figure.suptitle(title, fontweight="bold")
        # The footer (what was run, on what, when) sits below the area the layout engine arranges.
        footer_in = 0.42
        figure.get_layout_engine().set(rect=(0, footer_in / height_in, 1, 1 - footer_in / height_in))  # type: ignore[call-arg, union-attr]
        wrap = int(width_in * 16)
        figure.text(0.01, 0.02, "\n".join([*textwrap.wrap(setup, wrap)[:2], caption(date=date)]), fontsize=7,
                    color="#444444", va="bottom")
        yield figure, [axes for row in grid for axes in row]
        try:
            figure.savefig(path, format="svg", metadata={"Date": None})
        except OSError as exc:
            raise PlotError(f"--plot {path}: {exc.strerror or exc}") from None


def _label_bars(axes: Axes, bars: Any, texts: Sequence[str]) -> None:
    for bar, text in zip(bars, texts, strict=True):
        axes.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), xytext=(0, 2),
                      textcoords="offset points", ha="center", va="bottom", fontsize=7)


def validation(runs: Sequence[Mapping[str, Any]], path: Path, *, date: str | None = None) -> None:
    """`bench validate`: validation time per transaction against bare signature verification of the same block,
    one group of bars per worker count; the floor of W processes is bare verification spread over min(W, CPUs)."""
    cpus = int(machine_info()["cpus_usable"] or 1)
    sizes = sorted({int(run["txs"]) for run in runs})
    setup = (f"one block of {', '.join(map(str, sizes))} fresh transfers, validated and applied, against the same "
             f"signatures checked in a bare coincurve loop; median back-to-back rounds")
    with _figure(path, "Block validation against bare signature verification", setup, date=date) as (_, (axes,)):
        positions = list(range(len(runs)))
        per_tx = [(1e6 * run["verify_only_s"] / run["txs"], 1e6 * run["validate_s"] / run["txs"]) for run in runs]
        width = 0.38
        bare = axes.bar([x - width / 2 for x in positions], [b for b, _ in per_tx], width, color=LIMIT,
                        label="bare signature verification, 1 process")
        done = axes.bar([x + width / 2 for x in positions], [v for _, v in per_tx], width, color=MEASURED,
                        label="validation and state application")
        _label_bars(axes, bare, [f"{b:.1f}" for b, _ in per_tx])
        _label_bars(axes, done, [f"{v:.1f} µs\n{run['ratio']:.2f}x bare, {run['tx_per_s'] / 1e3:.1f}k tx/s"
                                 + (f"\n{run['speedup']:.2f}x one process" if "speedup" in run else "")
                                 for (_, v), run in zip(per_tx, runs, strict=True)])
        floor_label = "floor: bare verification / min(W, CPUs)"
        for x, (b, _), run in zip(positions, per_tx, runs, strict=True):
            if int(run["workers"]) > 1:
                axes.hlines(b / min(int(run["workers"]), cpus), x - width, x + width, colors="black",
                            linestyles="dashed", label=floor_label)
                floor_label = "_"  # one legend entry
        axes.set_xticks(positions, [f"W = {run['workers']}\n({run['txs']} txs)" for run in runs])
        axes.set_xlabel("processes checking signatures (--workers)")
        axes.set_ylabel("time per transaction (µs)")
        axes.set_ylim(0, max(v for pair in per_tx for v in pair) * 1.45)
        axes.legend(loc="upper right")


def rpc(runs: Sequence[Mapping[str, Any]], path: Path, *, date: str | None = None) -> None:
    """`bench rpc`: accepted transactions per second and latency against the number of concurrent clients, with
    the ceiling of one core's worth of the node's measured CPU per transaction."""
    runs = sorted(runs, key=lambda run: int(run["clients"]))
    clients = [int(run["clients"]) for run in runs]
    setup = (f"{max(int(run['txs']) for run in runs):,} signed transfers POSTed over HTTP by concurrent clients "
             "to one node process (mining off)")
    with _figure(path, "RPC submission throughput against clients", setup, columns=2, date=date,
                 width_in=8.0) as (_, (rate_axes, latency_axes)):
        rate_axes.plot(clients, [run["accepted_per_s"] for run in runs], "o-", color=MEASURED, label="accepted/s")
        ceiling = [(c, 1e6 / run["nodes_cpu_us_per_tx"]) for c, run in zip(clients, runs, strict=True)
                   if run.get("nodes_cpu_us_per_tx")]
        if ceiling:
            rate_axes.plot([c for c, _ in ceiling], [r for _, r in ceiling], "s--", color=LIMIT,
                           label="ceiling: one core / node CPU per tx")
        rate_axes.set_ylabel("accepted transactions per second (tx/s)")
        rate_axes.set_ylim(bottom=0)
        rate_axes.set_title("throughput")
        latency_axes.plot(clients, [run["p50_ms"] for run in runs], "o-", color=MEASURED, label="p50")
        latency_axes.plot(clients, [run["p99_ms"] for run in runs], "^--", color=PEER, label="p99")
        latency_axes.set_ylabel("submission latency (ms)")
        latency_axes.set_ylim(bottom=0)
        latency_axes.set_title("latency")
        for axes in (rate_axes, latency_axes):
            if len(clients) > 1 and max(clients) / min(clients) >= 4:
                axes.set_xscale("log", base=2)
            axes.set_xticks(clients, [str(c) for c in clients])
            axes.minorticks_off()
            axes.set_xlabel("concurrent clients (--clients)")
            axes.legend(loc="best")


def consensus(report: Mapping[str, Any], path: Path, *, date: str | None = None) -> None:
    """`bench consensus`: committed transfers per second and commit latency of the chainlab network, with the
    peer's (etcd under `--compare`) side by side."""
    systems = [(f"chainlab {report['consensus']}", report["committed_tx_per_s"], report["commit_p50_ms"],
                report["commit_p99_ms"], report["commit_max_ms"], MEASURED)]
    compare = report.get("compare")
    if compare:
        peer = str(compare["version"]).replace("Version: ", "etcd ")  # "chainlab raft" for another engine
        systems.append((peer, compare["writes_per_s"], compare["p50_ms"], compare["p99_ms"], compare["max_ms"], PEER))
    params = ", ".join(f"{k}={v}" for k, v in sorted(report["genesis_params"].items()))
    setup = (f"{report['nodes']} nodes, {report['clients']} closed-loop clients, {report['duration_s']:.0f} s "
             f"measured, durable writes ({params})")
    peer_name = "etcd" if not compare or compare.get("system") != "chainlab" else str(compare["consensus"])
    title = "Consensus: committed transfers" + (f" against {peer_name}" if compare else "")
    with _figure(path, title, setup, columns=2, date=date, width_in=8.0) as (_, (rate_axes, latency_axes)):
        names = [system[0] for system in systems]
        bars = rate_axes.bar(names, [system[1] for system in systems], 0.6, color=[system[5] for system in systems])
        _label_bars(rate_axes, bars, [f"{system[1]:,.0f}/s" for system in systems])
        rate_axes.set_ylabel("commits per second (final transfers or puts/s)")
        mine = "chainlab" if peer_name == "etcd" else str(report["consensus"])
        rate_axes.set_title("throughput" + (f" ({mine}/{peer_name} {compare['ratio_tx_per_s']:.2f})"
                                            if compare and compare.get("ratio_tx_per_s") is not None else ""))
        rate_axes.set_ylim(0, max(system[1] for system in systems) * 1.2 or 1)
        width = 0.8 / len(systems)
        for index, system in enumerate(systems):
            values = [value or 0.0 for value in system[2:5]]
            offset = (index - (len(systems) - 1) / 2) * width
            drawn = latency_axes.bar([x + offset for x in range(3)], values, width, color=system[5], label=system[0])
            _label_bars(latency_axes, drawn, [f"{value:.0f}" for value in values])
        latency_axes.set_xticks(range(3), ["p50", "p99", "max"])
        latency_axes.set_ylabel("commit latency (ms)")
        latency_axes.set_xlabel("percentile")
        latency_axes.set_title("latency")
        latency_axes.legend(loc="upper left")


def against_limit(path: Path, *, title: str, setup: str, unit: str, limit: tuple[str, float],
                  measured: tuple[str, float], note: str, date: str | None = None) -> None:
    """Two bars: a measurement and the limit it is measured against in the same run (`note` says the ratio)."""
    with _figure(path, title, setup, date=date, width_in=5.5, height_in=4.0) as (_, (axes,)):
        bars = axes.bar([limit[0], measured[0]], [limit[1], measured[1]], 0.55, color=[LIMIT, MEASURED])
        _label_bars(axes, bars, [f"{limit[1]:,.3g}", f"{measured[1]:,.3g}\n{note}"])
        axes.set_ylabel(unit)
        axes.set_ylim(0, max(limit[1], measured[1]) * 1.3 or 1)


def store(result: Mapping[str, Any], path: Path, *, date: str | None = None) -> None:
    """`bench store`: importing a chain into LevelDB against validating it in memory."""
    against_limit(path, title="Block store: LevelDB import against in-memory validation",
                  setup=f"{result['blocks']} blocks of {result['txs']} transfers", unit="seconds (s)",
                  limit=("validate in memory", result["validate_s"]), measured=("import into LevelDB",
                                                                                result["import_s"]),
                  note=f"store overhead {result['store_overhead']:+.0%}", date=date)


def reorg(result: Mapping[str, Any], path: Path, *, date: str | None = None) -> None:
    """`bench reorg`: switching to a rival branch against connecting the branch it replaces."""
    depth = result["depth"]
    against_limit(path, title="Reorg against connecting the same depth",
                  setup=f"depth {depth}, {result['txs']} transfers per block; the rival branch has {depth + 1} blocks",
                  unit="seconds (s)", limit=(f"connect {depth} blocks", result["connect_s"]),
                  measured=(f"reorg: undo {depth}, connect {depth + 1}", result["reorg_s"]),
                  note=f"{result['ratio']:.2f}x connect", date=date)


def sync(result: Mapping[str, Any], path: Path, *, date: str | None = None) -> None:
    """`bench sync`: a fresh node syncing from a peer over loopback against importing the blocks from a file."""
    against_limit(path, title="Sync over loopback against a file import",
                  setup=f"{result['blocks']} blocks of {result['txs']} transfers, one serving node process",
                  unit="blocks per second (blocks/s)", limit=("import from a file", result["import_blocks_per_s"]),
                  measured=("sync from a peer", result["sync_blocks_per_s"]),
                  note=f"{result['ratio']:.2f}x the import", date=date)


def mining(result: Mapping[str, Any], path: Path, *, date: str | None = None) -> None:
    """`bench mine`: the node's nonce loop against a bare double-SHA-256 loop over 80-byte headers."""
    against_limit(path, title="Mining loop against bare double SHA-256",
                  setup=f"one process each, {result['seconds']:g} s", unit="hashes per second (H/s)",
                  limit=("bare double SHA-256", result["raw_hashes_per_s"]),
                  measured=("node mining loop", result["hashes_per_s"]),
                  note=f"{result['ratio']:.2f}x bare", date=date)
