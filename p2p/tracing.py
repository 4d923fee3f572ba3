"""Causal tracing on the wire (docs/TRACING.md): a node that traces sends each application message as a `Stamped`
frame carrying its clocks, and records the send and every stamped receive in its trace (causality/recorder.py).

Only what moves the chain is traced: relay and sync messages and engine messages. Handshakes, pings and peer
exchange go bare, and so does everything of a node that does not trace: the stamp is absent, at no cost.
"""

from __future__ import annotations

from causality.recorder import NodeTracer
from chain.block import peek_block_hash
from chain.crypto import sha256
from chain.encoding import pack
from p2p.protocol.labels import NO_HASH, relay_label
from p2p.protocol.messages import MESSAGE_VERSION, EngineMsg, Message, Stamped

IDENT_HEX = 16  # the hash a traced message names, cut as the simulator cuts it


def _block_hash(raw: bytes) -> bytes:
    return peek_block_hash(raw) or NO_HASH


def label(message: Message) -> tuple[str, str] | None:
    """(what, ident) of a traced message; None for a message that is not traced."""
    if isinstance(message, EngineMsg):
        return message.kind, sha256(message.payload).hex()[:IDENT_HEX]
    named = relay_label(message, _block_hash, sha256)
    if named is None:
        return None
    return named[0], named[1].hex()[:IDENT_HEX]


class WireTracer:
    """Stamps outgoing frames and records stamped arrivals for one node's tracer."""

    def __init__(self, tracer: NodeTracer) -> None:
        self.tracer = tracer

    def stamp(self, peer: str, message: Message, frame: bytes) -> bytes:
        """The frame to send to `peer` (node id): `frame` wrapped with our clocks when `message` is traced."""
        named = label(message)
        if named is None:
            return frame
        msg_id, vc, lamport = self.tracer.send(peer, *named)
        # Our own clocks are well formed by construction: packed directly, not checked as a peer's would be.
        return pack(Stamped.TAG, MESSAGE_VERSION, [msg_id, vc, lamport, frame])

    def received(self, peer: str, message: Message, stamp: Stamped) -> None:
        """A stamped `message` from `peer` (node id) arrived: its receive event."""
        named = label(message)
        what, ident = named if named is not None else (message.name, "")
        self.tracer.receive(peer, what, ident, msg_id=stamp.msg_id, vc=stamp.vc, lamport=stamp.lamport)
