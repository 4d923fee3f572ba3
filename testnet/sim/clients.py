"""The simulated clients' side of a run (pure): their transfers and account reads, recorded as a client history.

The history has the format of the testnet load's (testnet/history.py, testnet/load.py), with simulated time as
`time_ns`: process `client-N` is the session of load account N (at most one operation open at a time); a
`transfer` is an invoke and its completion at the same instant (key = the transaction's hash, value {from, to,
amount, fee, nonce}); the `observer` records `final` ({height, block, index}) when a transfer is first final on
some node; a `read` (key = the account's address) is invoked with {level} and completes with {nonce, balance,
height, level}. Each session first reads its own account at `final` (the genesis state, which the checker then
starts from), and reads from its own node afterwards (node N mod the number of nodes), as the load does.

A `linearizable` read goes the production node's way (node/adapters.py `account_linearizable`): the core's
`read_index` asks the engine, the engine answers (now or after messages) with an index or an error, and the read
is served once the node's final height reaches that index, from the final state (`BlockTree.final_account`). An
engine error fails it with the engine's code; a crash of its node or `READ_TIMEOUT_S` of waiting leaves it
`info`. `latest` and `final` reads are answered at once from the node's state.

`linearizable_check` then runs the account model (testnet/linearizability.py) over the transfers and the
linearizable reads: the `linearizable-reads` check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any

from chain.crypto import PrivateKey, address_to_text
from chain.tx import Transaction, make_transfer
from consensus.engine import ReadResult
from testnet.checks import CheckResult
from testnet.history import Op
from testnet.linearizability import AccountModel, check
from testnet.sim.node import SimNode

READ_TIMEOUT_S = 5.0  # as node.waits.READ_TIMEOUT_S: the engine's answer and the final height, together
READ_LEVEL_DRAWS = ("linearizable", "linearizable", "final", "latest")  # half of the reads are linearizable
CHECK_MAX_STATES = 500_000  # the linearizability search's budget per run: beyond it the check says `unknown`


@dataclass(slots=True, kw_only=True)
class Session:
    """A load account's client, when the clients read: its nonce advances only when a node accepted its
    transaction (testnet/load.py), so it never signs two transactions with one nonce."""

    next_nonce: int = 0
    pending: Transaction | None = None  # signed, not accepted yet: sent again (same bytes) on the next turn
    unconfirmed: dict[bytes, float] = field(default_factory=dict)  # accepted, not seen final: hash -> last sent


@dataclass(slots=True, kw_only=True)
class PendingRead:
    """A linearizable read waiting for the engine's answer, then for the final height to reach its index."""

    request_id: int
    process: str
    node: int
    address: bytes
    read_index: int | None = None  # None until the engine answered
    term: int = 0


