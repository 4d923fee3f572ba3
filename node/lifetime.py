"""Tie a child process's life to its parent's: Linux's parent-death signal (prctl PR_SET_PDEATHSIG).

A foreground testnet's nodes and a node's mining workers must not outlive the process that started them, however
it ends (a signal it handles, SIGKILL, a crash). The kernel sends the chosen signal to the child when the *thread*
that forked it exits, so the child must be started from a thread that lives as long as its parent (the main
thread). Setting the signal races with the parent's death: a child whose parent is already gone when the signal is
set would never get it, so it checks its parent pid right after and sends the signal to itself.

Elsewhere than Linux these are no-ops; the launchers' own signal handlers still stop their children.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

PR_SET_PDEATHSIG = 1
_prctl: Any = None


def _load_prctl() -> Any:
    """libc's prctl, looked up once in the parent (never between fork and exec, where dlopen may deadlock)."""
    global _prctl
    if _prctl is None and sys.platform.startswith("linux"):
        try:
            _prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
        except (OSError, AttributeError):
            _prctl = False
    return _prctl


def set_parent_death_signal(sig: int, parent_pid: int) -> bool:
    """In the child: ask for `sig` when the parent (`parent_pid`, as the parent saw itself) dies; if it already
    has, deliver `sig` to this process now. False when the platform has no parent-death signal."""
    prctl = _load_prctl()
    if not prctl:
        return False
    if prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), sig)
    return True


def parent_death_preexec(sig: int) -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen that arms `sig` in the child for the death of the calling thread's
    process (it survives the exec); None where there is no parent-death signal. Call it from the thread that
    starts the child, and keep that thread alive as long as the child should live."""
    if not _load_prctl():
        return None
    parent_pid = os.getpid()

    def arm() -> None:
        set_parent_death_signal(sig, parent_pid)

    return arm


@contextlib.contextmanager
def sigint_ignored_by_children() -> Iterator[None]:
    """Start worker processes inside this: SIGINT is ignored meanwhile, and a spawned child inherits that through
    fork and exec (Python keeps an ignored SIGINT ignored at startup; a blocked mask is not inherited, spawn resets
    it). Ctrl-C reaches the whole foreground process group, and a child still importing its modules (spawn
    re-imports the main module, slow on a loaded machine) would otherwise die of it with a KeyboardInterrupt
    traceback before its own code could ignore SIGINT. The price: a Ctrl-C that reaches the parent during a
    start (a few milliseconds) is lost, so the user presses it again. Only the main thread may change the
    disposition; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def ignore_sigint() -> None:
    """In a worker: ignore SIGINT (its parent handles Ctrl-C and ends it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
