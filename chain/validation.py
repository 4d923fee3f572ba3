"""Block and transaction validation with stable reject codes.

Stateless checks need only the block and the rules (sizes, chain id, duplicates, merkle root, timestamp bound,
signatures); stateful checks need the parent state (nonce, balance, overflow: `state.apply_block`) and end with the
state commitment. Every failure is a `RejectError` whose code is listed in docs/FORMATS.md.

Signature checks dominate the cost, so they come last among the stateless checks, skip transactions already
verified (the mempool puts every accepted transaction's id in a `SignatureCache`; an id commits to the signature,
the public key and the signed fields, so a cached id is proof enough) and can be handed to a batch verifier that
runs in worker processes (node/workers.py); results are identical either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, overload

from chain import crypto
from chain.block import Block
from chain.errors import RejectError
from chain.fifo import trimmed
from chain.genesis import Genesis
from chain.merkle import merkle_root
from chain.state import Application, State, apply_block
from chain.tx import MAX_TX_BYTES, Transaction

# (public key, signature, digest) triples in, one bool per triple out, in order.
BatchVerifier = Callable[[Sequence[tuple[bytes, bytes, bytes]]], list[bool]]
SignatureItems = Sequence[tuple[bytes, bytes, bytes]]


class ParallelVerifier(Protocol):
    """A verifier that starts checking in other processes and is waited on later (node/workers.py).

    `submit` returns at once with a function that blocks until every result is in; meanwhile the caller goes on
    with the rest of block validation, so signature checks overlap decoding and state application.
    """

    def submit(self, items: SignatureItems) -> Callable[[], list[bool]]:
        """Start verifying `items`; the returned function waits and gives one bool per item, in order."""


def verify_in_process(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """The default BatchVerifier: libsecp256k1 in this process."""
    return crypto.verify_many(items)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """The consensus rules a block is checked against (from genesis)."""

    chain_id: str
    max_block_txs: int
    max_block_bytes: int
    max_future_block_ms: int

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> Rules:
        """Rules of the network `genesis` defines."""
        return cls(
            chain_id=genesis.chain_id,
            max_block_txs=genesis.param("max_block_txs"),
            max_block_bytes=genesis.param("max_block_bytes"),
            max_future_block_ms=genesis.param("max_future_block_ms"),
        )


class SignatureCache:
    """A bounded set of ids of transactions whose signatures verified; the oldest entries go first."""

    __slots__ = ("_entries", "capacity")

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._entries: dict[bytes, None] = {}

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def missing(self, txs: Sequence[Transaction]) -> list[Transaction]:
        """The transactions of `txs` whose ids are not in the cache, in order."""
        entries = self._entries
        return [tx for tx in txs if tx.hash not in entries]

    def add(self, tx_hash: bytes) -> None:
        """Remember that `tx_hash`'s signature verified."""
        self.add_many((tx_hash,))

    def add_many(self, tx_hashes: Iterable[bytes]) -> None:
        """Remember a batch of verified ids (one block's worth in one update)."""
        entries = self._entries
        entries.update(dict.fromkeys(tx_hashes))
        if len(entries) > self.capacity:
            self._entries = trimmed(entries, self.capacity)


class TxSignatureItems(Sequence[tuple[bytes, bytes, bytes]]):
    """The (public key, signature, signing hash) triples of transactions, built when read.

    A parallel verifier reads the workers' share before they start and its own share while they run, so the
    caller's signing hashes are computed in the parallel phase instead of before it.
    """

    __slots__ = ("_txs",)

    def __init__(self, txs: Sequence[Transaction]) -> None:
        self._txs = txs

    def __len__(self) -> int:
        return len(self._txs)

    @overload
    def __getitem__(self, index: int) -> tuple[bytes, bytes, bytes]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[bytes, bytes, bytes]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[bytes, bytes, bytes] | list[tuple[bytes, bytes, bytes]]:
        if isinstance(index, slice):
            return [(tx.sender, tx.signature, tx.signing_hash) for tx in self._txs[index]]
        tx = self._txs[index]
        return (tx.sender, tx.signature, tx.signing_hash)


