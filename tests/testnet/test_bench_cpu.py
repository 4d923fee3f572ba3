"""The servers' CPU probe of the closed-loop bench (testnet/bench_loop.processes_cpu_s)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from testnet.bench_loop import processes_cpu_s


def test_cpu_of_a_busy_process_grows_and_a_gone_one_reads_none() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 5\nwhile time.time() < end: pass"])
    try:
        first = processes_cpu_s([busy.pid, os.getpid()])
        time.sleep(0.5)
        second = processes_cpu_s([busy.pid, os.getpid()])
        assert first is not None and second is not None and second - first >= 0.2
    finally:
        busy.kill()
        busy.wait()
    assert processes_cpu_s([busy.pid]) is None  # reaped: no figure rather than a wrong one
    assert processes_cpu_s([None]) is None  # a node that is not running
