"""The P2P protocol core (pure, sans-I/O): messages, frame codec, the per-connection session, gossip and sync
bookkeeping, limits and misbehaviour, peer addresses and fault plans. `p2p.service` drives it over websockets;
the simulator can drive the same objects. See docs/P2P.md."""

from p2p.protocol.codec import DEFAULT_MAX_MESSAGE_BYTES, FrameError, decode_frame, encode_frame
from p2p.protocol.faults import NO_FAULTS, FaultConfig
from p2p.protocol.inventory import Fetch, Gossip, LruSet
from p2p.protocol.limits import (
    BAN_SCORE,
    Penalty,
    RateLimiter,
    Scoreboard,
    TokenBucket,
    block_penalty,
    connection_penalty,
    tx_penalty,
)
from p2p.protocol.messages import (
    MESSAGE_TYPES,
    MESSAGES_BY_TAG,
    PROTOCOL_VERSION,
    BlockMsg,
    Blocks,
    Disconnect,
    EngineMsg,
    GetBlocks,
    GetData,
    GetPeers,
    Hello,
    HelloAck,
    Inv,
    Message,
    NotFound,
    Peers,
    Ping,
    Pong,
    TxMsg,
)
from p2p.protocol.metrics import P2PMetrics
from p2p.protocol.peers import AddressBook, Admission, PeerBook, backoff_delay
from p2p.protocol.session import (
    Event,
    HandshakeComplete,
    HandshakeRefused,
    HelloReceived,
    LocalProtocolError,
    MessageReceived,
    PeerClosed,
    PeerSession,
    PongReceived,
    ProtocolViolation,
    Reply,
    SessionState,
    handshake_digest,
)
from p2p.protocol.sync import SyncPlanner, SyncRequest, fit_batch

__all__ = [
    "BAN_SCORE", "DEFAULT_MAX_MESSAGE_BYTES", "MESSAGES_BY_TAG", "MESSAGE_TYPES", "NO_FAULTS", "PROTOCOL_VERSION",
    "AddressBook", "Admission", "BlockMsg", "Blocks", "Disconnect", "EngineMsg", "Event", "FaultConfig", "Fetch",
    "FrameError", "GetBlocks", "GetData", "GetPeers", "Gossip", "HandshakeComplete", "HandshakeRefused", "Hello",
    "HelloAck", "HelloReceived", "Inv", "LocalProtocolError", "LruSet", "Message", "MessageReceived", "NotFound",
    "P2PMetrics", "PeerBook", "PeerClosed", "PeerSession", "Peers", "Penalty", "Ping", "Pong", "PongReceived",
    "ProtocolViolation", "RateLimiter", "Reply", "Scoreboard", "SessionState", "SyncPlanner", "SyncRequest",
    "TokenBucket", "TxMsg", "backoff_delay", "block_penalty", "connection_penalty", "decode_frame", "encode_frame",
    "fit_batch", "handshake_digest", "tx_penalty",
]
