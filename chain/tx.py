"""Transactions of the account model: transfers (version 1) and operations (version 2: locks and the fenced
register, chain/locks.py).

Encodings: a transfer is `[1, 1, chain_id, sender_pubkey, recipient, amount, fee, nonce, memo, signature]`; an
operation is `[1, 2, chain_id, sender_pubkey, fee, nonce, op, signature]` with `op` the operation's own array
(`[1, name, lease_blocks]` acquire, `[2, name, lease_blocks]` renew, `[3, name]` release, `[4, key, value, lock,
token]` kv-put). The signature covers the SHA-256 of the same array without the signature (`signing_hash`); the
transaction id is the SHA-256 of the whole encoding. Replay protection is the chain id plus the sender's nonce.

An operation moves no coins: in memory its `recipient` is its sender's address, its `amount` 0 and its `memo`
empty (none of them is encoded), so every path that pays fees and counts nonces treats it as a zero self-transfer
and only the state machine looks at `op`. Transfers keep their version-1 bytes and ids unchanged.

`Transaction` is an immutable tuple (its encoding and id are computed once, at construction) rather than a frozen
dataclass: a block of 1,000 transactions builds 1,000 of them on the validation hot path, and a frozen dataclass's
per-field `object.__setattr__` made decoding twice as slow (measured in docs/PERFORMANCE.md). It keeps the
dataclass contract: keyword construction that validates every field, no mutation, value equality.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from chain import crypto, locks
from chain.encoding import (
    TAG_TX,
    U64_MAX,
    as_bytes,
    check_bytes,
    check_text,
    check_uint,
    pack,
    packb_canonical,
    unpack,
    unpackb_raw,
)
from chain.errors import DecodeError

TX_VERSION = 1
OP_TX_VERSION = 2
MAX_MEMO_BYTES = 256
MAX_CHAIN_ID_CHARS = 64
MAX_TX_BYTES = 512
_TX_FIELDS = 8
_TX_ARRAY_ITEMS = 2 + _TX_FIELDS
_U64_LIMIT = U64_MAX + 1
_UNSIGNED_ARRAY_HEADER = bytes([0x90 + 2 + _TX_FIELDS - 1])  # msgpack fixarray of the unsigned fields
_SIGNATURE_BIN_BYTES = 2 + crypto.SIGNATURE_BYTES  # bin8 header + compact signature


class _TransactionFields(NamedTuple):
    chain_id: str
    sender: bytes  # 33-byte compressed public key
    recipient: bytes  # 20-byte address
    amount: int
    fee: int
    nonce: int
    memo: bytes
    signature: bytes  # 64-byte compact signature; empty while unsigned
    encoded: bytes  # canonical encoding (derived)
    hash: bytes  # SHA-256 of `encoded`: the transaction id (derived)
    op: locks.Operation | None = None  # the operation of a version-2 transaction; None for a transfer


class Transaction(_TransactionFields):
    """A signed (or, before `signed`, unsigned) transfer of `amount` from `sender` to `recipient`, or (built by
    `Transaction.operation`) an operation `op` of `sender` on a lock or the register.

    Construct with keywords; every field is checked (types, sizes, u64 ranges). The signature itself is checked by
    validation, where the cost belongs.
    """

    __slots__ = ()

    def __new__(
        cls, *, chain_id: str, sender: bytes, recipient: bytes, amount: int, fee: int, nonce: int,
        memo: bytes = b"", signature: bytes = b"",
    ) -> Transaction:
        _check_fields(chain_id, sender, recipient, amount, fee, nonce, memo, signature)
        encoded = pack(TAG_TX, TX_VERSION, [chain_id, sender, recipient, amount, fee, nonce, memo, signature])
        return tuple.__new__(
            cls, (chain_id, sender, recipient, amount, fee, nonce, memo, signature, encoded, crypto.sha256(encoded),
                  None)
        )

    @classmethod
    def operation(
        cls, *, chain_id: str, sender: bytes, fee: int, nonce: int, op: locks.Operation, signature: bytes = b"",
    ) -> Transaction:
        """A version-2 transaction carrying `op` (a zero self-transfer as far as fees and nonces go)."""
        if not isinstance(op, locks.LockAcquire | locks.LockRenew | locks.LockRelease | locks.KvPut):
            raise ValueError(f"op must be a lock or register operation, got {type(op).__name__}")
        _check_fields(chain_id, sender, bytes(crypto.ADDRESS_BYTES), 0, fee, nonce, b"", signature)
        encoded = pack(TAG_TX, OP_TX_VERSION, [chain_id, sender, fee, nonce, op.to_array(), signature])
        return tuple.__new__(
            cls, (chain_id, sender, crypto.address_of(sender), 0, fee, nonce, b"", signature, encoded,
                  crypto.sha256(encoded), op)
        )

    @property
    def signing_hash(self) -> bytes:
        """Digest the sender signs: SHA-256 of the encoding without the signature."""
        if len(self.signature) == crypto.SIGNATURE_BYTES:
            # Same bytes as packing the unsigned fields: the signature is the last item (a 66-byte bin) and the
            # array header (a fixarray of either version) shrinks by one; slicing skips a second msgpack pass.
            header = _UNSIGNED_ARRAY_HEADER if self.op is None else bytes((self.encoded[0] - 1,))
            return crypto.sha256(header + self.encoded[1:-_SIGNATURE_BIN_BYTES])
        if self.op is not None:
            return crypto.sha256(
                pack(TAG_TX, OP_TX_VERSION, [self.chain_id, self.sender, self.fee, self.nonce, self.op.to_array()])
            )
        return crypto.sha256(
            pack(TAG_TX, TX_VERSION, [self.chain_id, self.sender, self.recipient, self.amount, self.fee, self.nonce,
                                      self.memo])
        )

    @property
    def kind(self) -> str:
        """"transfer" or the operation's kind ("lock-acquire", "lock-renew", "lock-release", "kv-put")."""
        return "transfer" if self.op is None else self.op.kind

    @property
    def sender_address(self) -> bytes:
        """Address of the sender's public key."""
        return crypto.address_of(self.sender)

    @property
    def size(self) -> int:
        """Encoded size in bytes."""
        return len(self.encoded)

    def signed(self, key: crypto.PrivateKey) -> Transaction:
        """Return this transaction signed by `key`; the key must match `sender`."""
        if key.public_key != self.sender:
            raise ValueError("the signing key does not match the transaction's sender")
        if self.op is not None:
            return Transaction.operation(chain_id=self.chain_id, sender=self.sender, fee=self.fee, nonce=self.nonce,
                                         op=self.op, signature=key.sign(self.signing_hash))
        return Transaction(
            chain_id=self.chain_id, sender=self.sender, recipient=self.recipient, amount=self.amount,
            fee=self.fee, nonce=self.nonce, memo=self.memo, signature=key.sign(self.signing_hash),
        )

    def to_json(self) -> dict[str, object]:
        """Plain JSON view for RPC and CLI output."""
        return {
            "hash": self.hash.hex(),
            "chain_id": self.chain_id,
            "sender": self.sender.hex(),
            "from": crypto.address_to_text(self.sender_address),
            "to": crypto.address_to_text(self.recipient),
            "amount": self.amount,
            "fee": self.fee,
            "nonce": self.nonce,
            "memo": self.memo.hex(),
            "signature": self.signature.hex(),
            "size": self.size,
            "kind": self.kind,
            **({"op": self.op.to_json()} if self.op is not None else {}),
        }


