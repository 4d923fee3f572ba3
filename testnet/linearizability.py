"""A linearizability checker for client histories (pure: no clock, no I/O; the caller passes a stop callback).

A history is linearizable when every operation can be given one instant between its invocation and its
completion such that the operations, taken in the order of those instants, are a legal run of the sequential
model (Herlihy and Wing, 1990). The search is the Wing-Gong algorithm with Lowe's memoization, as Porcupine does
it (Horn and Kroening, "Faster linearizability checking via P-compositionality", 2015):

- the history becomes a doubly linked list of call and return entries in time order;
- walking it, the first call entry whose operation the model allows in the current state is *lifted* (its call and
  return leave the list) and pushed on a stack; the walk restarts at the head;
- reaching a return entry means an operation's deadline passed before it was linearized: pop the last lifted
  operation, put it back, and try the next entry after its call (backtracking);
- a (linearized set, model state) pair already explored is not explored again (the memoization that makes this
  fast in practice), and the history is linearizable once the list is empty.

Keys are checked separately where the model allows it (P-compositionality: a register per key, an account per
address), which turns one search over N operations into many small ones. Operations whose outcome is unknown
(`info`: a timeout) complete at infinity: they may have taken effect at any point after their call, or never
(placed last, where nothing observes them). A `fail`ed operation did not happen, except where the model says a
failure is an observation (a compare-and-set whose compare failed read a different value).

A budget of explored states (and the caller's stop callback, polled every few thousand steps) turns a search that
would run too long into an `unknown` verdict instead of a hang or an exhausted memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from random import Random
from typing import Any, Literal, Protocol

from testnet.history import Op

Verdict = Literal["linearizable", "not-linearizable", "unknown"]
INFINITY = float("inf")


class _Refused:
    """The model's answer for an operation impossible in a state (a state may itself be None)."""

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED: Any = _Refused()
DEFAULT_MAX_STATES = 5_000_000  # explored (linearized set, state) pairs across all keys before `unknown`
DEFAULT_TIMEOUT_S = 60.0  # the command-line tools' time budget (`check linearizable`, `bench checker`)
# The explored states' memo is what grows: about MEMO_ENTRY_BYTES per state (set slot, tuple, int header) plus a
# byte per 7 bits of the linearized-set int (measured, CPython 3.11). 512 MiB of it keeps a check under 1 GiB.
DEFAULT_MAX_MEMO_BYTES = 512 * 2**20
MEMO_ENTRY_BYTES = 120
POLL_STEPS = 4096  # how often the stop callback is asked


class ModelError(ValueError):
    """A history operation the model does not know (wrong op name or value shape); names the record."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One client operation: its invocation and completion paired up."""

    id: int  # position among the operations of the whole history
    process: str
    node: str
    key: str
    op: str
    input: Any  # the invoke's value
    output: Any  # the completion's value (None for info)
    outcome: Literal["ok", "fail", "info"]
    call: int  # the invoke record's index
    ret: float  # the completion record's index; INFINITY for info (and never completed) operations
    call_ns: int = 0
    ret_ns: int | None = None

    def describe(self) -> str:
        """`p3 write r 4 -> ok` style, for reports."""
        if self.op == "transfer" and isinstance(self.input, dict):
            return (f"{self.process} transfer {self.key} nonce {self.input.get('nonce')} amount "
                    f"{self.input.get('amount')} -> {'final' if self.outcome == 'ok' else 'never seen final'}")
        if self.op == "read" and isinstance(self.output, dict) and "nonce" in self.output:
            level = self.input.get("level", "latest") if isinstance(self.input, dict) else "latest"
            return (f"{self.process} read {self.key} at {level} from {self.node} -> nonce {self.output['nonce']} "
                    f"balance {self.output.get('balance')}")
        shown = self.input if self.output is None or self.op != "read" else self.output
        return f"p{self.process} {self.op} {self.key} {shown!r} -> {self.outcome}"


