"""Safety and liveness checks over what nodes report: shared by the testnet (`chainlab testnet check`, from RPC or
from stopped nodes' stores) and the simulator (from in-memory block trees).

The checks are pure functions over small snapshots, so each one can be shown to fail on a hand-made bad input
(tests/testnet/test_checks.py). Builders turn a `BlockTree` into snapshots (`snapshot_of_tree`,
`ledger_of_tree`); testnet/collect.py builds the same values from RPC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chain.block import BlockHeader
from chain.blocktree import BlockTree
from chain.crypto import address_to_text
from chain.genesis import Genesis
from chain.state import Account
from consensus.spec import EngineSpec, FinalityProof


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """One check's verdict; `detail` says what was seen (and, on failure, the first violation)."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """`{"name", "ok", "detail"}`."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainSnapshot:
    """What one node says about its best chain."""

    node: str
    height: int
    head: str  # hex
    final_height: int
    hashes: Mapping[int, str]  # best-chain block hash (hex) by height; at least the final prefix
    safety_alarms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerView:
    """What the ledger invariants need of one node's chain."""

    node: str
    genesis_supply: int
    minted: int  # block rewards on the best chain
    balances: Mapping[str, int]  # text address -> balance (every account)
    nonces: Mapping[str, int]  # text address -> account nonce
    sent_nonces: Mapping[str, Sequence[int]] = field(default_factory=dict)  # sender -> tx nonces in chain order


def check_final_prefix(snapshots: Sequence[ChainSnapshot]) -> CheckResult:
    """No two nodes have different final blocks at the same height."""
    seen: dict[int, tuple[str, str]] = {}
    compared = 0
    for snapshot in snapshots:
        for height in range(snapshot.final_height + 1):
            block_hash = snapshot.hashes.get(height)
            if block_hash is None:
                continue
            compared += 1
            first = seen.setdefault(height, (snapshot.node, block_hash))
            if first[1] != block_hash:
                return CheckResult(name="final-prefix-agreement", ok=False,
                                   detail=f"height {height}: {first[0]} has final {first[1][:16]}, {snapshot.node} "
                                          f"has final {block_hash[:16]}")
    return CheckResult(name="final-prefix-agreement", ok=True,
                       detail=f"{len(snapshots)} nodes agree on {len(seen)} final heights ({compared} entries)")


def check_convergence(snapshots: Sequence[ChainSnapshot], *, at_final: bool = False) -> CheckResult:
    """Every node is on the same chain: same block at the lowest tip height (tips may differ by blocks in
    flight). `at_final`: where the tips disagree, compare at the lowest final height instead, for nodes that were
    stopped (their last, unfinal blocks may be a race that shutdown froze, which running nodes would have
    resolved). The figures are the same whatever the source: the height compared, and the spread of the tips
    (highest tip - lowest tip)."""
    if not snapshots:
        return CheckResult(name="convergence", ok=False, detail="no node to compare")
    spread = max(s.height for s in snapshots) - min(s.height for s in snapshots)
    lowest, distinct, at_lowest = _compare_at(snapshots, min(s.height for s in snapshots))
    frozen = ""
    if at_final and (len(distinct) != 1 or None in distinct):
        tip_height = lowest
        lowest, distinct, at_lowest = _compare_at(snapshots, min(s.final_height for s in snapshots))
        frozen = f"; the tips differ at height {tip_height} (a race frozen by shutdown)"
    if len(distinct) != 1 or None in distinct:
        listing = ", ".join(f"{node} {(h or '?')[:12]}" for node, h in at_lowest.items())
        return CheckResult(name="convergence", ok=False, detail=f"at height {lowest} nodes differ: {listing}")
    shared = next(iter(distinct)) or "?"
    return CheckResult(name="convergence", ok=True,
                       detail=f"{len(snapshots)} nodes share block {shared[:16]} at height {lowest} "
                              f"(tips within {spread} blocks{frozen})")


def _compare_at(snapshots: Sequence[ChainSnapshot], height: int,
                ) -> tuple[int, set[str | None], dict[str, str | None]]:
    at_height = {s.node: s.hashes.get(height) for s in snapshots}
    return height, set(at_height.values()), at_height


