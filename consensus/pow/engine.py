"""The PoW engine: mining decisions, miner presence and the partition handler (pure; see consensus/engine.py).

The partition handler: every miner broadcasts signed presence heartbeats; a failure detector marks each miner
reachable while its heartbeats keep arriving (timeout = `heartbeat_timeout_multiple` x `heartbeat_interval_s`).
Each miner's share of the hash power is estimated from the blocks it mined among the last `share_window_blocks`
blocks, seeded by declared rates from genesis. The node mines only while the reachable share (its own included)
is strictly above `partition_threshold`; once paused it resumes only when the share reaches threshold +
`partition_hysteresis`. So at most one side of a partition extends its chain, and a minority (or an exact half)
cannot bury its own blocks under `finality_threshold` confirmations.
"""

from __future__ import annotations

from chain import crypto
from chain.block import BlockHeader
from chain.chainstore import BlockMeta
from chain.errors import RejectError
from chain.genesis import Genesis
from consensus.engine import ChainView, EngineMessage, MiningDecision, MiningJob, Outgoing, Ready
from consensus.pow.policy import PowPolicy
from consensus.pow.presence import (
    KIND,
    MAX_HOPS,
    FailureDetector,
    decode_presence,
    make_presence,
    verify_presence,
)
from consensus.pow.shares import estimate_shares, partition_finality_risk, reachable_share

_SEQ_KEY = "presence_seq"


# Mining pauses while the peers' best chain is this many blocks ahead of ours (one block ahead is a block still
# propagating; two is a chain we are missing).
SYNC_PAUSE_BLOCKS = 2


