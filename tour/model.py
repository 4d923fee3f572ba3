"""What a demonstration of the theory tour is, and what it gives back (pure).

A demonstration makes one concept of the theory happen on the project's own code (the simulator running the
production node cores, or the pure modules directly), checks that it happened, and returns an `Outcome`: the lines
that say what happened, the checks with their verdicts, the figures measured (JSON values) and the pictures it
drew (file name and text: SVG or HTML). Nothing here touches a file, a clock or global randomness: the seed, the
core factory and the runner of real node processes come in through `TourContext`, and cli/tour.py writes and opens
the pictures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from testnet.checks import CheckResult
from testnet.sim.core import CoreFactory


class Kind(Enum):
    """How a demonstration runs: in the simulator or the pure modules (seconds, deterministic by seed), or with
    real node processes on this machine (tens of seconds, not deterministic)."""

    SIMULATED = "simulated"
    REAL_PROCESS = "real-process"


@dataclass(frozen=True, slots=True, kw_only=True)
class Picture:
    """One picture a demonstration drew: `name` is its file name (`tree.svg`, `spacetime.html`), `text` its
    content, `caption` one line saying what it shows."""

    name: str
    text: str
    caption: str

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"a picture's name is a plain file name: {self.name!r}")


class RealRuns(Protocol):
    """What the real-process demonstrations ask the shell for (testnet/tourreal.py): each starts node processes,
    observes them through RPC, takes them all down, and returns what it observed as JSON values (the demonstration
    judges those, purely)."""

    def cap(self, seed: int) -> Mapping[str, Any]:
        """`chainlab testnet cap`'s result (testnet/cap.py `run_cap`) for both engines."""
        ...

    def blockchain(self, seed: int, fast: bool) -> Mapping[str, Any]:
        """A short PoW testnet's observations (testnet/tourreal.py `observe_blockchain`)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TourContext:
    """What a demonstration gets: the seed every draw comes from, `fast` (fewer seeds or a shorter run, for CI),
    and the factory of the node cores the simulator runs (cli/sim.py's `node_core_factory`; a test passes one
    with a planted bug), and `real`, the shell that starts real node processes (None: none can be started here,
    and a real-process demonstration says so in a failed check)."""

    seed: int
    core_factory: CoreFactory
    fast: bool = False
    real: RealRuns | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a demonstration did and its verdict: `ok` when every check passed."""

    concept: str
    seed: int
    lines: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    figures: Mapping[str, Any] = field(default_factory=dict)
    pictures: tuple[Picture, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every check passed (a demonstration always has at least one)."""
        return bool(self.checks) and all(check.ok for check in self.checks)

    def failed_checks(self) -> list[str]:
        """Names of the checks that failed."""
        return [check.name for check in self.checks if not check.ok]

    def to_json(self, written: Sequence[str] = ()) -> dict[str, Any]:
        """JSON values; `written` lists the paths the pictures went to."""
        return {"concept": self.concept, "seed": self.seed, "ok": self.ok, "lines": list(self.lines),
                "checks": [check.to_json() for check in self.checks], "figures": dict(self.figures),
                "pictures": [{"name": p.name, "caption": p.caption} for p in self.pictures],
                "written": list(written)}


Demonstration = Callable[[TourContext], Outcome]

def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and its noun, singular for one: "1 reorg", "3 reorgs", "1 late write" ("blocks behind": noun "block",
    then the caller's words)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


SEEDS = 1 << 64  # --seed's range, the simulator's: 0 .. 2**64 - 1


def seeds_from(seed: int, count: int) -> list[int]:
    """`count` seeds from `seed` up, for a demonstration that tries the next seed when one shows nothing; past the
    largest they wrap to 0 (a SimConfig refuses 2**64)."""
    return [(seed + i) % SEEDS for i in range(count)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Concept:
    """One concept of the theory: its command name, its group, its name in English and as the Chinese source text
    names it, one line on what its demonstration shows, how that runs, the demonstration itself, and whether
    `tour run --all --fast` runs it (`in_fast` False: too long for it; the run names it as skipped)."""

    name: str
    group: str
    title: str
    title_zh: str
    summary: str
    kind: Kind
    demonstration: Demonstration
    in_fast: bool = True

    def to_json(self) -> dict[str, Any]:
        """The catalogue row as JSON values."""
        return {"name": self.name, "group": self.group, "title": self.title, "title_zh": self.title_zh,
                "summary": self.summary, "kind": self.kind.value,
                "in_fast": self.in_fast}