def _check_fields(
    chain_id: object, sender: object, recipient: object, amount: object, fee: object, nonce: object,
    memo: object, signature: object,
) -> None:
    # One flat function: this runs for every transaction of every block, so the common case makes no calls;
    # the helpers only run to build the error message.
    if type(chain_id) is not str or not 0 < len(chain_id) <= MAX_CHAIN_ID_CHARS or not chain_id.isascii():
        check_text(chain_id, "chain_id", min_size=1, max_size=MAX_CHAIN_ID_CHARS)
    if not chain_id.isprintable():  # type: ignore[attr-defined]
        raise ValueError("chain_id must be printable ASCII")
    if type(sender) is not bytes or len(sender) != crypto.PUBKEY_BYTES:
        check_bytes(sender, "sender", size=crypto.PUBKEY_BYTES)
    if type(recipient) is not bytes or len(recipient) != crypto.ADDRESS_BYTES:
        check_bytes(recipient, "recipient", size=crypto.ADDRESS_BYTES)
    if type(amount) is not int or not 0 <= amount < _U64_LIMIT:
        check_uint(amount, "amount")
    if type(fee) is not int or not 0 <= fee < _U64_LIMIT:
        check_uint(fee, "fee")
    if type(nonce) is not int or not 0 <= nonce < _U64_LIMIT:
        check_uint(nonce, "nonce")
    if type(memo) is not bytes or len(memo) > MAX_MEMO_BYTES:
        check_bytes(memo, "memo", max_size=MAX_MEMO_BYTES)
    if type(signature) is not bytes or len(signature) not in (0, crypto.SIGNATURE_BYTES):
        check_bytes(signature, "signature", size=crypto.SIGNATURE_BYTES)


