"""What a traced message is called (pure): its kind and the hash it names, the same in a node's trace and in a
simulated run's (docs/TRACING.md): `block`, `tx` (their hashes), `tx-inv`, `block-inv`, `tx-get`, `block-get`,
`tx-notfound`, `block-notfound` (the first hash), `getblocks` (the first locator hash), `blocks` (the last block's
hash). Engine messages are named by their carrier (the node: the engine's message kind; the simulator: `engine`)."""

from __future__ import annotations

from collections.abc import Callable

from p2p.protocol.messages import BlockMsg, Blocks, GetBlocks, GetData, Inv, Message, NotFound, TxMsg

NO_HASH = bytes(32)


def relay_label(message: Message, block_hash: Callable[[bytes], bytes],
                tx_hash: Callable[[bytes], bytes]) -> tuple[str, bytes] | None:
    """(kind, hash) of a relay or sync message; None for any other message. `block_hash` and `tx_hash` take the
    encoded body (callers memoize decoding as they see fit)."""
    if isinstance(message, BlockMsg):
        return "block", block_hash(message.raw)
    if isinstance(message, TxMsg):
        return "tx", tx_hash(message.raw)
    if isinstance(message, Inv):
        return f"{message.kind}-inv", message.hashes[0] if message.hashes else NO_HASH
    if isinstance(message, GetData):
        return f"{message.kind}-get", message.hashes[0] if message.hashes else NO_HASH
    if isinstance(message, NotFound):
        return f"{message.kind}-notfound", message.hashes[0] if message.hashes else NO_HASH
    if isinstance(message, GetBlocks):
        return "getblocks", message.locator[0] if message.locator else NO_HASH
    if isinstance(message, Blocks):
        return "blocks", block_hash(message.raws[-1]) if message.raws else NO_HASH
    return None
