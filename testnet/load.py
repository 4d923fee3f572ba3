"""`chainlab testnet load`: signed transfers at a target rate across the nodes, with a recorded client history.

One asyncio loop drives everything: a pacer starts operations at `tps`, each on an idle load account (an account
has at most one request in flight, so its nonces stay in order), sent round-robin to the nodes with a bounded
number of requests in flight; a chain observer (testnet/observer.py) sees transactions included and final; a
rebroadcaster resubmits accepted transactions that no block carries after a while (a node that accepted one may
have crashed before relaying it). Every operation goes to history.jsonl (testnet/history.py).

Reads (`--reads LEVELS --read-ratio R`): a share R of the operations are reads instead of transfers, made by the
same client process (`client-N`, the session of load account N), always from the session's own node (node N mod
the number of nodes: a client connected to one node, which does not fail over), half of its own account, half of
another load account, at a level drawn from LEVELS, each recorded as `read` (key = the address; invoke value
{level}; ok value {nonce, balance, height, read_proof?}). With reads the transfers go to sink accounts
(addresses no load account owns), so that each load account's state is changed only by its own transfers and
the history can be checked account by account (testnet/consistency.py). After settling, every account is
read from every node (`quiescence-NODE` processes) for the convergence check.

Nonces: an account's next nonce advances only when a node accepted the transaction. A clear rejection keeps the
transaction (same nonce) for the account's next turn, so no gap is ever left; a timeout keeps it too, and sending
it again is harmless (a node that has it answers `already-known`, which counts as accepted). `nonce-too-low`
means the chain already used that nonce: the account's nonce is re-read from the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import random
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from chain.crypto import PrivateKey, address_to_text
from chain.tx import Transaction, make_transfer
from testnet.cluster import SINK_ACCOUNTS, load_key, sink_key
from testnet.history import HistoryWriter
from testnet.linearizability import READ_LEVELS
from testnet.observer import ChainObserver, Endpoint
from testnet.state import Testnet, TestnetError

LOAD_LOCK_FILE = "load.lock"
MAX_UNCONFIRMED_PER_ACCOUNT = 48  # stay under the mempool's 64 queued transactions per sender
FAIL_BACKOFF_S = 0.5
NODE_COOLDOWN_S = 1.0


@dataclass(kw_only=True)
class LoadOptions:
    """What to send: `tps` for `duration_s` (None: until stopped) from `accounts` load accounts."""

    tps: float
    duration_s: float | None
    accounts: int | None = None
    nodes: list[str] | None = None
    settle_timeout_s: float | None = None  # wait for finality after sending; default from the block interval
    request_timeout_s: float = 5.0
    max_in_flight: int = 256
    seed: int | None = None
    reads: tuple[str, ...] = ()  # read levels to draw from (empty: no reads)
    read_ratio: float = 0.0  # share of operations that are reads
    sink: bool | None = None  # transfers to sink accounts (None: when reading)


@dataclass(kw_only=True)
class Tracked:
    """A transaction the load sent."""

    tx: Transaction
    hash: str
    account: int
    invoked_ns: int
    accepted_ns: int | None = None
    included_ns: int | None = None
    final_ns: int | None = None
    block: str | None = None  # the best-chain block holding it now, as the observer sees it
    last_sent: float = 0.0  # monotonic
    rebroadcasts: int = 0
    uncertain: bool = False  # a send ended `info`: some node may hold it


@dataclass(kw_only=True)
class Account:
    """A load account: its key, next nonce, and the transaction it is trying to get accepted."""

    index: int
    key: PrivateKey
    text: str
    next_nonce: int = 0
    pending: Tracked | None = None
    busy: bool = False
    not_before: float = 0.0
    unconfirmed: int = 0


@dataclass
class Counts:
    """Running totals, read by the live table."""

    ops: int = 0
    submitted: int = 0
    accepted: int = 0
    failed: int = 0
    unknown: int = 0
    included: int = 0
    final: int = 0
    skipped: int = 0
    rebroadcasts: int = 0
    reads: int = 0
    reads_ok: int = 0
    reads_failed: int = 0
    reads_unknown: int = 0
    read_errors: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    rebroadcast_outcomes: Counter[str] = field(default_factory=Counter)


@contextlib.contextmanager
def exclusive_load(directory: Path) -> Iterator[None]:
    """Hold the testnet's load lock: two loads would send from the same accounts and fight over their nonces."""
    with open(directory / LOAD_LOCK_FILE, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TestnetError("another load is running on this testnet (its accounts' nonces would clash); "
                               "wait for it or stop it first") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def percentile(values: list[float], fraction: float) -> float | None:
    """The `fraction` quantile (nearest rank) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class LoadGenerator:
    """Sends the load and watches it land; `await run(stop)` returns the summary."""

    def __init__(self, testnet: Testnet, options: LoadOptions, history: HistoryWriter, *, min_fee: int = 1) -> None:
        if options.tps <= 0:
            raise TestnetError("--tps must be positive")
        unknown_levels = [level for level in options.reads if level not in READ_LEVELS]
        if unknown_levels:
            raise TestnetError(f"--reads: unknown level {unknown_levels[0]!r} (levels: {', '.join(READ_LEVELS)})")
        if not 0.0 <= options.read_ratio < 1.0:
            raise TestnetError("--read-ratio must be at least 0 and below 1")
        if options.read_ratio > 0 and not options.reads:
            raise TestnetError("--read-ratio needs --reads LEVEL[,LEVEL...]")
        available = testnet.load_accounts
        if not available:
            raise TestnetError("this testnet has no load accounts: attach it with --seed S, the seed whose load "
                               "accounts its genesis funds (`testnet up --seed S`)")
        count = options.accounts or available
        if not 1 <= count <= available:
            raise TestnetError(f"--accounts must be 1..{available} (the load accounts funded in genesis)")
        self.testnet = testnet
        self.options = options
        self.history = history
        self.fee = max(1, min_fee)
        self.rng = random.Random(options.seed)
        keys = [load_key(testnet.seed, i) for i in range(count)]
        self.accounts = [Account(index=i, key=k, text=address_to_text(k.address)) for i, k in enumerate(keys)]
        self.read_ratio = options.read_ratio if options.reads else 0.0
        sink = options.sink if options.sink is not None else bool(options.reads)
        self.sinks = [sink_key(testnet.seed, i).address for i in range(SINK_ACCOUNTS)] if sink else []
        records = [testnet.node(n) for n in options.nodes] if options.nodes else list(testnet.nodes)
        self.endpoints = [Endpoint(name=r.name, rpc_url=r.rpc_url) for r in records]
        self.cooldown: dict[str, float] = {e.name: 0.0 for e in self.endpoints}
        self.tracked: dict[str, Tracked] = {}
        self.counts = Counts()
        self.started_ns = 0
        self.sending_done_ns: int | None = None
        self._turn = 0
        self._account_turn = 0
        self._accepted_times: deque[float] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = asyncio.Event()  # set when sending is over (duration reached or stopped), before settling
        self.observer: ChainObserver | None = None
        self._positions: dict[str, dict[str, int]] = {}  # block hash -> tx hash -> index in the block

    # -- running -------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> dict[str, Any]:
        """Send for the duration (or until `stop`), settle, and return the summary."""
        stop = stop or asyncio.Event()
        connector = aiohttp.TCPConnector(limit=self.options.max_in_flight, force_close=False)
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            self.session = session
            self.semaphore = asyncio.Semaphore(self.options.max_in_flight)
            await self._init_nonces()
            if self.options.reads:
                await self._initial_reads()
            observer_stop, rebroadcast_stop = asyncio.Event(), asyncio.Event()
            self.observer = ChainObserver(session, self.endpoints, is_watched=self.tracked.__contains__,
                                          on_included=self._on_included, on_final=self._on_final,
                                          on_unincluded=self._on_unincluded)
            observer = asyncio.ensure_future(self.observer.run(observer_stop))
            rebroadcaster = asyncio.ensure_future(self._rebroadcast_loop(rebroadcast_stop))
            try:
                self.started_ns = time.time_ns()
                await self._pace(stop)
                self.sending_done_ns = time.time_ns()
                if self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
                self.sent.set()
                await self._settle(stop)
                # A rebroadcast answered while settling can turn an uncertain transaction into an accepted one
                # after the settle saw every accepted one final: stop rebroadcasting, then settle again while the
                # observer still watches (else it is left accepted and never seen final).
                rebroadcast_stop.set()
                await asyncio.gather(rebroadcaster, return_exceptions=True)
                await self._settle(stop)
                if self.options.reads and not stop.is_set():
                    await self._quiescence_reads()
            finally:
                self.sent.set()
                rebroadcast_stop.set()
                observer_stop.set()
                await asyncio.gather(observer, rebroadcaster, return_exceptions=True)
                for task in list(self._tasks):
                    task.cancel()
                self.history.flush()
        return self.summary()

    async def _init_nonces(self) -> None:
        """The fee (the nodes' `min_fee`) and each account's next nonce: the highest `pending_nonce` any node
        reports (earlier loads used some)."""
        for endpoint in self.endpoints:
            try:
                self.fee = max(self.fee, int((await self._get(endpoint, "/v1/status")).get("min_fee", 1)))
                break
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue

        async def one(account: Account) -> None:
            best = 0
            for endpoint in self.endpoints:
                try:
                    data = await self._get(endpoint, f"/v1/accounts/{account.text}")
                    best = max(best, int(data.get("pending_nonce", data.get("nonce", 0))))
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    continue
            account.next_nonce = best

        await asyncio.gather(*(one(a) for a in self.accounts))

    async def _initial_reads(self) -> None:
        """Each session reads its own account once before anything is sent: the state the checker starts from
        (the account model cannot know what earlier loads did)."""
        level = self.options.reads[0]
        await asyncio.gather(*(self.read_account(f"client-{a.index}", self.endpoints[a.index % len(self.endpoints)],
                                                 a.text, level) for a in self.accounts))

    async def _pace(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        issued = 0
        duration = self.options.duration_s
        while not stop.is_set():
            now = loop.time()
            if duration is not None and now - start >= duration:
                return
            due = int((now - start) * self.options.tps) - issued
            for _ in range(max(0, due)):
                issued += 1
                account = self._idle_account(now)
                if account is None:
                    self.counts.skipped += 1
                    continue
                account.busy = True
                reading = self.read_ratio > 0 and self.rng.random() < self.read_ratio
                task = asyncio.ensure_future(self._read(account) if reading else self._submit(account))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(0.005)

    def _idle_account(self, now: float) -> Account | None:
        for _ in range(len(self.accounts)):
            account = self.accounts[self._account_turn % len(self.accounts)]
            self._account_turn += 1
            if (not account.busy and account.not_before <= now
                    and account.unconfirmed < MAX_UNCONFIRMED_PER_ACCOUNT):
                return account
        return None

    def _next_endpoint(self, exclude: str | None = None) -> Endpoint:
        now = time.monotonic()
        for _ in range(len(self.endpoints)):
            endpoint = self.endpoints[self._turn % len(self.endpoints)]
            self._turn += 1
            if self.cooldown[endpoint.name] <= now and endpoint.name != exclude:
                return endpoint
        return self.endpoints[self._turn % len(self.endpoints)]

    # -- one submission ------------------------------------------------------------------------------------------

    def _new_tx(self, account: Account) -> Tracked:
        if self.sinks:
            recipient = self.sinks[self.rng.randrange(len(self.sinks))]
        else:
            recipient = self.accounts[self.rng.randrange(len(self.accounts))].key.address
        tx = make_transfer(account.key, chain_id=self.testnet.chain_id, recipient=recipient,
                           amount=self.rng.randint(1, 1000), fee=self.fee, nonce=account.next_nonce)
        return Tracked(tx=tx, hash=tx.hash.hex(), account=account.index, invoked_ns=time.time_ns())

    async def _submit(self, account: Account) -> None:
        try:
            if account.pending is None:
                account.pending = self._new_tx(account)
            tracked = account.pending
            # watched before it is sent: a block may carry it before the node's answer reaches us
            self.tracked.setdefault(tracked.hash, tracked)
            endpoint = self._next_endpoint()
            outcome, error = await self._send(f"client-{account.index}", endpoint, tracked)
            now = time.monotonic()
            if outcome == "ok":
                self._accept(tracked)
                account.next_nonce = tracked.tx.nonce + 1
                account.pending = None
            elif outcome == "fail":
                account.not_before = now + FAIL_BACKOFF_S
                if error == "nonce-too-low":
                    account.pending = None
                    await self._resync_nonce(account, endpoint)
            else:  # info: keep it as pending; the next send of the same bytes settles it
                tracked.uncertain = True
        finally:
            account.busy = False

    async def _send(self, process: str, endpoint: Endpoint, tracked: Tracked) -> tuple[str, str | None]:
        """POST one transaction and record invoke + completion; returns (type, error code or None)."""
        tx = tracked.tx
        value = {"from": address_to_text(tx.sender_address), "to": address_to_text(tx.recipient),
                 "amount": tx.amount, "fee": tx.fee, "nonce": tx.nonce}
        self.history.record("invoke", process=process, node=endpoint.name, op="transfer", key=tracked.hash,
                            value=value)
        self.counts.ops += 1
        if tracked.last_sent == 0.0:
            self.counts.submitted += 1
        tracked.last_sent = time.monotonic()
        body = json.dumps({"tx": tx.encoded.hex()}).encode()
        error: str | None = None
        try:
            async with self.semaphore, self.session.post(
                    endpoint.rpc_url + "/v1/transactions", data=body, headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=self.options.request_timeout_s)) as reply:
                raw = await reply.read()
                status = reply.status
            if status == 202:
                kind = "ok"
            else:
                error = _error_code(raw, status)
                kind = "ok" if error == "already-known" else ("info" if status >= 500 else "fail")
        except aiohttp.ClientConnectorError as exc:
            kind, error = "fail", f"unavailable: {exc.os_error.strerror or exc}"
            self.cooldown[endpoint.name] = time.monotonic() + NODE_COOLDOWN_S
        except TimeoutError:
            kind, error = "info", "timeout"
            self.cooldown[endpoint.name] = time.monotonic() + NODE_COOLDOWN_S
        except aiohttp.ClientError as exc:
            kind, error = "info", f"connection lost: {exc.__class__.__name__}"
        self.history.record(kind, process=process, node=endpoint.name, op="transfer", key=tracked.hash,
                            value=value, error=error)
        if process.startswith("rebroadcast"):
            # `nonce-too-low` here mostly means a block already carries it and the observer has not seen it yet
            self.counts.rebroadcast_outcomes[kind if kind != "fail" else error or "?"] += 1
        elif kind == "fail":
            self.counts.failed += 1
            self.counts.rejections[error or "?"] += 1
        elif kind == "info":
            self.counts.unknown += 1
        return kind, error

    async def _read(self, account: Account) -> None:
        """One read by the account's session: its own account or another load account, at a drawn level."""
        try:
            target = account if self.rng.random() < 0.5 else self.accounts[self.rng.randrange(len(self.accounts))]
            level = self.options.reads[self.rng.randrange(len(self.options.reads))]
            home = self.endpoints[account.index % len(self.endpoints)]  # a session reads from its own node
            kind, error, _ = await self.read_account(f"client-{account.index}", home, target.text, level)
            self.counts.reads += 1
            if kind == "ok":
                self.counts.reads_ok += 1
            elif kind == "fail":
                self.counts.reads_failed += 1
                self.counts.read_errors[(error or "?").split(":")[0]] += 1
            else:
                self.counts.reads_unknown += 1
        finally:
            account.busy = False

    async def read_account(self, process: str, endpoint: Endpoint, address: str, level: str,
                           ) -> tuple[str, str | None, dict[str, Any] | None]:
        """GET one account at `level` and record the read (invoke + ok/fail/info) in the history; returns the
        completion's type, error and value."""
        self.history.record("invoke", process=process, node=endpoint.name, op="read", key=address,
                            value={"level": level})
        value: dict[str, Any] | None = None
        error: str | None = None
        try:
            async with self.semaphore, self.session.get(
                    f"{endpoint.rpc_url}/v1/accounts/{address}?at={level}",
                    timeout=aiohttp.ClientTimeout(total=self.options.request_timeout_s)) as reply:
                raw = await reply.read()
                status = reply.status
            if status == 200:
                data = json.loads(raw)
                value = {"nonce": int(data["nonce"]), "balance": int(data["balance"]), "height": data.get("height"),
                         "level": level}
                if "read_proof" in data:
                    value["read_proof"] = data["read_proof"]
                kind = "ok"
            else:
                error = _error_code(raw, status)
                kind = "fail"  # a read that got an answer, even an error, observed nothing and changed nothing
        except aiohttp.ClientConnectorError as exc:
            kind, error = "fail", f"unavailable: {exc.os_error.strerror or exc}"
            self.cooldown[endpoint.name] = time.monotonic() + NODE_COOLDOWN_S
        except TimeoutError:
            kind, error = "info", "timeout"
        except (aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            kind, error = "info", f"bad answer: {exc.__class__.__name__}"
        self.history.record(kind, process=process, node=endpoint.name, op="read", key=address, value=value,
                            error=error)
        return kind, error, value

    async def _quiescence_reads(self, rounds: int = 3) -> None:
        """Read every account from every node at `latest` and `final` (the convergence check takes each node's
        last answer); a few rounds apart, so that nodes a block behind get a moment to catch up."""
        for round_number in range(rounds):
            if round_number:
                await asyncio.sleep(max(0.5, self.testnet.block_interval_s))

            async def node_reads(endpoint: Endpoint) -> list[tuple[Any, ...]]:
                answers = []
                for account in self.accounts:
                    for level in ("latest", "final"):
                        kind, _, value = await self.read_account(f"quiescence-{endpoint.name}", endpoint,
                                                                 account.text, level)
                        answers.append((kind, value and value["nonce"], value and value["balance"]))
                return answers

            results = await asyncio.gather(*(node_reads(e) for e in self.endpoints))
            if all(r == results[0] for r in results):
                return

    def _accept(self, tracked: Tracked) -> None:
        if tracked.accepted_ns is None:
            tracked.accepted_ns = time.time_ns()
            self.counts.accepted += 1
            self._accepted_times.append(time.monotonic())
            if tracked.included_ns is None:
                self.accounts[tracked.account].unconfirmed += 1
        self.tracked[tracked.hash] = tracked

    async def _resync_nonce(self, account: Account, endpoint: Endpoint) -> None:
        try:
            data = await self._get(endpoint, f"/v1/accounts/{account.text}")
            account.next_nonce = max(account.next_nonce, int(data["nonce"]))
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            account.next_nonce += 1  # the chain used this nonce; the next one is at least free of that

    async def _get(self, endpoint: Endpoint, path: str) -> Any:
        async with self.session.get(endpoint.rpc_url + path, timeout=aiohttp.ClientTimeout(total=5)) as reply:
            raw = await reply.read()
            if reply.status != 200:
                raise ValueError(f"GET {path}: HTTP {reply.status}")
            return json.loads(raw)

    # -- what the observer saw -----------------------------------------------------------------------------------

    def _on_included(self, tx_hash: str, node: str, height: int, block: str, seen_ns: int) -> None:
        tracked = self.tracked[tx_hash]
        if tracked.block == block:
            return
        tracked.block = block
        if tracked.included_ns is None:
            tracked.included_ns = max(seen_ns, tracked.invoked_ns)
            self.counts.included += 1
            if tracked.accepted_ns is not None:
                account = self.accounts[tracked.account]
                account.unconfirmed = max(0, account.unconfirmed - 1)
        self._observation("included", node, tracked, height, block)  # every (re-)inclusion is an observation

    def _on_unincluded(self, tx_hash: str) -> None:
        self.tracked[tx_hash].block = None

    def _on_final(self, tx_hash: str, node: str, height: int, block: str, seen_ns: int) -> None:
        tracked = self.tracked[tx_hash]
        if tracked.final_ns is not None:
            return
        if tracked.block != block:
            self._on_included(tx_hash, node, height, block, seen_ns)
        tracked.final_ns = seen_ns
        self.counts.final += 1
        self._observation("final", node, tracked, height, block)

    def _position(self, block: str) -> dict[str, int]:
        """Each transaction's index in `block`, built once per block (not a list search per observation)."""
        positions = self._positions.get(block)
        if positions is None:
            txs = self.observer.block_txs.get(block, []) if self.observer is not None else []
            positions = {tx_hash: index for index, tx_hash in enumerate(txs)}
            if len(self._positions) >= 64:  # recent blocks only: observations of a block come together
                self._positions.clear()
            self._positions[block] = positions
        return positions

    def _observation(self, op: str, node: str, tracked: Tracked, height: int, block: str) -> None:
        value = {"height": height, "block": block, "index": self._position(block).get(tracked.hash)}
        self.history.record("invoke", process="observer", node=node, op=op, key=tracked.hash)
        self.history.record("ok", process="observer", node=node, op=op, key=tracked.hash, value=value)

    # -- rebroadcast and settle ----------------------------------------------------------------------------------

    async def _rebroadcast_loop(self, stop: asyncio.Event) -> None:
        interval = max(1.0, self.testnet.block_interval_s)
        after = 3 * self.testnet.block_interval_s + 2.0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval)
                return
            except TimeoutError:
                pass
            now = time.monotonic()
            stale = [t for t in self.tracked.values()
                     if (t.accepted_ns is not None or t.uncertain) and t.block is None and t.final_ns is None
                     and now - t.last_sent > after * min(8, 2 ** t.rebroadcasts)][:200]
            for tracked in stale:
                tracked.rebroadcasts += 1
                self.counts.rebroadcasts += 1
            # to every node: the one that has the transaction may be down, and a node that was away when it was
            # relayed never hears of it again (nodes relay a transaction once, when they admit it)
            await asyncio.gather(*(self._rebroadcast_to(endpoint, stale, stop) for endpoint in self.endpoints))

    async def _rebroadcast_to(self, endpoint: Endpoint, stale: list[Tracked], stop: asyncio.Event) -> None:
        for tracked in stale:
            if stop.is_set():
                return
            if self.cooldown[endpoint.name] > time.monotonic():
                continue
            outcome, _ = await self._send(f"rebroadcast-{endpoint.name}", endpoint, tracked)
            if outcome == "ok":
                self._accept(tracked)

    async def _settle(self, stop: asyncio.Event) -> None:
        """Wait (bounded) until every accepted transaction is final."""
        timeout = self.options.settle_timeout_s
        if timeout is None:
            timeout = max(30.0, 4 * self.testnet.finality_threshold * self.testnet.block_interval_s)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            if all(t.final_ns is not None for t in self.tracked.values() if t.accepted_ns is not None):
                return
            await asyncio.sleep(0.2)

    # -- report --------------------------------------------------------------------------------------------------

    def current_tps(self, window_s: float = 5.0) -> float:
        """Accepted transactions per second over the last `window_s`."""
        now = time.monotonic()
        while self._accepted_times and now - self._accepted_times[0] > window_s:
            self._accepted_times.popleft()
        return len(self._accepted_times) / window_s

    def summary(self) -> dict[str, Any]:
        """Counts, rates and latencies of the run."""
        accepted = [t for t in self.tracked.values() if t.accepted_ns is not None]
        to_inclusion = [(t.included_ns - t.invoked_ns) / 1e6 for t in accepted if t.included_ns is not None]
        to_final = [(t.final_ns - t.invoked_ns) / 1e6 for t in accepted if t.final_ns is not None]
        end_ns = self.sending_done_ns or time.time_ns()
        sending_s = max(1e-9, (end_ns - self.started_ns) / 1e9) if self.started_ns else 0.0
        counts = self.counts

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "target_tps": self.options.tps, "duration_s": round(sending_s, 3), "accounts": len(self.accounts),
            "nodes": [e.name for e in self.endpoints], "ops": counts.ops, "submitted": counts.submitted,
            "accepted": counts.accepted, "rejected": counts.failed, "unknown": counts.unknown,
            "included": sum(1 for t in accepted if t.included_ns is not None),
            "final": sum(1 for t in accepted if t.final_ns is not None),
            "accepted_not_final": sum(1 for t in accepted if t.final_ns is None),
            "skipped": counts.skipped, "rebroadcasts": counts.rebroadcasts,
            "accepted_tps": round(counts.accepted / sending_s, 1) if sending_s else 0.0,
            "rejections": dict(counts.rejections), "rebroadcast_outcomes": dict(counts.rebroadcast_outcomes),
            "latency_ms": {
                "inclusion_p50": ms(percentile(to_inclusion, 0.5)), "inclusion_p99": ms(percentile(to_inclusion, 0.99)),
                "final_p50": ms(percentile(to_final, 0.5)), "final_p99": ms(percentile(to_final, 0.99)),
            },
            "observer_switches": self.observer.switches if self.observer else 0,
            "reads": {"levels": list(self.options.reads), "ratio": self.read_ratio, "total": counts.reads,
                      "ok": counts.reads_ok, "failed": counts.reads_failed, "unknown": counts.reads_unknown,
                      "errors": dict(counts.read_errors)},
            "sink_accounts": len(self.sinks),
        }


def _error_code(raw: bytes, status: int) -> str:
    try:
        code = json.loads(raw)["error"]["code"]
        return str(code)
    except (ValueError, KeyError, TypeError):
        return f"http-{status}"