class Model(Protocol):
    """A sequential specification: states are hashable and immutable."""

    name: str

    def operations(self, ops: Sequence[Op]) -> list[Operation]:
        """The history's operations this model checks (fails that did not happen dropped); ModelError on an
        operation it does not know."""

    def init(self, key: str) -> Hashable:
        """The state of `key` before any operation."""

    def step(self, state: Hashable, op: Operation) -> Hashable:
        """The state after `op`, or REFUSED when `op` with its observed output is impossible in `state`."""


def pair_operations(ops: Sequence[Op], *, keep: Callable[[Op, Op | None], bool] | None = None,
                    ) -> list[Operation]:
    """Pair each invoke with the next completion of the same process (an invoke never completed is `info`).
    `keep(invoke, completion)` decides which pairs become operations (default: everything but `fail`)."""
    open_ops: dict[str, Op] = {}
    pairs: list[tuple[Op, Op | None]] = []
    for record in ops:
        if record.type == "invoke":
            if record.process in open_ops:  # a new invoke: the previous one never completed
                pairs.append((open_ops.pop(record.process), None))
            open_ops[record.process] = record
        else:
            invoke = open_ops.pop(record.process, None)
            if invoke is not None:
                pairs.append((invoke, record))
    pairs.extend((invoke, None) for invoke in open_ops.values())
    pairs.sort(key=lambda pair: pair[0].index)
    result: list[Operation] = []
    for invoke, done in pairs:
        outcome = "info" if done is None or done.type == "info" else done.type
        if keep is not None and not keep(invoke, done):
            continue
        if keep is None and outcome == "fail":
            continue
        result.append(Operation(
            id=len(result), process=invoke.process, node=invoke.node, key=invoke.key, op=invoke.op,
            input=invoke.value, output=done.value if done is not None and outcome != "info" else None,
            outcome=outcome,  # type: ignore[arg-type]
            call=invoke.index, ret=done.index if done is not None and outcome != "info" else INFINITY,
            call_ns=invoke.time_ns, ret_ns=done.time_ns if done is not None else None))
    return result


class RegisterModel:
    """A register per key: `read` (ok value = the value read; null: never written), `write` (value), `cas`
    (value [from, to]; ok: the compare held and the register became `to`; fail: the compare did not hold, which
    is an observation: the register was not `from`)."""

    name = "register"

    def operations(self, ops: Sequence[Op]) -> list[Operation]:
        def keep(invoke: Op, done: Op | None) -> bool:
            if invoke.op not in ("read", "write", "cas"):
                raise ModelError(f"index {invoke.index}: the register model has read, write and cas, not "
                                 f"{invoke.op!r}")
            if invoke.op == "cas" and not (isinstance(invoke.value, list) and len(invoke.value) == 2):
                raise ModelError(f"index {invoke.index}: a cas value is [from, to], got {invoke.value!r}")
            failed = done is not None and done.type == "fail"
            return not failed or invoke.op == "cas"  # a failed cas saw another value; other failures did nothing
        return pair_operations(ops, keep=keep)

    def init(self, key: str) -> Hashable:
        return None

    def step(self, state: Hashable, op: Operation) -> Hashable:
        if op.op == "read":
            if op.outcome == "info":
                return state
            return state if _same(op.output, state) else REFUSED
        if op.op == "write":
            return _frozen(op.input)
        expected, new = op.input
        if op.outcome == "ok":
            return _frozen(new) if _same(expected, state) else REFUSED
        if op.outcome == "fail":
            return state if not _same(expected, state) else REFUSED
        return _frozen(new) if _same(expected, state) else state  # info: either way


def _same(value: Any, state: Hashable) -> bool:
    return _frozen(value) == state


def _frozen(value: Any) -> Hashable:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value  # type: ignore[no-any-return]


TRANSFER_OPS = ("transfer",)
READ_LEVELS = ("latest", "final", "linearizable")


