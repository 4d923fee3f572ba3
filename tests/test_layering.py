"""Layers and their direction (DESIGN.md section 1, docs/ARCHITECTURE.md "Layers and their direction").

- The pure modules, listed once in pyproject.toml `[tool.chainlab.layers] pure`, are sans-I/O: no I/O or
  concurrency module, no clock read, no `open()`, no module-level randomness.
- chain/ imports nothing above it; consensus/ imports only chain/, the Store protocol and pure standard-library
  modules; p2p/protocol/ imports neither the node nor a transport.
- No import cycles between the project's modules.
- No engine name compared as a string outside consensus/ (and tests/): the registry answers such questions.

Every check parses syntax trees, so an import counts wherever it is written: at module level, under
`if TYPE_CHECKING:`, inside a function or a try block. A cycle that only type checking or a late import keeps
from failing at runtime is still two modules that cannot be understood one without the other.
"""

from __future__ import annotations

import ast
import functools
import itertools
import tomllib
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {"build", "dist", "node_modules", "__pycache__"}  # and every hidden directory (.git, .venv)

# -- reading the project ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportRef:
    """One imported module: `target` is the dotted name the statement makes Python load (for
    `from pkg import sub`, the submodule `pkg.sub` when the project has one, else `pkg`); `line` is where."""

    target: str
    line: int


@dataclass(frozen=True, slots=True)
class Module:
    """A parsed module of the project: its dotted name, its path relative to the root, every import in it."""

    name: str
    path: str
    imports: tuple[ImportRef, ...]
    tree: ast.Module


def python_files(root: Path) -> list[Path]:
    """Every .py file under `root`, hidden and build directories left out."""
    return sorted(
        path for path in root.rglob("*.py")
        if not any(part.startswith(".") or part in SKIPPED_DIRS for part in path.relative_to(root).parts[:-1])
    )


