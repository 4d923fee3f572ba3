"""`chainlab bench ... --plot FILE.svg` (cli/plots.py): valid SVGs with their title, axis labels and caption;
the same figures give the same bytes; a missing matplotlib or a bad path is a one-line error before measuring."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from cli import plots
from tests.cli.helpers import Invoke, assert_ok, assert_one_line_error

SVG = "{http://www.w3.org/2000/svg}"

VALIDATE_RUNS = [
    {"txs": 1000, "workers": 1, "validate_s": 0.045, "verify_only_s": 0.037, "ratio": 1.2162, "tx_per_s": 22222.2},
    {"txs": 4000, "workers": 2, "validate_s": 0.11, "verify_only_s": 0.15, "ratio": 0.7333, "tx_per_s": 36363.6,
     "single_worker_tx_per_s": 21000.0, "speedup": 1.732},
]
RPC_RUNS = [{"txs": 2000, "clients": clients, "accepted_per_s": rate, "p50_ms": p50, "p99_ms": p50 * 2,
             "nodes_cpu_us_per_tx": cpu}
            for clients, rate, p50, cpu in [(1, 900.0, 1.1, 300.0), (4, 2500.0, 1.6, 250.0), (16, 4800.0, 3.3, None)]]
CONSENSUS_REPORT = {
    "consensus": "raft", "nodes": 3, "clients": 64, "duration_s": 20.0, "genesis_params": {"block_interval_s": 0.01},
    "committed_tx_per_s": 2572.9, "commit_p50_ms": 24.0, "commit_p99_ms": 58.0, "commit_max_ms": 90.0,
    "compare": {"version": "Version: 3.4.23", "writes_per_s": 5740.7, "p50_ms": 9.7, "p99_ms": 30.0,
                "max_ms": 60.0, "ratio_tx_per_s": 0.448},
}

Draw = Callable[..., None]
FIGURES: list[tuple[Draw, Any, list[str]]] = [
    (plots.validation, VALIDATE_RUNS, ["Block validation against bare signature verification",
                                       "time per transaction (µs)", "processes checking signatures (--workers)",
                                       "floor: bare verification / min(W, CPUs)"]),
    (plots.rpc, RPC_RUNS, ["RPC submission throughput against clients", "concurrent clients (--clients)",
                           "accepted transactions per second (tx/s)", "submission latency (ms)",
                           "ceiling: one core / node CPU per tx"]),
    (plots.consensus, CONSENSUS_REPORT, ["Consensus: committed transfers against etcd", "chainlab raft",
                                         "etcd 3.4.23", "commit latency (ms)"]),
    (plots.consensus, {**CONSENSUS_REPORT, "consensus": "pbft", "nodes": 4,
                       "compare": {"system": "chainlab", "consensus": "raft", "version": "chainlab raft",
                                   "writes_per_s": 1600.0, "p50_ms": 40.0, "p99_ms": 90.0, "max_ms": 120.0,
                                   "ratio_tx_per_s": 0.61}},
     ["Consensus: committed transfers against raft", "chainlab pbft", "chainlab raft", "pbft/raft 0.61"]),
    (plots.store, {"blocks": 3, "txs": 5, "validate_s": 0.5, "import_s": 0.6, "store_overhead": 0.2},
     ["Block store: LevelDB import against in-memory validation", "seconds (s)", "validate in memory"]),
    (plots.reorg, {"depth": 2, "txs": 5, "connect_s": 0.2, "reorg_s": 0.3, "ratio": 1.5},
     ["Reorg against connecting the same depth", "seconds (s)", "connect 2 blocks"]),
    (plots.sync, {"blocks": 10, "txs": 5, "sync_blocks_per_s": 90.0, "import_blocks_per_s": 100.0, "ratio": 0.9},
     ["Sync over loopback against a file import", "blocks per second (blocks/s)"]),
    (plots.mining, {"seconds": 1.0, "hashes_per_s": 600000, "raw_hashes_per_s": 550000, "ratio": 1.09},
     ["Mining loop against bare double SHA-256", "hashes per second (H/s)"]),
]


def svg_texts(path: Path) -> str:
    """Every text of the SVG at `path` (which must parse as SVG), one per line."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return "\n".join("".join(element.itertext()) for element in root.iter(f"{SVG}text"))


