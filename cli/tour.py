"""`chainlab tour`: the theory tour (docs/THEORY.md). Lists the concepts, runs their demonstrations, writes and
opens their pictures. The demonstrations are pure (tour/); this shell gives them the real node cores, prints,
writes files and opens a browser."""

from __future__ import annotations

import difflib
import logging
import tempfile
import time
import webbrowser
from pathlib import Path

import click

from cli.common import emit_json, fail
from cli.sim import node_core_factory
from testnet.tourreal import TourRealRuns
from tour.catalogue import CONCEPTS, GROUPS, concept_named
from tour.model import Concept, Outcome, TourContext

UNKNOWN_EXIT = 2
BAD_OUT_EXIT = 2
DEFAULT_SEED = 1
DEFAULT_OUT = "chainlab-tour"


def _state(concept: Concept) -> str:
    return "" if concept.in_fast else "not --fast"


def _listing(as_json: bool) -> None:
    if as_json:
        emit_json({"groups": list(GROUPS), "concepts": [concept.to_json() for concept in CONCEPTS]})
        return
    width = max(len(concept.name) for concept in CONCEPTS)
    states = {concept.name: _state(concept) for concept in CONCEPTS}
    state_width = max(len(state) for state in states.values())
    for group in GROUPS:
        click.echo(f"{group}:")
        for concept in (c for c in CONCEPTS if c.group == group):
            click.echo(f"  {concept.name:<{width}}  {concept.kind.value:<12}  {states[concept.name]:<{state_width}}  "
                       f"{concept.summary}")
    click.echo(f"{len(CONCEPTS)} concepts; run one with `chainlab tour run NAME`, all with `chainlab tour run --all` "
               "(`--fast` leaves out those marked 'not --fast')")


@click.group(name="tour", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="the catalogue as one JSON document")
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """The theory tour: each distributed-systems concept made to happen, checked and drawn (docs/THEORY.md).

    Without a subcommand, lists the concepts by group: how each demonstration runs (simulated: seconds,
    deterministic by seed; real-process: node processes on this machine) and whether `run --all --fast` runs it.
    """
    if ctx.invoked_subcommand is None:
        _listing(as_json)


def _write(outcome: Outcome, out: Path) -> list[str]:
    if not outcome.pictures:
        return []
    directory = out / outcome.concept
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for picture in outcome.pictures:
            path = directory / picture.name
            path.write_text(picture.text, encoding="utf-8")
            written.append(str(path))
    except OSError as exc:
        fail(f"--out: cannot write under {out}: {exc.strerror or exc}", code=BAD_OUT_EXIT)
    return written