class AccountModel:
    """The ledger's account (docs/CONSISTENCY.md, "The account model"): one object per load account, its state the
    pair (nonce, balance). Built from the load's history, not from raw invoke/completion pairs:

    - a `transfer` is one operation per transaction hash, on the key of its sender: invoked when the client first
      sent it, completed when the observer saw it `final` (a transfer takes effect when a block carrying it is
      connected, which is after the node accepted it and before it is seen final); never seen final: `info`
      (it may have taken effect at any moment after its invoke, or never). It needs the account's nonce to equal
      its own and debits amount + fee. The nonce rule is the known order of one account's transfers (the chain's
      (height, index) order of a sender's transfers is its nonce order), so the search never tries another.
    - a `read` (ok value {nonce, balance, ...}) must see the state exactly; failed and unknown reads observed
      nothing and are left out. `levels` keeps only reads at those levels (the read's invoke value {level}).

    The state before the first operation is unknown (None); the first read placed defines it, and a transfer from
    an unknown balance leaves the balance unknown. An account that also receives transfers of the history (a load
    without sink accounts) cannot be checked on its own: its balance is then not compared, only
    its nonce, and `partial` names those accounts."""

    name = "account"

    def __init__(self, levels: Sequence[str] | None = None) -> None:
        self.levels = tuple(levels) if levels is not None else None
        self.partial: set[str] = set()

    def operations(self, ops: Sequence[Op]) -> list[Operation]:
        transfers: dict[str, tuple[Op, dict[str, Any]]] = {}  # tx hash -> (first client invoke, value)
        final: dict[str, Op] = {}
        reads: list[Op] = []
        for record in ops:
            if record.op == "transfer":
                if record.type == "invoke" and record.key not in transfers and not record.process.startswith(
                        "rebroadcast"):
                    transfers[record.key] = (record, _transfer_value(record))
            elif record.op == "final":
                if record.type == "ok":
                    final.setdefault(record.key, record)
            elif record.op == "read":
                reads.append(record)
            elif record.op != "included":
                raise ModelError(f"index {record.index}: the account model has transfer, read, included and final, "
                                 f"not {record.op!r}")
        checked = {value["from"] for _, value in transfers.values()} | {record.key for record in reads}
        self.partial = {value["to"] for _, value in transfers.values() if value["to"] in checked}
        result: list[Operation] = []
        for tx_hash, (invoke, value) in transfers.items():
            done = final.get(tx_hash)
            result.append(Operation(
                id=0, process=invoke.process, node=invoke.node, key=value["from"], op="transfer",
                input={**value, "tx": tx_hash}, output=None if done is None else done.value,
                outcome="info" if done is None else "ok", call=invoke.index,
                ret=INFINITY if done is None else done.index, call_ns=invoke.time_ns,
                ret_ns=None if done is None else done.time_ns))

        def keep(invoke: Op, done: Op | None) -> bool:
            if done is None or done.type != "ok":
                return False
            if not isinstance(done.value, dict) or not isinstance(done.value.get("nonce"), int) or not isinstance(
                    done.value.get("balance"), int):
                raise ModelError(f"index {done.index}: a read's ok value is {{nonce, balance, ...}}, got "
                                 f"{done.value!r}")
            return self.levels is None or read_level(invoke) in self.levels
        result.extend(pair_operations(reads, keep=keep))
        result.sort(key=lambda op: op.call)
        return [replace(op, id=index) for index, op in enumerate(result)]

    def init(self, key: str) -> Hashable:
        return None

    def step(self, state: Hashable, op: Operation) -> Hashable:
        known: tuple[int, int | None] | None = state  # type: ignore[assignment]
        refused: Hashable = REFUSED
        if op.op == "read":
            seen: tuple[int, int | None] = (int(op.output["nonce"]),
                                            None if op.key in self.partial else int(op.output["balance"]))
            if known is None:
                return seen
            if known[0] != seen[0]:
                return refused
            if known[1] is None:
                return seen
            return known if seen[1] is None or known[1] == seen[1] else refused
        nonce_needed = int(op.input["nonce"])
        cost = int(op.input["amount"]) + int(op.input["fee"])
        if known is None:
            return (nonce_needed + 1, None)
        nonce, balance = known
        if nonce != nonce_needed:
            return refused
        if balance is None:
            return (nonce + 1, None)
        if balance < cost:
            return refused
        return (nonce + 1, None if op.key in self.partial else balance - cost)


