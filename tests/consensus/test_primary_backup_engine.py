"""Primary-backup acknowledgements: verified once, counted once, relayed once; forgeries and strangers refused."""

from __future__ import annotations

import pytest

from chain import crypto
from chain.errors import RejectError
from chain.genesis import Genesis
from consensus.engine import EngineMessage
from consensus.primary_backup import engine as pb
from tests.conftest import key

PRIMARY, BACKUP_1, BACKUP_2, STRANGER = key(40), key(41), key(42), key(43)
BLOCK = bytes(range(32))


def genesis() -> Genesis:
    return Genesis(chain_id="pb-test", consensus="primary-backup",
                   params={"primary": crypto.address_to_text(PRIMARY.address), "acks_required": 2},
                   validators={k.address: 1 for k in (PRIMARY, BACKUP_1, BACKUP_2)})


def ack_message(g: Genesis, signer: crypto.PrivateKey, *, hops: int = 0, genesis_hash: bytes | None = None,
                forged: bool = False) -> EngineMessage:
    unsigned = pb.Ack(genesis_hash=genesis_hash or g.hash, block_hash=BLOCK, height=1, backup=signer.public_key)
    digest = bytes(32) if forged else unsigned.signing_hash()
    ack = pb.Ack(genesis_hash=unsigned.genesis_hash, block_hash=BLOCK, height=1, backup=signer.public_key, hops=hops,
                 signature=signer.sign(digest))
    return EngineMessage(kind=pb.ACK_KIND, payload=ack.encode())


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The public keys whose acknowledgement signatures the engine checked."""
    checked: list[bytes] = []
    real = crypto.verify

    def counting(public_key: bytes, signature: bytes, digest: bytes) -> bool:
        checked.append(public_key)
        return real(public_key, signature, digest)

    monkeypatch.setattr(pb.crypto, "verify", counting)
    return checked


def test_each_acknowledgement_is_verified_counted_and_relayed_once(verifications: list[bytes]) -> None:
    g = genesis()
    observer = pb.PrimaryBackupEngine(g, PRIMARY)
    observer.on_message("peer-a", ack_message(g, BACKUP_1), now=0.0, now_ms=0)
    relayed = observer.ready().messages
    assert len(relayed) == 1 and relayed[0].exclude == "peer-a"
    assert pb.decode_ack(relayed[0].message.payload, g.hash, verify=False).hops == 1
    for peer, hops in (("peer-b", 0), ("peer-c", 3)):  # the same acknowledgement over other paths
        observer.on_message(peer, ack_message(g, BACKUP_1, hops=hops), now=0.0, now_ms=0)
    assert observer.ready().messages == []
    assert verifications == [BACKUP_1.public_key]  # copies are recognised before any signature check
    assert observer._acks[BLOCK] == {BACKUP_1.address}


def test_a_forged_copy_neither_counts_nor_blocks_the_genuine_one(verifications: list[bytes]) -> None:
    g = genesis()
    observer = pb.PrimaryBackupEngine(g, PRIMARY)
    with pytest.raises(RejectError) as info:
        observer.on_message("attacker", ack_message(g, BACKUP_2, forged=True), now=0.0, now_ms=0)
    assert info.value.code == "bad-signature"
    assert BLOCK not in observer._acks
    observer.on_message("honest", ack_message(g, BACKUP_2), now=0.0, now_ms=0)
    assert observer._acks[BLOCK] == {BACKUP_2.address}
    assert len(observer.ready().messages) == 1


@pytest.mark.parametrize(("message", "code"), [
    (lambda g: ack_message(g, STRANGER), "not-a-backup"),
    (lambda g: ack_message(g, BACKUP_1, genesis_hash=bytes(32)), "wrong-network"),
    (lambda g: EngineMessage(kind="pb/vote", payload=b""), "unknown-engine-message"),
])
def test_refusals_carry_their_code(message, code: str) -> None:  # type: ignore[no-untyped-def]
    g = genesis()
    observer = pb.PrimaryBackupEngine(g, PRIMARY)
    with pytest.raises(RejectError) as info:
        observer.on_message("peer", message(g), now=0.0, now_ms=0)
    assert info.value.code == code
    assert observer.ready().messages == []
