"""The simulator's events (pure): small frozen values in the event queue, one per thing that can happen."""

from __future__ import annotations

from dataclasses import dataclass

from testnet.sim.causal import Stamp
from testnet.sim.wire import Wire


@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    """`message` from node `src` reaches node `dst`, if their connection `epoch` is still the current one."""

    src: int
    dst: int
    epoch: int
    message: Wire
    stamp: Stamp | None = None  # the causal tracer's, when the run is traced (causal.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """Engine tick and P2P maintenance of `node` (ignored if the node crashed since: another incarnation)."""

    node: int
    incarnation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Housekeeping:
    """Orphan and mempool expiry of `node`."""

    node: int
    incarnation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockFound:
    """`node`'s miners found a block for `job_id` (ignored if newer work replaced the draw: another generation)."""

    node: int
    generation: int
    job_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkUp:
    """The dialer of the pair (a, b) gets through, if the link is allowed by then."""

    a: int
    b: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkTimeout:
    """The pair (a, b) has heard nothing for the peer timeout: close the link if it is still cut."""

    a: int
    b: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NemesisStep:
    """The nemesis picks its next fault."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealPartition:
    """End partition number `serial` (if it is still the current one)."""

    serial: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitStart:
    """The scripted split (config.split_share) begins: two sides by hash power (split.py)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitEnd:
    """The scripted split heals."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitProbe:
    """After the split healed: do all nodes share one tip yet?"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Restart:
    """Restart `node` over its store (if it is still down in incarnation `incarnation`)."""

    node: int
    incarnation: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Submit:
    """A client submits the next transfer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    """A client reads the next account (clients.py)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadTimeout:
    """Linearizable read `request_id` has waited too long: its client gives up (`info`) if it is still open."""

    request_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EndSafety:
    """The safety phase is over: heal everything, start the liveness phase."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """Liveness phase: have the nodes converged and progressed yet?"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Observe:
    """Call the run's observer (the CLI and tests sample memory with it)."""


Event = (Deliver | Tick | Housekeeping | BlockFound | LinkUp | LinkTimeout | NemesisStep | HealPartition | Restart
         | Submit | Read | ReadTimeout | EndSafety | Probe | Observe | SplitStart | SplitEnd | SplitProbe)