def read_level(invoke: Op) -> str:
    """The level of a `read` invoke (its value {level}); `latest` when it does not say."""
    value = invoke.value
    level = value.get("level") if isinstance(value, dict) else None
    return level if isinstance(level, str) else "latest"


def _transfer_value(record: Op) -> dict[str, Any]:
    value = record.value
    if not isinstance(value, dict) or not all(isinstance(value.get(f), int) for f in ("nonce", "amount", "fee")) \
            or not isinstance(value.get("from"), str) or not isinstance(value.get("to"), str):
        raise ModelError(f"index {record.index}: a transfer's value is {{from, to, amount, fee, nonce}}, got "
                         f"{value!r}")
    return {"from": value["from"], "to": value["to"], "nonce": value["nonce"], "amount": value["amount"],
            "fee": value["fee"]}


MODELS: dict[str, Callable[[], Model]] = {"register": RegisterModel, "account": AccountModel}


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyResult:
    """The verdict on one key's operations."""

    key: str
    verdict: Verdict
    operations: int
    states: int  # (linearized set, state) pairs explored
    order: list[int] = field(default_factory=list)  # a linearization (operation ids) when linearizable
    stuck: int | None = None  # not linearizable: the operation that could not be placed at the deepest point
    linearized_before: list[int] = field(default_factory=list)  # what the deepest attempt had placed


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The verdict on a whole history."""

    verdict: Verdict
    model: str
    operations: list[Operation]
    keys: list[KeyResult]  # the keys checked, in order, up to the first that is not linearizable (or unknown)
    key_count: int  # every key of the history's operations; more than len(keys) when the check stopped early
    states: int
    reason: str = ""  # why unknown

    def scope(self) -> str:
        """`136 operations on 12 key(s)`, and where the check stopped when it did not reach every key."""
        text = f"{len(self.operations)} operations on {self.key_count} key(s)"
        if len(self.keys) < self.key_count:
            text += f", stopped at key {len(self.keys)} of {self.key_count}"
        return text

    @property
    def failed_key(self) -> KeyResult | None:
        """The first key that is not linearizable."""
        return next((k for k in self.keys if k.verdict == "not-linearizable"), None)

    def window(self, around: int, *, limit: int = 12) -> list[Operation]:
        """The operations concurrent with operation `around` (their intervals overlap), plus the last one of its
        key that completed before it: what a reader needs to see why it cannot be placed."""
        target = self.operations[around]
        same_key = [op for op in self.operations if op.key == target.key]
        overlapping = [op for op in same_key if op.call < target.ret and target.call < op.ret]
        before = [op for op in same_key if op.ret < target.call]
        if before:
            overlapping.append(max(before, key=lambda op: op.ret))
        overlapping.sort(key=lambda op: op.call)
        if len(overlapping) > limit:  # keep the target and the ones that called nearest to it
            overlapping.sort(key=lambda op: abs(op.call - target.call))
            overlapping = sorted(overlapping[:limit], key=lambda op: op.call)
        return overlapping

    def to_json(self) -> dict[str, Any]:
        """The machine-readable verdict (`check linearizable --json`)."""
        out: dict[str, Any] = {"verdict": self.verdict, "model": self.model, "operations": len(self.operations),
                               "keys": self.key_count, "keys_checked": len(self.keys),
                               "states": self.states}
        if self.reason:
            out["reason"] = self.reason
        failed = self.failed_key
        if failed is not None and failed.stuck is not None:
            op = self.operations[failed.stuck]
            out["key"] = failed.key
            out["first_unlinearizable"] = _op_json(op)
            out["window"] = [_op_json(o) for o in self.window(failed.stuck)]
            out["linearized_before"] = len(failed.linearized_before)
        return out


def _op_json(op: Operation) -> dict[str, Any]:
    return {"id": op.id, "process": op.process, "node": op.node, "op": op.op, "key": op.key, "input": op.input,
            "output": op.output, "outcome": op.outcome, "invoke_index": op.call,
            "complete_index": None if op.ret == INFINITY else int(op.ret), "text": op.describe()}


class _Budget:
    def __init__(self, max_states: int, max_memo_bytes: int, should_stop: Callable[[], bool] | None) -> None:
        self.left = max_states
        self.memo_bytes_left = max_memo_bytes
        self.max_states = max_states
        self.max_memo_bytes = max_memo_bytes
        self.should_stop = should_stop
        self.steps = 0
        self.reason = ""

    def spend(self, linearized_bits: int) -> bool:
        """Count one explored state whose linearized set's highest operation is `linearized_bits`; False once the
        budget is gone. A state's memo entry grows with that bit (a Python int of that many bits), which is why a
        long single-key history can exhaust memory well before the state count."""
        self.left -= 1
        self.steps += 1
        self.memo_bytes_left -= MEMO_ENTRY_BYTES + linearized_bits // 7
        if self.left < 0:
            self.reason = f"state budget of {self.max_states:,} states exhausted"
            return False
        if self.memo_bytes_left < 0:
            self.reason = f"memory budget of {self.max_memo_bytes / 2**20:,.0f} MiB of explored states exhausted"
            return False
        if self.should_stop is not None and self.steps % POLL_STEPS == 0 and self.should_stop():
            self.reason = "time budget exhausted"
            return False
        return True


def check(ops: Sequence[Op], model: Model, *, max_states: int = DEFAULT_MAX_STATES,
          max_memo_bytes: int = DEFAULT_MAX_MEMO_BYTES, should_stop: Callable[[], bool] | None = None) -> Result:
    """Check a history against `model`, key by key; `unknown` when the budget (explored states, their estimated
    memory, the stop callback) runs out first."""
    operations = model.operations(ops)
    by_key: dict[str, list[Operation]] = {}
    for operation in operations:
        by_key.setdefault(operation.key, []).append(operation)
    budget = _Budget(max_states, max_memo_bytes, should_stop)
    results: list[KeyResult] = []
    verdict: Verdict = "linearizable"
    for key in sorted(by_key):
        result = check_key(key, by_key[key], model, budget)
        results.append(result)
        if result.verdict == "not-linearizable":
            verdict = "not-linearizable"
            break
        if result.verdict == "unknown":
            verdict = "unknown"
            break
    return Result(verdict=verdict, model=model.name, operations=operations, keys=results, key_count=len(by_key),
                  states=sum(r.states for r in results), reason=budget.reason if verdict == "unknown" else "")


class _Entry:
    __slots__ = ("is_call", "match", "next", "op", "prev")

    def __init__(self, is_call: bool, op: int) -> None:
        self.is_call = is_call
        self.op = op
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def check_key(key: str, ops: Sequence[Operation], model: Model, budget: _Budget) -> KeyResult:
    """The Wing-Gong/Lowe search over one key's operations."""
    local = list(ops)
    events: list[tuple[float, int, int]] = []  # (time, 0 call / 1 return, local index)
    for index, op in enumerate(local):
        events.append((op.call, 0, index))
        events.append((op.ret, 1, index))
    events.sort()
    head = _Entry(False, -1)
    previous: _Entry = head
    calls: dict[int, _Entry] = {}
    for _, kind, index in events:
        made = _Entry(kind == 0, index)
        if kind == 0:
            calls[index] = made
        else:
            calls[index].match = made
        made.prev, previous.next = previous, made
        previous = made
    state = model.init(key)
    linearized = 0
    seen: set[tuple[int, Hashable]] = set()
    stack: list[tuple[_Entry, Hashable]] = []
    deepest: tuple[int, int | None, list[int]] = (-1, None, [])
    entry: _Entry | None = head.next
    states = 0
    while head.next is not None:
        assert entry is not None, "the walk always stops at a return entry before the end"
        if entry.is_call:
            op = local[entry.op]
            after = model.step(state, op)
            if after is not REFUSED:
                marked = linearized | (1 << entry.op)
                if (marked, after) not in seen:
                    if not budget.spend(marked.bit_length()):
                        return KeyResult(key=key, verdict="unknown", operations=len(local), states=states)
                    states += 1
                    seen.add((marked, after))
                    stack.append((entry, state))
                    state, linearized = after, marked
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
            continue
        # A return entry: its operation's deadline passed unplaced. Back off the last choice.
        if len(stack) > deepest[0]:
            deepest = (len(stack), entry.op, [local[e.op].id for e, _ in stack])
        if not stack:
            stuck = deepest[1]
            return KeyResult(key=key, verdict="not-linearizable", operations=len(local), states=states,
                             stuck=local[stuck].id if stuck is not None else None,
                             linearized_before=deepest[2])
        call, state = stack.pop()
        linearized &= ~(1 << call.op)
        _unlift(call)
        entry = call.next
    return KeyResult(key=key, verdict="linearizable", operations=len(local), states=states,
                     order=[local[e.op].id for e, _ in stack])


