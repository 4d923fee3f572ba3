"""The event loop choice (node/eventloop.py): uvloop unless told otherwise, a clear error for a bad value."""

from __future__ import annotations

import asyncio

import pytest

from node import eventloop


def test_the_loop_is_chosen_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.loop_name() == "asyncio" and eventloop.run(loop_type()).startswith("asyncio")
    monkeypatch.setenv(eventloop.ENV, "uvloop")
    assert eventloop.loop_name() == "uvloop" and eventloop.run(loop_type()).startswith("uvloop")
    monkeypatch.setenv(eventloop.ENV, "tokio")
    with pytest.raises(ValueError, match="uvloop or asyncio"):
        eventloop.loop_factory()
