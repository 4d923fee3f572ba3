"""Worker processes and Ctrl-C (node/lifetime.py): a Ctrl-C that reaches a worker while it is still starting (spawn
re-imports the main module first) must not kill it with a KeyboardInterrupt traceback."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from node.lifetime import ignore_sigint, sigint_ignored_by_children


def _slow_starter(delay_s: float) -> None:
    time.sleep(delay_s)  # as a worker still importing its modules
    ignore_sigint()
    time.sleep(0.2)


def _run(blocked: bool) -> int | None:
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_slow_starter, args=(1.0,))
    if blocked:
        with sigint_ignored_by_children():
            process.start()
    else:
        process.start()
    time.sleep(0.3)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGINT)  # Ctrl-C, before the worker could ignore it
    process.join(10)
    return process.exitcode


def test_a_worker_started_with_sigint_ignored_by_children_survives_an_early_ctrl_c() -> None:
    # Python's own Ctrl-C handler in this process, whatever it inherited: a shell starts background jobs with SIGINT
    # ignored, and an ignored SIGINT passes to the spawned child, which would then survive without the block too.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert _run(blocked=True) == 0
        assert _run(blocked=False) != 0  # the check has teeth: without the block the early Ctrl-C kills it
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_parent_handles_ctrl_c_again_after_the_start() -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        with sigint_ignored_by_children():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)
        assert received == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)