def _lift(call: _Entry) -> None:
    for entry in (call, call.match):
        assert entry is not None and entry.prev is not None
        entry.prev.next = entry.next
        if entry.next is not None:
            entry.next.prev = entry.prev


def _unlift(call: _Entry) -> None:
    for entry in (call.match, call):
        assert entry is not None and entry.prev is not None
        entry.prev.next = entry
        if entry.next is not None:
            entry.next.prev = entry


def generate_register_history(rng: Random, *, operations: int, processes: int, keys: int = 1,
                              values: int = 5) -> list[Op]:
    """A linearizable history of `operations` read/write/cas operations by `processes` clients on `keys` real
    registers: each operation takes effect at a random moment between its invoke and its completion (for tests and
    `chainlab bench checker`). Keys are drawn per operation; values from 0..values-1."""
    registers: dict[str, Any] = {}
    pending: dict[str, tuple[str, str, Any, Any]] = {}  # process -> (op, key, input, output once applied)
    applied: list[str] = []
    idle = [f"{i}" for i in range(processes)]
    records: list[Op] = []
    invoked = 0

    def record(type: str, process: str, op: str, key: str, value: Any) -> None:
        records.append(Op(index=len(records), time_ns=len(records) * 1000, type=type, process=process, node="n",
                          op=op, key=key, value=value))

    while invoked < operations or pending:
        unapplied = [p for p in pending if p not in applied]
        choices = [c for c, able in (("invoke", idle and invoked < operations), ("apply", unapplied),
                                      ("complete", applied)) if able]
        choice = rng.choice(choices)
        if choice == "invoke":
            process = idle.pop(rng.randrange(len(idle)))
            op, key = rng.choice(("read", "write", "cas")), f"k{rng.randrange(keys)}"
            given = None if op == "read" else rng.randrange(values) if op == "write" else [rng.randrange(values),
                                                                                          rng.randrange(values)]
            pending[process] = (op, key, given, None)
            record("invoke", process, op, key, given)
            invoked += 1
        elif choice == "apply":
            process = rng.choice(unapplied)
            op, key, given, _ = pending[process]
            current = registers.get(key)
            if op == "read":
                result: Any = current
            elif op == "write":
                registers[key], result = given, True
            else:
                result = current == given[0]
                if result:
                    registers[key] = given[1]
            pending[process] = (op, key, given, result)
            applied.append(process)
        else:
            process = applied.pop(rng.randrange(len(applied)))
            op, key, given, result = pending.pop(process)
            idle.append(process)
            if op == "read":
                record("ok", process, op, key, result)
            else:
                record("ok" if result else "fail", process, op, key, given)
    return records


def model_named(name: str) -> Model:
    """The model called `name`; ValueError naming the known ones."""
    factory = MODELS.get(name)
    if factory is None:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    return factory()


def operations_of(ops: Iterable[Op], model: Model) -> list[Operation]:
    """The operations `model` would check (for reports)."""
    return model.operations(list(ops))
