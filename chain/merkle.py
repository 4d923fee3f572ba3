"""Transaction merkle root, RFC 6962 style.

Leaves are the transaction ids themselves (`SHA-256(tx_encoding)`), inner nodes `SHA-256(0x01 || left || right)`,
and a level of odd length splits at the largest power of two below its size instead of duplicating its last
element. Bitcoin duplicates the last leaf, so `[a, b, c]` and `[a, b, c, c]` share a root (CVE-2012-2459); here
every list of leaves has its own root. Domain separation between leaves and inner nodes (RFC 6962 hashes
`0x00 || leaf`) comes for free: a transaction encoding always starts with the msgpack array byte 0x9a, never 0x01,
and is never 65 bytes long, so no inner node's preimage is a transaction. That saves one SHA-256 per transaction
on the block-validation hot path. The empty list's root is SHA-256 of nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_NODE = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def merkle_root(tx_hashes: Sequence[bytes]) -> bytes:
    """Root over `tx_hashes` in order."""
    if not tx_hashes:
        return EMPTY_ROOT
    sha = hashlib.sha256
    level = list(tx_hashes)
    # Pairwise reduction from the left keeps a perfect subtree for every power-of-two prefix; an odd last node is
    # carried up unchanged, which yields exactly the RFC 6962 split (largest power of two on the left).
    while len(level) > 1:
        paired = [sha(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]
