"""Locks with leases and fencing tokens, and the fenced key-value register: the operations a version-2 transaction
carries, their records in the replicated state, and the one function that applies an operation (docs/LOCKS.md).

Pure and deterministic: a lease counts in blocks of the chain, never in seconds. A lock granted by the transaction
at (height h, index i) with a lease of L blocks is held in blocks h .. h+L-1 and free from block h+L on ("expires
at h+L"); its fencing token is `h * 2**32 + i`, the grant's position in the chain, so tokens of one lock strictly
increase from grant to grant. A renewal keeps the token and moves the expiry to (renewal height + L); a release
moves it to the release height. A `kv-put` is accepted only from the holder of a live lease carrying the lock's
current token; an older token is `stale-fencing-token` (the register's half of fencing, Kleppmann 2016).

An operation that fails is still a valid transaction: the block includes it, the sender pays its fee and uses its
nonce, and its outcome (the reject code) is recorded, so a refused write is a fact of the chain, not a silence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chain import crypto
from chain.encoding import TAG_KV, TAG_LOCK, U64_MAX, check_bytes, check_text, check_uint, pack, unpack
from chain.errors import DecodeError

MAX_NAME_CHARS = 64
MAX_VALUE_BYTES = 128
MAX_LEASE_BLOCKS = 10_000
"""The longest lease one acquire or renew may ask for (reject code `lease-too-long`): a crashed holder blocks its
lock for at most this many blocks."""
TOKEN_INDEX_BITS = 32

OP_ACQUIRE = 1
OP_RENEW = 2
OP_RELEASE = 3
OP_KV_PUT = 4

LOCK_KEY_PREFIX = b"L"
KV_KEY_PREFIX = b"K"

OK = "ok"
OUTCOME_CODES = (
    OK,
    "lock-held",  # acquire: a live lease is held (by anyone, the sender included: renew instead)
    "lock-not-held",  # renew, release, kv-put: no live lease on that lock
    "not-lock-holder",  # renew, release, kv-put: someone else holds the lease
    "lease-too-long",  # acquire, renew: more than MAX_LEASE_BLOCKS
    "stale-fencing-token",  # kv-put: the token is older than the lock's newest
    "unknown-fencing-token",  # kv-put: the token is newer than any grant of the lock
    "wrong-lock",  # kv-put: the key is fenced by another lock
)


def fencing_token(height: int, index: int) -> int:
    """The token of a grant by transaction `index` of the block at `height`."""
    return (height << TOKEN_INDEX_BITS) | index


def token_position(token: int) -> tuple[int, int]:
    """(height, index) of the grant that issued `token`."""
    return token >> TOKEN_INDEX_BITS, token & ((1 << TOKEN_INDEX_BITS) - 1)


def _name(value: object, field: str) -> str:
    return check_text(value, field, min_size=1, max_size=MAX_NAME_CHARS)


def _lease(value: object) -> int:
    lease = check_uint(value, "lease_blocks", U64_MAX)
    if lease == 0:
        raise ValueError("lease_blocks must be at least 1")
    return lease


# -- operations ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LockAcquire:
    """Take lock `name` for `lease_blocks` blocks if no live lease holds it."""

    name: str
    lease_blocks: int

    kind = "lock-acquire"

    def __post_init__(self) -> None:
        _name(self.name, "name")
        _lease(self.lease_blocks)

    def to_array(self) -> list[Any]:
        """The op's array inside the transaction encoding."""
        return [OP_ACQUIRE, self.name, self.lease_blocks]

    def to_json(self) -> dict[str, object]:
        """Plain JSON view."""
        return {"kind": self.kind, "name": self.name, "lease_blocks": self.lease_blocks}


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRenew:
    """Extend the sender's live lease on `name` to `lease_blocks` blocks from the renewal's height."""

    name: str
    lease_blocks: int

    kind = "lock-renew"

    def __post_init__(self) -> None:
        _name(self.name, "name")
        _lease(self.lease_blocks)

    def to_array(self) -> list[Any]:
        """The op's array inside the transaction encoding."""
        return [OP_RENEW, self.name, self.lease_blocks]

    def to_json(self) -> dict[str, object]:
        """Plain JSON view."""
        return {"kind": self.kind, "name": self.name, "lease_blocks": self.lease_blocks}


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRelease:
    """End the sender's live lease on `name` now."""

    name: str

    kind = "lock-release"

    def __post_init__(self) -> None:
        _name(self.name, "name")

    def to_array(self) -> list[Any]:
        """The op's array inside the transaction encoding."""
        return [OP_RELEASE, self.name]

    def to_json(self) -> dict[str, object]:
        """Plain JSON view."""
        return {"kind": self.kind, "name": self.name}


