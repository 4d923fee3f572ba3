"""Core factories for the simulator tests: the real node core, and a planted bug."""

from __future__ import annotations

from random import Random

from cli.sim import node_core_factory
from consensus.engine import EngineContext
from consensus.pow.engine import PowEngine
from consensus.pow.partition import PartitionHandler
from node.core import NodeCore
from testnet.sim.core import CoreSpec, SimCore

__all__ = ["RecklessPowEngine", "idle_core_factory", "node_core_factory", "reckless_core_factory"]


class _BlindHandler(PartitionHandler):
    def reachable_share(self, now: float) -> float:
        """Always everything: the bug."""
        return 1.0


class RecklessPowEngine(PowEngine):
    """A planted bug: PoW that ignores its partition handler (it always believes it reaches all the hash power),
    so a minority side keeps mining and finalizes its own branch."""

    def __init__(self, context: EngineContext) -> None:
        super().__init__(context)
        self.handler = _BlindHandler(self.params, context.genesis.validators, self.address)


def reckless_core_factory(spec: CoreSpec) -> SimCore:
    """The real node core around the reckless engine (the simulator's factory parameter, no edit to consensus/)."""
    return NodeCore.over_store(name=spec.name, genesis=spec.genesis, store=spec.store, key=spec.key,
                               engine=RecklessPowEngine(EngineContext(genesis=spec.genesis, key=spec.key,
                                                                      rng=Random(spec.rng_seed))),
                               rng=Random(spec.rng_seed))


def idle_core_factory(spec: CoreSpec) -> SimCore:
    """A liveness bug: every node has its miners switched off, so the chain never grows."""
    return NodeCore.over_store(name=spec.name, genesis=spec.genesis, store=spec.store, key=spec.key, mining=False)
