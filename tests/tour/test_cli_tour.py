"""`chainlab tour`: the listing, the errors for unknown concepts, --json, pictures written, --all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import tour as tour_cli
from cli.main import main
from tour.catalogue import CONCEPTS, GROUPS
from tour.model import Concept, Kind, Outcome, TourContext


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_error(result: Result, code: int, *needles: str) -> None:
    """Exit `code` with one `error: ...` line on stderr, nothing on stdout, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_listing_names_every_concept_under_its_group_with_kind_and_state() -> None:
    result = invoke("tour")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for group in GROUPS:
        assert f"{group}:" in lines
    for concept in CONCEPTS:
        row = next(line for line in lines if line.split()[:1] == [concept.name])
        assert concept.kind.value in row and concept.summary in row
        assert ("not --fast" in row) != concept.in_fast


def test_listing_as_json() -> None:
    document = json.loads(invoke("tour", "--json").stdout)
    assert document["groups"] == list(GROUPS)
    assert [c["name"] for c in document["concepts"]] == [c.name for c in CONCEPTS]
    first = document["concepts"][0]
    assert set(first) == {"name", "group", "title", "title_zh", "summary", "kind", "in_fast"}
    assert {c["kind"] for c in document["concepts"]} <= {kind.value for kind in Kind}


def test_every_group_has_a_concept_and_every_concept_a_chinese_name() -> None:
    assert {concept.group for concept in CONCEPTS} == set(GROUPS)
    assert all(concept.title_zh and concept.summary for concept in CONCEPTS)


def test_unknown_concept_is_a_one_line_error_with_exit_2() -> None:
    assert_error(invoke("tour", "run", "no-such-thing"), 2, "unknown concept 'no-such-thing'")


@pytest.mark.parametrize(("typed", "meant"), [("rafts", "'raft'"), ("Raft", "'raft'"), ("crash", "'crash-failure'"),
                                              ("lock", "'distributed-lock'")])
def test_a_mistyped_or_shortened_concept_is_named_in_the_error(typed: str, meant: str) -> None:
    assert_error(invoke("tour", "run", typed), 2, f"unknown concept {typed!r}; did you mean {meant}?")


def _never(context: TourContext) -> Outcome:
    raise AssertionError("a concept left out of --fast was run")


def test_all_fast_leaves_out_and_names_the_concepts_not_in_fast(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    quick = next(concept for concept in CONCEPTS if concept.name == "state-machine-replication")
    slow = Concept(name="slow-one", group=GROUPS[0], title="Slow", title_zh="慢", summary="too long",
                   kind=Kind.REAL_PROCESS, demonstration=_never, in_fast=False)
    monkeypatch.setattr(tour_cli, "CONCEPTS", [quick, slow])
    result = invoke("tour", "run", "--all", "--fast", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "slow-one" in result.stdout and "skipped in --fast" in result.stdout
    document = json.loads(invoke("tour", "run", "--all", "--fast", "--json", "--out", str(tmp_path)).stdout)
    assert document["skipped"] == ["slow-one"]
    assert [r["concept"] for r in document["results"]] == ["state-machine-replication"]


def test_cap_is_listed_as_left_out_of_fast() -> None:
    row = next(line for line in invoke("tour").stdout.splitlines() if line.split()[:1] == ["cap"])
    assert "not --fast" in row


@pytest.mark.parametrize("args", [(), ("state-machine-replication", "--all")])
def test_run_needs_exactly_one_of_name_and_all(args: tuple[str, ...]) -> None:
    assert_error(invoke("tour", "run", *args), 2, "give one concept NAME or --all")


def test_run_prints_checks_and_verdict(tmp_path: Path) -> None:
    result = invoke("tour", "run", "state-machine-replication", "--seed", "3", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "ok   same-order-same-state" in result.stdout
    assert "verdict: ok" in result.stdout


def test_run_json_shape(tmp_path: Path) -> None:
    result = invoke("tour", "run", "state-machine-replication", "--json", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"concept", "seed", "ok", "lines", "checks", "figures", "pictures", "written", "wall_s"}
    assert document["ok"] is True and document["seed"] == 1
    assert {check["name"] for check in document["checks"]} == {"same-order-same-state",
                                                               "different-order-different-state"}


def test_all_fast_runs_every_fast_demonstration_and_every_check_passes_within_four_minutes(tmp_path: Path) -> None:
    """Issue #20's CI bound: `chainlab tour run --all --fast` (the simulated demonstrations and the short real
    ones) passes every check in under 4 minutes on 2 cores."""
    import subprocess
    import sys
    import time

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli.main", "tour", "run", "--all", "--fast", "--json",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=240,
                          cwd=Path(__file__).resolve().parents[2])
    elapsed = time.monotonic() - started
    document = json.loads(done.stdout)
    failed = [(result["concept"], check) for result in document["results"] for check in result["checks"]
              if not check["ok"]]
    assert done.returncode == 0 and not failed, (failed, done.stderr[-3000:])
    ran = {result["concept"] for result in document["results"]}
    expected = {concept.name for concept in CONCEPTS if concept.in_fast}
    assert ran == expected and set(document["skipped"]) == {c.name for c in CONCEPTS if not c.in_fast}
    assert document["ok"] and all(result["ok"] for result in document["results"]), document["results"]
    assert elapsed < 240


@pytest.mark.parametrize("name", ["state-machine-replication", "blockchain"])
def test_an_out_that_cannot_be_made_is_a_one_line_error_before_anything_runs(name: str, tmp_path: Path) -> None:
    # blockchain puts its testnet under --out: it failed with a traceback; a simulated one ran first, then failed.
    (tmp_path / "a-file").write_text("not a directory")
    assert_error(invoke("tour", "run", name, "--out", str(tmp_path / "a-file" / "pictures")), 2, "--out")


def test_listing_columns_line_up() -> None:
    # "built, not --fast" is longer than the state column was: cap's summary started four characters to the right.
    rows = [line for line in invoke("tour").stdout.splitlines() if line.startswith("  ")]
    starts = {line.index(concept.summary) for concept in CONCEPTS for line in rows
              if line.split()[:1] == [concept.name]}
    assert len(starts) == 1, starts
