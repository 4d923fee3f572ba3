"""PoW's genesis parameters: the table `genesis new` lists and checks, and their typed view (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from chain.genesis import Genesis, ParamSpec
from consensus.params import engine_param


def _hex_target(value: str) -> str | None:
    try:
        target = int(value, 16)
    except ValueError:
        return "must be hex"
    if len(value) != 64 or target == 0:
        return "must be 64 hex digits and not zero"
    return None


POW_PARAMETERS: dict[str, ParamSpec] = {
    "initial_target": ParamSpec(kind=str, default="00" + "f" * 62, meaning="PoW target of the first blocks, "
                                "64 hex digits", check=_hex_target),
    "retarget_window": ParamSpec(kind=int, default=20, meaning="blocks per difficulty retarget window",
                                 check=lambda v: "must be at least 1 (blocks per retarget)" if v < 1 else None),
    "partition_threshold": ParamSpec(kind=float, default=0.5, meaning="mine only while the reachable hash share "
                                     "is strictly above this",
                                     check=lambda v: "must be in [0, 1)" if not 0 <= v < 1 else None),
    "partition_hysteresis": ParamSpec(kind=float, default=0.05, meaning="once paused, resume only at threshold + "
                                      "hysteresis"),
    "heartbeat_interval_s": ParamSpec(kind=float, default=1.0, meaning="miner presence heartbeat period",
                                      check=lambda v: "must be above 0" if v <= 0 else None),
    "heartbeat_timeout_multiple": ParamSpec(
        kind=float, default=4.0, meaning="a miner is unreachable after this many missed heartbeats",
        check=lambda v: "must be above 1 (a miner would time out between its own heartbeats)" if v <= 1 else None),
    "share_window_blocks": ParamSpec(
        kind=int, default=100, meaning="blocks over which each miner's hash share is estimated",
        check=lambda v: "must be at least 1 (no window, no share estimate, no mining)" if v < 1 else None),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PowParams:
    """The PoW parameters of one genesis, typed."""

    block_interval_s: float
    initial_target: int
    retarget_window: int
    partition_threshold: float
    partition_hysteresis: float
    heartbeat_interval_s: float
    heartbeat_timeout_multiple: float
    share_window_blocks: int

    @classmethod
    def of(cls, genesis: Genesis) -> PowParams:
        """Read (with defaults) from `genesis`."""
        def param(name: str) -> object:
            return engine_param(genesis, POW_PARAMETERS, name)

        return cls(
            block_interval_s=float(genesis.param("block_interval_s")),
            initial_target=int(str(param("initial_target")), 16),
            retarget_window=int(str(param("retarget_window"))),
            partition_threshold=float(str(param("partition_threshold"))),
            partition_hysteresis=float(str(param("partition_hysteresis"))),
            heartbeat_interval_s=float(str(param("heartbeat_interval_s"))),
            heartbeat_timeout_multiple=float(str(param("heartbeat_timeout_multiple"))),
            share_window_blocks=int(str(param("share_window_blocks"))),
        )

    @property
    def detection_window_s(self) -> float:
        """How long a cut can go unnoticed: one heartbeat timeout."""
        return self.heartbeat_interval_s * self.heartbeat_timeout_multiple
