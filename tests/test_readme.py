"""The README is a test: every command of its shell blocks runs, in order, as a new user would type it.

Each block runs in a fresh working directory (with the project's `.venv`, `Makefile` and `testnet/scenarios`
linked in, `HOME` pointing inside it and `CHAINLAB_PASSWORD` set for the wallet prompts). A command that runs
until Ctrl-C (`make run`, `chainlab devnet`, `chainlab node run`, `chainlab testnet web`) is started in the
background in its own session, waited for until it is up (`make run` and `testnet web` until their dashboard
answers), and stopped with SIGINT when its block ends: it must exit quietly (no traceback) and
leave no process behind. `make test` is this suite itself and is not run again. A few long commands are shortened
(SHORTER: fewer blocks, shorter durations, the CI variant of a scenario); everything else runs as written, and a
command that fails fails the test with its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMMAND_TIMEOUT_S = 240
START_TIMEOUT_S = 90

# (pattern, replacement) applied to a command before it runs: the same command, smaller.
SHORTER: tuple[tuple[str, str], ...] = (
    (r"testnet load --tps (\d+) --duration \d+", r"testnet load --tps \1 --duration 4"),
    (r"testnet/scenarios/pow-partition-heal\.toml", "testnet/scenarios/ci-pow-partition-heal.toml"),
    (r"--duration 3600", "--duration 300"),
    (r"--seed 3 --duration 300 --block-interval 1", "--seed 3 --duration 120 --block-interval 1"),
    (r"bench validate --txs (\d+) --json", r"bench validate --txs 200 --repeats 3 --json"),
    (r"--swarm --runs \d+", "--swarm --runs 2"),
    (r"chain generate --blocks 200 --txs 100", "chain generate --blocks 40 --txs 20"),
    (r"bench store --blocks \d+ --txs \d+", "bench store --blocks 20 --txs 200"),
    (r"bench mine --seconds \d+", "bench mine --seconds 1"),
    (r"bench sync --blocks \d+ --txs \d+", "bench sync --blocks 100 --txs 20"),
    (r"bench rpc --txs \d+ --clients \d+", "bench rpc --txs 1000 --clients 16"),
    (r"bench propagation --txs \d+", "bench propagation --txs 200 --rounds 2"),
    (r"--clients 64 --duration 20", "--clients 16 --duration 2"),
    # the PoW half of the CAP command is in `make test-long` (tests/testnet/test_cap.py)
    (r"testnet cap --dir \./cap", "testnet cap --engine raft --dir ./cap"),
    # tests/tour/test_cli_tour.py runs `tour run --all --fast` and checks every verdict
    (r"tour run --all --fast --out \./tour", "tour run state-machine-replication --out ./tour"),
)


def shell_blocks(text: str) -> list[list[str]]:
    """The commands of each ```sh block: continuation lines joined, blank and comment-only lines dropped."""
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        commands: list[str] = []
        pending = ""
        for line in body.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line, pending = pending + line, ""
            if line.strip() and not line.strip().startswith("#"):
                commands.append(line.strip())
        blocks.append(commands)
    return blocks


def shortened(command: str) -> str:
    for pattern, replacement in SHORTER:
        command = re.sub(pattern, replacement, command)
    return command


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):
        return False


@dataclass
class Foreground:
    """A command that runs until Ctrl-C, and how to tell it is up."""

    command: str
    process: subprocess.Popen[bytes]
    log: Path
    ready: Callable[[], bool]
    pids: Callable[[], list[int]] = field(default=lambda: [])


@dataclass
class Session:
    """One README block's working directory and the foreground commands it started."""

    cwd: Path
    env: dict[str, str]
    running: list[Foreground] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    def run(self, command: str) -> None:
        command = shortened(command)
        self.transcript.append(f"$ {command}")
        if re.match(r"make test\b", command):
            return  # this suite; CI runs it
        if self._is_foreground(command):
            self._start(command)
            return
        started = time.monotonic()
        done = subprocess.run(["bash", "-c", command], cwd=self.cwd, env=self.env, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT_S)
        output = (done.stdout + done.stderr).decode(errors="replace")
        self.transcript.append(output[-2000:] + f"[exit {done.returncode} in {time.monotonic() - started:.1f} s]")
        assert done.returncode == 0, "\n".join(self.transcript[-6:])
        assert "Traceback" not in output, output

    @staticmethod
    def _is_foreground(command: str) -> bool:
        return bool(re.match(r"(make run|chainlab devnet|chainlab node run|chainlab testnet web)\b", command))

    def _start(self, command: str) -> None:
        log = self.cwd / f"foreground-{len(self.running)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        ready, pids = self._probe(command, log)
        job = Foreground(command=command, process=process, log=log, ready=ready, pids=pids)
        self.running.append(job)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not job.ready():
            assert process.poll() is None, f"{command} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{command} not up in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        self.transcript.append(f"[{command} is up]")

    def _probe(self, command: str, log: Path) -> tuple[Callable[[], bool], Callable[[], list[int]]]:
        if command.startswith("make run"):
            def testnet_pids() -> list[int]:
                with contextlib.suppress(OSError, ValueError):
                    state = json.loads((self.cwd / "testnets" / "latest" / "testnet.json").read_text())
                    return [int(n["pid"]) for n in state["nodes"] if n.get("pid")]
                return []
            def testnet_up() -> bool:
                text = log.read_text(errors="replace")
                dashboard = re.search(r"^dashboard: (http://127\.0\.0\.1:\d+/)$", text, flags=re.M)
                return "Ctrl-C stops the testnet" in text and bool(dashboard) and \
                    _http_ok(dashboard.group(1) + "api/state")  # type: ignore[union-attr]
            return testnet_up, testnet_pids
        if command.startswith("chainlab testnet web"):
            def dashboard_up() -> bool:
                found = re.search(r"^(http://127\.0\.0\.1:\d+/)$", log.read_text(errors="replace"), flags=re.M)
                return bool(found) and _http_ok(found.group(1) + "api/state")  # type: ignore[union-attr]
            return dashboard_up, lambda: []
        if command.startswith("chainlab devnet"):
            port = re.search(r"--rpc-port\s+(\d+)", command)
            url = f"http://127.0.0.1:{port.group(1) if port else 8645}/v1/status"
            return (lambda: _http_ok(url)), lambda: []
        datadir = self.cwd / re.search(r"--datadir\s+(\S+)", command).group(1)  # type: ignore[union-attr]

        def node_up() -> bool:
            with contextlib.suppress(OSError, ValueError):
                info = json.loads((datadir / "node.json").read_text())
                return _http_ok(str(info["rpc_url"]) + "/v1/status")
            return False
        return node_up, lambda: []

    def stop_all(self) -> None:
        """Ctrl-C to every foreground command (newest first); each must end quietly with nothing left behind."""
        problems = []
        for job in reversed(self.running):
            pids = job.pids()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.process.pid, signal.SIGINT)
            try:
                job.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"{job.command}: still running 30 s after Ctrl-C")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.process.pid, signal.SIGKILL)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if _alive(pid):
                        problems.append(f"{job.command}: node pid {pid} outlived it")
                    os.killpg(pid, signal.SIGKILL)
            text = job.log.read_text(errors="replace")
            if "Traceback" in text:
                problems.append(f"{job.command}: traceback in its output:\n{text[-3000:]}")
        self.running.clear()
        assert not problems, "\n".join(problems)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


@contextlib.contextmanager
def session(tmp_path: Path) -> Iterator[Session]:
    for name in (".venv", "Makefile", "pyproject.toml", "testnet"):
        (tmp_path / name).symlink_to(ROOT / name)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "CHAINLAB_PASSWORD": "readme passphrase",
           "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           # `make` here must not reinstall the project from this copy (the venv is the project's own, already
           # installed by the `make test` running us): an edited pyproject.toml would point the venv at tmp_path
           "MAKEFLAGS": "-o .venv/.installed"}
    env.pop("CHAINLAB_WALLET_DIR", None)
    env.pop("CHAINLAB_NODE", None)
    current = Session(cwd=tmp_path, env=env)
    try:
        yield current
    finally:
        current.stop_all()


BLOCKS = shell_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_the_blocks_this_test_expects() -> None:
    assert len(BLOCKS) >= 4
    assert [c.split()[:2] for c in BLOCKS[0]] == [["make", "run"], ["make", "test"]]
    assert any(c.startswith("chainlab devnet") for block in BLOCKS for c in block)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int, tmp_path: Path) -> None:
    with session(tmp_path) as current:
        for command in BLOCKS[index]:
            current.run(command)
        if os.environ.get("CHAINLAB_README_TIMES"):  # where a block's time goes
            print("\n".join(line for line in current.transcript if line.startswith("$") or "[exit" in line))
