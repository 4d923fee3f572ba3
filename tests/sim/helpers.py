"""Core factories for the simulator tests: the real node core, and a planted bug."""

from __future__ import annotations

from chain.crypto import PrivateKey
from chain.genesis import Genesis
from cli.sim import node_core_factory
from consensus.pow.engine import PowEngine
from node.core import NodeCore
from testnet.sim.core import CoreSpec, SimCore

__all__ = ["RecklessPowEngine", "idle_core_factory", "node_core_factory", "reckless_core_factory"]


class RecklessPowEngine(PowEngine):
    """A planted bug: PoW that ignores its partition handler (it always believes it reaches all the hash power),
    so a minority side keeps mining and finalizes its own branch."""

    def __init__(self, genesis: Genesis, key: PrivateKey) -> None:
        super().__init__(genesis, key)

    def reachable_share(self, now: float) -> float:
        """Always everything: the bug."""
        return 1.0


def reckless_core_factory(spec: CoreSpec) -> SimCore:
    """The real node core around the reckless engine (the simulator's factory parameter, no edit to consensus/)."""
    return NodeCore.over_store(name=spec.name, genesis=spec.genesis, store=spec.store, key=spec.key,
                               engine=RecklessPowEngine(spec.genesis, spec.key))


def idle_core_factory(spec: CoreSpec) -> SimCore:
    """A liveness bug: every node has its miners switched off, so the chain never grows."""
    return NodeCore.over_store(name=spec.name, genesis=spec.genesis, store=spec.store, key=spec.key, mining=False)
