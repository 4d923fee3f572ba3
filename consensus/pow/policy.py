"""The PoW chain policy the block tree consults: work, header checks and the block reward (pure)."""

from __future__ import annotations

from chain.block import BlockHeader
from chain.blocktree import ForkChoice, HeaderView
from chain.chainstore import BlockMeta
from chain.errors import RejectError
from chain.genesis import Genesis
from consensus.pow.params import PowParams
from consensus.pow.seal import check_pow, decode_seal, header_work, next_target

MEDIAN_TIME_SPAN = 11  # blocks whose median timestamp a new block must exceed (as Bitcoin)


class PowPolicy:
    """Most-work fork choice, k-confirmation finality and PoW header rules for one genesis."""

    fork_choice = ForkChoice.MOST_WORK
    confirmation_finality = True

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        params = PowParams.of(genesis)
        self.initial_target = params.initial_target
        self.block_interval_s = params.block_interval_s
        self.retarget_window = params.retarget_window

    def block_work(self, header: BlockHeader) -> int:
        """2^256 // (target + 1) of the header's sealed target."""
        return header_work(header)

    def block_reward(self, header: BlockHeader) -> int:
        """The genesis block reward, to every block's miner."""
        return self.genesis.block_reward

    def check_detached_header(self, header: BlockHeader) -> None:
        """Without the parent, at least the header's own target must be met (a relayed orphan costs work)."""
        check_pow(header)

    def target_of(self, meta: BlockMeta) -> int:
        """Target carried by a block (genesis has no seal: the initial target)."""
        if meta.height == 0:
            return self.initial_target
        return decode_seal(meta.header.seal)[0]

    def expected_target(self, parent: BlockMeta, view: HeaderView) -> int:
        """Target a child of `parent` must carry."""
        child_height = parent.height + 1
        if child_height < self.retarget_window or child_height % self.retarget_window != 0:
            return self.target_of(parent)  # no retarget here: walking the window would cost O(window) per block
        window = view.ancestors(parent.hash, self.retarget_window)
        return next_target(
            parent_target=self.target_of(parent), parent_height=parent.height,
            window_timestamps_ms=[m.header.timestamp_ms for m in reversed(window)],
            block_interval_s=self.block_interval_s, retarget_window=self.retarget_window,
            initial_target=self.initial_target,
        )

    def median_time_past_ms(self, parent: BlockMeta, view: HeaderView) -> int:
        """Median timestamp of the last MEDIAN_TIME_SPAN blocks up to `parent`."""
        stamps = sorted(m.header.timestamp_ms for m in view.ancestors(parent.hash, MEDIAN_TIME_SPAN))
        return stamps[len(stamps) // 2]

    def check_header(self, header: BlockHeader, parent: BlockMeta, view: HeaderView, now_ms: int) -> None:
        """Seal well-formed, target as retargeting demands, PoW meets it, timestamp after the median of the past."""
        target, _ = decode_seal(header.seal)
        expected = self.expected_target(parent, view)
        if target != expected:
            raise RejectError("bad-diffbits", f"target {target:064x}, expected {expected:064x}")
        check_pow(header)
        if header.timestamp_ms <= self.median_time_past_ms(parent, view):
            raise RejectError("time-too-old", f"timestamp {header.timestamp_ms} ms is not after the median of the past")
