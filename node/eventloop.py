"""The event loop chainlab's processes run on: uvloop when it is installed, else asyncio's own.

uvloop (libuv under asyncio's interface, MagicStack) runs the same coroutines with less interpreter work per
callback, socket read and timer; a node spends most of its time in exactly those, and on a 2-core machine a
3-node network commits measurably more per second with it (docs/PERFORMANCE.md). `CHAINLAB_EVENT_LOOP=asyncio`
forces the standard loop (to compare, or to debug with asyncio's debug mode).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "CHAINLAB_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's default (not installed, or CHAINLAB_EVENT_LOOP=asyncio)."""
    choice = os.environ.get(ENV, "uvloop").strip().lower()
    if choice not in ("uvloop", "asyncio"):
        raise ValueError(f"{ENV} must be uvloop or asyncio, not {choice[:20]!r}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> T:
    """`asyncio.run(main)` on `factory`'s loop (default: `loop_factory()`)."""
    with asyncio.Runner(loop_factory=factory or loop_factory()) as runner:
        return runner.run(main)


def loop_name() -> str:
    """Which loop `run` uses: "uvloop" or "asyncio"."""
    return "uvloop" if loop_factory() is not None else "asyncio"
