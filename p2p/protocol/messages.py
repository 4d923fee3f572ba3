"""P2P messages: small frozen values that validate on construction.

Every message travels as one canonical msgpack frame `[tag, version, field, ...]` (see `p2p.protocol.codec`),
with its fields in the order they are declared here. Tags 32..63 belong to P2P (docs/FORMATS.md); a tag is never
reused. Limits are part of the message definition, so a frame that decodes is also within bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from causality.clocks import MAX_ENTRIES as MAX_CLOCK_ENTRIES
from causality.recorder import MAX_NAME_CHARS as MAX_TRACE_NAME_CHARS
from chain import crypto
from chain.block import MAX_BLOCK_BYTES
from chain.encoding import check_bytes, check_text, check_uint
from chain.tx import MAX_CHAIN_ID_CHARS, MAX_TX_BYTES

PROTOCOL_VERSION = 3  # 2: Bundle; 3: Stamped (an older node cannot read them: the handshake keeps them apart)
MESSAGE_VERSION = 1  # the encoding version of every message kind today

MAX_INV_HASHES = 1_000
MAX_LOCATOR_HASHES = 64
MAX_BLOCKS_PER_BATCH = 500
MAX_PEER_URLS = 100
MAX_URL_CHARS = 256
MAX_USER_AGENT_CHARS = 64
MAX_ENGINE_KIND_CHARS = 32
MAX_ENGINE_PAYLOAD_BYTES = 1024 * 1024
MAX_BUNDLE_FRAMES = 256
MAX_DISCONNECT_CODE_CHARS = 64
MAX_DISCONNECT_MESSAGE_CHARS = 256
CHALLENGE_BYTES = 32
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

INVENTORY_KINDS = ("tx", "block")


class Message:
    """Base of every P2P message: its `TAG`, and conversion to and from the frame's field list."""

    __slots__ = ()
    TAG: ClassVar[int]
    HANDSHAKE: ClassVar[bool] = False  # Hello, HelloAck and Disconnect: allowed before the session is ready

    def fields(self) -> list[Any]:
        """The values of this message in declaration order (tuples encode as msgpack arrays)."""
        return [getattr(self, f.name) for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    @classmethod
    def field_count(cls) -> int:
        """Number of fields after tag and version."""
        return len(dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_fields(cls, values: Sequence[Any]) -> Self:
        """Build (and so validate) a message from decoded field values; raises TypeError or ValueError."""
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        if len(values) != len(names):
            raise ValueError(f"{cls.__name__} has {len(names)} fields, got {len(values)}")
        # msgpack gives arrays back as lists; the messages hold tuples so that they stay immutable.
        kwargs = {name: tuple(v) if type(v) is list else v for name, v in zip(names, values, strict=True)}
        return cls(**kwargs)

    @property
    def name(self) -> str:
        """Message kind for logs and metrics (the class name)."""
        return type(self).__name__


def _check_hashes(value: object, name: str, max_count: int) -> tuple[bytes, ...]:
    if type(value) is not tuple:
        raise ValueError(f"{name} must be a tuple of hashes")
    if len(value) > max_count:
        raise ValueError(f"{name} holds {len(value)} hashes, more than {max_count}")
    for item in value:
        check_bytes(item, name, size=crypto.HASH_BYTES)
    return value


def _check_kind(value: object) -> str:
    if value not in INVENTORY_KINDS or type(value) is not str:
        raise ValueError(f"inventory kind must be one of {INVENTORY_KINDS}, got {value!r}")
    return value


def check_peer_url(value: object) -> str:
    """Return `value` if it is a ws:// or wss:// URL of printable ASCII within MAX_URL_CHARS; else ValueError."""
    url = check_text(value, "url", min_size=1, max_size=MAX_URL_CHARS)
    if not url.startswith(("ws://", "wss://")) or " " in url:
        raise ValueError(f"peer url must be ws:// or wss://, got {url!r}")
    return url


DEFAULT_P2P_PATH = "/p2p"


def normalize_peer_address(text: object) -> str:
    """The ws:// URL of a peer address as people write it: `host:port`, `ws://host:port` (the path defaults to
    /p2p) or `ws[s]://host:port/path`. ValueError with a one-line reason for anything else (http://, no port, a
    port out of range, spaces, query strings)."""
    if not isinstance(text, str):
        raise ValueError(f"peer address must be text, got {type(text).__name__}")
    raw = text.strip()
    if not raw:
        raise ValueError("peer address is empty")
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "ws", raw
    elif scheme.lower() not in ("ws", "wss"):
        raise ValueError(f"peer address {raw!r}: use host:port or ws://host:port[/path], not {scheme}://")
    scheme = scheme.lower()
    hostport, slash, path = rest.partition("/")
    if any(c in raw for c in " ?#@\t") or not hostport:
        raise ValueError(f"peer address {raw!r}: expected host:port or ws://host:port[/path]")
    host, colon, port_text = hostport.rpartition(":")
    if hostport.startswith("[") and hostport.endswith("]"):  # an IPv6 literal without a port
        colon = ""
    if not colon or not host or host in ("[", "[]"):
        raise ValueError(f"peer address {raw!r}: a port is required (host:port)")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"peer address {raw!r}: port must be a number in 1..65535")
    url = f"{scheme}://{host}:{int(port_text)}{'/' + path if slash and path else DEFAULT_P2P_PATH}"
    return check_peer_url(url)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """First message of each side: who we are, which network, how far our chain goes."""

    TAG: ClassVar[int] = 32
    HANDSHAKE: ClassVar[bool] = True
    protocol_version: int
    chain_id: str
    genesis_hash: bytes
    node_id: bytes  # 33-byte compressed secp256k1 public key
    challenge: bytes  # 32 random bytes the peer must sign in its HelloAck
    listen_url: str = ""  # where the sender accepts connections ("" when it does not)
    best_height: int = 0
    user_agent: str = ""

    def __post_init__(self) -> None:
        check_uint(self.protocol_version, "protocol_version", U32_MAX)
        check_text(self.chain_id, "chain_id", min_size=1, max_size=MAX_CHAIN_ID_CHARS)
        check_bytes(self.genesis_hash, "genesis_hash", size=crypto.HASH_BYTES)
        check_bytes(self.node_id, "node_id", size=crypto.PUBKEY_BYTES)
        if not crypto.is_valid_public_key(self.node_id):
            raise ValueError("node_id is not a compressed secp256k1 public key")
        check_bytes(self.challenge, "challenge", size=CHALLENGE_BYTES)
        if self.listen_url:
            check_peer_url(self.listen_url)
        elif type(self.listen_url) is not str:
            raise ValueError("listen_url must be a string")
        check_uint(self.best_height, "best_height")
        check_text(self.user_agent, "user_agent", max_size=MAX_USER_AGENT_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class HelloAck(Message):
    """Proof that the sender owns its node id: a signature over the receiver's challenge (see handshake)."""

    TAG: ClassVar[int] = 33
    HANDSHAKE: ClassVar[bool] = True
    signature: bytes

    def __post_init__(self) -> None:
        check_bytes(self.signature, "signature", size=crypto.SIGNATURE_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Message):
    """Heartbeat; the peer answers Pong with the same nonce."""

    TAG: ClassVar[int] = 34
    nonce: int
    sent_ms: int

    def __post_init__(self) -> None:
        check_uint(self.nonce, "nonce")
        check_uint(self.sent_ms, "sent_ms")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Message):
    """Answer to a Ping."""

    TAG: ClassVar[int] = 35
    nonce: int

    def __post_init__(self) -> None:
        check_uint(self.nonce, "nonce")


@dataclass(frozen=True, slots=True, kw_only=True)
class Inv(Message):
    """Announcement: the sender has these transactions or blocks."""

    TAG: ClassVar[int] = 36
    kind: str  # "tx" | "block"
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        _check_hashes(self.hashes, "hashes", MAX_INV_HASHES)


@dataclass(frozen=True, slots=True, kw_only=True)
class GetData(Message):
    """Request for the bodies of announced transactions or blocks."""

    TAG: ClassVar[int] = 37
    kind: str
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        _check_hashes(self.hashes, "hashes", MAX_INV_HASHES)


@dataclass(frozen=True, slots=True, kw_only=True)
class NotFound(Message):
    """Answer to GetData for what the sender does not have (any more)."""

    TAG: ClassVar[int] = 38
    kind: str
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        _check_hashes(self.hashes, "hashes", MAX_INV_HASHES)


@dataclass(frozen=True, slots=True, kw_only=True)
class TxMsg(Message):
    """One transaction, as its canonical encoding (decode with chain.tx.decode_tx)."""

    TAG: ClassVar[int] = 39
    raw: bytes

    def __post_init__(self) -> None:
        check_bytes(self.raw, "raw", max_size=MAX_TX_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockMsg(Message):
    """One block, as its canonical encoding (decode with chain.block.decode_block)."""

    TAG: ClassVar[int] = 40
    raw: bytes

    def __post_init__(self) -> None:
        check_bytes(self.raw, "raw", max_size=MAX_BLOCK_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class GetBlocks(Message):
    """Sync request: blocks of the receiver's best chain after the first locator hash it has on that chain."""

    TAG: ClassVar[int] = 41
    locator: tuple[bytes, ...]
    limit: int = MAX_BLOCKS_PER_BATCH

    def __post_init__(self) -> None:
        _check_hashes(self.locator, "locator", MAX_LOCATOR_HASHES)
        check_uint(self.limit, "limit", MAX_BLOCKS_PER_BATCH)
        if self.limit == 0:
            raise ValueError("limit must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Blocks(Message):
    """Sync answer: consecutive blocks of the sender's best chain after the fork point, oldest first."""

    TAG: ClassVar[int] = 42
    raws: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if type(self.raws) is not tuple or len(self.raws) > MAX_BLOCKS_PER_BATCH:
            raise ValueError(f"raws must be a tuple of at most {MAX_BLOCKS_PER_BATCH} blocks")
        for raw in self.raws:
            check_bytes(raw, "raws", max_size=MAX_BLOCK_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class GetPeers(Message):
    """Request for addresses of other nodes."""

    TAG: ClassVar[int] = 43


@dataclass(frozen=True, slots=True, kw_only=True)
class Peers(Message):
    """Addresses (ws:// URLs) of other nodes."""

    TAG: ClassVar[int] = 44
    urls: tuple[str, ...]

    def __post_init__(self) -> None:
        if type(self.urls) is not tuple or len(self.urls) > MAX_PEER_URLS:
            raise ValueError(f"urls must be a tuple of at most {MAX_PEER_URLS} URLs")
        for url in self.urls:
            check_peer_url(url)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineMsg(Message):
    """An opaque consensus-engine payload; the engine decides what it means and whether to relay it."""

    TAG: ClassVar[int] = 45
    kind: str
    payload: bytes

    def __post_init__(self) -> None:
        check_text(self.kind, "kind", min_size=1, max_size=MAX_ENGINE_KIND_CHARS)
        check_bytes(self.payload, "payload", max_size=MAX_ENGINE_PAYLOAD_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect(Message):
    """Last message before closing: a stable reason code and a human-readable message."""

    TAG: ClassVar[int] = 46
    HANDSHAKE: ClassVar[bool] = True
    code: str
    message: str = ""

    def __post_init__(self) -> None:
        check_text(self.code, "code", min_size=1, max_size=MAX_DISCONNECT_CODE_CHARS)
        check_text(self.message, "message", max_size=MAX_DISCONNECT_MESSAGE_CHARS)

    @classmethod
    def of(cls, code: str, message: str) -> Disconnect:
        """A Disconnect whose message is `message` made printable ASCII and cut to the limit."""
        printable = "".join(c if c.isascii() and c.isprintable() else "?" for c in message)
        return cls(code=code, message=printable[:MAX_DISCONNECT_MESSAGE_CHARS])


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle(Message):
    """Several frames that were due at the same moment, sent as one websocket message (one write, one wakeup of
    the reader) once the session is ready; the receiver handles each as if it had arrived alone, in order. A
    bundle holds at least two frames, none of them a bundle; each frame is checked when it is handled."""

    TAG: ClassVar[int] = 47
    frames: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if type(self.frames) is not tuple or not 2 <= len(self.frames) <= MAX_BUNDLE_FRAMES:
            raise ValueError(f"a bundle holds 2 to {MAX_BUNDLE_FRAMES} frames")
        for frame in self.frames:
            check_bytes(frame, "frame")
            if len(frame) < 2 or frame[1] == self.TAG:
                raise ValueError("a bundle frame must be a non-bundle frame")


class ClockFieldError(ValueError):
    """A Stamped message whose clock is malformed: the frame is refused with the code `bad-clock`."""

    code = "bad-clock"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stamped(Message):
    """One frame with the sender's clocks, sent instead of the bare frame by a node that traces
    (docs/TRACING.md): `msg_id` names the send event (`node:seq`), `vc` is the sender's vector clock after the send
    as (node, counter) pairs sorted by node, `lamport` its Lamport time. A node that does not trace sends bare
    frames (the field costs nothing then); every node unwraps a Stamped frame, traced or not. The inner frame is
    checked when it is handled, as a bundle's frames are, and may not be a bundle, a handshake message or another
    Stamped."""

    TAG: ClassVar[int] = 48
    msg_id: str
    vc: tuple[tuple[str, int], ...]
    lamport: int
    frame: bytes

    def __post_init__(self) -> None:
        try:
            text = check_text(self.msg_id, "msg_id", min_size=3, max_size=MAX_TRACE_NAME_CHARS + 21)
        except ValueError as exc:
            raise ClockFieldError(str(exc)) from None
        sender, _, seq = text.rpartition(":")
        if not sender or not seq.isdigit() or len(seq) > 20 or int(seq) == 0:
            raise ClockFieldError(f"msg_id must be node:seq with seq >= 1, got {text!r}")
        if type(self.vc) is not tuple or not 1 <= len(self.vc) <= MAX_CLOCK_ENTRIES:
            raise ClockFieldError(f"vc must hold 1 to {MAX_CLOCK_ENTRIES} (node, counter) pairs")
        raw: tuple[Any, ...] = self.vc
        pairs = tuple(tuple(pair) if type(pair) is list else pair for pair in raw)
        previous = ""
        for pair in pairs:
            if type(pair) is not tuple or len(pair) != 2:
                raise ClockFieldError("vc entries must be (node, counter) pairs")
            name, counter = pair
            if type(name) is not str or not 1 <= len(name) <= MAX_TRACE_NAME_CHARS or not name.isascii() \
                    or not name.isprintable():
                raise ClockFieldError(f"vc node names are printable ASCII of 1..{MAX_TRACE_NAME_CHARS} characters")
            if name <= previous:
                raise ClockFieldError("vc entries must be sorted by node name, each name once")
            if type(counter) is not int or not 1 <= counter <= U64_MAX:
                raise ClockFieldError(f"vc counter of {name!r} must be an integer in [1, 2^64-1]")
            previous = name
        object.__setattr__(self, "vc", pairs)
        if dict(pairs).get(sender) != int(seq):
            raise ClockFieldError("vc must hold the sender's entry, equal to the seq of msg_id")
        if type(self.lamport) is not int or not 1 <= self.lamport <= U64_MAX:
            raise ClockFieldError("lamport must be an integer in [1, 2^64-1]")
        check_bytes(self.frame, "frame")
        if len(self.frame) < 2 or self.frame[1] in (Bundle.TAG, self.TAG):
            raise ValueError("a stamped frame must be a single frame, not a bundle or another stamped frame")


MESSAGE_TYPES: tuple[type[Message], ...] = (
    Hello, HelloAck, Ping, Pong, Inv, GetData, NotFound, TxMsg, BlockMsg, GetBlocks, Blocks, GetPeers, Peers,
    EngineMsg, Disconnect, Bundle, Stamped,
)
MESSAGES_BY_TAG: dict[int, type[Message]] = {cls.TAG: cls for cls in MESSAGE_TYPES}
assert len(MESSAGES_BY_TAG) == len(MESSAGE_TYPES), "duplicate P2P message tag"
assert all(32 <= tag <= 63 for tag in MESSAGES_BY_TAG), "P2P tags are 32..63"
