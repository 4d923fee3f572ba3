"""The PoW partition handler (pure): mine only while this node reaches more than a threshold of the hash power.

Concept: in a partition, at most one side may keep extending the chain, or two sides finalize conflicting
branches. Guarantee: a side that reaches at most `partition_threshold` (θ, default 0.5) of the estimated hash power
does not mine, so a minority (or an exact half) cannot bury its own blocks under `finality_threshold`
confirmations; the one window is the failure detector's timeout after a cut (docs/ENGINES.md computes the risk).

- **Reachability**: every miner floods a signed presence heartbeat each `heartbeat_interval_s`; the generic
  failure detector (consensus/failure_detector.py) trusts a miner while its heartbeats keep arriving (timeout =
  `heartbeat_timeout_multiple` heartbeats). With no peer at all, nobody else is reachable at once.
- **Shares**: each miner's share is estimated from the blocks it mined among the last `share_window_blocks` blocks
  up to the final block (the prefix both sides of a cut agree on), seeded by the declared rates of genesis.
- **Threshold with hysteresis**: mine while the reachable share is strictly above θ; once paused, resume only at
  θ + `partition_hysteresis`, so a share hovering at the threshold does not flap.
- **Syncing pause**: no mining while the peers have shown a chain `SYNC_PAUSE_BLOCKS` or more ahead (a block mined
  on a tip known to be stale only forks the node; found by the simulator's swarm).
- **Start-up pause**: a node with configured peers does not mine until it has reached one and caught up, or its
  grace period ran out (the node decides, `Engine.on_bootstrap`): two nodes started together with an easy target
  could otherwise each finalize a chain of their own before they connect.

The states and their transitions are in `MiningState` and `next_state`, in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from consensus.engine import ChainView
from consensus.failure_detector import FailureDetector
from consensus.pow.params import PowParams
from consensus.pow.shares import estimate_shares, reachable_share

# Mining pauses while the peers' best chain is this many blocks ahead of ours (one block ahead is a block still
# propagating; two is a chain we are missing).
SYNC_PAUSE_BLOCKS = 2


class MiningState(Enum):
    """Where a PoW node stands on mining."""

    MINING = "mining"
    PAUSED_PARTITION = "paused-partition"
    PAUSED_SYNCING = "paused-syncing"
    PAUSED_STARTUP = "paused-startup"
    DISABLED = "disabled"
    NO_KEY = "no-key"


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """Everything the mining decision depends on at one moment."""

    has_key: bool
    enabled: bool
    share: float
    partition_paused: bool  # the handler's own state before this decision (for the hysteresis)
    blocks_behind: int
    awaiting_peers: bool = False  # the node has configured peers and has not reached one and caught up yet


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The state and the reason shown in status and logs."""

    state: MiningState
    reason: str
    partition_paused: bool  # the handler's state after this decision

    @property
    def mining(self) -> bool:
        """True while the node mines."""
        return self.state is MiningState.MINING


def next_state(inputs: Inputs, *, threshold: float, hysteresis: float) -> Decision:
    """The transition table of the partition handler: the decision for `inputs`, in priority order."""
    share = inputs.share
    # Strictly above the threshold to mine, so two exact halves both pause; once paused, the threshold plus the
    # hysteresis to resume, so a share hovering at the threshold does not flap.
    allowed = share > threshold and (not inputs.partition_paused or share >= threshold + hysteresis)
    paused = not allowed
    # A node that does not mine has nothing to pause: the handler's state stays as it was (a --no-mining node never
    # logs "mining paused"); switched on, the node takes the decision a miner would.
    if not inputs.has_key:
        return Decision(state=MiningState.NO_KEY, reason="not a miner (no key)",
                        partition_paused=inputs.partition_paused)
    if not inputs.enabled:
        return Decision(state=MiningState.DISABLED, reason="mining disabled", partition_paused=inputs.partition_paused)
    if inputs.awaiting_peers:
        return Decision(state=MiningState.PAUSED_STARTUP, partition_paused=inputs.partition_paused,
                        reason="starting: waiting to reach a configured peer and catch up")
    if paused:
        return Decision(state=MiningState.PAUSED_PARTITION, partition_paused=True,
                        reason=f"partition: reachable share {share:.3f} <= threshold {threshold:.3f}")
    if inputs.blocks_behind >= SYNC_PAUSE_BLOCKS:
        return Decision(state=MiningState.PAUSED_SYNCING, partition_paused=False,
                        reason=f"syncing: peers are {inputs.blocks_behind} blocks ahead")
    return Decision(state=MiningState.MINING, reason=f"reachable share {share:.3f}", partition_paused=False)


