"""The PoW engine (pure; see consensus/engine.py): mining decisions through the partition handler, presence
heartbeats, and sealing by puzzle.

Proposing is mining: while the partition handler (consensus/pow/partition.py) says mine, the engine asks the node
for a block on the tip (`Ready.propose`, again on every new tip and when transactions arrive) and answers the
node's `seal` with a `Puzzle` (the header's midstate and target) that the node's workers grind; a found nonce
comes back through `solved`. `Ready.proposing` carries the standing decision and its reason (status, logs, and
stopping the workers). Fork choice is most cumulative work and finality k confirmations (consensus/pow/policy.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from chain import crypto
from chain.block import BlockHeader
from chain.blocktree import ChainPolicy
from chain.chainstore import BlockMeta
from chain.errors import RejectError
from consensus.engine import (
    ChainView,
    EngineBase,
    EngineContext,
    EngineMessage,
    EngineState,
    Outgoing,
    ProposeRequest,
    Proposing,
    Puzzle,
    SealOutcome,
    StatusBase,
)
from consensus.pow.params import PowParams
from consensus.pow.partition import Decision, MiningState, PartitionHandler
from consensus.pow.policy import PowPolicy
from consensus.pow.presence import KIND, decode_presence, encode_presence
from consensus.pow.seal import decode_seal, encode_seal, mining_prefix
from consensus.pow.shares import partition_finality_risk


@dataclass(frozen=True, slots=True, kw_only=True)
class PowStatus(StatusBase):
    """PoW's status: the mining decision and the partition handler's view."""

    mining: bool
    mining_enabled: bool
    state: str  # a MiningState value, or "starting"
    reason: str
    reachable_share: float
    partition_threshold: float
    partition_finality_risk: float
    paused_by_partition: bool
    miner: str | None
    miners: tuple[dict[str, object], ...]

    def to_json(self) -> dict[str, object]:
        """JSON values (miners as a list)."""
        out = StatusBase.to_json(self)
        out["miners"] = list(self.miners)
        return out


class PowEngine(EngineBase):
    """Proof of work with most-work fork choice and the hash-power partition handler."""

    name = "pow"

    def __init__(self, context: EngineContext) -> None:
        """`context.key` is the miner's key (its address receives rewards and signs presence); None for a
        non-miner; `proposing_allowed` False starts with mining switched off."""
        super().__init__()
        genesis = context.genesis
        self.genesis = genesis
        self.params = PowParams.of(genesis)
        self._policy = PowPolicy(genesis)
        self.key = context.key
        self.address = self.key.address if self.key is not None else None
        self.mining_enabled = context.proposing_allowed and self.key is not None
        self.handler = PartitionHandler(self.params, genesis.validators, self.address)
        # Chance per partition that a minority finalizes its own branch before the detector notices (2 digits).
        self.partition_finality_risk = float(f"{partition_finality_risk(genesis):.2g}")
        self._chain: ChainView | None = None
        self._next_heartbeat = 0.0
        self._decision: Decision | None = None

    @property
    def policy(self) -> ChainPolicy:
        """PoW header rules, most-work fork choice, confirmation finality."""
        return self._policy

    @property
    def tick_interval_s(self) -> float:
        """A quarter heartbeat: reachability is re-judged well within one timeout."""
        return max(0.05, self.params.heartbeat_interval_s / 4)

    # -- inputs --------------------------------------------------------------------------------------------------

    def start(self, chain: ChainView, state: EngineState, *, now: float, now_ms: int) -> None:
        """Begin mining decisions on `chain` (PoW persists nothing of its own)."""
        self._chain = chain
        self.handler.recount(chain)
        self._next_heartbeat = now
        self.tick(now=now, now_ms=now_ms)

    def tick(self, *, now: float, now_ms: int) -> None:
        """Send a heartbeat when due and re-evaluate the decision (reachability changes with time)."""
        if self._announces_presence() and now >= self._next_heartbeat:
            self._ready.messages.append(Outgoing(message=EngineMessage(kind=KIND, payload=encode_presence(now_ms))))
            self._next_heartbeat = now + self.params.heartbeat_interval_s
        self._decide(now, tip_changed=False)

    def _announces_presence(self) -> bool:
        """Miners announce their presence: a node with a key that mines or is a declared miner of genesis. A relay
        (mining off and no declared share) sends none: nobody counts its hash power, and at scale its heartbeats
        would be most of the traffic (docs/SCALE.md)."""
        return self.key is not None and (self.mining_enabled or self.address in self.genesis.validators)

    def on_message(self, sender: bytes, message: EngineMessage, *, now: float, now_ms: int) -> None:
        """A presence heartbeat (the envelope authenticated the sender and relays it); anything else is a
        protocol violation."""
        if message.kind != KIND:
            raise RejectError("unknown-engine-message", f"the pow engine has no message kind {message.kind!r}")
        decode_presence(message.payload)
        if sender == self.address:
            return
        was_trusted = self.handler.detector.trusted(sender, now)
        self.handler.heard(sender, now)
        if not was_trusted:  # a heartbeat from a miner already reachable changes no share: the tick re-judges time
            self._decide(now, tip_changed=False)

    def on_chain_changed(
        self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *, now: float,
        now_ms: int,
    ) -> None:
        """The tip moved: re-estimate shares and mine on the new tip."""
        self._chain = chain
        self.handler.recount(chain)
        self._decide(now, tip_changed=True)

    def on_sync_status(self, blocks_behind: int, *, now: float) -> None:
        """Pause while the peers have shown a chain SYNC_PAUSE_BLOCKS or more ahead of ours (a restarted or
        lagging node that mined on its stale tip forked itself, and under message loss could finalize the fork
        before sync caught up: found by the simulator's swarm, docs/ENGINES.md)."""
        if blocks_behind != self.handler.blocks_behind:
            self.handler.blocks_behind = blocks_behind
            self._decide(now, tip_changed=False)

    def on_bootstrap(self, waiting: bool, *, now: float) -> None:
        """No mining while the node waits to reach a configured peer and catch up (split at birth)."""
        if waiting != self.handler.awaiting_peers:
            self.handler.awaiting_peers = waiting
            if self._chain is not None:  # before start(), the first decision will see it
                self._decide(now, tip_changed=False)

    def on_peers(self, count: int, *, now: float) -> None:
        """With no peer at all nobody is reachable, whatever the last heartbeats said: decide at once instead of
        waiting out the heartbeat timeout (an isolated miner stops within one tick)."""
        self.handler.peers(count)
        self._decide(now, tip_changed=False)

    def on_transactions_available(self, *, now: float) -> None:
        """New transactions: a fresh template on the same tip, so they get mined."""
        if self._decision is not None and self._decision.mining:
            self._ready.propose = self._request()

    def admin(self, action: str, value: object, *, now: float) -> dict[str, object]:
        """`mining`: switch mining on or off; answers the decision after the switch (the partition handler may
        still keep a switched-on miner paused, and says why)."""
        if action != "mining":
            return super().admin(action, value, now=now)
        if not isinstance(value, bool):
            raise RejectError("bad-request", "mining takes true or false")
        self.mining_enabled = value and self.key is not None
        self._decide(now, tip_changed=True)
        decision = self._decision
        return {"mining_enabled": value, "mining": bool(decision and decision.mining),
                "reason": decision.reason if decision else "starting"}

    def seal(self, header: BlockHeader) -> SealOutcome:
        """A puzzle: the header with the expected target and nonce 0, its midstate prefix, and the target."""
        chain = self._chain
        assert chain is not None, "the engine seals only after start"
        parent = chain.meta(header.parent)
        if parent is None:
            raise AssertionError("a template's parent is known")
        target = self._policy.expected_target(parent, chain)
        unsealed = header.with_seal(encode_seal(target, 0))
        return Puzzle(header=unsealed, prefix=mining_prefix(unsealed.seal_hash, target), target=target)

    def solved(self, puzzle: Puzzle, nonce: int) -> BlockHeader:
        """The puzzle's header sealed with `nonce`."""
        target, _ = decode_seal(puzzle.header.seal)
        return puzzle.header.with_seal(encode_seal(target, nonce))

    # -- the decision ----------------------------------------------------------------------------------------------

    def _request(self) -> ProposeRequest:
        chain = self._chain
        assert chain is not None and self.address is not None
        tip = chain.tip
        return ProposeRequest(parent_hash=tip.hash, proposer=self.address,
                              min_timestamp_ms=self._policy.median_time_past_ms(tip, chain) + 1)

    def _decide(self, now: float, *, tip_changed: bool) -> None:
        if self._chain is None:
            return
        decision, note = self.handler.decide(now=now, has_key=self.key is not None, enabled=self.mining_enabled)
        if note is not None:
            self._ready.notes.append(note)
        changed = decision != self._decision
        if changed:
            self._ready.proposing = Proposing(active=decision.mining, reason=decision.reason)
        if decision.mining and (tip_changed or changed):
            self._ready.propose = self._request()
        self._decision = decision

    def reachable_share(self, now: float) -> float:
        """Share of the estimated hash power this node can reach."""
        return self.handler.reachable_share(now)

    def status(self, *, now: float) -> PowStatus:
        """Mining state, the decision and its reason, the reachable share, and every known miner."""
        handler = self.handler
        reachable = handler.reachable_miners(now)
        miners = []
        for address in sorted(set(handler.shares) | set(handler.detector.known())):
            last = handler.detector.last_heard_s(address, now)
            miners.append({
                "address": crypto.address_to_text(address),
                "share": round(handler.shares.get(address, 0.0), 4),
                "reachable": address in reachable,
                "last_heard_s": None if last is None else round(last, 3),
                "self": address == self.address,
            })
        decision = self._decision
        return PowStatus(
            mining=bool(decision and decision.mining), mining_enabled=self.mining_enabled,
            state=decision.state.value if decision else "starting",
            reason=decision.reason if decision else "starting",
            reachable_share=round(self.reachable_share(now), 4), partition_threshold=handler.threshold,
            partition_finality_risk=self.partition_finality_risk, paused_by_partition=handler.partition_paused,
            miner=crypto.address_to_text(self.address) if self.address else None, miners=tuple(miners),
        )


__all__ = ["MiningState", "PowEngine"]
