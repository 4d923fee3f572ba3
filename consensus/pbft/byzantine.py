"""Byzantine PBFT validators (pure): an honest engine's outgoing messages, bent one documented way.

A validator switched to a behaviour (the admin action `byzantine`, `chainlab testnet byzantine NODE --behaviour
...`, a scenario's `byzantine` step, or the simulator's draw) keeps running the honest protocol inside, so it
stays in step with the network, and lies only on the wire: `Misbehaviour.apply` rewrites the messages of each
`Ready` before the node sends them, and `Misbehaviour.on_tick` adds messages of its own. Every lie is signed with
the validator's real key (except `bad-signatures`, whose whole point is that it is not), so receivers cannot tell
it from the truth by its form; the protocol must.

| behaviour           | what the validator does                                                             |
|---------------------|-------------------------------------------------------------------------------------|
| `equivocate`        | as primary, pre-prepares its block to half the backups and another digest to the    |
|                     | other half (a block it never publishes)                                             |
| `silent`            | receives everything, sends nothing, proposes nothing                                |
| `withhold-commits`  | prepares, but never sends a COMMIT                                                  |
| `bad-signatures`    | every statement it sends carries a signature that does not verify                  |
| `stale-view-change` | its VIEW-CHANGEs claim the genesis as stable checkpoint and hide what it prepared   |
| `flood`             | every tick, FLOOD_PER_TICK signed PREPAREs and COMMITs for made-up blocks at heights |
|                     | inside the watermarks (COMMITs for the next height; no PREPARE while primary)       |

Twins (two processes holding one validator key, arXiv 2004.10617) need no code here: each twin is an honest
engine; the testnet launcher and the simulator run the second process.
"""

from __future__ import annotations

from dataclasses import replace
from random import Random

from chain import crypto
from chain.errors import RejectError
from consensus.engine import EngineMessage, Outgoing, Ready
from consensus.pbft.messages import (
    TAG_COMMIT,
    TAG_PRE_PREPARE,
    TAG_PREPARE,
    Checkpoint,
    NewView,
    ViewChange,
    Vote,
    commit,
    prepare,
)
from consensus.pbft.quorum import Validators, Watermarks

BEHAVIOURS = ("equivocate", "silent", "withhold-commits", "bad-signatures", "stale-view-change", "flood")
# What honest peers ban the sender for (a forged signature is misbehaviour whoever relays it): `honest` again, the
# validator stays cut off from them for the P2P ban time.
BANNED = ("bad-signatures",)
HONEST = "honest"
FLOOD_PER_TICK = 8

# The engine's message kinds (engine.py imports them from here, so both sides agree).
PRE_PREPARE_KIND = "pbft/pre-prepare"
PREPARE_KIND = "pbft/prepare"
COMMIT_KIND = "pbft/commit"
CHECKPOINT_KIND = "pbft/checkpoint"
VIEW_CHANGE_KIND = "pbft/view-change"
NEW_VIEW_KIND = "pbft/new-view"
VOTE_TAGS = {PRE_PREPARE_KIND: TAG_PRE_PREPARE, PREPARE_KIND: TAG_PREPARE, COMMIT_KIND: TAG_COMMIT}


def parse_behaviour(value: object) -> str | None:
    """The behaviour an admin request names (None: honest again); RejectError `unknown-behaviour` otherwise."""
    if value is None or value == HONEST:
        return None
    if not isinstance(value, str) or value not in BEHAVIOURS:
        raise RejectError("unknown-behaviour", f"byzantine takes one of {', '.join(BEHAVIOURS)} or {HONEST!r}")
    return value