@pytest.mark.parametrize(("draw", "data", "needles"), FIGURES,
                         ids=[draw.__name__ for draw, _, _ in FIGURES])
def test_each_figure_is_an_svg_with_its_title_axes_and_caption(
    tmp_path: Path, draw: Draw, data: Any, needles: list[str],
) -> None:
    target = tmp_path / "figure.svg"
    draw(data, target, date="2026-12-06")
    texts = svg_texts(target)
    for needle in [*needles, "2026-12-06", "CPUs", "Python"]:
        assert needle in texts, (needle, texts)


def test_the_same_figures_give_the_same_bytes_and_carry_no_date_metadata(tmp_path: Path) -> None:
    first, second = tmp_path / "first.svg", tmp_path / "second.svg"
    plots.rpc(RPC_RUNS, first, date="2026-12-06")
    plots.rpc(RPC_RUNS, second, date="2026-12-06")
    assert first.read_bytes() == second.read_bytes()
    assert b"<dc:date>" not in first.read_bytes()


def test_caption_names_the_machine() -> None:
    machine: Mapping[str, Any] = {"cpu_count": 4, "cpus_usable": 2, "cpu_model": "Xeon", "platform": "Linux-6",
                                  "python": "3.11.7"}
    assert plots.caption(machine, "2026-12-06") == "4 CPUs (2 usable), Xeon, Linux-6, Python 3.11.7; 2026-12-06"


def test_bench_validate_plot_writes_the_measured_figures(invoke: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "validate.svg"
    result = invoke("bench", "validate", "--txs", "20", "--repeats", "1", "--json", "--plot", str(target))
    assert_ok(result)
    assert json.loads(result.stdout)["txs"] == 20  # one worker count: the JSON object as before --plot
    assert f"plot written to {target}" in result.stderr
    texts = svg_texts(target)
    assert "Block validation against bare signature verification" in texts
    assert "W = 1" in texts and "time per transaction (µs)" in texts


def test_several_worker_counts_print_one_line_each(invoke: Invoke) -> None:
    result = invoke("bench", "validate", "--txs", "10", "--repeats", "1", "--workers", "1,1")
    assert_ok(result)
    assert len(result.stdout.splitlines()) == 1  # the list is deduplicated


def test_a_missing_matplotlib_is_a_one_line_error_before_measuring(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    measured: list[int] = []
    monkeypatch.setattr("cli.bench.measure_store", lambda *args: measured.append(1))
    result = invoke("bench", "store", "--blocks", "1", "--txs", "0", "--plot", str(tmp_path / "store.svg"))
    assert_one_line_error(result, "matplotlib", "pip install 'chainlab[plot]'")
    assert measured == []
    assert not (tmp_path / "store.svg").exists()


@pytest.mark.parametrize(("name", "needle"), [("missing/plot.svg", "does not exist"), ("plot.png", "end in .svg"),
                                              (".", "end in .svg")])
def test_a_bad_plot_path_is_a_one_line_error(invoke: Invoke, tmp_path: Path, name: str, needle: str) -> None:
    result = invoke("bench", "reorg", "--depth", "1", "--txs", "0", "--plot", str(tmp_path / name))
    assert_one_line_error(result, "--plot", needle)


def test_a_directory_named_like_an_svg_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.svg").mkdir()
    with pytest.raises(plots.PlotError, match="is a directory"):
        plots.check_target(str(tmp_path / "dir.svg"))


def test_an_unwritable_file_is_a_plot_error(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "plot.svg"  # checked while it existed, removed before the figure was saved
    with pytest.raises(plots.PlotError, match=r"plot\.svg: "):
        plots.store({"blocks": 1, "txs": 0, "validate_s": 0.1, "import_s": 0.1, "store_overhead": 0.0}, target)


def test_trace_takes_one_client_count_and_no_plot(invoke: Invoke) -> None:
    result = invoke("bench", "rpc", "--trace", "--clients", "1,2")
    assert_one_line_error(result, "--trace")


def test_client_counts_are_checked_by_click(invoke: Invoke) -> None:
    result = invoke("bench", "rpc", "--clients", "0,4")
    assert result.exit_code == 2 and "0 is not in the range 1-1024" in result.output
