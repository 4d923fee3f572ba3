"""Tie a child process's life to its parent's: Linux's parent-death signal (prctl PR_SET_PDEATHSIG).

A foreground testnet's nodes and a node's mining workers must not outlive the process that started them, however
it ends (a signal it handles, SIGKILL, a crash). The kernel sends the chosen signal to the child when the *thread*
that forked it exits, so the child must be started from a thread that lives as long as its parent (the main
thread). Setting the signal races with the parent's death: a child whose parent is already gone when the signal is
set would never get it, so it checks its parent pid right after and sends the signal to itself.

Elsewhere than Linux these are no-ops; the launchers' own signal handlers still stop their children.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
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