def _make_out(out: Path) -> None:
    """Make the pictures' directory before anything runs: a real-process demonstration puts its testnet under it,
    and no run should be wasted on a directory that cannot be made."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=".probe-", dir=out)).rmdir()  # made is not writable (a read-only mount)
    except OSError as exc:
        fail(f"--out: cannot write under {out}: {exc.strerror or exc}", code=BAD_OUT_EXIT)


def _open(paths: list[str]) -> None:
    for path in paths:
        _open_url(Path(path).resolve().as_uri(), shown=path)


def _open_url(url: str, *, shown: str | None = None) -> None:
    """Open `url` in a browser (named `shown` in the notes). Without a display (or browser) webbrowser does nothing
    and says False: a note, never a failure of the run."""
    shown = shown or url
    try:
        opened = webbrowser.open(url)
    except webbrowser.Error as exc:
        opened = False
        click.echo(f"note: cannot open {shown}: {exc}", err=True)
    if not opened:
        click.echo(f"note: no browser to open {shown}", err=True)


def _no_open(url: str) -> None:
    pass


def _print(outcome: Outcome, concept: Concept, written: list[str], wall_s: float) -> None:
    click.echo(f"== {concept.name}: {concept.title} ({concept.title_zh})  seed {outcome.seed}")
    for line in outcome.lines:
        click.echo(f"  {line}")
    for check in outcome.checks:
        click.echo(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    for path, picture in zip(written, outcome.pictures, strict=True):
        click.echo(f"  picture: {path}  ({picture.caption})")
    click.echo(f"  verdict: {'ok' if outcome.ok else 'FAILED: ' + ', '.join(outcome.failed_checks())}"
               f"  ({wall_s:.1f} s)")


def _guesses(name: str) -> list[str]:
    """The concepts a mistyped or shortened name probably meant (`rafts`, `Raft`, `crash`, `lock`)."""
    names = [concept.name for concept in CONCEPTS]
    typed = name.lower()
    close = difflib.get_close_matches(typed, names, n=1, cutoff=0.6)
    return close or [candidate for candidate in names if len(typed) >= 3
                     and any(part.startswith(typed) for part in candidate.split("-"))][:3]


def _run_one(concept: Concept, context: TourContext) -> tuple[Outcome, float]:
    started = time.perf_counter()
    outcome = concept.demonstration(context)
    return outcome, time.perf_counter() - started


@command.command(name="run")
@click.argument("name", required=False)
@click.option("--all", "run_all", is_flag=True, help="every demonstration, then a summary table")
@click.option("--fast", is_flag=True,
              help="fewer seeds and shorter runs; --all leaves out those listed as not --fast (what CI runs)")
@click.option("--seed", type=click.IntRange(0, (1 << 64) - 1), default=DEFAULT_SEED, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
@click.option("--out", "out", type=click.Path(file_okay=False), default=DEFAULT_OUT, show_default=True,
              help="directory the pictures go to (one subdirectory per concept)")
@click.option("--open", "open_pictures", is_flag=True, help="open the pictures in a browser")
def run(name: str | None, run_all: bool, fast: bool, seed: int, as_json: bool, out: str,
        open_pictures: bool) -> None:
    """Run the demonstration of concept NAME (or --all): print what happened and its checks' verdicts, write its
    pictures under --out. Exit 0 when every check passed, 1 when one failed, 2 for bad input (an unknown concept,
    an --out that cannot be written)."""
    if run_all == (name is not None):
        fail("give one concept NAME or --all (the list: chainlab tour)", code=UNKNOWN_EXIT)
    if name is not None:
        concept = concept_named(name)
        if concept is None:
            guesses = _guesses(name)
            fail(f"unknown concept {name!r}" + (f"; did you mean {' or '.join(map(repr, guesses))}?" if guesses
                                                 else "") + " (the list: chainlab tour)", code=UNKNOWN_EXIT)
        concepts = [concept]
        skipped: list[Concept] = []
    else:
        skipped = [concept for concept in CONCEPTS if fast and not concept.in_fast]
        concepts = [concept for concept in CONCEPTS if concept not in skipped]
    _make_out(Path(out))
    logging.getLogger("chainlab").setLevel(logging.CRITICAL + 1)  # the cores' log lines are not the tour's output
    real = TourRealRuns(out=Path(out), progress=lambda line: click.echo(f"  .. {line}", err=True),
                        open_explorer=_open_url if open_pictures else _no_open)
    context = TourContext(seed=seed, core_factory=node_core_factory, fast=fast, real=real)
    rows: list[tuple[Concept, Outcome, float, list[str]]] = []
    for concept in concepts:
        outcome, wall_s = _run_one(concept, context)
        written = _write(outcome, Path(out))
        rows.append((concept, outcome, wall_s, written))
        if not as_json:
            _print(outcome, concept, written, wall_s)
        if open_pictures:
            _open(written)
    failed = [concept.name for concept, outcome, _, _ in rows if not outcome.ok]
    if as_json:
        results = [{**outcome.to_json(written), "wall_s": round(wall_s, 2)} for _, outcome, wall_s, written in rows]
        emit_json(results[0] if name is not None else {"ok": not failed, "results": results,
                                                        "skipped": [concept.name for concept in skipped]})
    elif run_all:
        _summary(rows, skipped)
    if failed:
        raise SystemExit(1)


def _summary(rows: list[tuple[Concept, Outcome, float, list[str]]], skipped: list[Concept]) -> None:
    click.echo("")
    click.echo(f"{'concept':<28} {'kind':<12} {'verdict':<7} {'wall':>7}  checks")
    for concept, outcome, wall_s, _ in rows:
        passed = sum(check.ok for check in outcome.checks)
        click.echo(f"{concept.name:<28} {concept.kind.value:<12} {'ok' if outcome.ok else 'FAILED':<7} "
                   f"{wall_s:>6.1f}s  {passed}/{len(outcome.checks)} passed"
                   + ("" if outcome.ok else f" (failed: {', '.join(outcome.failed_checks())})"))
    failed = sum(not outcome.ok for _, outcome, _, _ in rows)
    click.echo(f"{len(rows) - failed} of {len(rows)} demonstrations passed")
    for concept in skipped:
        click.echo(f"{concept.name:<28} {concept.kind.value:<12} skipped in --fast (too long: "
                   f"`chainlab tour run {concept.name}`)")