def check_ledger(ledger: LedgerView) -> CheckResult:
    """Total supply = genesis + rewards; no negative balance; each sender's nonces 0, 1, 2, ... with no gap and
    account nonces that match."""
    name = "ledger-invariants"
    total = sum(ledger.balances.values())
    expected = ledger.genesis_supply + ledger.minted
    if total != expected:
        return CheckResult(name=name, ok=False, detail=f"{ledger.node}: total supply {total}, expected "
                                                       f"{expected} (genesis {ledger.genesis_supply} + minted "
                                                       f"{ledger.minted})")
    negative = [address for address, balance in ledger.balances.items() if balance < 0]
    if negative:
        return CheckResult(name=name, ok=False, detail=f"{ledger.node}: negative balance at {negative[0]}")
    for sender, nonces in ledger.sent_nonces.items():
        for position, nonce in enumerate(nonces):
            if nonce != position:
                return CheckResult(name=name, ok=False,
                                   detail=f"{ledger.node}: {sender} sent nonce {nonce} as its transaction "
                                          f"#{position} (gap or repeat)")
        if ledger.nonces.get(sender, 0) != len(nonces):
            return CheckResult(name=name, ok=False,
                               detail=f"{ledger.node}: {sender} has account nonce {ledger.nonces.get(sender, 0)} "
                                      f"after {len(nonces)} transactions")
    return CheckResult(name=name, ok=True,
                       detail=f"{ledger.node}: supply {total} = genesis + {ledger.minted} minted, "
                              f"{len(ledger.balances)} accounts, {len(ledger.sent_nonces)} senders gapless")


def check_no_safety_alarm(snapshots: Sequence[ChainSnapshot], log_alarms: Mapping[str, int] | None = None,
                          ) -> CheckResult:
    """No node raised a safety alarm (refused a reorg below its final block), by metrics/status or log lines."""
    alarmed = {s.node: s.safety_alarms for s in snapshots if s.safety_alarms}
    for node, count in (log_alarms or {}).items():
        if count:
            alarmed[node] = max(alarmed.get(node, 0), count)
    if alarmed:
        listing = ", ".join(f"{node}: {count}" for node, count in sorted(alarmed.items()))
        return CheckResult(name="no-safety-alarm", ok=False, detail=f"safety alarms raised ({listing})")
    return CheckResult(name="no-safety-alarm", ok=True, detail=f"{len(snapshots)} nodes, no alarm")


def check_one_leader_per_term(claims: Iterable[tuple[int, str]]) -> CheckResult:
    """At most one leader per term (Raft's Election Safety), judged from the blocks every node holds: `claims` are
    (term, proposer) of each block; two proposers of one term mean two leaders in it."""
    proposers: dict[int, set[str]] = {}
    for term, proposer in claims:
        proposers.setdefault(term, set()).add(proposer)
    doubled = {term: sorted(who) for term, who in proposers.items() if len(who) > 1}
    if doubled:
        term = min(doubled)
        return CheckResult(name="one-leader-per-term", ok=False,
                           detail=f"term {term} has blocks sealed by {', '.join(doubled[term])} "
                                  f"({len(doubled)} terms with two leaders)")
    return CheckResult(name="one-leader-per-term", ok=True,
                       detail=f"{len(proposers)} terms, each with blocks of one leader")


def check_acknowledged_final(acknowledged: Iterable[str], final_txs: Mapping[str, set[str]]) -> CheckResult:
    """Every transaction a client saw final is in every node's final chain (none lost)."""
    acked = set(acknowledged)
    for node, txs in final_txs.items():
        missing = acked - txs
        if missing:
            return CheckResult(name="no-lost-acknowledged-tx", ok=False,
                               detail=f"{node} lacks {len(missing)} transaction(s) a client saw final, e.g. "
                                      f"{sorted(missing)[0][:16]}")
    return CheckResult(name="no-lost-acknowledged-tx", ok=True,
                       detail=f"{len(acked)} acknowledged-final transactions on {len(final_txs)} nodes")