class SimClients:
    """The load accounts' sessions: they record what they do in `history` and keep their open reads."""

    def __init__(self, load_keys: Sequence[PrivateKey], *, chain_id: str, rebroadcast_after_s: float) -> None:
        self.load_keys = list(load_keys)
        self.chain_id = chain_id
        self.rebroadcast_after_s = rebroadcast_after_s
        self.sessions = [Session() for _ in self.load_keys]
        self.history: list[Op] = []
        self.stats: dict[str, int] = {"reads": 0, "reads_ok": 0, "reads_failed": 0, "reads_unknown": 0,
                                      "txs_skipped": 0}
        self._pending: dict[int, PendingRead] = {}  # request id -> read
        self._busy: set[str] = set()  # processes with a read open
        self._not_final: dict[bytes, Transaction] = {}  # sent transfers no node has seen final yet
        self._next_request = 0

    # -- the history ---------------------------------------------------------------------------------------------

    def _record(self, t: float, kind: str, *, process: str, node: str, op: str, key: str, value: Any = None,
                error: str | None = None) -> None:
        self.history.append(Op(index=len(self.history), time_ns=round(t * 1e9), type=kind, process=process,
                               node=node, op=op, key=key, value=value, error=error))

    def busy(self, account: int) -> bool:
        """True while the session of load account `account` has a read open (it sends nothing meanwhile)."""
        return f"client-{account}" in self._busy

    # -- transfers -----------------------------------------------------------------------------------------------

    def next_transfer(self, account: int, *, recipient: bytes, amount: int, fee: int, t: float,
                      ) -> tuple[Transaction, bool]:
        """What session `account` sends on its turn, as the load's: an accepted transaction that no node has made
        final for `rebroadcast_after_s` goes again (a node that held it may have crashed; True: a rebroadcast),
        else the pending one, else a new one to `recipient` with the session's next nonce."""
        session = self.sessions[account]
        stale = next((tx_hash for tx_hash, sent in session.unconfirmed.items()
                      if t - sent >= self.rebroadcast_after_s and tx_hash in self._not_final), None)
        if stale is not None:
            session.unconfirmed[stale] = t
            return self._not_final[stale], True
        if session.pending is None:
            session.pending = make_transfer(self.load_keys[account], chain_id=self.chain_id, recipient=recipient,
                                            amount=amount, fee=fee, nonce=session.next_nonce)
        return session.pending, False

    def session_transfer(self, account: int, node: SimNode, tx: Transaction, rebroadcast: bool, t: float,
                         ) -> str | None:
        """Send `next_transfer`'s choice to `node` and keep the session's nonce: it advances when a node accepts
        the transaction; `nonce-too-low` (the chain used the nonce) resynchronises it from the node's state; any
        other refusal keeps the transaction for the next turn. The reject code, or None."""
        if rebroadcast:
            return self.transfer(account, node, tx, t, process=f"rebroadcast-{node.name}")
        session = self.sessions[account]
        code = self.transfer(account, node, tx, t)
        if code is None or code == "already-known":
            session.next_nonce = tx.nonce + 1
            session.pending = None
            if tx.hash in self._not_final:
                session.unconfirmed[tx.hash] = t
        elif code == "nonce-too-low":
            session.pending = None
            core = node.core
            state = core.tree.state.get(self.load_keys[account].address) if core is not None else None
            session.next_nonce = max(session.next_nonce + 1, state.nonce if state is not None else 0)
        return code

    def transfer(self, account: int, node: SimNode, tx: Transaction, t: float, *, process: str | None = None,
                 ) -> str | None:
        """`tx` of load account `account` goes to `node` (as over RPC), recorded as sent by the account's session
        (or `process`); the reject code, or None."""
        process = process or f"client-{account}"
        value = {"from": address_to_text(tx.sender_address), "to": address_to_text(tx.recipient),
                 "amount": tx.amount, "fee": tx.fee, "nonce": tx.nonce}
        self._record(t, "invoke", process=process, node=node.name, op="transfer", key=tx.hash.hex(), value=value)
        known = tx.hash in self._not_final
        self._not_final[tx.hash] = tx  # watched before the answer: the node may be the one that seals it
        code = node.submit_tx(tx, t)
        if code is not None and code != "already-known" and not known:
            del self._not_final[tx.hash]  # refused and never accepted: it cannot become final (a short watch list)
        self._record(t, "ok" if code is None else "fail", process=process, node=node.name, op="transfer",
                     key=tx.hash.hex(), value=value, error=code)
        return code

    def on_final(self, node: SimNode, t: float) -> None:
        """`node`'s final height moved: record the transfers it made final first, serve the reads it unblocked."""
        core = node.core
        if core is None:
            return
        tree = core.tree
        for tx_hash in list(self._not_final):
            location = tree.store.tx_location(tx_hash)
            meta = tree.meta(location[0]) if location is not None else None
            if location is None or meta is None or meta.height > tree.final_height or not tree.is_on_best_chain(
                    location[0]):
                continue
            del self._not_final[tx_hash]
            for session in self.sessions:
                session.unconfirmed.pop(tx_hash, None)
            value = {"height": meta.height, "block": location[0].hex(), "index": location[1]}
            self._record(t, "invoke", process="observer", node=node.name, op="final", key=tx_hash.hex())
            self._record(t, "ok", process="observer", node=node.name, op="final", key=tx_hash.hex(), value=value)
        for pending in [p for p in self._pending.values() if p.node == node.index and p.read_index is not None]:
            self._serve(pending, node, t)

    # -- reads ---------------------------------------------------------------------------------------------------

    def initial_reads(self, nodes: Sequence[SimNode], t: float) -> None:
        """Each session reads its own account at `final` before anything is sent: the state the checker starts
        from."""
        for account, key in enumerate(self.load_keys):
            self._read_now(f"client-{account}", nodes[account % len(nodes)], key.address, "final", t)

    def read(self, rng: Random, nodes: Sequence[SimNode], t: float) -> int | None:
        """A session drawn from `rng` reads its own account or another one, at a drawn level, from its node. The
        request id of a linearizable read left waiting (the caller times it out), else None."""
        account = rng.randrange(len(self.load_keys))
        own = rng.random() < 0.5
        target = self.load_keys[account if own else rng.randrange(len(self.load_keys))].address
        level = rng.choice(READ_LEVEL_DRAWS)
        process = f"client-{account}"
        if process in self._busy:
            return None
        node = nodes[account % len(nodes)]
        if level != "linearizable":
            self._read_now(process, node, target, level, t)
            return None
        self.stats["reads"] += 1
        self._record(t, "invoke", process=process, node=node.name, op="read", key=address_to_text(target),
                     value={"level": level})
        if node.core is None:
            self._complete(process, node.name, target, "fail", error="unavailable: connection refused", t=t)
            return None
        self._next_request += 1
        request_id = self._next_request
        self._pending[request_id] = PendingRead(request_id=request_id, process=process, node=node.index,
                                                address=target)
        self._busy.add(process)
        node.read_index(request_id, t)  # the answer may come at once, through on_answers
        return request_id if request_id in self._pending else None

    def _read_now(self, process: str, node: SimNode, address: bytes, level: str, t: float) -> None:
        """A `latest` or `final` read, answered from the node's state at once (node/adapters.py `account`)."""
        self.stats["reads"] += 1
        self._record(t, "invoke", process=process, node=node.name, op="read", key=address_to_text(address),
                     value={"level": level})
        core = node.core
        if core is None:
            self._complete(process, node.name, address, "fail", error="unavailable: connection refused", t=t)
            return
        tree = core.tree
        account = tree.state.get(address) if level == "latest" else tree.final_account(address)
        height = tree.height if level == "latest" else tree.final_height
        self._complete(process, node.name, address, "ok", value={
            "nonce": account.nonce if account else 0, "balance": account.balance if account else 0,
            "height": height, "level": level}, t=t)

    def on_answers(self, node: SimNode, answers: Sequence[ReadResult], t: float) -> None:
        """The engine of `node` answered: fail the refused reads, serve the others once final enough."""
        for answer in answers:
            pending = self._pending.get(answer.request_id)
            if pending is None or pending.node != node.index:
                continue  # its client gave up already
            if answer.error is not None:
                del self._pending[answer.request_id]
                self._complete(pending.process, node.name, pending.address, "fail", error=answer.error.code, t=t)
                continue
            pending.read_index, pending.term = answer.index, answer.term
            self._serve(pending, node, t)

    def _serve(self, pending: PendingRead, node: SimNode, t: float) -> None:
        core = node.core
        assert core is not None and pending.read_index is not None
        tree = core.tree
        if tree.final_height < pending.read_index:
            return
        del self._pending[pending.request_id]
        account = tree.final_account(pending.address)
        block_hash = tree.hash_at(tree.final_height)
        assert block_hash is not None, "the final block is on the best chain"
        proof = {"term": pending.term, "read_index": pending.read_index, "applied_height": tree.final_height,
                 "block_hash": block_hash.hex()}
        self._complete(pending.process, node.name, pending.address, "ok", value={
            "nonce": account.nonce if account else 0, "balance": account.balance if account else 0,
            "height": tree.final_height, "level": "linearizable", "read_proof": proof}, t=t)

    def on_crash(self, node: SimNode, t: float) -> None:
        """`node` crashed: its open reads end unknown (the connection was lost mid-request)."""
        for pending in [p for p in self._pending.values() if p.node == node.index]:
            del self._pending[pending.request_id]
            self._complete(pending.process, node.name, pending.address, "info", error="connection lost", t=t)

    def on_timeout(self, request_id: int, nodes: Sequence[SimNode], t: float) -> None:
        """The client of read `request_id` stops waiting, if it still waits."""
        pending = self._pending.pop(request_id, None)
        if pending is not None:
            self._complete(pending.process, nodes[pending.node].name, pending.address, "info", error="timeout", t=t)

    def _complete(self, process: str, node: str, address: bytes, kind: str, *, t: float,
                  value: dict[str, Any] | None = None, error: str | None = None) -> None:
        self._busy.discard(process)
        self.stats[{"ok": "reads_ok", "fail": "reads_failed", "info": "reads_unknown"}[kind]] += 1
        self._record(t, kind, process=process, node=node, op="read", key=address_to_text(address), value=value,
                     error=error)

    # -- the check -----------------------------------------------------------------------------------------------

    def linearizable_check(self) -> CheckResult:
        """`linearizable-reads`: the transfers and the answered linearizable reads have a linearization in the
        account model. A search that runs out of budget (`unknown`) is reported, not failed."""
        answered = sum(1 for op in self.history if op.op == "read" and op.type == "ok"
                       and isinstance(op.value, dict) and op.value.get("level") == "linearizable")
        if not answered:
            return CheckResult(name="linearizable-reads", ok=True, detail="no linearizable read was answered")
        result = check(self.history, AccountModel(levels=["linearizable"]), max_states=CHECK_MAX_STATES)
        detail = f"{answered} linearizable reads answered: {result.verdict} ({result.states} states)"
        if result.verdict == "not-linearizable":
            failing = result.failed_key
            if failing is not None and failing.stuck is not None:
                stuck = result.operations[failing.stuck]
                detail += f"; no linearization places {stuck.describe()} (history index {stuck.call})"
        elif result.verdict == "unknown":
            detail += f": {result.reason}"
        return CheckResult(name="linearizable-reads", ok=result.verdict != "not-linearizable", detail=detail)
