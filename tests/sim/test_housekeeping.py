"""Housekeeping in the simulator: what the node's housekeeping loop expires must expire in a simulated run too."""

from __future__ import annotations

from chain.block import make_block
from chain.orphans import OrphanLimits
from testnet.sim.config import SimConfig
from testnet.sim.simulator import Simulator
from tests.sim.helpers import node_core_factory


def test_orphans_expire_in_the_simulator() -> None:
    """An orphan whose ancestors never arrive leaves the pool once it is older than the pool's age limit.

    The block tree stamps orphans with the wall clock (`now_ms`); expiring them with the monotonic clock (as the
    simulator once did) compares two different clocks, and the orphan stays forever.
    """
    config = SimConfig(seed=5, nodes=2, duration_s=1500.0, faults=frozenset(), model="synchronous",
                       tx_rate_per_s=0.0, block_interval_s=60.0)
    max_age_s = OrphanLimits().max_age_s
    seen: dict[str, object] = {}

    def observe(t: float, sim: Simulator) -> None:
        node = sim.nodes[0]
        core = node.core
        assert core is not None
        tree = core.tree
        if "orphan" not in seen:
            parent = make_block(parent=tree.tip.header, height=tree.height + 1, timestamp_ms=node.clock.now_ms(t),
                                txs=[], state_root=bytes(32), proposer=bytes(20), seal=b"\x01" * 40)
            orphan = make_block(parent=parent.header, height=parent.height + 1, timestamp_ms=node.clock.now_ms(t),
                                txs=[], state_root=bytes(32), proposer=bytes(20), seal=b"\x01" * 40)
            result = tree.add_block(orphan, now_ms=node.clock.now_ms(t), source="node1")
            assert result.status == "orphan"
            seen["orphan"] = orphan.hash
            seen["added_at"] = t
            return
        if t >= float(seen["added_at"]) + max_age_s + 60.0:  # type: ignore[arg-type]
            seen.setdefault("still_there_after_max_age", seen["orphan"] in tree.orphans)

    Simulator(config, node_core_factory, observer=observe, observe_every_s=30.0).run()
    assert "still_there_after_max_age" in seen, "the run ended before the orphan was old enough"
    assert seen["still_there_after_max_age"] is False
