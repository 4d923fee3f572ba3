"""The primary-backup engine (pure; see consensus/engine.py).

The primary (named in genesis) proposes and signs one block per `block_interval_s`, empty or not. Backups (the
other genesis validators) check the signature through the chain policy, apply the block, and broadcast a signed
acknowledgement; every node counts acknowledgements from distinct backups and makes a block final once
`acks_required` of them acknowledged it (0: final as soon as it is connected). There is no fail-over: when the
primary stops, no block comes, status says the primary is unreachable, and the network visibly stalls.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from chain import crypto
from chain.block import BlockHeader
from chain.chainstore import BlockMeta
from chain.encoding import check_bytes, check_uint, pack, unpack
from chain.errors import DecodeError, RejectError
from chain.genesis import Genesis
from consensus.engine import ChainView, EngineMessage, Outgoing, ProposeRequest, Ready
from consensus.primary_backup.policy import PrimaryBackupPolicy, make_seal

TAG_ACK = 17
ACK_KIND = "pb/ack"
MAX_HOPS = 8
_MAX_TRACKED_BLOCKS = 1024
_UNREACHABLE_INTERVALS = 3.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """A backup's signed acknowledgement that it applied a block."""

    genesis_hash: bytes
    block_hash: bytes
    height: int
    backup: bytes  # compressed public key
    hops: int = 0
    signature: bytes = b""

    def __post_init__(self) -> None:
        check_bytes(self.genesis_hash, "genesis_hash", size=32)
        check_bytes(self.block_hash, "block_hash", size=32)
        check_uint(self.height, "height")
        check_bytes(self.backup, "backup", size=crypto.PUBKEY_BYTES)
        check_uint(self.hops, "hops", MAX_HOPS)
        if self.signature:
            check_bytes(self.signature, "signature", size=crypto.SIGNATURE_BYTES)

    def signing_hash(self) -> bytes:
        """What the backup signs (all but hops and the signature)."""
        return crypto.sha256(pack(TAG_ACK, 1, [self.genesis_hash, self.block_hash, self.height, self.backup]))

    def encode(self) -> bytes:
        """Canonical encoding `[17, 1, genesis_hash, block_hash, height, backup, hops, signature]`."""
        return pack(TAG_ACK, 1, [self.genesis_hash, self.block_hash, self.height, self.backup, self.hops,
                                 self.signature])


def decode_ack(data: object, genesis_hash: bytes, *, verify: bool = True) -> Ack:
    """Decode and (unless `verify` is false: the caller then runs `verify_ack`) verify an acknowledgement;
    RejectError otherwise."""
    fields = unpack(data, TAG_ACK, 1, 6, 512)
    try:
        ack = Ack(genesis_hash=fields[0], block_hash=fields[1], height=fields[2], backup=fields[3], hops=fields[4],
                  signature=fields[5])
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"ack: {exc}") from exc
    if ack.genesis_hash != genesis_hash:
        raise RejectError("wrong-network", "acknowledgement for another genesis")
    if verify:
        verify_ack(ack)
    return ack


def verify_ack(ack: Ack) -> None:
    """RejectError('bad-signature') unless the backup signed this acknowledgement."""
    if not crypto.verify(ack.backup, ack.signature, ack.signing_hash()):
        raise RejectError("bad-signature", "acknowledgement signature does not verify")