class SignatureChecker:
    """Checks transaction signatures through a cache and an in-process or parallel verifier.

    Whatever the verifier, the outcome is the same: the first transaction (in block order) whose signature fails
    is reported as `bad-signature`, and only transactions that verified enter the cache.
    """

    __slots__ = ("cache", "parallel", "verify_batch")

    def __init__(
        self, cache: SignatureCache | None = None, verify_batch: BatchVerifier = verify_in_process,
        parallel: ParallelVerifier | None = None,
    ) -> None:
        self.cache = cache if cache is not None else SignatureCache()
        self.verify_batch = verify_batch
        self.parallel = parallel

    def check(self, txs: Sequence[Transaction]) -> None:
        """Raise RejectError('bad-signature') naming the first transaction whose signature does not verify."""
        self.begin(txs)()

    def begin(self, txs: Sequence[Transaction]) -> Callable[[], None]:
        """Start checking `txs`; the returned function waits for the outcome and raises like `check`.

        With a parallel verifier the work runs elsewhere while the caller continues. In process it runs when the
        returned function is called: a caller that applies the block first does so while the freshly decoded
        transactions are still in the CPU caches, and a thousand signature checks in between would evict them
        (measured: 1.2 us per transaction, see docs/PERFORMANCE.md).
        """
        cache = self.cache
        pending = cache.missing(txs)
        if not pending:
            return _nothing_to_wait_for
        items = TxSignatureItems(pending)
        wait: Callable[[], list[bool]]
        if self.parallel is not None and len(pending) > 1:
            wait = self.parallel.submit(items)
        else:
            verify_batch = self.verify_batch

            def wait() -> list[bool]:
                return verify_batch(items[:])

        def finish() -> None:
            outcome = wait()
            if len(outcome) != len(pending):
                raise RuntimeError("signature verifier returned the wrong number of results")
            if not all(outcome):
                bad = pending[outcome.index(False)]
                index = next(i for i, tx in enumerate(txs) if tx is bad)
                raise RejectError("bad-signature", f"tx {index} {bad.hash.hex()}")
            cache.add_many(tx.hash for tx in pending)

        return finish


def _nothing_to_wait_for() -> None:
    return None


def check_tx(tx: Transaction, rules: Rules, signatures: SignatureChecker) -> None:
    """Stateless checks of one loose transaction (mempool admission)."""
    if tx.chain_id != rules.chain_id:
        raise RejectError("bad-chain-id", f"transaction for chain {tx.chain_id!r}, this is {rules.chain_id!r}")
    if tx.size > MAX_TX_BYTES:
        raise RejectError("oversize", f"transaction of {tx.size} bytes")
    if not crypto.is_valid_public_key(tx.sender):
        raise RejectError("bad-signature", "sender is not a valid public key")
    signatures.check((tx,))


def check_block_stateless(block: Block, rules: Rules, *, now_ms: int, signatures: SignatureChecker) -> None:
    """Everything that can be checked without the parent state, cheapest first."""
    check_block_cheap(block, rules, now_ms=now_ms)
    signatures.check(block.txs)


def check_block_cheap(block: Block, rules: Rules, *, now_ms: int) -> None:
    """The stateless checks except signatures: sizes, timestamp bound, merkle root, duplicates, chain id."""
    txs = block.txs
    if len(txs) > rules.max_block_txs:
        raise RejectError("oversize", f"{len(txs)} transactions, limit {rules.max_block_txs}")
    if block.size > rules.max_block_bytes:
        raise RejectError("oversize", f"{block.size} bytes, limit {rules.max_block_bytes}")
    if block.header.timestamp_ms > now_ms + rules.max_future_block_ms:
        raise RejectError(
            "time-too-new", f"timestamp {block.header.timestamp_ms} ms is more than "
            f"{rules.max_future_block_ms} ms ahead of local time {now_ms}"
        )
    hashes = [tx.hash for tx in txs]
    if merkle_root(hashes) != block.header.tx_root:
        raise RejectError("bad-merkle-root", f"block {block.hash.hex()}")
    if len(set(hashes)) != len(hashes):
        raise RejectError("duplicate-tx", f"block {block.hash.hex()} repeats a transaction")
    chain_id = rules.chain_id
    for index, tx in enumerate(txs):
        if tx.chain_id != chain_id:
            raise RejectError("bad-chain-id", f"tx {index} is for chain {tx.chain_id!r}")


def check_state_commitment(block: Block, state_after: State) -> None:
    """Raise RejectError('bad-state-commitment') unless the header commits to `state_after`."""
    actual = state_after.commitment
    if actual != block.header.state_root:
        raise RejectError(
            "bad-state-commitment",
            f"block {block.hash.hex()} claims {block.header.state_root.hex()}, state is {actual.hex()}",
        )


def connect_block(
    state: State, block: Block, rules: Rules, *, reward: int, now_ms: int, signatures: SignatureChecker,
    cheap_checks_done: bool = False, applied: Application | None = None,
) -> Application:
    """Fully validate `block` on top of `state` and return the application (new state, undo, receipts).

    The reject code does not depend on the verifier: a bad signature is reported before any stateful error even
    when the signatures are still being checked in other processes while the state is applied.

    `applied`: the application of this block's transactions, reward and proposer on `state`, computed already
    (the proposer's template: BlockTree.preview); the signatures and the state root are still checked.
    """
    if not cheap_checks_done:  # the block tree ran them when it stored the block
        check_block_cheap(block, rules, now_ms=now_ms)
    finish_signatures = signatures.begin(block.txs)
    try:
        application = apply_block(state, block, reward=reward) if applied is None else replace(applied, block=block)
    except RejectError:
        finish_signatures()  # a bad signature outranks the state error
        raise
    finish_signatures()
    check_state_commitment(block, application.state)
    return application
