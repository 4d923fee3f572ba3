"""One peer connection as a pure object (in the manner of h11): frames in, events out, frames to send returned.

Handshake (docs/P2P.md): the dialing side sends `Hello` first; the accepting side answers with its own `Hello`
once it has read (and admitted) the dialer's. Each side, on the peer's Hello, checks protocol version, chain id,
genesis hash and that the peer is not itself, then sends `HelloAck`: its signature over
SHA-256(domain || peer's challenge || signer's node id || receiver's node id || genesis hash). On the peer's
HelloAck the signature is verified against the node id the peer claimed, and the session is READY. Anything but
Hello / HelloAck / Disconnect before READY is a protocol violation.

A peer's fault raises `FrameError` (a frame that is not a message), `ProtocolViolation` (a message at the wrong
time) or `HandshakeRefused` (the peer cannot be ours: another network, version, itself, a forged ack); all carry a
stable code, and the driver answers with `close(code, message)`. Misusing the session locally raises
`LocalProtocolError`: that is our bug, not the peer's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from random import Random

from chain import crypto
from chain.errors import RejectError
from p2p.protocol.codec import DEFAULT_MAX_MESSAGE_BYTES, decode_frame, encode_frame, split_frames
from p2p.protocol.messages import (
    CHALLENGE_BYTES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Disconnect,
    Hello,
    HelloAck,
    Message,
    Ping,
    Pong,
    Stamped,
)

HANDSHAKE_DOMAIN = b"chainlab/p2p/hello-ack/v1"
USER_AGENT = "chainlab/0.1"
_MAX_OUTSTANDING_PINGS = 8


class ProtocolViolation(RejectError):
    """The peer sent a valid message that the protocol does not allow now (code e.g. `unexpected-message`)."""


class HandshakeRefused(ProtocolViolation):
    """The handshake cannot complete: `bad-version`, `wrong-chain-id`, `wrong-genesis`, `self-connection`,
    `bad-handshake-signature` (or, from the driver's checks, `banned` at the Hello and, once the ack proved the id,
    `duplicate-peer`, `too-many-peers`, `too-many-from-address`)."""


class LocalProtocolError(Exception):
    """The session was used against its contract by our own code (a bug, never the peer's fault)."""


class SessionState(Enum):
    """Where a connection stands; the transitions are all in `_TRANSITIONS`."""

    AWAITING_HELLO = "awaiting-hello"
    AWAITING_ACK = "awaiting-ack"
    READY = "ready"
    CLOSED = "closed"


_READY_TYPES = [cls for cls in MESSAGE_TYPES if not cls.HANDSHAKE]
# The whole state machine of receiving: state -> message kind -> next state. A kind not listed is a violation.
# Sending follows from it: our Hello goes out first (dialer) or on the peer's Hello (acceptor), our HelloAck on the
# peer's Hello, other messages only when READY, Disconnect in any state (then CLOSED).
_TRANSITIONS: dict[SessionState, dict[type[Message], SessionState]] = {
    SessionState.AWAITING_HELLO: {Hello: SessionState.AWAITING_ACK, Disconnect: SessionState.CLOSED},
    SessionState.AWAITING_ACK: {HelloAck: SessionState.READY, Disconnect: SessionState.CLOSED},
    SessionState.READY: {**{cls: SessionState.READY for cls in _READY_TYPES}, Disconnect: SessionState.CLOSED},
    SessionState.CLOSED: {},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HelloReceived:
    """The peer introduced itself and passed the network checks. Its node id is a claim until `HandshakeComplete`:
    refuse now only what no proof could change (blocked, banned); admit, replace or penalize by id only after."""

    hello: Hello


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeComplete:
    """The peer proved it owns `hello.node_id`; the session is READY."""

    hello: Hello


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageReceived:
    """An application message from a READY peer, with the sender's clocks when it came stamped (a tracing peer)."""

    message: Message
    stamp: Stamped | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A frame the session itself must send (our Hello, HelloAck or a Pong)."""

    frame: bytes
    message: Message


@dataclass(frozen=True, slots=True, kw_only=True)
class PongReceived:
    """A Pong answered one of our Pings after `rtt_s` seconds."""

    rtt_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerClosed:
    """The peer said goodbye with a reason code; the session is CLOSED."""

    code: str
    message: str


Event = HelloReceived | HandshakeComplete | MessageReceived | Reply | PongReceived | PeerClosed


def handshake_digest(challenge: bytes, signer_id: bytes, receiver_id: bytes, genesis_hash: bytes) -> bytes:
    """What a HelloAck signs: binds the receiver's fresh challenge, both identities and the network."""
    return crypto.sha256(HANDSHAKE_DOMAIN + challenge + signer_id + receiver_id + genesis_hash)


class PeerSession:
    """The protocol state of one connection (no I/O: the driver moves the bytes and reads the clock).

    Drive it with `start` (dialer only), `receive(frame, now)` for every frame read, `send(message)` for frames to
    write, `ping_due` / `expired` from a timer, and `close(code, message)` to leave.
    """

    def __init__(
        self, *, identity: crypto.PrivateKey, chain_id: str, genesis_hash: bytes, outbound: bool, rng: Random,
        now: float, best_height: int = 0, listen_url: str = "", user_agent: str = USER_AGENT,
        protocol_version: int = PROTOCOL_VERSION, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.outbound = outbound
        self.max_message_bytes = max_message_bytes
        self._identity = identity
        self._rng = rng
        self.state = SessionState.AWAITING_HELLO
        self.our_hello = Hello(
            protocol_version=protocol_version, chain_id=chain_id, genesis_hash=genesis_hash,
            node_id=identity.public_key, challenge=rng.randbytes(CHALLENGE_BYTES), listen_url=listen_url,
            best_height=best_height, user_agent=user_agent,
        )
        self.peer_hello: Hello | None = None
        self.created_at = now
        self.last_received = now
        self.ready_at: float | None = None
        self.rtt_s: float | None = None
        self.close_code: str | None = None
        self._hello_sent = False
        self._last_ping = now
        self._pings: OrderedDict[int, float] = OrderedDict()

    # -- identity ------------------------------------------------------------------------------------------------

    @property
    def peer_id(self) -> str | None:
        """The peer's node id in hex once it sent Hello (authenticated only when READY)."""
        return self.peer_hello.node_id.hex() if self.peer_hello is not None else None

    @property
    def ready(self) -> bool:
        """True once the handshake completed and until the session closes."""
        return self.state is SessionState.READY

    # -- sending -------------------------------------------------------------------------------------------------

    def start(self) -> bytes:
        """Our Hello frame, sent first by the dialing side."""
        if not self.outbound or self._hello_sent:
            raise LocalProtocolError("only the dialing side starts, once")
        self._hello_sent = True
        return encode_frame(self.our_hello)

    def send(self, message: Message) -> bytes:
        """The frame of an application message; only once READY."""
        if message.HANDSHAKE:
            raise LocalProtocolError(f"{message.name} is sent by the session itself")
        if self.state is not SessionState.READY:
            raise LocalProtocolError(f"cannot send {message.name} in state {self.state.value}")
        return encode_frame(message)

    def close(self, code: str, message: str = "") -> bytes:
        """Leave the session: the Disconnect frame to send as the last one."""
        self.state = SessionState.CLOSED
        self.close_code = code
        return encode_frame(Disconnect.of(code, message))

    def ping_due(self, now: float, interval_s: float) -> bytes | None:
        """A Ping frame when READY and `interval_s` passed since the last one, else None."""
        if self.state is not SessionState.READY or now - self._last_ping < interval_s:
            return None
        self._last_ping = now
        nonce = self._rng.getrandbits(64)
        self._pings[nonce] = now
        while len(self._pings) > _MAX_OUTSTANDING_PINGS:
            self._pings.popitem(last=False)
        return encode_frame(Ping(nonce=nonce, sent_ms=int(now * 1000) & ((1 << 64) - 1)))

    def expired(self, now: float, timeout_s: float) -> bool:
        """True when the peer has been silent for more than `timeout_s` (handshake included): the failure
        detector's suspicion. A READY peer answers our Pings, so silence means it is gone or stuck."""
        return self.state is not SessionState.CLOSED and now - self.last_received > timeout_s

    # -- receiving -----------------------------------------------------------------------------------------------

    def receive(self, frame: bytes, now: float) -> list[Event]:
        """Process one frame from the peer and return what happened, in order.

        Raises FrameError, ProtocolViolation or HandshakeRefused for the peer's faults; the session is then still
        open, and the driver should `close` it with the error's code.
        """
        if self.state is SessionState.CLOSED:
            return []
        if self.outbound and not self._hello_sent:
            raise LocalProtocolError("the dialing side must call start() before receiving")
        frames = split_frames(frame, self.max_message_bytes)
        if len(frames) > 1:  # a Bundle: its frames in order, as if each had come alone
            events: list[Event] = []
            for inner in frames:
                events.extend(self.receive(inner, now))
            return events
        message = decode_frame(frame, self.max_message_bytes)
        stamp = None
        if isinstance(message, Stamped):  # a tracing peer's frame: the message inside, with its clocks
            stamp = message
            message = decode_frame(stamp.frame, self.max_message_bytes)
            if message.HANDSHAKE or isinstance(message, Ping | Pong):
                raise ProtocolViolation("unexpected-message", f"a stamped {message.name}: only application "
                                                              "messages are stamped")
        self.last_received = now
        next_state = _TRANSITIONS[self.state].get(type(message))
        if next_state is None:
            raise ProtocolViolation("unexpected-message", f"{message.name} in state {self.state.value}")
        events = self._handle(message, now)
        self.state = next_state
        if stamp is not None and events and isinstance(events[0], MessageReceived):
            events[0] = MessageReceived(message=message, stamp=stamp)
        return events

    def _handle(self, message: Message, now: float) -> list[Event]:
        if isinstance(message, Hello):
            return self._on_hello(message)
        if isinstance(message, HelloAck):
            return self._on_ack(message, now)
        if isinstance(message, Disconnect):
            self.close_code = message.code
            return [PeerClosed(code=message.code, message=message.message)]
        if isinstance(message, Ping):
            pong = Pong(nonce=message.nonce)
            return [Reply(frame=encode_frame(pong), message=pong)]
        if isinstance(message, Pong):
            sent = self._pings.pop(message.nonce, None)
            if sent is None:
                return []  # an answer to a ping we no longer track: harmless
            self.rtt_s = now - sent
            return [PongReceived(rtt_s=self.rtt_s)]
        return [MessageReceived(message=message)]

    def _on_hello(self, hello: Hello) -> list[Event]:
        ours = self.our_hello
        if hello.protocol_version != ours.protocol_version:
            raise HandshakeRefused(
                "bad-version", f"protocol {hello.protocol_version}, we speak {ours.protocol_version}"
            )
        if hello.chain_id != ours.chain_id:
            raise HandshakeRefused(
                "wrong-chain-id", f"peer is on chain {hello.chain_id!r}, we are on {ours.chain_id!r}"
            )
        if hello.genesis_hash != ours.genesis_hash:
            raise HandshakeRefused(
                "wrong-genesis", f"peer genesis {hello.genesis_hash.hex()}, ours {ours.genesis_hash.hex()}"
            )
        if hello.node_id == ours.node_id or hello.challenge == ours.challenge:
            raise HandshakeRefused("self-connection", "connected to ourselves")
        self.peer_hello = hello
        events: list[Event] = [HelloReceived(hello=hello)]
        if not self._hello_sent:
            self._hello_sent = True
            events.append(Reply(frame=encode_frame(ours), message=ours))
        digest = handshake_digest(hello.challenge, ours.node_id, hello.node_id, ours.genesis_hash)
        ack = HelloAck(signature=self._identity.sign(digest))
        events.append(Reply(frame=encode_frame(ack), message=ack))
        return events

    def _on_ack(self, ack: HelloAck, now: float) -> list[Event]:
        hello = self.peer_hello
        assert hello is not None, "AWAITING_ACK is only reached through the peer's Hello"
        digest = handshake_digest(self.our_hello.challenge, hello.node_id, self.our_hello.node_id, hello.genesis_hash)
        if not crypto.verify(hello.node_id, ack.signature, digest):
            raise HandshakeRefused("bad-handshake-signature", "HelloAck does not prove ownership of the node id")
        self.ready_at = now
        self._last_ping = now
        return [HandshakeComplete(hello=hello)]
