"""Crash safety of `chain import`: SIGKILL at seeded random moments, both while the process starts and opens its
data directory and in the middle of importing, never leaves a directory that `chain verify` rejects, and the
height never goes back. Afterwards the import completes to the generated tip.

Kill moments are drawn in terms of the child's own progress, read from /proc while it runs, not in wall-clock time
(a busy machine stretches wall time, and a wall-clock kill would then land before the import starts, or after it
ends): an early kill after a random share of the CPU seconds the child needs to start up, a mid-import kill a
random number of blocks past where the last round stopped, judged by the child's read position in the chain file.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chain.block import Block
from chain.crypto import PrivateKey
from chain.devtools import dev_genesis, dev_keys
from chain.genesis import Genesis
from consensus.pow.devtools import generate_pow_chain
from node.chainfile import iter_blocks, read_header, write_chain_file
from node.datadir import init_datadir, open_chain

SEED = 20_240_611
CHAIN_BLOCKS = 600
TXS_PER_BLOCK = 20
ROUNDS = int(os.environ.get("CHAINLAB_CRASH_ROUNDS", "12"))  # more for a longer hunt (12: ~24 s on 2 cores; 24: ~36 s)
EARLY_KILL_SHARE = 0.25  # rounds killed while the process starts and opens the store
MID_ROUND_BLOCKS = CHAIN_BLOCKS // ROUNDS // 2  # mean blocks a mid-import round lets through: far from finishing
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cli.main", "chain"]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child CPU time from /proc")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def _verify(datadir: Path) -> dict[str, Any]:
    result = _cli("verify", "--datadir", str(datadir), "--json")
    assert result.returncode == 0, f"verify failed after a kill: {result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_s(pid: int) -> float | None:
    """CPU seconds the process has used so far (all threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, fields 14 and 15


@dataclass(frozen=True)
class GeneratedChain:
    """A generated chain file, its genesis, and its last block."""

    genesis: Genesis
    genesis_path: Path
    chain_path: Path
    last: Block


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedChain:
    directory = tmp_path_factory.mktemp("crash-chain")
    keys = dev_keys(TXS_PER_BLOCK, b"crash-safety")
    genesis = dev_genesis(keys, params={"block_interval_s": 1.0})
    genesis_path, chain_path = directory / "genesis.toml", directory / "chain.bin"
    genesis_path.write_text(genesis.to_toml(), encoding="utf-8")
    blocks = generate_pow_chain(genesis, keys, blocks=CHAIN_BLOCKS, txs_per_block=TXS_PER_BLOCK,
                                miner=PrivateKey.from_seed(b"crash-safety/miner").address)
    last: list[Block] = []

    def remembering() -> Iterator[Block]:
        for block in blocks:
            last[:] = [block]
            yield block

    write_chain_file(chain_path, genesis.hash, remembering())
    return GeneratedChain(genesis=genesis, genesis_path=genesis_path, chain_path=chain_path, last=last[0])


def _start_up_cpu_s(tmp_path: Path, genesis: Genesis) -> float:
    """CPU seconds a CLI process needs to start and open a data directory that holds only genesis."""
    scratch = tmp_path / "calibration"
    init_datadir(scratch, genesis)
    open_chain(scratch).close()
    before = _children_cpu_s()
    _verify(scratch)
    return _children_cpu_s() - before


def _block_offsets(chain_path: Path) -> list[int]:
    """File offset of each block: entry h - 1 is where the block at height h starts."""
    with open(chain_path, "rb") as stream:
        read_header(stream, str(chain_path))
        return [offset for offset, _ in iter_blocks(stream, str(chain_path))]


def _read_position(pid: int, path: str) -> int | None:
    """How far the process has read `path` (its file offset there), or None while it has not opened it."""
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for descriptor in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{descriptor}") != path:
                continue
            with open(f"/proc/{pid}/fdinfo/{descriptor}", encoding="ascii") as info:
                for line in info:
                    if line.startswith("pos:"):
                        return int(line.split()[1])
        except OSError:
            continue  # the descriptor closed while we looked
    return None


def _used_cpu(budget_s: float) -> Callable[[int], bool]:
    """A condition on a process: it has used `budget_s` CPU seconds (or is gone)."""

    def reached(pid: int) -> bool:
        used = _cpu_s(pid)
        return used is None or used >= budget_s

    return reached


def _read_past(path: str, offset: int) -> Callable[[int], bool]:
    """A condition on a process: it has read `path` beyond `offset`."""

    def reached(pid: int) -> bool:
        position = _read_position(pid, path)
        return position is not None and position > offset

    return reached


def _kill_import_when(reached: Callable[[int], bool], chain_path: Path, datadir: Path, genesis_path: Path,
                      jitter_s: float) -> None:
    """Start `chain import`, SIGKILL it `jitter_s` after `reached(pid)` holds, and reap it (always)."""
    child = subprocess.Popen([*CLI, "import", str(chain_path), "--datadir", str(datadir), "--genesis",
                              str(genesis_path)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline and not reached(child.pid):
            time.sleep(0.001)
        time.sleep(jitter_s)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.slow
def test_import_survives_sigkill_at_random_moments(generated: GeneratedChain, tmp_path: Path) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    genesis, genesis_path, chain_path, last = (generated.genesis, generated.genesis_path, generated.chain_path,
                                               generated.last)
    start_up_cpu_s = _start_up_cpu_s(tmp_path, genesis)
    offsets = _block_offsets(chain_path)
    chain_file = os.path.realpath(chain_path)
    datadir = tmp_path / "node"
    height, early, advanced = 0, 0, 0
    heights: list[int] = []
    for _ in range(ROUNDS):
        reached: Callable[[int], bool]
        if rng.random() < EARLY_KILL_SHARE:
            early += 1  # the end of start-up is where the store opens and the block tree loads
            reached = _used_cpu(rng.uniform(0.3, 1.0) * start_up_cpu_s)
        else:
            # Reading the block `ahead` blocks past the stored tip: the ones before it are being connected.
            ahead = rng.randint(2, 2 * MID_ROUND_BLOCKS)
            reached = _read_past(chain_file, offsets[min(height + ahead, CHAIN_BLOCKS) - 1])
        _kill_import_when(reached, chain_path, datadir, genesis_path, jitter_s=rng.uniform(0.0, 0.003))
        if not (datadir / "genesis.toml").exists():
            assert height == 0, "the data directory lost its genesis"
            heights.append(0)
            continue  # killed before the import created anything
        now = int(_verify(datadir)["height"])
        assert now >= height, f"height went back from {height} to {now} (heights so far: {heights})"
        advanced += now > height
        height = now
        heights.append(now)
    progress = f"heights after each round: {heights}"
    assert height < CHAIN_BLOCKS, f"the import finished during the kill rounds; {progress}"
    assert advanced >= ROUNDS // 2, f"too few rounds interrupted the import part-way; {progress}"
    assert early >= 3, "too few kills during start-up"

    finished = _cli("import", str(chain_path), "--datadir", str(datadir), "--json")
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert (report["skipped"], report["imported"]) == (height, CHAIN_BLOCKS - height)
    assert (report["height"], report["tip"]) == (CHAIN_BLOCKS, last.hash.hex())
    assert report["final_height"] == CHAIN_BLOCKS - genesis.finality_threshold + 1
    assert _verify(datadir)["tip"] == last.hash.hex()
    print(f"\ncrash test: start-up {start_up_cpu_s:.3f} CPU s; {progress}; {time.monotonic() - began:.1f} s in all")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_the_import_between_blocks(
    generated: GeneratedChain, tmp_path: Path, signum: signal.Signals
) -> None:
    datadir = tmp_path / "node"
    stop_after = _read_past(os.path.realpath(generated.chain_path), _block_offsets(generated.chain_path)[50])
    # A test run started in the background of a non-interactive shell inherits SIGINT ignored (POSIX job
    # control), and Python keeps it ignored: the import would never see the Ctrl-C this test sends.
    child = subprocess.Popen([*CLI, "import", str(generated.chain_path), "--datadir", str(datadir), "--genesis",
                              str(generated.genesis_path)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline and not stop_after(child.pid):
            time.sleep(0.001)
        child.send_signal(signum)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 128 + signum, stderr
    assert stdout == "" and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("error: interrupted at height ") and "run the same command again" in stderr
    stopped_at = int(stderr.split("interrupted at height ")[1].split(";")[0])
    assert 0 < stopped_at < CHAIN_BLOCKS
    assert _verify(datadir)["height"] == stopped_at  # it stopped on a block boundary, and said where
    finished = _cli("import", str(generated.chain_path), "--datadir", str(datadir), "--json")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["skipped"] == stopped_at
