"""The scenario runner's own output (testnet/runner.py); whole scenarios run in tests/testnet/test_scenarios_ci.py."""

from __future__ import annotations

from testnet.runner import checks_line


def test_the_checks_progress_line_says_what_the_checks_found() -> None:
    passed = {"ok": True, "checks": [{"name": "convergence", "ok": True}, {"name": "liveness", "ok": True}]}
    assert checks_line("from RPC", passed) == "checks (from RPC): 2 ok"
    failed = {"ok": False, "checks": [{"name": "convergence", "ok": False}, {"name": "liveness", "ok": True}]}
    assert checks_line("from the stores", failed) == "checks (from the stores): 1 ok, FAILED convergence"
