"""A deterministic in-memory network of real node cores running Raft, stepped by hand (in the manner of etcd's
raft_paper_test.go network): engine envelopes, announced blocks and block fetches are queued, and delivered only
when the caller calls `deliver()`; time moves only by `tick()`/`run()`; links can be cut, nodes isolated, crashed
and restarted over their store; a filter can drop or duplicate particular messages.

Where the simulator (simulator.py) draws its schedules from a seed, this network plays one the caller writes
message by message: the Raft paper's cases (tests/consensus/test_raft.py) and the theory tour's Figure 8
(tour/demos/raft.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from chain import crypto
from chain.block import Block
from chain.devtools import dev_keys, fresh_transfers
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.tx import Transaction
from consensus.engine import EngineMessage, Outgoing, ReadResult
from consensus.envelope import ENVELOPE_KIND, decode_envelope
from consensus.raft.engine import RaftEngine, Role
from storage.memory import MemoryStore
from testnet.sim.core import CoreFactory, CoreSpec, OutputView, SimCore

GENESIS_MS = 1_700_000_000_000


@dataclass(frozen=True, slots=True)
class Packet:
    """One message in flight. `kind`: "engine" (payload: an encoded envelope, `inner` its Raft message),
    "block" (payload: a Block) or "fetch" (payload: the wanted block hash)."""

    src: str
    dst: str
    kind: str
    payload: object
    inner: EngineMessage | None = None
    to: bytes = b""  # the envelope's addressee (b"": everyone)


Filter = Callable[[Packet], list[Packet]]


class NoLeaderError(Exception):
    """`RaftNet.elect` saw no leader commit an entry of its term in time."""


def raft_genesis(keys: list[crypto.PrivateKey], members: int, params: dict[str, object]) -> Genesis:
    """A raft network: the first `members` keys vote; every key is funded."""
    return Genesis(chain_id="raft-harness", consensus="raft", timestamp_ms=GENESIS_MS,
                   balances={k.address: 10**12 for k in keys},
                   validators={k.address: 1 for k in keys[:members]}, params=params)


class RaftNet:
    """`members` voting nodes (n0..) plus `spares` funded non-members, each a core `core_factory` builds (the
    real node core: cli.sim.node_core_factory)."""

    def __init__(self, members: int, core_factory: CoreFactory, *, seed: int = 0, spares: int = 0,
                 election_timeout_s: float = 1.0, heartbeat_interval_s: float = 0.1, max_empty_interval_s: float = 0.0,
                 block_interval_s: float = 0.2, max_inflight_blocks: int = 64) -> None:
        self.keys = dev_keys(members + spares, seed=b"raft-harness")
        self.genesis = raft_genesis(self.keys, members, {
            "election_timeout_s": election_timeout_s, "heartbeat_interval_s": heartbeat_interval_s,
            "max_empty_interval_s": max_empty_interval_s, "block_interval_s": block_interval_s,
            "max_inflight_blocks": max_inflight_blocks})
        self.seed = seed
        self.names = [f"n{i}" for i in range(members + spares)]
        self.address = {name: key.address for name, key in zip(self.names, self.keys, strict=True)}
        self.by_address = {addr: name for name, addr in self.address.items()}
        self.stores = {name: MemoryStore() for name in self.names}
        self.core_factory = core_factory
        self.cores: dict[str, SimCore] = {}
        self.restarts = dict.fromkeys(self.names, 0)
        self.now = 0.0
        self.queue: list[Packet] = []
        self.cut_links: set[frozenset[str]] = set()
        self.filter: Filter | None = None
        self.reads: dict[str, list[ReadResult]] = {name: [] for name in self.names}
        self.rejections: list[tuple[str, RejectError]] = []
        self.delivered: list[Packet] = []
        # transaction announcements each core asked for (tx, peer to skip, destination); not delivered: tests
        # put transactions where they want them
        self.announced: dict[str, list[tuple[Transaction, str | None, bytes | None]]] = {n: [] for n in self.names}
        self.decisions: list[tuple[str, str, dict[str, object]]] = []  # (node, what, detail), for the trace
        for name in self.names:
            self._build(name)
        for name in self.names:
            self._absorb(name, self.cores[name].start(now=self.now, now_ms=self.now_ms))

    # -- nodes ---------------------------------------------------------------------------------------------------

    def _build(self, name: str) -> None:
        index = self.names.index(name)
        self.cores[name] = self.core_factory(CoreSpec(
            name=name, index=index, genesis=self.genesis, store=self.stores[name], key=self.keys[index],
            rng_seed=self.seed * 1000 + index * 10 + self.restarts[name]))

    @property
    def now_ms(self) -> int:
        """Wall clock for block timestamps: genesis plus the virtual time."""
        return GENESIS_MS + 1000 + int(self.now * 1000)

    def engine(self, name: str) -> RaftEngine:
        """The node's Raft engine."""
        return cast(RaftEngine, self.cores[name].engine)

    def live(self) -> list[str]:
        """Nodes not crashed."""
        return [n for n in self.names if n in self.cores]

    def leaders(self) -> list[str]:
        """Live nodes that believe they lead."""
        return [n for n in self.live() if self.engine(n).role is Role.LEADER]

    def leader(self) -> str | None:
        """The unique live leader of the highest term, or None."""
        leaders = sorted(self.leaders(), key=lambda n: self.engine(n).term)
        return leaders[-1] if leaders else None

    def crash(self, name: str) -> None:
        """Stop a node: its in-flight messages are lost; its store stays."""
        del self.cores[name]
        self.queue = [p for p in self.queue if name not in (p.src, p.dst)]

    def restart(self, name: str) -> None:
        """Rebuild the node's core over its store and start it."""
        self.restarts[name] += 1
        self._build(name)
        self._absorb(name, self.cores[name].start(now=self.now, now_ms=self.now_ms))

    # -- the network ---------------------------------------------------------------------------------------------

    def cut(self, a: str, b: str) -> None:
        """Drop everything between `a` and `b` (both ways)."""
        self.cut_links.add(frozenset((a, b)))

    def isolate(self, name: str) -> None:
        """Cut every link of `name`."""
        for other in self.names:
            if other != name:
                self.cut(name, other)

    def partition(self, *groups: list[str]) -> None:
        """Cut every link between different groups."""
        for i, group in enumerate(groups):
            for other in groups[i + 1:]:
                for a in group:
                    for b in other:
                        self.cut(a, b)

    def recover(self) -> None:
        """Heal every link and remove the filter."""
        self.cut_links.clear()
        self.filter = None

    def connected(self, a: str, b: str) -> bool:
        """Whether packets pass between `a` and `b`."""
        return frozenset((a, b)) not in self.cut_links

    def _absorb(self, src: str, out: OutputView) -> None:
        """Queue what a core asked to send."""
        self.reads[src].extend(out.reads)
        self.announced[src].extend(out.announce_txs)
        self.decisions.extend((src, what, detail) for what, detail in out.decisions)
        for broadcast in out.engine_messages:
            if broadcast.exclude is not None:
                continue  # a relay: the harness delivers every envelope directly to its addressee
            envelope = decode_envelope(broadcast.message.payload, self.genesis.hash)
            inner = EngineMessage(kind=envelope.kind, payload=envelope.body)
            targets = [self.by_address[envelope.to]] if envelope.to else [n for n in self.names if n != src]
            for dst in targets:
                self.queue.append(Packet(src, dst, "engine", broadcast.message.payload, inner, envelope.to))
        for block in out.announce_blocks:
            for dst in self.names:
                if dst != src:
                    self.queue.append(Packet(src, dst, "block", block))
        for peer, block_hash in out.fetch_blocks:
            self.queue.append(Packet(src, peer, "fetch", block_hash))

    def resealed(self, packet: Packet) -> Packet:
        """A copy of an engine packet in a new envelope (a new sequence number), so that the receiver's
        deduplication does not drop it: a duplicated Raft message as a real network could produce."""
        if packet.inner is None:
            raise ValueError(f"only an engine packet can be resealed, not a {packet.kind!r} one")
        payload, _ = self.cores[packet.src].envelopes.seal(Outgoing(message=packet.inner, to=packet.to or None))
        return Packet(packet.src, packet.dst, "engine", payload, packet.inner, packet.to)

    def inject(self, src: str, dst: str, message: EngineMessage) -> None:
        """Queue a Raft message from `src` to `dst`, sealed by `src`."""
        to = self.address[dst]
        payload, _ = self.cores[src].envelopes.seal(Outgoing(message=message, to=to))
        self.queue.append(Packet(src, dst, "engine", payload, message, to))

    def step(self, packet: Packet, *, bypass: bool = False) -> None:
        """Deliver one packet (if both ends are up and their link is whole, or regardless of links with
        `bypass`: a message from an old connection arriving late)."""
        if packet.src not in self.cores or packet.dst not in self.cores:
            return
        if not bypass and not self.connected(packet.src, packet.dst):
            return
        core = self.cores[packet.dst]
        self.delivered.append(packet)
        try:
            if packet.kind == "engine":
                out = core.receive_engine_message(packet.src, ENVELOPE_KIND, cast(bytes, packet.payload),
                                                  now=self.now, now_ms=self.now_ms)
            elif packet.kind == "block":
                out = core.receive_block(cast(Block, packet.payload), source=packet.src, now=self.now,
                                         now_ms=self.now_ms)
            else:
                block = core.tree.get_block(cast(bytes, packet.payload))
                if block is not None:
                    self.queue.append(Packet(packet.dst, packet.src, "block", block))
                return
        except RejectError as error:
            self.rejections.append((packet.dst, error))
            return
        self._absorb(packet.dst, out)

    def deliver(self, max_packets: int = 100_000) -> int:
        """Deliver queued packets (and those they cause) until none is left; the filter sees each first.
        Returns how many were taken off the queue."""
        taken = 0
        while self.queue and taken < max_packets:
            packet = self.queue.pop(0)
            taken += 1
            for copy in (self.filter(packet) if self.filter is not None else [packet]):
                self.step(copy)
        return taken

    def tick(self, dt: float = 0.025) -> None:
        """Move time by `dt` and tick every live node (nothing is delivered)."""
        self.now = round(self.now + dt, 6)
        for name in self.live():
            self._absorb(name, self.cores[name].tick(now=self.now, now_ms=self.now_ms))

    def run(self, seconds: float, dt: float = 0.025, until: Callable[[], bool] | None = None) -> bool:
        """Tick and deliver for `seconds` of virtual time (stopping early once `until` holds); whether `until`
        held (True without one)."""
        end = self.now + seconds
        while self.now < end:
            self.tick(dt)
            self.deliver()
            if until is not None and until():
                return True
        return until is None or until()

    def elect(self, seconds: float = 10.0) -> str:
        """Run until a leader has committed an entry of its term; its name."""
        def settled() -> bool:
            name = self.leader()
            if name is None:
                return False
            engine = self.engine(name)
            return engine._term_at(engine.commit) == engine.term
        leader = self.leader() if self.run(seconds, until=settled) else None
        if leader is None:
            raise NoLeaderError(f"no leader within {seconds}s: {self.describe()}")
        return leader

    # -- client helpers ------------------------------------------------------------------------------------------

    def submit_transfer(self, name: str, nonce: int = 0) -> None:
        """One transfer of the first key's, with `nonce`, into `name`'s mempool (a reason for a leader to
        propose)."""
        sender = self.keys[0]
        tx = fresh_transfers([sender], {sender.address: nonce}, chain_id=self.genesis.chain_id, count=1)[0]
        self._absorb(name, self.cores[name].receive_tx(tx, source=None, now=self.now, now_ms=self.now_ms))

    def admin(self, name: str, action: str, value: object) -> dict[str, object]:
        """An admin action on a node; its answer (RejectError propagates)."""
        out, answer = self.cores[name].admin(action, value, now=self.now, now_ms=self.now_ms)
        self._absorb(name, out)
        return answer

    def read(self, name: str, request_id: int) -> None:
        """A ReadIndex request at a node (the answer lands in `reads[name]`)."""
        self._absorb(name, self.cores[name].read_index(request_id, now=self.now, now_ms=self.now_ms))

    def read_result(self, name: str, request_id: int) -> ReadResult | None:
        """The answer to a read, if any yet."""
        found = [r for r in self.reads[name] if r.request_id == request_id]
        return found[-1] if found else None

    def text(self, name: str) -> str:
        """A node's address as text (for admin actions)."""
        return crypto.address_to_text(self.address[name])

    # -- views ---------------------------------------------------------------------------------------------------

    def chain(self, name: str) -> list[bytes]:
        """The node's active chain (its log), genesis first."""
        tree = self.cores[name].tree
        return [cast(bytes, tree.hash_at(h)) for h in range(tree.height + 1)]

    def final(self, name: str) -> list[bytes]:
        """The node's final (committed) chain."""
        tree = self.cores[name].tree
        return [cast(bytes, tree.hash_at(h)) for h in range(tree.final_height + 1)]

    def describe(self) -> str:
        """One line per live node, for failure messages."""
        rows = []
        for name in self.live():
            engine = self.engine(name)
            tree = self.cores[name].tree
            rows.append(f"{name}: {engine.role.value} term {engine.term} log {tree.height} commit {engine.commit} "
                        f"final {tree.final_height}")
        return "; ".join(rows)
