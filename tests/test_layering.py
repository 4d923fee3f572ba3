"""DESIGN.md section 1: chain/, consensus/ and the p2p protocol core are sans-I/O.

They must not import I/O or concurrency modules, read a clock, or use module-level randomness; time comes in
as `now` and randomness as an injected `random.Random`. The check walks each module's syntax tree, so a
violation anywhere in the file fails, not only on an executed path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE_DIRS = ["chain", "consensus", "p2p/protocol", "testnet/sim"]
PURE_FILES = ["p2p/protocol.py", "node/core.py", "testnet/checks.py"]
FORBIDDEN_MODULES = {
    "asyncio", "socket", "aiohttp", "plyvel", "subprocess", "threading", "multiprocessing", "concurrent",
    "selectors", "signal", "os", "shutil", "tempfile", "io", "pathlib", "urllib", "http", "requests", "time",
    "datetime", "storage.leveldb", "node", "cli",
}
FORBIDDEN_CALLS = {
    ("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("time", "sleep"), ("time", "time_ns"),
    ("datetime", "now"), ("datetime", "utcnow"), ("date", "today"),
    ("random", "random"), ("random", "randint"), ("random", "choice"), ("random", "shuffle"),
    ("random", "uniform"), ("random", "randrange"), ("random", "seed"), ("random", "getrandbits"),
    ("random", "sample"), ("random", "expovariate"), ("os", "urandom"),
}
ALLOWED_RANDOM_NAMES = {"Random"}  # `from random import Random` / `random.Random(seed)` is injected randomness


def pure_modules() -> list[Path]:
    files = [ROOT / f for f in PURE_FILES if (ROOT / f).exists()]
    for directory in PURE_DIRS:
        path = ROOT / directory
        if path.is_dir():
            files.extend(sorted(path.rglob("*.py")))
    return files


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES or alias.name in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.name == "random":
                    found.append(f"line {node.lineno}: import random (inject a random.Random instead)")
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES or node.module in FORBIDDEN_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            if node.module == "random" and any(a.name not in ALLOWED_RANDOM_NAMES for a in node.names):
                found.append(f"line {node.lineno}: from random import module-level functions")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and (owner.id, node.func.attr) in FORBIDDEN_CALLS:
                found.append(f"line {node.lineno}: {owner.id}.{node.func.attr}()")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            found.append(f"line {node.lineno}: open()")
    return found


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_layers_do_no_io(path: Path) -> None:
    assert violations(path) == []


def test_checker_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport random\nfrom asyncio import sleep\nx = time.time()\nrandom.random()\n"
                   "open('f')\n")
    assert len(violations(bad)) == 6
    good = tmp_path / "good.py"
    good.write_text("from random import Random\nrng = Random(5)\nrng.random()\n")
    assert violations(good) == []