class PrimaryBackupEngine:
    """One primary proposes; backups acknowledge; acknowledgements make blocks final."""

    name = "primary-backup"
    engine_finality = True

    def __init__(self, genesis: Genesis, key: crypto.PrivateKey) -> None:
        self.genesis = genesis
        self.genesis_hash = genesis.hash
        self.policy = PrimaryBackupPolicy(genesis)
        self.key = key
        self.primary = self.policy.primary
        self.backups = {a for a in genesis.validators if a != self.primary}
        self.role = "primary" if key.address == self.primary else ("backup" if key.address in self.backups
                                                                    else "observer")
        self.interval_s = float(genesis.param("block_interval_s"))
        self.acks_required = int(genesis.param("acks_required"))
        self._chain: ChainView | None = None
        self._ready = Ready()
        self._next_proposal = 0.0
        self._acks: OrderedDict[bytes, set[bytes]] = OrderedDict()  # block hash -> backups that acknowledged
        self._last_primary_block: float | None = None
        self._started_at = 0.0

    def start(self, chain: ChainView, *, now: float, now_ms: int, persisted: dict[str, bytes]) -> None:
        """Begin; the primary proposes its first block right away."""
        self._chain = chain
        self._started_at = now
        self._next_proposal = now
        self.tick(now=now, now_ms=now_ms)

    def tick(self, *, now: float, now_ms: int) -> None:
        """The primary proposes once per interval."""
        if self.role != "primary" or self._chain is None or now < self._next_proposal:
            return
        tip = self._chain.tip
        timestamp_ms = max(now_ms, tip.header.timestamp_ms + 1)
        self._ready.propose = ProposeRequest(parent_hash=tip.hash, timestamp_ms=timestamp_ms, proposer=self.primary)
        self._next_proposal = now + self.interval_s

    def on_message(self, peer: str, message: EngineMessage, *, now: float, now_ms: int) -> None:
        """An acknowledgement: verify, count, relay once."""
        if message.kind != ACK_KIND:
            raise RejectError("unknown-engine-message", f"primary-backup has no message kind {message.kind!r}")
        # Every backup's acknowledgement reaches a node over many paths: look it up (a dictionary) before checking
        # its signature (a libsecp256k1 verification), so only the first copy is verified; nothing is counted
        # until the signature checks out.
        ack = decode_ack(message.payload, self.genesis_hash, verify=False)
        backup = crypto.address_of(ack.backup)
        if backup not in self.backups:
            raise RejectError("not-a-backup", "acknowledgement from a key that is not a backup")
        if backup in self._acks.get(ack.block_hash, ()):
            return  # counted already: do not verify or relay again
        verify_ack(ack)
        if not self._count(ack.block_hash, backup):
            return
        if ack.hops < MAX_HOPS:
            relayed = Ack(genesis_hash=ack.genesis_hash, block_hash=ack.block_hash, height=ack.height,
                          backup=ack.backup, hops=ack.hops + 1, signature=ack.signature)
            self._ready.messages.append(Outgoing(message=EngineMessage(kind=ACK_KIND, payload=relayed.encode()),
                                                 exclude=peer))
        self._finalize_acknowledged()

    def on_chain_changed(
        self, chain: ChainView, connected: list[BlockMeta], disconnected: list[BlockMeta], *, now: float,
        now_ms: int,
    ) -> None:
        """Backups acknowledge what they connected; finality follows the acknowledgements."""
        self._chain = chain
        if connected:
            self._last_primary_block = now
        if self.role == "backup":
            for meta in connected:
                ack = Ack(genesis_hash=self.genesis_hash, block_hash=meta.hash, height=meta.height,
                          backup=self.key.public_key)
                signed = Ack(genesis_hash=self.genesis_hash, block_hash=meta.hash, height=meta.height,
                             backup=self.key.public_key, signature=self.key.sign(ack.signing_hash()))
                self._ready.messages.append(Outgoing(message=EngineMessage(kind=ACK_KIND, payload=signed.encode())))
                self._count(meta.hash, self.key.address)
        self._finalize_acknowledged()

    def on_peer(self, peer: str, up: bool, *, now: float) -> None:
        """Peers do not matter to this engine."""

    def on_transactions_available(self, *, now: float) -> None:
        """Blocks come on the interval, whatever the mempool holds."""

    def on_sync_gap(self, blocks_behind: int, *, now: float) -> None:
        """Only the primary proposes, on the chain it made; a backup behind it syncs and acknowledges."""

    def set_mining_enabled(self, enabled: bool, *, now: float) -> None:
        """Nothing to mine."""

    def seal(self, header: BlockHeader) -> BlockHeader:
        """The primary signs the header."""
        if self.role != "primary":
            raise RuntimeError("only the primary seals blocks")
        return header.with_seal(make_seal(self.key, header))

    def ready(self) -> Ready:
        """Take the pending outputs."""
        ready, self._ready = self._ready, Ready()
        return ready

    @property
    def tick_interval_s(self) -> float:
        """Often enough to hold the block interval."""
        return max(0.02, self.interval_s / 10)

    def _count(self, block_hash: bytes, backup: bytes) -> bool:
        acks = self._acks.setdefault(block_hash, set())
        if backup in acks:
            return False
        acks.add(backup)
        while len(self._acks) > _MAX_TRACKED_BLOCKS:
            self._acks.popitem(last=False)
        return True

    def _finalize_acknowledged(self) -> None:
        chain = self._chain
        if chain is None:
            return
        for height in range(chain.height, chain.final_height, -1):
            block_hash = chain.hash_at(height)
            if block_hash is not None and len(self._acks.get(block_hash, ())) >= self.acks_required:
                if self._ready.finalize is None or height > self._ready.finalize:
                    self._ready.finalize = height
                return

    def status(self, *, now: float) -> dict[str, object]:
        """Role, the primary and whether it is reachable (blocks keep arriving), acknowledgement settings."""
        since = None if self._last_primary_block is None else now - self._last_primary_block
        waited = now - self._started_at
        reachable = (since is not None and since < _UNREACHABLE_INTERVALS * self.interval_s) or (
            since is None and waited < _UNREACHABLE_INTERVALS * self.interval_s)
        if self.role == "primary":
            reachable = True
        return {
            "role": self.role,
            "primary": crypto.address_to_text(self.primary),
            "primary_reachable": reachable,
            "last_block_s": None if since is None else round(since, 3),
            "acks_required": self.acks_required,
            "backups": len(self.backups),
            "stalled": not reachable,
        }