@dataclass(frozen=True, slots=True, kw_only=True)
class KvPut:
    """Write `value` under `key`, fenced by lock `lock` with fencing token `token`."""

    key: str
    value: bytes
    lock: str
    token: int

    kind = "kv-put"

    def __post_init__(self) -> None:
        _name(self.key, "key")
        check_bytes(self.value, "value", max_size=MAX_VALUE_BYTES)
        _name(self.lock, "lock")
        check_uint(self.token, "token")

    def to_array(self) -> list[Any]:
        """The op's array inside the transaction encoding."""
        return [OP_KV_PUT, self.key, self.value, self.lock, self.token]

    def to_json(self) -> dict[str, object]:
        """Plain JSON view."""
        return {"kind": self.kind, "key": self.key, "value": self.value.hex(), "lock": self.lock,
                "token": self.token}


Operation = LockAcquire | LockRenew | LockRelease | KvPut
OP_KINDS = ("lock-acquire", "lock-renew", "lock-release", "kv-put")


def decode_op(obj: object) -> Operation:
    """The operation of a decoded op array; ValueError for anything else (the caller wraps it in DecodeError)."""
    if type(obj) is not list or not obj or type(obj[0]) is not int:
        raise ValueError("op must be an array [kind, ...]")
    kind, *fields = obj
    if kind in (OP_ACQUIRE, OP_RENEW) and len(fields) == 2:
        name, lease = fields
        if type(lease) is not int:
            raise ValueError("lease_blocks must be an integer")
        cls = LockAcquire if kind == OP_ACQUIRE else LockRenew
        return cls(name=name, lease_blocks=lease)
    if kind == OP_RELEASE and len(fields) == 1:
        return LockRelease(name=fields[0])
    if kind == OP_KV_PUT and len(fields) == 4:
        key, value, lock, token = fields
        return KvPut(key=key, value=value, lock=lock, token=token)
    raise ValueError(f"unknown op kind {kind!r} with {len(fields)} fields")


# -- records ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRecord:
    """A lock's newest grant: who holds it, its fencing token, and the height at which the lease ends (a released
    or expired lock keeps its record, so the newest token is remembered)."""

    holder: bytes  # address
    token: int
    expires_at: int

    def __post_init__(self) -> None:
        check_bytes(self.holder, "holder", size=crypto.ADDRESS_BYTES)
        check_uint(self.token, "token")
        check_uint(self.expires_at, "expires_at")

    def held_at(self, height: int) -> bool:
        """True when the lease is live in the block at `height`."""
        return height < self.expires_at

    def encode(self) -> bytes:
        """`[8, 1, holder, token, expires_at]`."""
        return pack(TAG_LOCK, 1, [self.holder, self.token, self.expires_at])

    def to_json(self, height: int) -> dict[str, object]:
        """Plain JSON view as of the block at `height` (the read's height)."""
        grant_height, grant_index = token_position(self.token)
        return {"holder": crypto.address_to_text(self.holder), "token": self.token, "expires_at": self.expires_at,
                "granted_height": grant_height, "granted_index": grant_index, "held": self.held_at(height + 1)}