def check_liveness(heights_before: Mapping[str, int], heights_after: Mapping[str, int], *, min_progress: int = 1,
                   ) -> CheckResult:
    """Height advanced (by at least `min_progress`) on every node while the network was connected."""
    stalled = {node: (heights_before.get(node, 0), after) for node, after in heights_after.items()
               if after - heights_before.get(node, 0) < min_progress}
    if stalled:
        node, (before, after) = next(iter(sorted(stalled.items())))
        return CheckResult(name="liveness", ok=False,
                           detail=f"{node} went from height {before} to {after} (needs +{min_progress})")
    progress = [after - heights_before.get(node, 0) for node, after in heights_after.items()]
    return CheckResult(name="liveness", ok=True,
                       detail=f"{len(heights_after)} nodes advanced by {min(progress, default=0)}.."
                              f"{max(progress, default=0)} blocks")


# -- builders from a block tree (the simulator, and stopped nodes' stores) -------------------------------------


def snapshot_of_tree(node: str, tree: BlockTree) -> ChainSnapshot:
    """A ChainSnapshot of a block tree's active chain."""
    hashes = {height: tree.hash_at(height).hex() for height in range(tree.height + 1)}  # type: ignore[union-attr]
    return ChainSnapshot(node=node, height=tree.height, head=tree.tip.hash.hex(), final_height=tree.final_height,
                         hashes=hashes, safety_alarms=tree.safety_alarms)


def ledger_of_tree(node: str, tree: BlockTree, *, at_final: bool = False) -> LedgerView:
    """The LedgerView of a block tree's tip state (accounts read from its store), or with `at_final` of its final
    block's state (the tip state with the undo records of the blocks above the final one applied, newest first),
    which is what a node's RPC serves `?at=final` and so what testnet/collect.py reads from running nodes."""
    accounts: dict[bytes, Account | None] = dict(tree.store.iter_accounts())
    top = tree.final_height if at_final else tree.height
    for height in range(tree.height, top, -1):
        block_hash = tree.hash_at(height)
        assert block_hash is not None
        for address, previous in tree.store.get_undo(block_hash).previous:
            accounts[address] = previous
    balances: dict[str, int] = {}
    nonces: dict[str, int] = {}
    for address, account in accounts.items():
        if account is None or (account.balance == 0 and account.nonce == 0):  # created above final, or empty
            continue
        text = address_to_text(address)
        balances[text] = account.balance
        nonces[text] = account.nonce
    sent: dict[str, list[int]] = {}
    minted = 0
    for height in range(1, top + 1):
        block_hash = tree.hash_at(height)
        block = tree.get_block(block_hash) if block_hash is not None else None
        if block is None:
            continue
        minted += tree.policy.block_reward(block.header)
        for tx in block.txs:
            sent.setdefault(address_to_text(tx.sender_address), []).append(tx.nonce)
    return LedgerView(node=node, genesis_supply=sum(tree.genesis.balances.values()), minted=minted,
                      balances=balances, nonces=nonces, sent_nonces=sent)


def check_certificates(proofs: Mapping[str, Sequence[FinalityProof]], *, f: int,
                       names: Mapping[bytes, str] | None = None) -> CheckResult:
    """The finality certificates of the final blocks (engines whose seals carry them, PBFT): each verifies, and
    no two nodes hold certificates for different blocks at one height. `proofs` holds, per honest node, the
    certificate each final block's child carries. A conflict names both certificates and the validators that
    signed both: more than `f` of them means more Byzantine validators than the network tolerates. `names` gives
    validator addresses the names of the nodes that hold their keys."""
    def who(address: bytes) -> str:
        text = address_to_text(address)[:12]
        return f"{names[address]} ({text})" if names and address in names else text


    by_height: dict[int, tuple[str, FinalityProof]] = {}
    checked = 0
    for node, node_proofs in proofs.items():
        for proof in node_proofs:
            if proof.error is not None:
                return CheckResult(name="certificates", ok=False,
                                   detail=f"{node}: the final block {proof.block_hash.hex()[:16]} at height "
                                          f"{proof.height} carries a certificate that does not verify "
                                          f"({proof.error})")
            checked += 1
            first = by_height.setdefault(proof.height, (node, proof))
            if first[1].block_hash != proof.block_hash:
                other_node, other = first
                both = sorted(set(other.signers) & set(proof.signers))
                return CheckResult(name="certificates", ok=False, detail=(
                    f"height {proof.height}: {other_node} committed {other.block_hash.hex()[:16]} with "
                    f"{_certificate(other, who)}; {node} committed {proof.block_hash.hex()[:16]} with "
                    f"{_certificate(proof, who)}; {len(both)} validators signed both "
                    f"({', '.join(who(a) for a in both)}), more than f = {f}"))
    return CheckResult(name="certificates", ok=True,
                       detail=f"{checked} certificates of {len(proofs)} nodes verify and agree on "
                              f"{len(by_height)} heights")