class Misbehaviour:
    """One validator's lie, applied to what its honest engine would send."""

    def __init__(self, behaviour: str, *, key: crypto.PrivateKey, genesis_hash: bytes, validators: Validators,
                 rng: Random) -> None:
        assert behaviour in BEHAVIOURS, behaviour
        self.behaviour = behaviour
        self.key = key
        self.genesis_hash = genesis_hash
        self.validators = validators
        self.rng = rng

    def apply(self, ready: Ready) -> None:
        """Rewrite `ready` in place: its messages (and, when silent, its proposal)."""
        behaviour = self.behaviour
        if behaviour == "silent":
            ready.messages = []
            ready.propose = None
            return
        out: list[Outgoing] = []
        for outgoing in ready.messages:
            kind = outgoing.message.kind
            if behaviour == "withhold-commits" and kind == COMMIT_KIND:
                continue
            if behaviour == "equivocate" and kind == PRE_PREPARE_KIND and outgoing.to is None:
                out.extend(self._equivocate(outgoing.message))
            elif behaviour == "bad-signatures":
                out.append(self._bad_signature(outgoing))
            elif behaviour == "stale-view-change" and kind == VIEW_CHANGE_KIND:
                out.append(self._stale(outgoing))
            else:
                out.append(outgoing)
        ready.messages = out

    def on_tick(self, ready: Ready, *, view: int, marks: Watermarks, next_seq: int) -> None:
        """`flood`: signed votes for made-up blocks, at heights the receivers' watermarks admit."""
        if self.behaviour != "flood":
            return
        low = max(next_seq, marks.low + 1)
        if low > marks.high:
            return
        primary = self.validators.primary(view) == self.key.address  # a primary's prepare is refused by its role
        for _ in range(FLOOD_PER_TICK):
            digest = self.rng.randbytes(32)
            seq = self.rng.randint(low, marks.high)
            if self.rng.random() < 0.5 and not primary:
                vote, kind = prepare(view, seq, digest), PREPARE_KIND
            else:
                vote, kind = commit(view, next_seq, digest), COMMIT_KIND
            ready.messages.append(Outgoing(message=EngineMessage(
                kind=kind, payload=vote.signed(self.key, self.genesis_hash).encode())))

    # -- the lies -------------------------------------------------------------------------------------------------

    def _equivocate(self, message: EngineMessage) -> list[Outgoing]:
        """The real pre-prepare to the first half of the other validators, another digest to the rest."""
        real = Vote.decode(message.payload, TAG_PRE_PREPARE)
        other = replace(real, digest=crypto.sha256(b"chainlab-equivocation" + real.digest)).signed(
            self.key, self.genesis_hash)
        me = self.key.address
        backups = [a for a in self.validators.addresses if a != me]
        half = len(backups) // 2  # fewer than 2f get the real one: neither digest can prepare
        return [Outgoing(message=message if i < half else EngineMessage(kind=message.kind, payload=other.encode()),
                         to=address) for i, address in enumerate(backups)]

    def _bad_signature(self, outgoing: Outgoing) -> Outgoing:
        message = outgoing.message
        kind, payload = message.kind, message.payload
        statement: Vote | Checkpoint | ViewChange | NewView
        if kind in VOTE_TAGS:
            statement = Vote.decode(payload, VOTE_TAGS[kind])
        elif kind == CHECKPOINT_KIND:
            statement = Checkpoint.decode(payload)
        elif kind == VIEW_CHANGE_KIND:
            statement = ViewChange.decode(payload)
        elif kind == NEW_VIEW_KIND:
            statement = NewView.decode(payload)
        else:
            return outgoing
        broken = replace(statement, signature=_corrupt(statement.signature))
        return Outgoing(message=EngineMessage(kind=kind, payload=broken.encode()), to=outgoing.to)

    def _stale(self, outgoing: Outgoing) -> Outgoing:
        """The genesis as stable checkpoint, no prepared certificates: a well-formed, signed, misleading VC."""
        vc = ViewChange.decode(outgoing.message.payload)
        stale = ViewChange(new_view=vc.new_view, stable_seq=0, checkpoint_proof=(), prepared=()).signed(
            self.key, self.genesis_hash)
        return Outgoing(message=EngineMessage(kind=VIEW_CHANGE_KIND, payload=stale.encode()), to=outgoing.to)


def _corrupt(signature: bytes) -> bytes:
    """The same length, one bit different: it parses, and it does not verify."""
    return signature[:-1] + bytes([signature[-1] ^ 1])
