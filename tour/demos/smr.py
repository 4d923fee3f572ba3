"""Replicated state machine (状态机复制): the same transactions applied in the same order give the same state
commitment on every replica, and another order gives another state.

Each replica is the chain's own state machine (`chain.state.apply_block`), fed the log one transaction per block,
as a node applies the blocks its consensus engine ordered; a transaction the state refuses (`bad-nonce`,
`insufficient-funds`) is left out, as a block producer would leave it out. The log is drawn from the seed so that
every transaction is valid in log order and later ones spend what earlier ones paid: the transitions do not
commute, which is why replicas must agree on the order and not only on the set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import Random

from chain.block import make_block
from chain.crypto import PrivateKey, address_of, address_to_text
from chain.errors import RejectError
from chain.state import State, apply_block
from chain.tx import Transaction, make_transfer
from testnet.checks import CheckResult
from tour.model import Outcome, Picture, TourContext
from tour.svg import COLOURS, table

CHAIN_ID = "chainlab-tour"
REPLICAS = 3
LOG_LENGTH = 8
FEE = 1
START_BALANCE = 1_000

# What a replica is given to apply: (replica index, the agreed log, the run's Random) -> its sequence.
OrderOf = Callable[[int, Sequence[Transaction], Random], Sequence[Transaction]]


def agreed_order(replica: int, log: Sequence[Transaction], rng: Random) -> Sequence[Transaction]:
    """What consensus gives every replica: the log, in log order."""
    return log


def own_delivery_order(replica: int, log: Sequence[Transaction], rng: Random) -> Sequence[Transaction]:
    """No agreement on order: each replica applies the transactions as its network happened to deliver them."""
    delivered = list(log)
    rng.shuffle(delivered)
    return delivered


def accounts() -> list[PrivateKey]:
    """The three accounts of the demonstration: alice (funded), bob and carol."""
    return [PrivateKey.from_seed(f"tour/smr/{name}".encode()) for name in ("alice", "bob", "carol")]


def draw_log(rng: Random, keys: Sequence[PrivateKey]) -> list[Transaction]:
    """`LOG_LENGTH` transfers, each valid after the ones before it: a sender with funds pays a part of them."""
    balances = {key.address: (START_BALANCE if i == 0 else 0) for i, key in enumerate(keys)}
    nonces = {key.address: 0 for key in keys}
    log = []
    for _ in range(LOG_LENGTH):
        senders = [key for key in keys if balances[key.address] > FEE + 1]
        sender = senders[-1] if rng.random() < 0.6 else rng.choice(senders)  # spend fresh money: order matters
        recipient = rng.choice([key for key in keys if key is not sender])
        amount = rng.randint(1, balances[sender.address] - FEE)
        log.append(make_transfer(sender, chain_id=CHAIN_ID, recipient=recipient.address, amount=amount, fee=FEE,
                                 nonce=nonces[sender.address]))
        balances[sender.address] -= amount + FEE
        balances[recipient.address] += amount
        nonces[sender.address] += 1
    return log


def apply_log(state: State, txs: Sequence[Transaction], proposer: bytes,
              steps: list[str] | None = None) -> tuple[State, list[str]]:
    """`txs` applied one block each; returns the state and, per refused transaction, `index: code`. `steps`, when
    given, gets one entry per transaction: the state commitment's first 8 hex digits after it, or the refusal."""
    refused = []
    parent = None
    for height, tx in enumerate(txs, start=1):
        block = make_block(parent=parent, height=height, timestamp_ms=height, txs=[tx], state_root=bytes(32),
                           proposer=proposer)
        try:
            state = apply_block(state, block).state
        except RejectError as error:
            refused.append(f"{tx.hash.hex()[:8]}: {error.code}")
            if steps is not None:
                steps.append(f"refused {error.code}")
            continue
        parent = block.header
        if steps is not None:
            steps.append(state.commitment.hex()[:8])
    return state, refused


def run(context: TourContext, *, order_of: OrderOf = agreed_order) -> Outcome:
    """The demonstration; `order_of` decides what each replica applies (a test plants `own_delivery_order`)."""
    rng = Random(context.seed)
    keys = accounts()
    log = draw_log(rng, keys)
    genesis = State.from_balances({keys[0].address: START_BALANCE})
    proposer = PrivateKey.from_seed(b"tour/smr/proposer").address
    lines = [f"log of {len(log)} transfers (drawn from seed {context.seed}), each valid after the ones before it:"]
    names = {key.address: name for key, name in zip(keys, ("alice", "bob", "carol"), strict=True)}
    for i, tx in enumerate(log):
        lines.append(f"  {i}: {names[address_of(tx.sender)]} -> {names[tx.recipient]} {tx.amount} (nonce {tx.nonce})")
    commitments = []
    columns: list[list[str]] = []
    for replica in range(REPLICAS):
        columns.append([])
        state, refused = apply_log(genesis, order_of(replica, log, rng), proposer, columns[-1])
        commitments.append(state.commitment.hex())
        lines.append(f"replica {replica}: state commitment {state.commitment.hex()[:16]}"
                     + (f", refused {len(refused)}: {', '.join(refused)}" if refused else ""))
    agree = len(set(commitments)) == 1
    same = CheckResult(name="same-order-same-state", ok=agree, detail=(
        f"{REPLICAS} replicas applied the log: one state commitment {commitments[0][:16]}" if agree else
        f"{REPLICAS} replicas applied the log and hold {len(set(commitments))} different states: "
        + ", ".join(c[:16] for c in commitments)))
    in_order, _ = apply_log(genesis, log, proposer)
    columns.append([])
    other, refused = apply_log(genesis, list(reversed(log)), proposer, columns[-1])
    lines.append(f"the same transfers in reverse order: state commitment {other.commitment.hex()[:16]}, "
                 f"refused {len(refused)}: {', '.join(refused) or 'none'}")
    differs = other.commitment != in_order.commitment and bool(refused)
    different = CheckResult(name="different-order-different-state", ok=differs, detail=(
        f"reverse order refused {len(refused)} transfers and ends in another state" if differs else
        "reverse order gave the same state: the log's transitions commute, the demonstration shows nothing"))
    figures = {"log_length": len(log), "replica_commitments": commitments,
               "reverse_commitment": other.commitment.hex(), "reverse_refused": len(refused),
               "accounts": {name: address_to_text(address) for address, name in names.items()}}
    return Outcome(concept="state-machine-replication", seed=context.seed, lines=tuple(lines),
                   checks=(same, different), figures=figures, pictures=(_picture(columns),))


def _picture(columns: list[list[str]]) -> Picture:
    """The state commitment after each step: one column per replica, then the reverse order; equal commitments
    share a colour, refusals are left white."""
    rows = [[str(step), *(column[step] if step < len(column) else "" for column in columns)]
            for step in range(max(len(column) for column in columns))]
    seen = dict.fromkeys(cell for row in rows for cell in row[1:] if cell and not cell.startswith("refused"))
    shaded = {root: COLOURS[i % len(COLOURS)] + "40" for i, root in enumerate(seen)}
    header = ["step", *(f"replica {r}" for r in range(len(columns) - 1)), "reverse order"]
    text = table("State commitment after each step of the log", header, rows, shaded=shaded,
                 note="step i: after log transfer i (reverse order: the i-th applied); equal commitments share a "
                 "colour")
    return Picture(name="state-roots.svg", text=text, caption="the state commitment after each step: the replicas' "
                   "columns are identical row by row; the reverse-order column refuses most transfers and ends "
                   "elsewhere")