class PowEngine:
    """Proof of work with most-work fork choice and the hash-power partition handler."""

    name = "pow"
    engine_finality = False

    def __init__(self, genesis: Genesis, key: crypto.PrivateKey | None, *, mining: bool = True) -> None:
        """`key` is the miner's key (its address receives rewards and signs presence); None for a non-miner."""
        self.genesis = genesis
        self.genesis_hash = genesis.hash
        self.policy = PowPolicy(genesis)
        self.key = key
        self.address = key.address if key is not None else None
        self.mining_enabled = mining and key is not None
        self.threshold = float(genesis.param("partition_threshold"))
        self.hysteresis = float(genesis.param("partition_hysteresis"))
        self.heartbeat_interval_s = float(genesis.param("heartbeat_interval_s"))
        self.detector = FailureDetector(self.heartbeat_interval_s * float(genesis.param("heartbeat_timeout_multiple")))
        self.window = int(genesis.param("share_window_blocks"))
        # Chance per partition that a minority finalizes its own branch before the detector notices (2 digits).
        self.partition_finality_risk = float(f"{partition_finality_risk(genesis):.2g}")
        self.declared = dict(genesis.validators)
        self._chain: ChainView | None = None
        self._ready = Ready()
        self._seq = 0
        self._next_heartbeat = 0.0
        self._shares: dict[bytes, float] = {}
        self._paused_by_partition = False
        self._decision: MiningDecision | None = None
        self._blocks_behind = 0
        self._peers: set[str] = set()
        self._peers_known = False  # until the node reports peers, heartbeats alone decide

    # -- inputs --------------------------------------------------------------------------------------------------

    def start(self, chain: ChainView, *, now: float, now_ms: int, persisted: dict[str, bytes]) -> None:
        """Begin mining decisions on `chain`; the presence sequence resumes above the persisted one."""
        self._chain = chain
        stored = persisted.get(_SEQ_KEY)
        self._seq = max(int.from_bytes(stored, "big") if stored else 0, now_ms)
        self._recount_shares()
        self._next_heartbeat = now
        self.tick(now=now, now_ms=now_ms)

    def tick(self, *, now: float, now_ms: int) -> None:
        """Send a heartbeat when due and re-evaluate the mining decision (reachability changes with time)."""
        if self.key is not None and now >= self._next_heartbeat:
            self._seq = max(self._seq + 1, now_ms)
            heartbeat = make_presence(self.key, genesis_hash=self.genesis_hash, seq=self._seq, time_ms=now_ms)
            self._ready.messages.append(Outgoing(message=EngineMessage(kind=KIND, payload=heartbeat.encode())))
            self._ready.persist[_SEQ_KEY] = self._seq.to_bytes(8, "big")
            self._next_heartbeat = now + self.heartbeat_interval_s
        self._decide(now, tip_changed=False)

    def on_message(self, peer: str, message: EngineMessage, *, now: float, now_ms: int) -> None:
        """Presence from a peer: verify, record, relay once; anything else is a protocol violation."""
        if message.kind != KIND:
            raise RejectError("unknown-engine-message", f"the pow engine has no message kind {message.kind!r}")
        # A heartbeat reaches a node over many paths: check freshness (a dictionary lookup) before the signature
        # (a libsecp256k1 verification), so only the first copy of each is verified; nothing is recorded until
        # the signature checks out.
        presence = decode_presence(message.payload, self.genesis_hash, verify=False)
        if presence.miner_address == self.address:
            return  # our own heartbeat came back around
        if not self.detector.is_fresh(presence.miner_address, presence.seq):
            return  # seen already (or stale): do not relay again
        verify_presence(presence)
        self.detector.observe(presence.miner_address, presence.seq, now)
        if presence.hops < MAX_HOPS:
            relayed = EngineMessage(kind=KIND, payload=presence.relayed().encode())
            self._ready.messages.append(Outgoing(message=relayed, exclude=peer))
        self._decide(now, tip_changed=False)

    def on_chain_changed(
        self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *, now: float,
        now_ms: int,
    ) -> None:
        """The tip moved: re-estimate shares and restart mining on the new tip."""
        self._chain = chain
        self._recount_shares()
        self._decide(now, tip_changed=True)

    def on_sync_gap(self, blocks_behind: int, *, now: float) -> None:
        """Pause while the peers have shown a chain SYNC_PAUSE_BLOCKS or more ahead of ours (a restarted or
        lagging node that mined on its stale tip forked itself, and under message loss could finalize the fork
        before sync caught up: found by the simulator's swarm, docs/ENGINES.md)."""
        if blocks_behind != self._blocks_behind:
            self._blocks_behind = blocks_behind
            self._decide(now, tip_changed=False)

    def on_peer(self, peer: str, up: bool, *, now: float) -> None:
        """With no peer at all nobody is reachable, whatever the last heartbeats said: decide at once instead of
        waiting out the heartbeat timeout (an isolated miner stops within one tick)."""
        self._peers_known = True
        if up:
            self._peers.add(peer)
        else:
            self._peers.discard(peer)
        self._decide(now, tip_changed=False)

    def on_transactions_available(self, *, now: float) -> None:
        """New transactions: refresh the template so they get mined (the job is rebuilt on the same tip)."""
        if self._decision is not None and self._decision.active:
            self._ready.mining = self._decision

    def set_mining_enabled(self, enabled: bool, *, now: float) -> None:
        """Admin switch."""
        self.mining_enabled = enabled and self.key is not None
        self._decide(now, tip_changed=True)

    def seal(self, header: BlockHeader) -> BlockHeader:
        """PoW headers are sealed by the mining workers, never here."""
        raise RuntimeError("the pow engine seals in its mining workers")

    def ready(self) -> Ready:
        """Take the pending outputs."""
        ready, self._ready = self._ready, Ready()
        return ready

    @property
    def tick_interval_s(self) -> float:
        """A quarter heartbeat: reachability is re-judged well within one timeout."""
        return max(0.05, self.heartbeat_interval_s / 4)

    # -- the partition handler -----------------------------------------------------------------------------------

    def _recount_shares(self) -> None:
        # The window ends at the final block, which every side of a partition agrees on: counted from each side's
        # own tip, the blocks a side mines after a cut would raise its own share estimate and could lift both
        # halves of an even split above the threshold.
        assert self._chain is not None
        final_hash = self._chain.hash_at(self._chain.final_height) or self._chain.tip.hash
        recent = [m.header.proposer for m in self._chain.ancestors(final_hash, self.window) if m.height > 0]
        self._shares = estimate_shares(recent, self.declared, prior_blocks=float(self.window))

    def reachable_miners(self, now: float) -> set[bytes]:
        """Miners whose heartbeats are arriving, and ourselves."""
        if self._peers_known and not self._peers:
            reachable: set[bytes] = set()
        else:
            reachable = {a for a in self._shares if self.detector.reachable(a, now)}
        if self.address is not None:
            reachable.add(self.address)
        return reachable

    def reachable_share(self, now: float) -> float:
        """Share of the estimated hash power this node can reach (1.0 while nothing is known yet)."""
        if not self._shares:
            return 1.0
        return reachable_share(self._shares, self.reachable_miners(now))

    def _decide(self, now: float, *, tip_changed: bool) -> None:
        if self._chain is None:
            return
        share = self.reachable_share(now)
        if self._paused_by_partition:
            allowed = share > self.threshold and share >= self.threshold + self.hysteresis
        else:
            allowed = share > self.threshold
        if allowed != (not self._paused_by_partition):
            self._ready.notes.append(
                f"mining {'resumed' if allowed else 'paused'}: reachable hash share {share:.3f} "
                f"{'>' if allowed else '<='} threshold {self.threshold:.3f}"
                + ("" if not allowed else f" (+{self.hysteresis:.3f} hysteresis to resume)")
            )
        self._paused_by_partition = not allowed
        if self.key is None:
            decision = MiningDecision(active=False, reason="not a miner (no key)")
        elif not self.mining_enabled:
            decision = MiningDecision(active=False, reason="mining disabled")
        elif not allowed:
            decision = MiningDecision(active=False, reason=f"partition: reachable share {share:.3f} <= "
                                                          f"threshold {self.threshold:.3f}")
        elif self._blocks_behind >= SYNC_PAUSE_BLOCKS:
            decision = MiningDecision(active=False, reason=f"syncing: peers are {self._blocks_behind} blocks ahead")
        else:
            tip = self._chain.tip
            assert self.address is not None
            job = MiningJob(parent_hash=tip.hash, target=self.policy.expected_target(tip, self._chain),
                            miner=self.address)
            decision = MiningDecision(active=True, reason=f"reachable share {share:.3f}", job=job)
        if decision != self._decision or (tip_changed and decision.active):
            self._ready.mining = decision
        self._decision = decision

    def status(self, *, now: float) -> dict[str, object]:
        """Mining state, the decision and its reason, the reachable share, and every known miner."""
        reachable = self.reachable_miners(now)
        miners = []
        for address in sorted(set(self._shares) | set(self.detector.known())):
            last = self.detector.last_heard_s(address, now)
            miners.append({
                "address": crypto.address_to_text(address),
                "share": round(self._shares.get(address, 0.0), 4),
                "reachable": address in reachable,
                "last_heard_s": None if last is None else round(last, 3),
                "self": address == self.address,
            })
        return {
            "mining": bool(self._decision and self._decision.active),
            "mining_enabled": self.mining_enabled,
            "reason": self._decision.reason if self._decision else "starting",
            "reachable_share": round(self.reachable_share(now), 4),
            "partition_threshold": self.threshold,
            "partition_finality_risk": self.partition_finality_risk,
            "paused_by_partition": self._paused_by_partition,
            "miner": crypto.address_to_text(self.address) if self.address else None,
            "miners": miners,
        }
