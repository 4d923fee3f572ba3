"""The CAP demonstration: its checks on a recorded `chainlab testnet cap --json` result (data/cap-run.json, one
real run of both engines, seed 1) with each engine's choice switched off in the rows; the real run (about 45 s)
is a long test."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from tour.demos.cap import judge

RECORDED = Path(__file__).with_name("data") / "cap-run.json"


@pytest.fixture
def result() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORDED.read_text(encoding="utf-8"))
    return copy.deepcopy(data)


def row(result: dict[str, Any], engine: str, side: str) -> dict[str, Any]:
    return next(r for r in result["rows"] if r["engine"] == engine and r["side"] == side)


def test_recorded_run_passes(result: dict[str, Any]) -> None:
    outcome = judge(result)
    assert outcome.ok, outcome.checks
    assert any(picture.name == "cap.svg" for picture in outcome.pictures)


def test_raft_without_quorum_fails_consistency(result: dict[str, Any]) -> None:
    # Raft's quorum switched off: the minority takes every write and answers linearizable reads, stale.
    minority = row(result, "raft", "minority")
    minority["writes"].update(accepted=minority["writes"]["sent"], errors={})
    minority["reads"]["linearizable"].update(answered=minority["reads"]["linearizable"]["sent"], errors={},
                                             linearizable="not-linearizable")
    assert judge(result).failed_checks() == ["raft-keeps-consistency"]


def test_a_not_linearizable_linearizable_read_fails(result: dict[str, Any]) -> None:
    row(result, "raft", "majority")["reads"]["linearizable"]["linearizable"] = "not-linearizable"
    assert judge(result).failed_checks() == ["raft-keeps-consistency"]


def test_pow_refusing_writes_in_the_minority_fails_availability(result: dict[str, Any]) -> None:
    minority = row(result, "pow", "minority")
    minority["writes"].update(accepted=0, errors={"no-quorum": minority["writes"]["sent"]})
    assert judge(result).failed_checks() == ["pow-keeps-availability"]


def test_a_failed_scenario_fails(result: dict[str, Any]) -> None:
    result["runs"]["pow"].update(ok=False, failed=["consistency"])
    assert judge(result).failed_checks() == ["scenarios"]


@pytest.mark.long
def test_real_cap_run(tmp_path: Path) -> None:
    outcome = CliRunner().invoke(main, ["tour", "run", "cap", "--json", "--out", str(tmp_path)])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["ok"]