def decode_lock_record(data: object) -> LockRecord:
    """Decode a lock record; DecodeError for anything else."""
    holder, token, expires_at = unpack(data, TAG_LOCK, 1, 3, 128)
    try:
        return LockRecord(holder=holder, token=token, expires_at=expires_at)
    except ValueError as exc:
        raise DecodeError(f"lock record: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class KvRecord:
    """A register value, the lock that fences its key and the token of the write that put it."""

    value: bytes
    lock: str
    token: int
    height: int

    def __post_init__(self) -> None:
        check_bytes(self.value, "value", max_size=MAX_VALUE_BYTES)
        _name(self.lock, "lock")
        check_uint(self.token, "token")
        check_uint(self.height, "height")

    def encode(self) -> bytes:
        """`[9, 1, value, lock, token, height]`."""
        return pack(TAG_KV, 1, [self.value, self.lock, self.token, self.height])

    def to_json(self) -> dict[str, object]:
        """Plain JSON view."""
        return {"value": self.value.hex(), "lock": self.lock, "token": self.token, "written_height": self.height}


def decode_kv_record(data: object) -> KvRecord:
    """Decode a register record; DecodeError for anything else."""
    value, lock, token, height = unpack(data, TAG_KV, 1, 4, 64 + MAX_VALUE_BYTES + MAX_NAME_CHARS)
    try:
        return KvRecord(value=value, lock=lock, token=token, height=height)
    except ValueError as exc:
        raise DecodeError(f"kv record: {exc}") from exc


def lock_key(name: str) -> bytes:
    """The state key of lock `name`."""
    return LOCK_KEY_PREFIX + name.encode("ascii")


def kv_key(key: str) -> bytes:
    """The state key of register key `key`."""
    return KV_KEY_PREFIX + key.encode("ascii")


def check_record_key(key: object) -> bytes:
    """`key` if it is a lock or register state key; ValueError otherwise (undo decoding, store reads)."""
    if type(key) is not bytes or key[:1] not in (LOCK_KEY_PREFIX, KV_KEY_PREFIX):
        raise ValueError("a record key is b'L' or b'K' followed by a name")
    _name(key[1:].decode("ascii", "replace"), "record name")
    return key


# -- applying ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OpResult:
    """The outcome of one operation transaction: `code` is "ok" or its reject code; `token` and `expires_at`
    describe the lock after a successful lock operation (or the write's token for kv-put)."""

    index: int
    tx_hash: bytes
    sender: bytes  # address
    op: Operation
    code: str
    token: int = 0
    expires_at: int = 0

    @property
    def ok(self) -> bool:
        """True when the operation took effect."""
        return self.code == OK

    def to_json(self) -> dict[str, object]:
        """Plain JSON view (events, transaction status)."""
        body: dict[str, object] = {"result": self.code, **self.op.to_json(),
                                   "sender": crypto.address_to_text(self.sender)}
        if self.ok and not isinstance(self.op, LockRelease):
            body["token"] = self.token
        if self.ok and not isinstance(self.op, KvPut):
            body["expires_at"] = self.expires_at
        return body


RecordReader = Callable[[bytes], bytes | None]


def apply_op(read: RecordReader, op: Operation, sender: bytes, height: int, index: int
             ) -> tuple[str, Mapping[bytes, bytes], int, int]:
    """Apply `op` sent by address `sender` as transaction `index` of the block at `height`.

    `read(key)` gives a record's current bytes (None: absent). Returns (code, record writes, token, expires_at):
    code "ok" with the records to write, or a reject code with no writes. Deterministic: the same inputs give the
    same result on every node.
    """
    if isinstance(op, KvPut):
        return _apply_kv_put(read, op, sender, height)
    key = lock_key(op.name)
    raw = read(key)
    record = None if raw is None else decode_lock_record(raw)
    if isinstance(op, LockAcquire):
        if op.lease_blocks > MAX_LEASE_BLOCKS:
            return "lease-too-long", {}, 0, 0
        if record is not None and record.held_at(height):
            return "lock-held", {}, 0, 0
        granted = LockRecord(holder=sender, token=fencing_token(height, index), expires_at=height + op.lease_blocks)
        return OK, {key: granted.encode()}, granted.token, granted.expires_at
    if isinstance(op, LockRenew) and op.lease_blocks > MAX_LEASE_BLOCKS:
        return "lease-too-long", {}, 0, 0
    if record is None or not record.held_at(height):
        return "lock-not-held", {}, 0, 0
    if record.holder != sender:
        return "not-lock-holder", {}, 0, 0
    expires_at = height + op.lease_blocks if isinstance(op, LockRenew) else height
    changed = LockRecord(holder=sender, token=record.token, expires_at=expires_at)
    return OK, {key: changed.encode()}, record.token, expires_at


def _apply_kv_put(read: RecordReader, op: KvPut, sender: bytes, height: int
                  ) -> tuple[str, Mapping[bytes, bytes], int, int]:
    raw = read(lock_key(op.lock))
    if raw is None:
        return "lock-not-held", {}, 0, 0
    record = decode_lock_record(raw)
    # The fencing check comes first: a stale token is refused whoever sends it and whatever the lease says.
    if op.token < record.token:
        return "stale-fencing-token", {}, 0, 0
    if op.token > record.token:
        return "unknown-fencing-token", {}, 0, 0
    if not record.held_at(height):
        return "lock-not-held", {}, 0, 0
    if record.holder != sender:
        return "not-lock-holder", {}, 0, 0
    key = kv_key(op.key)
    previous = read(key)
    if previous is not None and decode_kv_record(previous).lock != op.lock:
        return "wrong-lock", {}, 0, 0
    written = KvRecord(value=op.value, lock=op.lock, token=op.token, height=height)
    return OK, {key: written.encode()}, op.token, 0
