"""Network models (pure): how long a message takes, drawn from the run's `Random`.

The three timing models of distributed-systems theory:

- `SynchronousModel`: every delay lies in [min_delay_s, max_delay_s] (the known bound D); delays are independent,
  so messages on one link are reordered whenever a later one draws a shorter delay.
- `AsynchronousModel`: delays have no bound: `min_delay_s` plus a Pareto tail (shape `alpha`, scale
  `scale_s`), so most messages are quick, a few are very late, and reordering is common.
- `PartialSyncModel`: asynchronous until the global stabilisation time `gst_s`, bounded after it: a message sent
  at time t arrives by max(t, GST) + D (as in Dwork, Lynch and Stockmeyer), even if it was sent before GST.

Loss and duplication are faults, not part of a model: the simulator applies them on top (`LinkFaults`). Each model
also says what it becomes when the network heals (`healed`): the liveness phase runs on the bounded regime.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Protocol

MODELS = ("synchronous", "asynchronous", "partial-sync")


class NetworkModel(Protocol):
    """Delay of one message sent at virtual time `now`."""

    @property
    def name(self) -> str:
        """The model's name (one of MODELS)."""

    def delay(self, rng: Random, now: float) -> float:
        """Seconds the message spends in flight (drawn from `rng`)."""

    def bound(self, now: float) -> float | None:
        """Largest delay a message sent at `now` can draw, or None when unbounded."""

    def healed(self) -> NetworkModel:
        """The bounded model the network runs on once every fault is healed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SynchronousModel:
    """Every delay in [min_delay_s, max_delay_s]; short delays are likelier (a square of a uniform draw)."""

    max_delay_s: float
    min_delay_s: float = 0.001
    name: str = "synchronous"

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay_s <= self.max_delay_s:
            raise ValueError("need 0 <= min_delay_s <= max_delay_s")

    def delay(self, rng: Random, now: float) -> float:
        """A delay within the bound."""
        return self.min_delay_s + (self.max_delay_s - self.min_delay_s) * rng.random() ** 2

    def bound(self, now: float) -> float | None:
        """D."""
        return self.max_delay_s

    def healed(self) -> NetworkModel:
        """Already bounded."""
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class AsynchronousModel:
    """Unbounded heavy-tailed delays: min_delay_s + scale_s * (Pareto(alpha) - 1)."""

    scale_s: float
    alpha: float = 1.5
    min_delay_s: float = 0.001
    healed_max_delay_s: float = 1.0  # D of the bounded regime after heal
    name: str = "asynchronous"

    def __post_init__(self) -> None:
        if self.scale_s <= 0 or self.alpha <= 0 or self.min_delay_s < 0:
            raise ValueError("scale_s and alpha must be positive, min_delay_s non-negative")

    def delay(self, rng: Random, now: float) -> float:
        """Usually about `scale_s`, occasionally orders of magnitude more."""
        return self.min_delay_s + self.scale_s * (rng.paretovariate(self.alpha) - 1.0)

    def bound(self, now: float) -> float | None:
        """None: no bound."""
        return None

    def healed(self) -> NetworkModel:
        """The synchronous model with D = healed_max_delay_s."""
        return SynchronousModel(max_delay_s=self.healed_max_delay_s, min_delay_s=self.min_delay_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialSyncModel:
    """Asynchronous before `gst_s`; afterwards every message arrives within D of max(sent, GST)."""

    gst_s: float
    before: AsynchronousModel
    after: SynchronousModel
    name: str = "partial-sync"

    def delay(self, rng: Random, now: float) -> float:
        """Before GST: the asynchronous draw, cut off at GST + a bounded draw; after GST: a bounded draw."""
        bounded = self.after.delay(rng, now)
        if now >= self.gst_s:
            return bounded
        return min(self.before.delay(rng, now), self.gst_s - now + bounded)

    def bound(self, now: float) -> float | None:
        """max(now, GST) + D - now."""
        if now >= self.gst_s:
            return self.after.max_delay_s
        return self.gst_s - now + self.after.max_delay_s

    def healed(self) -> NetworkModel:
        """The post-GST synchronous model."""
        return self.after


def make_model(name: str, *, max_delay_s: float, gst_s: float, async_scale_s: float, alpha: float = 1.5,
               ) -> NetworkModel:
    """The model called `name` (one of MODELS) with bound D = max_delay_s."""
    synchronous = SynchronousModel(max_delay_s=max_delay_s)
    asynchronous = AsynchronousModel(scale_s=async_scale_s, alpha=alpha, healed_max_delay_s=max_delay_s)
    if name == "synchronous":
        return synchronous
    if name == "asynchronous":
        return asynchronous
    if name == "partial-sync":
        return PartialSyncModel(gst_s=gst_s, before=asynchronous, after=synchronous)
    raise ValueError(f"unknown network model {name!r} (known: {', '.join(MODELS)})")


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkFaults:
    """Message faults on every link: drop with probability `loss`, deliver twice with probability `duplicate`."""

    loss: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.loss <= 1 and 0 <= self.duplicate <= 1):
            raise ValueError("loss and duplicate are probabilities")

    def copies(self, rng: Random) -> int:
        """How many copies of one message to deliver: 0 (lost), 1, or 2 (duplicated)."""
        if self.loss and rng.random() < self.loss:
            return 0
        if self.duplicate and rng.random() < self.duplicate:
            return 2
        return 1


NO_LINK_FAULTS = LinkFaults()
