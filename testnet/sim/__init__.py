"""The deterministic simulator (pure): the real node cores of a whole network in one process, on a virtual
clock, with one seed drawing every fault. See docs/SIMULATOR.md.

    from testnet.sim import SimConfig, Simulator
    result = Simulator(SimConfig(seed=1, nodes=5), core_factory).run()

`core_factory` builds each node's core (cli/sim.py passes `node.core.NodeCore.over_store`; tests can pass a
core with a planted bug). Nothing here reads a clock, touches a file or uses global randomness
(tests/test_layering.py enforces it).
"""

from testnet.sim.config import FAULTS, ConfigError, SimConfig, parse_faults
from testnet.sim.core import CoreFactory, CoreSpec, SimCore
from testnet.sim.network import MODELS
from testnet.sim.shapes import SHAPES
from testnet.sim.simulator import SimResult, Simulator
from testnet.sim.swarm import SwarmSpace, swarm_configs

__all__ = [
    "FAULTS", "MODELS", "SHAPES", "ConfigError", "CoreFactory", "CoreSpec", "SimConfig", "SimCore", "SimResult",
    "Simulator", "SwarmSpace", "parse_faults", "swarm_configs",
]