def module_name(root: Path, path: Path) -> str:
    """Dotted module name of `path` (a package's `__init__.py` is the package)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(tree: ast.Module, name: str, *, is_package: bool, known: Collection[str]) -> list[ImportRef]:
    """Every import anywhere in `tree` (the module `name`), relative imports resolved against it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(ImportRef(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append(ImportRef(submodule if submodule in known else base, node.lineno))
    return sorted(found, key=lambda ref: ref.line)  # ast.walk goes breadth first; reports read top to bottom


def load_modules(root: Path) -> dict[str, Module]:
    """Every module under `root`, parsed, by dotted name."""
    files = {module_name(root, path): path for path in python_files(root)}
    modules = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imports = imports_of(tree, name, is_package=path.name == "__init__.py", known=files)
        modules[name] = Module(name=name, path=path.relative_to(root).as_posix(), imports=tuple(imports), tree=tree)
    return modules


@functools.cache
def project() -> dict[str, Module]:
    """This repository's modules (parsed once per test run)."""
    return load_modules(ROOT)


def within(name: str, prefix: str) -> bool:
    """True when module `name` is `prefix` or below it."""
    return name == prefix or name.startswith(prefix + ".")


# -- the pure-module list ----------------------------------------------------------------------------------------


def read_pure_paths(root: Path) -> list[str]:
    """The pure-module list of `root/pyproject.toml` (`[tool.chainlab.layers] pure`): paths relative to `root`,
    a directory standing for every module under it."""
    with (root / "pyproject.toml").open("rb") as file:
        config = tomllib.load(file)
    paths = config.get("tool", {}).get("chainlab", {}).get("layers", {}).get("pure")
    assert isinstance(paths, list) and paths, "pyproject.toml needs [tool.chainlab.layers] pure = [paths]"
    return [str(path) for path in paths]


def missing_paths(root: Path, paths: Sequence[str]) -> list[str]:
    """The entries of `paths` that name nothing under `root`."""
    return [path for path in paths if not (root / path).exists()]


def pure_files(root: Path, paths: Sequence[str]) -> list[Path]:
    """The modules `paths` stand for."""
    files: set[Path] = set()
    for path in map(root.joinpath, paths):
        if path.is_dir():
            files.update(path.rglob("*.py"))
        elif path.is_file():
            files.add(path)
    return sorted(files)


# -- sans-I/O ----------------------------------------------------------------------------------------------------

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


def io_violations(path: Path) -> list[str]:
    """Each I/O or concurrency import, clock read, `open()` and use of module-level randomness in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
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


# -- direction ---------------------------------------------------------------------------------------------------

# Standard-library modules that neither do I/O nor read a clock; `random` is here for `random.Random`, and the
# sans-I/O check refuses its module-level functions.
PURE_STDLIB = (
    "__future__", "abc", "bisect", "binascii", "collections", "copy", "dataclasses", "decimal", "enum",
    "fractions", "functools", "hashlib", "heapq", "hmac", "itertools", "math", "numbers", "operator", "random",
    "re", "statistics", "string", "struct", "types", "typing",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """What modules under `layer` may import: nothing matching `forbidden` unless it matches `exceptions`; and,
    when `only` is set, nothing outside `only` and the layer itself. Names match as module prefixes."""

    layer: str
    why: str
    forbidden: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None

    def breaks(self, target: str) -> bool:
        """True when importing `target` from the layer breaks the rule."""
        if any(within(target, allowed) for allowed in self.exceptions):
            return False
        if any(within(target, name) for name in self.forbidden):
            return True
        return self.only is not None and not any(within(target, name) for name in (self.layer, *self.only))


RULES = (
    Rule(layer="chain", forbidden=("consensus", "p2p", "node", "testnet", "cli", "storage"),
         exceptions=("storage.base", "storage.keys"),
         why="chain/ is the bottom layer: of storage/ it sees only the Store protocol and the key layout"),
    Rule(layer="consensus", only=("chain", "storage.base", *PURE_STDLIB),
         why="consensus/ imports only chain/, the Store protocol and pure standard-library modules"),
    Rule(layer="p2p.protocol", forbidden=("node", "cli", "testnet", "p2p", "aiohttp", "websockets"),
         exceptions=("p2p.protocol",),
         why="p2p/protocol/ is the pure half of p2p/: neither the node nor a transport"),
)


def direction_violations(modules: Mapping[str, Module], rules: Sequence[Rule] = RULES) -> list[str]:
    """`path:line: module imports target (why)` for each import that breaks one of `rules`."""
    found = []
    for module in modules.values():
        for rule in rules:
            if not within(module.name, rule.layer):
                continue
            found.extend(f"{module.path}:{ref.line}: {module.name} imports {ref.target} ({rule.why})"
                         for ref in module.imports if rule.breaks(ref.target))
    return found


# -- cycles ------------------------------------------------------------------------------------------------------


def import_graph(modules: Mapping[str, Module]) -> dict[str, dict[str, int]]:
    """module -> {imported project module -> line of its first import}, from every import statement."""
    graph: dict[str, dict[str, int]] = {}
    for module in modules.values():
        edges = graph.setdefault(module.name, {})
        for ref in module.imports:
            if ref.target in modules and ref.target != module.name:
                edges.setdefault(ref.target, ref.line)
    return graph


def strongly_connected(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """The graph's strongly connected components of two or more modules (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def shortest_cycle(graph: Mapping[str, Mapping[str, int]], start: str, members: Collection[str]) -> list[str]:
    """The shortest path start -> ... -> start inside `members` (which holds a cycle through `start`)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node]):
                if successor == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = previous[node]
                    return [start, *reversed(path[1:]), start]
                if successor in members and successor not in previous:
                    previous[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{start} is on no cycle within {sorted(members)}")


def find_cycles(modules: Mapping[str, Module]) -> list[str]:
    """Each import cycle as `a -> b -> a (a.py:3, b.py:7)`: for every module on a cycle, the shortest cycle
    through it, each cycle once."""
    graph = import_graph(modules)
    seen: set[tuple[str, ...]] = set()
    found = []
    for component in strongly_connected(graph):
        for start in component:
            cycle = shortest_cycle(graph, start, set(component))
            first = cycle.index(min(cycle[:-1]))
            key = tuple(cycle[first:-1] + cycle[:first])
            if key in seen:
                continue
            seen.add(key)
            ordered = [*key, key[0]]
            where = ", ".join(f"{modules[a].path}:{graph[a][b]}" for a, b in itertools.pairwise(ordered))
            found.append(f"{' -> '.join(ordered)} ({where})")
    return sorted(found)


# -- engine names ------------------------------------------------------------------------------------------------

ENGINE_NAMES = frozenset({"pow", "primary-backup", "raft", "pbft"})
ENGINE_NAMES_ALLOWED_IN = ("consensus", "tests")


def _names_engine(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in ENGINE_NAMES


def _lists_engine(node: ast.AST) -> bool:
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(_names_engine(item) for item in node.elts)


def engine_name_comparisons(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, code) of each comparison of a string constant naming an engine: `==`, `!=`, `is`, `is not`, `in`
    or `not in` (the constant on either side, or in a tuple/list/set literal on the right), and `match` cases."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operator, left, right in zip(node.ops, operands, operands[1:], strict=False):
                equality = isinstance(operator, ast.Eq | ast.NotEq | ast.Is | ast.IsNot)
                membership = isinstance(operator, ast.In | ast.NotIn)
                if ((equality and (_names_engine(left) or _names_engine(right)))
                        or (membership and (_names_engine(left) or _lists_engine(right)))):
                    found.append((node.lineno, ast.unparse(node)))
                    break
        elif isinstance(node, ast.match_case) and any(
                isinstance(pattern, ast.MatchValue) and _names_engine(pattern.value)
                for pattern in ast.walk(node.pattern)):
            found.append((node.pattern.lineno, f"case {ast.unparse(node.pattern)}"))
    return sorted(found)


def engine_name_violations(modules: Mapping[str, Module]) -> list[str]:
    """`path:line: code` for each engine-name comparison outside consensus/ and tests/."""
    return [
        f"{module.path}:{line}: {code}"
        for module in modules.values()
        if not any(within(module.name, allowed) for allowed in ENGINE_NAMES_ALLOWED_IN)
        for line, code in engine_name_comparisons(module.tree)
    ]


# -- the checks on this repository -------------------------------------------------------------------------------


def test_pure_list_names_existing_paths() -> None:
    assert missing_paths(ROOT, read_pure_paths(ROOT)) == []


@pytest.mark.parametrize("path", pure_files(ROOT, read_pure_paths(ROOT)), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_layers_do_no_io(path: Path) -> None:
    assert io_violations(path) == []


def test_layers_import_in_their_direction() -> None:
    violations = direction_violations(project())
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def test_no_import_cycles() -> None:
    cycles = find_cycles(project())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_engine_name_compared_outside_consensus() -> None:
    places = engine_name_violations(project())
    assert not places, "engine names compared outside consensus/ (ask the engine registry instead):\n" + "\n".join(
        places)


# -- each checker fails on a bad input ---------------------------------------------------------------------------


def write_tree(root: Path, files: Mapping[str, str]) -> dict[str, Module]:
    """Write `files` (relative path -> source) under `root` and load them as a project."""
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return load_modules(root)


def test_io_checker_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nimport random\nfrom asyncio import sleep\nx = time.time()\nrandom.random()\n"
                   "open('f')\n")
    assert len(io_violations(bad)) == 6
    good = tmp_path / "good.py"
    good.write_text("from random import Random\nrng = Random(5)\nrng.random()\n")
    assert io_violations(good) == []


def test_pure_list_check_reports_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.chainlab.layers]\npure = ["chain/", "p2p/protocol.py"]\n')
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / "a.py").write_text("")
    paths = read_pure_paths(tmp_path)
    assert missing_paths(tmp_path, paths) == ["p2p/protocol.py"]
    assert pure_files(tmp_path, paths) == [tmp_path / "chain" / "a.py"]


def test_direction_checker_catches_each_rule(tmp_path: Path) -> None:
    modules = write_tree(tmp_path, {
        "chain/__init__.py": "",
        "chain/ok.py": "from storage.base import Store\nfrom storage import keys\nimport collections.abc\n",
        "chain/late.py": "def f():\n    from consensus.pow.seal import grind\n",
        "chain/store.py": "from storage import MemoryStore\n",
        "consensus/__init__.py": "",
        "consensus/ok.py": "from chain import tx\nfrom storage.base import Store\nfrom collections import abc\n",
        "consensus/up.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from node.core import NodeCore\n",
        "consensus/clock.py": "import asyncio\n",
        "p2p/__init__.py": "",
        "p2p/transport.py": "",
        "p2p/protocol/__init__.py": "from p2p.protocol import codec\n",
        "p2p/protocol/codec.py": "from chain import encoding\n",
        "p2p/protocol/wire.py": "import aiohttp\nfrom p2p import transport\nfrom node.api import EventBroker\n",
        "storage/__init__.py": "", "storage/base.py": "", "storage/keys.py": "",
        "node/__init__.py": "", "node/core.py": "", "node/api.py": "",
    })
    found = direction_violations(modules)
    assert [line.split(" (")[0] for line in found] == [
        "chain/late.py:2: chain.late imports consensus.pow.seal",
        "chain/store.py:1: chain.store imports storage",
        "consensus/clock.py:1: consensus.clock imports asyncio",
        "consensus/up.py:3: consensus.up imports node.core",
        "p2p/protocol/wire.py:1: p2p.protocol.wire imports aiohttp",
        "p2p/protocol/wire.py:2: p2p.protocol.wire imports p2p.transport",
        "p2p/protocol/wire.py:3: p2p.protocol.wire imports node.api",
    ]


def test_cycle_finder_sees_type_checking_and_function_local_imports(tmp_path: Path) -> None:
    modules = write_tree(tmp_path, {
        "node/__init__.py": "",
        "node/adapters.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from node.runtime import Node\n",
        "node/runtime.py": "def start():\n    from node import adapters\n",
        "node/a.py": "import node.b\n",
        "node/b.py": "from .c import x\n",
        "node/c.py": "from node.a import y\nimport node.adapters\n",
    })
    assert find_cycles(modules) == [
        "node.a -> node.b -> node.c -> node.a (node/a.py:1, node/b.py:1, node/c.py:1)",
        "node.adapters -> node.runtime -> node.adapters (node/adapters.py:3, node/runtime.py:2)",
    ]
    acyclic = write_tree(tmp_path / "acyclic", {"x/__init__.py": "from x import y\n", "x/y.py": "import os\n"})
    assert find_cycles(acyclic) == []


def test_engine_name_checker_finds_every_comparison(tmp_path: Path) -> None:
    modules = write_tree(tmp_path, {
        "node/__init__.py": "",
        "node/bad.py": (
            "if genesis.consensus == 'pow':\n    pass\n"
            "mining = 'raft' != name\n"
            "bft = name in ('pbft', 'other')\n"
            "match name:\n    case 'primary-backup':\n        pass\n"
            "ok = make(consensus='pow') or name == 'power' or name in ENGINES\n"
        ),
        "consensus/__init__.py": "",
        "consensus/registry.py": "pow_engine = name == 'pow'\n",
        "tests/__init__.py": "",
        "tests/test_x.py": "assert name == 'raft'\n",
    })
    assert engine_name_violations(modules) == [
        "node/bad.py:1: genesis.consensus == 'pow'",
        "node/bad.py:3: 'raft' != name",
        "node/bad.py:4: name in ('pbft', 'other')",
        "node/bad.py:6: case 'primary-backup'",
    ]