_new_tuple = tuple.__new__
_packb = packb_canonical
_unpackb = unpackb_raw
_sha256 = hashlib.sha256


def decode_tx(data: object) -> Transaction:
    """Decode a canonical, signed transaction; raise DecodeError for anything else."""
    raw = data if type(data) is bytes else as_bytes(data)
    # The accepted path, inlined (every transaction of every block comes here): one parse, one re-encode to prove
    # the bytes canonical, the same field checks __new__ runs, one hash. Anything off takes the general path,
    # which raises the precise DecodeError.
    try:
        obj = _unpackb(raw) if len(raw) <= MAX_TX_BYTES else None
    except Exception:  # msgpack's zoo of errors; the general path below reports it
        obj = None
    if type(obj) is list and len(obj) == _TX_ARRAY_ITEMS and obj[0] == TAG_TX and obj[1] == TX_VERSION:
        _, _, chain_id, sender, recipient, amount, fee, nonce, memo, signature = obj
        if (
            type(chain_id) is str and 0 < len(chain_id) <= MAX_CHAIN_ID_CHARS and chain_id.isascii()
            and chain_id.isprintable()
            and type(sender) is bytes and len(sender) == crypto.PUBKEY_BYTES
            and type(recipient) is bytes and len(recipient) == crypto.ADDRESS_BYTES
            and type(amount) is int and 0 <= amount < _U64_LIMIT
            and type(fee) is int and 0 <= fee < _U64_LIMIT
            and type(nonce) is int and 0 <= nonce < _U64_LIMIT
            and type(memo) is bytes and len(memo) <= MAX_MEMO_BYTES
            and type(signature) is bytes and len(signature) == crypto.SIGNATURE_BYTES
            and type(obj[0]) is int and type(obj[1]) is int
            and _packb(obj) == raw
        ):
            return _new_tuple(Transaction, (chain_id, sender, recipient, amount, fee, nonce, memo, signature, raw,
                                            _sha256(raw).digest(), None))
    return _decode_tx_checked(raw)


def _decode_tx_checked(raw: bytes) -> Transaction:
    """The general path of `decode_tx`: every check with its own message."""
    if _version_of(raw) == OP_TX_VERSION:
        return _decode_op_tx(raw)
    fields = unpack(raw, TAG_TX, TX_VERSION, _TX_FIELDS, MAX_TX_BYTES)
    try:
        _check_fields(*fields)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"transaction: {exc}") from exc
    if not fields[7]:
        raise DecodeError("transaction: unsigned")
    # Checked by the same function __new__ runs, and canonical: the fast path refused it for no reason we know.
    raise DecodeError("transaction: refused")


def _version_of(raw: bytes) -> object:
    try:
        obj = _unpackb(raw) if len(raw) <= MAX_TX_BYTES else None
    except Exception:  # not msgpack: the version-1 path reports it
        return None
    return obj[1] if type(obj) is list and len(obj) >= 2 and type(obj[1]) is int else None


def _decode_op_tx(raw: bytes) -> Transaction:
    chain_id, sender, fee, nonce, op_array, signature = unpack(raw, TAG_TX, OP_TX_VERSION, 6, MAX_TX_BYTES)
    try:
        op = locks.decode_op(op_array)
        tx = Transaction.operation(chain_id=chain_id, sender=sender, fee=fee, nonce=nonce, op=op,
                                   signature=signature)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"transaction: {exc}") from exc
    if not signature:
        raise DecodeError("transaction: unsigned")
    if tx.encoded != raw:  # e.g. an op field that decodes but re-encodes otherwise
        raise DecodeError("non-canonical encoding")
    return tx


def make_operation(key: crypto.PrivateKey, op: locks.Operation, *, chain_id: str, fee: int, nonce: int
                   ) -> Transaction:
    """Build and sign an operation transaction from `key`'s account."""
    return Transaction.operation(chain_id=chain_id, sender=key.public_key, fee=fee, nonce=nonce, op=op).signed(key)


def make_transfer(
    key: crypto.PrivateKey, *, chain_id: str, recipient: bytes, amount: int, fee: int, nonce: int, memo: bytes = b""
) -> Transaction:
    """Build and sign a transfer from `key`'s account."""
    unsigned = Transaction(
        chain_id=chain_id, sender=key.public_key, recipient=recipient, amount=amount, fee=fee, nonce=nonce,
        memo=memo,
    )
    return unsigned.signed(key)
