"""Hashing, secp256k1 keys and signatures, and addresses.

Signatures are 64-byte compact (r || s) ECDSA over a 32-byte digest, through libsecp256k1 (coincurve). Only low-S
signatures verify: libsecp256k1 signs low-S and its verifier refuses high-S, which removes the classic
(r, n - s) malleability. An address is the first 20 bytes of SHA-256 of the compressed public key; its text form
is `cl` + hex(address || checksum) with a 4-byte SHA-256d checksum, so a mistyped address is rejected instead of
burning funds.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable

import coincurve
from coincurve._libsecp256k1 import ffi, lib

PUBKEY_BYTES = 33
SIGNATURE_BYTES = 64
ADDRESS_BYTES = 20
HASH_BYTES = 32
ADDRESS_PREFIX = "cl"
_CHECKSUM_BYTES = 4
_ADDRESS_TEXT_LEN = len(ADDRESS_PREFIX) + 2 * (ADDRESS_BYTES + _CHECKSUM_BYTES)
_CONTEXT = coincurve.context.GLOBAL_CONTEXT.ctx


def sha256(data: bytes) -> bytes:
    """SHA-256 digest."""
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """Double SHA-256 (used for checksums and proof of work)."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


class PrivateKey:
    """A secp256k1 secret key that signs 32-byte digests."""

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("a secret key is 32 bytes")
        self._key = coincurve.PrivateKey(secret)  # raises ValueError outside [1, n-1]

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """Deterministic key for tests, the simulator and testnet load accounts (never for real funds)."""
        counter = 0
        while True:
            try:
                return cls(sha256(seed + counter.to_bytes(4, "big")))
            except ValueError:  # astronomically unlikely: digest outside the group order
                counter += 1

    @property
    def secret(self) -> bytes:
        """The 32 secret bytes."""
        return bytes(self._key.secret)

    @property
    def public_key(self) -> bytes:
        """The 33-byte compressed public key."""
        return bytes(self._key.public_key.format(compressed=True))

    @property
    def address(self) -> bytes:
        """The 20-byte address of this key."""
        return address_of(self.public_key)

    def sign(self, digest: bytes) -> bytes:
        """64-byte compact low-S signature of a 32-byte digest (RFC 6979 nonces, so deterministic)."""
        if len(digest) != HASH_BYTES:
            raise ValueError("sign a 32-byte digest")
        return bytes(self._key.sign_recoverable(digest, hasher=None)[:SIGNATURE_BYTES])


def verify(public_key: bytes, signature: bytes, digest: bytes) -> bool:
    """True when `signature` is a valid low-S signature of `digest` by `public_key`; never raises on bad input."""
    if len(signature) != SIGNATURE_BYTES or len(digest) != HASH_BYTES or len(public_key) != PUBKEY_BYTES:
        return False
    pubkey = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ec_pubkey_parse(_CONTEXT, pubkey, public_key, PUBKEY_BYTES):
        return False
    sig = ffi.new("secp256k1_ecdsa_signature *")
    if not lib.secp256k1_ecdsa_signature_parse_compact(_CONTEXT, sig, signature):
        return False
    return bool(lib.secp256k1_ecdsa_verify(_CONTEXT, sig, digest, pubkey))


def verify_many(items: Iterable[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """`verify` over (public key, signature, digest) triples, one bool per triple, in order.

    One pair of libsecp256k1 structs serves the whole batch (allocated per call, so concurrent batches in threads
    never share them): on a block of transactions this saves two allocations per signature.
    """
    pubkey = ffi.new("secp256k1_pubkey *")
    sig = ffi.new("secp256k1_ecdsa_signature *")
    parse_pubkey, parse_sig, check = (
        lib.secp256k1_ec_pubkey_parse, lib.secp256k1_ecdsa_signature_parse_compact, lib.secp256k1_ecdsa_verify,
    )
    context = _CONTEXT
    results = []
    for public_key, signature, digest in items:
        results.append(
            len(signature) == SIGNATURE_BYTES and len(digest) == HASH_BYTES and len(public_key) == PUBKEY_BYTES
            and parse_pubkey(context, pubkey, public_key, PUBKEY_BYTES) == 1
            and parse_sig(context, sig, signature) == 1
            and check(context, sig, digest, pubkey) == 1
        )
    return results


def is_valid_public_key(public_key: bytes) -> bool:
    """True for a 33-byte compressed point on the curve."""
    if len(public_key) != PUBKEY_BYTES or public_key[0] not in (2, 3):
        return False
    pubkey = ffi.new("secp256k1_pubkey *")
    return bool(lib.secp256k1_ec_pubkey_parse(_CONTEXT, pubkey, public_key, PUBKEY_BYTES))


@functools.lru_cache(maxsize=4096)
def address_of(public_key: bytes) -> bytes:
    """20-byte address of a compressed public key."""
    # Remembered: the PoW engine asks for the miner address of every heartbeat it hears (hundreds of thousands per
    # simulated hour) and a network has few keys; the result is a pure function of the key.
    return hashlib.sha256(public_key).digest()[:ADDRESS_BYTES]


def address_to_text(address: bytes) -> str:
    """Text form `cl<hex of address and checksum>`."""
    if len(address) != ADDRESS_BYTES:
        raise ValueError("an address is 20 bytes")
    return ADDRESS_PREFIX + (address + sha256d(address)[:_CHECKSUM_BYTES]).hex()


class AddressError(ValueError):
    """A text address that is malformed or fails its checksum."""


def address_from_text(text: str) -> bytes:
    """Parse a text address; raise AddressError (with the reason) for a malformed or mistyped one."""
    if not isinstance(text, str):
        raise AddressError("an address is text")
    cleaned = text.strip().lower()
    if not cleaned.startswith(ADDRESS_PREFIX):
        raise AddressError(f"address must start with {ADDRESS_PREFIX!r}")
    if len(cleaned) != _ADDRESS_TEXT_LEN:
        raise AddressError(f"address must be {_ADDRESS_TEXT_LEN} characters, got {len(cleaned)}")
    try:
        raw = bytes.fromhex(cleaned[len(ADDRESS_PREFIX) :])
    except ValueError as exc:
        raise AddressError("address contains a character that is not hex") from exc
    address, checksum = raw[:ADDRESS_BYTES], raw[ADDRESS_BYTES:]
    if not hmac.compare_digest(sha256d(address)[:_CHECKSUM_BYTES], checksum):
        raise AddressError("address checksum mismatch (mistyped?)")
    return address
