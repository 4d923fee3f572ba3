"""Assertions shared by the CLI tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import Result

FAST_SCRYPT_N = "1024"
PASSPHRASE = "correct horse battery staple"

Invoke = Callable[..., Result]


def assert_ok(result: Result) -> None:
    """Exit 0 (the output and exception are shown when not)."""
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"


def ok_json(result: Result) -> Any:
    """Exit 0 and stdout is one JSON document; return it."""
    assert_ok(result)
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *needles: str) -> str:
    """Exit 1 with exactly one `error: ...` line on stderr, nothing on stdout, and no traceback."""
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert result.stdout == ""
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_usage_error(result: Result, *needles: str) -> None:
    """A click usage error: exit 2, the reason on stderr, and no traceback."""
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
