"""Each engine reads its own seal for people (EngineSpec.seal_view: the explorer's block page, GET
/v1/blocks/{ref}): PoW's target and nonce, the signer of a signed seal, Raft's term and leader; a seal the engine
cannot read is a note, not an exception."""

from __future__ import annotations

from dataclasses import replace

from chain import crypto
from chain.block import make_block
from consensus.pow.seal import encode_seal
from consensus.raft.seal import make_raft_seal
from consensus.registry import spec_named
from consensus.signed_seal import make_signed_seal
from tests.conftest import key

HEADER = make_block(parent=None, height=1, timestamp_ms=1, txs=[], state_root=bytes(32), proposer=bytes(20)).header


def test_every_engine_reads_its_seal() -> None:
    pow_header = replace(HEADER, seal=encode_seal(1 << 240, 12345))
    assert spec_named("pow").seal_view(pow_header) == {"engine": "pow", "target": f"{1 << 240:064x}", "nonce": 12345}
    signer = crypto.address_to_text(key(3).address)
    signed = replace(HEADER, seal=make_signed_seal(key(3), HEADER))
    for name in ("primary-backup", "round-robin"):
        assert spec_named(name).seal_view(signed) == {"engine": name, "signer": signer}
    raft = replace(HEADER, seal=make_raft_seal(key(3), HEADER, 7, (key(4).address, key(3).address)))
    view = spec_named("raft").seal_view(raft)
    assert view["term"] == 7 and view["leader"] == signer and len(view["members"]) == 2  # type: ignore[arg-type]


def test_a_seal_the_engine_cannot_read_is_a_note() -> None:
    broken = replace(HEADER, seal=b"\x01\x02")
    for name in ("pow", "primary-backup", "round-robin", "raft"):
        view = spec_named(name).seal_view(broken)
        assert view["engine"] == name and view["error"], view