class PartitionHandler:
    """Reachable hash share, threshold with hysteresis and the syncing pause, for one PoW node."""

    def __init__(self, params: PowParams, declared: Mapping[bytes, int], own_address: bytes | None) -> None:
        self.params = params
        self.threshold = params.partition_threshold
        self.hysteresis = params.partition_hysteresis
        self.detector = FailureDetector(params.detection_window_s)
        self.declared = dict(declared)
        self.own_address = own_address
        self.shares: dict[bytes, float] = {}
        self.blocks_behind = 0
        self.awaiting_peers = False
        self._peer_count: int | None = None  # None until the node reports peers: heartbeats alone decide
        self._partition_paused = False  # the handler's own state, whatever the admin switch says

    def recount(self, chain: ChainView) -> None:
        """Re-estimate the shares from the window that ends at the final block.

        Counted from each side's own tip, the blocks a side mines after a cut would raise its own share estimate
        and could lift both halves of an even split above the threshold; the final block is common to both."""
        final_hash = chain.hash_at(chain.final_height) or chain.tip.hash
        window = self.params.share_window_blocks
        recent = [m.header.proposer for m in chain.ancestors(final_hash, window) if m.height > 0]
        self.shares = estimate_shares(recent, self.declared, prior_blocks=float(window))

    def heard(self, miner: bytes, now: float) -> None:
        """A presence heartbeat of `miner` arrived."""
        self.detector.heard(miner, now)

    def peers(self, count: int) -> None:
        """The node has `count` connected peers."""
        self._peer_count = count

    def reachable_miners(self, now: float) -> set[bytes]:
        """Miners whose heartbeats are arriving, and ourselves."""
        if self._peer_count == 0:
            reachable: set[bytes] = set()
        else:
            reachable = {a for a in self.shares if self.detector.trusted(a, now)}
        if self.own_address is not None:
            reachable.add(self.own_address)
        return reachable

    def reachable_share(self, now: float) -> float:
        """Share of the estimated hash power this node can reach (1.0 while nothing is known yet)."""
        if not self.shares:
            return 1.0
        return reachable_share(self.shares, self.reachable_miners(now))

    def decide(self, *, now: float, has_key: bool, enabled: bool) -> tuple[Decision, str | None]:
        """The next decision, and a log note when the partition handler itself paused or resumed."""
        # A node that does not mine decides the same whatever it reaches (next_state): skip counting the share.
        share = self.reachable_share(now) if has_key and enabled else 0.0
        decision = next_state(Inputs(has_key=has_key, enabled=enabled, share=share,
                                     partition_paused=self._partition_paused, blocks_behind=self.blocks_behind,
                                     awaiting_peers=self.awaiting_peers),
                              threshold=self.threshold, hysteresis=self.hysteresis)
        note = None
        if decision.partition_paused != self._partition_paused:
            paused = decision.partition_paused
            note = (f"mining {'paused' if paused else 'resumed'}: reachable hash share {share:.3f} "
                    f"{'<=' if paused else '>'} threshold {self.threshold:.3f}"
                    + ("" if paused else f" (+{self.hysteresis:.3f} hysteresis to resume)"))
        self._partition_paused = decision.partition_paused
        return decision, note

    @property
    def partition_paused(self) -> bool:
        """True while the reachable share keeps the node paused."""
        return self._partition_paused
