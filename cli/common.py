"""Helpers shared by the CLI commands: JSON output and one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click


def emit_json(data: Any) -> None:
    """Print one JSON document to stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error to stderr and exit non-zero (never a traceback for a user's mistake)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
