"""PoW seal, proof-of-work hash, work and difficulty retarget (pure).

Seal: 40 raw bytes, `target (32, big-endian) || nonce (8, big-endian)`.

PoW hash: SHA-256d of an 80-byte preimage `seal_hash (32) || target (32) || nonce (8) || zeros (8)`. The first
64 bytes are fixed for a template, so a miner hashes them once and every nonce costs one compression of the second
64-byte block plus the outer hash: the SHA-256 midstate reuse that Bitcoin miners rely on, available in Python as
`hashlib.sha256(prefix).copy()`. A block meets its target when the PoW hash, read as a big-endian integer, is at
most the target. Work = 2^256 // (target + 1), the expected number of hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from chain.block import BlockHeader
from chain.errors import RejectError

SEAL_BYTES = 40
MAX_TARGET = (1 << 256) - 1
_PADDING = bytes(8)


def encode_seal(target: int, nonce: int) -> bytes:
    """The 40-byte seal of `target` and `nonce`."""
    return target.to_bytes(32, "big") + nonce.to_bytes(8, "big")


def decode_seal(seal: bytes) -> tuple[int, int]:
    """(target, nonce) of a seal; RejectError('bad-seal') when malformed."""
    if len(seal) != SEAL_BYTES:
        raise RejectError("bad-seal", f"a PoW seal is {SEAL_BYTES} bytes, got {len(seal)}")
    target = int.from_bytes(seal[:32], "big")
    if target == 0:
        raise RejectError("bad-seal", "target zero")
    return target, int.from_bytes(seal[32:], "big")


def describe_seal(header: BlockHeader) -> dict[str, object]:
    """A PoW seal as fields: the target (hex, as `bits` would be shown) and the nonce."""
    target, nonce = decode_seal(header.seal)
    return {"target": f"{target:064x}", "nonce": nonce}


def mining_prefix(seal_hash: bytes, target: int) -> bytes:
    """The fixed first 64 bytes of the PoW preimage (one SHA-256 block: the midstate)."""
    return seal_hash + target.to_bytes(32, "big")


def pow_hash_from_prefix(prefix: bytes, nonce: int) -> bytes:
    """PoW hash for `nonce` given the 64-byte prefix."""
    inner = hashlib.sha256(prefix)
    inner.update(nonce.to_bytes(8, "big") + _PADDING)
    return hashlib.sha256(inner.digest()).digest()


def pow_hash(header: BlockHeader) -> bytes:
    """The header's proof-of-work hash."""
    target, nonce = decode_seal(header.seal)
    return pow_hash_from_prefix(mining_prefix(header.seal_hash, target), nonce)


def check_pow(header: BlockHeader) -> int:
    """Raise RejectError('bad-pow') unless the header's PoW meets its own target; return the target."""
    target, _ = decode_seal(header.seal)
    if int.from_bytes(pow_hash(header), "big") > target:
        raise RejectError("bad-pow", f"block {header.hash.hex()} does not meet its target")
    return target


def work_of_target(target: int) -> int:
    """Expected hashes to meet `target`."""
    return (1 << 256) // (target + 1)


def header_work(header: BlockHeader) -> int:
    """Work a sealed header represents (0 for a malformed seal)."""
    try:
        target, _ = decode_seal(header.seal)
    except RejectError:
        return 0
    return work_of_target(target)


def grind(header: BlockHeader, target: int, start_nonce: int = 0, max_tries: int = 1 << 32) -> BlockHeader | None:
    """Search nonces in-process (tests, `chain generate` at dev difficulty); the node mines in worker processes."""
    prefix = mining_prefix(header.seal_hash, target)
    midstate = hashlib.sha256(prefix)
    for nonce in range(start_nonce, start_nonce + max_tries):
        inner = midstate.copy()
        inner.update(nonce.to_bytes(8, "big") + _PADDING)
        if int.from_bytes(hashlib.sha256(inner.digest()).digest(), "big") <= target:
            return header.with_seal(encode_seal(target, nonce))
    return None


def next_target(
    *, parent_target: int, parent_height: int, window_timestamps_ms: Sequence[int], block_interval_s: float,
    retarget_window: int, initial_target: int,
) -> int:
    """Target the child of a block at `parent_height` must carry.

    Every `retarget_window` blocks the target scales by actual/expected time over the last window (timestamps of
    the window's first and last block), clamped to 4x either way and never easier than `initial_target` (the
    network's minimum difficulty). Between retargets the parent's target carries over.
    """
    child_height = parent_height + 1
    if child_height < retarget_window or child_height % retarget_window != 0:
        return parent_target
    if len(window_timestamps_ms) < 2:
        return parent_target
    actual_ms = max(1, window_timestamps_ms[-1] - window_timestamps_ms[0])
    expected_ms = max(1, int(block_interval_s * 1000) * (len(window_timestamps_ms) - 1))
    actual_ms = min(max(actual_ms, expected_ms // 4), expected_ms * 4)
    return max(1, min(initial_target, parent_target * actual_ms // expected_ms))
