"""Node processes by pid, from any process: the testnet's commands run in separate invocations, so they find
nodes through the pids recorded in testnet.json, not through Popen handles.

Each node runs in its own session (testnet/local.py), so its pid is also its process group id, and its mining and
signature workers are in that group. Signals that model a machine (kill, pause, resume) go to the whole group. A
recorded pid is only signalled while `/proc/<pid>/cmdline` still names the node's data directory, so a pid reused
by another program after the node died is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

# Popen handles of nodes this process started: polling them reaps our own exited children (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def adopt(process: subprocess.Popen[bytes]) -> None:
    """Remember a node process this process started, so it is reaped once it exits."""
    _CHILDREN[process.pid] = process


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def _proc_state(pid: int) -> str | None:
    """The one-letter state of /proc/<pid>/stat, or None when there is no such process (or no /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()[0]


def alive(pid: int | None) -> bool:
    """The process exists and is not a zombie."""
    if not pid:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in ("Z", "X")


def owned(pid: int | None, datadir: str) -> bool:
    """The live process `pid` is the node of `datadir` (its command line names the directory)."""
    if not alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the recorded pid
    return os.fsencode(datadir) in cmdline


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return sorted(members)


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` has exited (or is a zombie); True if it did within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def terminate(pid: int, timeout_s: float) -> str:
    """Stop a node's process group: SIGCONT (a paused node cannot handle SIGTERM) and SIGTERM to the node, then
    SIGKILL to the whole group after `timeout_s`; then make sure no member of the group is left.
    Returns "terminated" (exited on SIGTERM) or "killed"."""
    outcome = "terminated"
    signal_group(pid, signal.SIGCONT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, timeout_s):
        outcome = "killed"
    kill_group(pid)
    return outcome


def kill_group(pgid: int, timeout_s: float = 5.0) -> list[int]:
    """SIGKILL every process of the group until none is left (or `timeout_s`); returns the survivors."""
    deadline = time.monotonic() + timeout_s
    while True:
        signal_group(pgid, signal.SIGKILL)
        _reap(pgid)
        left = group_members(pgid)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def cpu_and_rss(pid: int) -> tuple[float, int] | None:
    """(user + system CPU seconds, resident set size in bytes) of one process, from /proc; None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks = os.sysconf("SC_CLK_TCK")
        page = os.sysconf("SC_PAGE_SIZE")
        return (int(fields[11]) + int(fields[12])) / ticks, int(fields[21]) * page
    except (OSError, ValueError, IndexError):
        return None