def _certificate(proof: FinalityProof, who: Callable[[bytes], str]) -> str:
    signers = ", ".join(who(a) for a in proof.signers)
    return f"a certificate of view {proof.view} signed by {len(proof.signers)} ({signers})"


def certificate_heights(snapshots: Sequence[ChainSnapshot], *, window: int) -> set[int]:
    """The final heights whose certificates `testnet check` verifies, bounded on long chains: each node's last
    `window` final heights, and every final height where two nodes hold different blocks (where a conflict is)."""
    chosen: set[int] = set()
    by_height: dict[int, set[str]] = {}
    for snapshot in snapshots:
        chosen.update(range(max(1, snapshot.final_height - window + 1), snapshot.final_height + 1))
        for height in range(1, snapshot.final_height + 1):
            block_hash = snapshot.hashes.get(height)
            if block_hash is not None:
                by_height.setdefault(height, set()).add(block_hash)
    chosen.update(height for height, hashes in by_height.items() if len(hashes) > 1)
    return chosen


def certificates_of_headers(headers: Mapping[int, BlockHeader], final_height: int, heights: Iterable[int],
                            describe: Callable[[BlockHeader], FinalityProof | None]) -> list[FinalityProof]:
    """The certificates of one node's final blocks at `heights`, each from the child block on its best chain
    (`headers` by height); a final block whose child the node does not hold yet is skipped."""
    proofs = []
    for height in sorted(heights):
        child = headers.get(height + 1)
        if height > final_height or child is None:
            continue
        proof = describe(child)
        if proof is not None:
            proofs.append(proof)
    return proofs


def certificates_of_tree(tree: BlockTree, describe: Callable[[BlockHeader], FinalityProof | None]) -> list[
        FinalityProof]:
    """The certificate each final block of `tree`'s active chain gets from its child on that chain."""
    headers: dict[int, BlockHeader] = {}
    for height in range(2, min(tree.height, tree.final_height + 1) + 1):
        child_hash = tree.hash_at(height)
        meta = tree.meta(child_hash) if child_hash is not None else None
        if meta is None:
            break
        headers[height] = meta.header
    return certificates_of_headers(headers, tree.final_height, range(1, tree.final_height + 1), describe)


def certificate_reader(genesis: Genesis, spec: EngineSpec) -> Callable[[BlockHeader], FinalityProof | None]:
    """`spec.parent_certificate` on `genesis`, each header read and verified once however many nodes hold it."""
    describe = spec.parent_certificate
    assert describe is not None, "for engines whose seals carry certificates"
    seen: dict[bytes, FinalityProof | None] = {}

    def read(header: BlockHeader) -> FinalityProof | None:
        key = header.hash
        if key not in seen:
            seen[key] = describe(genesis, header)
        return seen[key]

    return read


def quorum_size(genesis: Genesis, spec: EngineSpec) -> int:
    """The fewest validators the engine's `has_quorum` accepts."""
    validators = sorted(genesis.validators)
    return next((size for size in range(1, len(validators) + 1) if spec.has_quorum(genesis, validators[:size])),
                len(validators))


def tolerated_faults(genesis: Genesis, spec: EngineSpec) -> int:
    """How many Byzantine validators the engine's quorums tolerate (PBFT: f of 3f+1): any two quorums share
    2q - n validators, and while at most 2q - n - 1 of them lie, they share an honest one, who signed only one of
    two conflicting blocks."""
    return max(0, 2 * quorum_size(genesis, spec) - len(genesis.validators) - 1)
