"""Canonical encoding: round trips, canonicity, and only DecodeError for anything else."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from chain.block import decode_block, decode_header
from chain.errors import DecodeError
from chain.state import decode_account, decode_undo
from chain.tx import MAX_MEMO_BYTES, Transaction, _decode_tx_checked, decode_tx
from tests.chain.helpers import CHAIN_ID, build_block, genesis, transfer
from tests.conftest import key

DECODERS = [decode_tx, decode_header, decode_block, decode_account, decode_undo]
u64 = st.integers(min_value=0, max_value=2**64 - 1)


def _sample_block() -> bytes:
    g = genesis()
    txs = [transfer(0, 1, 10, 1, 0), transfer(2, 3, 5, 2, 0)]
    return build_block(g.initial_state(), g.block(), txs).encoded


SAMPLES = [transfer(0, 1, 10, 1, 0).encoded, _sample_block()]


@given(amount=u64, fee=u64, nonce=u64, memo=st.binary(max_size=MAX_MEMO_BYTES), recipient=st.integers(0, 5))
def test_tx_round_trip_and_canonical(amount: int, fee: int, nonce: int, memo: bytes, recipient: int) -> None:
    tx = Transaction(chain_id=CHAIN_ID, sender=key(0).public_key, recipient=key(recipient).address, amount=amount,
                     fee=fee, nonce=nonce, memo=memo, signature=b"\x01" * 64)
    decoded = decode_tx(tx.encoded)
    assert decoded == tx
    assert decoded.encoded == tx.encoded
    assert decoded.hash == tx.hash
    assert decoded.signing_hash == tx.signing_hash


@given(
    chain_id=st.one_of(st.text(max_size=70), st.binary(max_size=8), st.integers(0, 9)),
    sender=st.binary(min_size=31, max_size=35), recipient=st.binary(min_size=18, max_size=22),
    ints=st.lists(st.integers(min_value=-(2**63), max_value=2**64 - 1), min_size=3, max_size=3),
    memo=st.one_of(st.binary(max_size=MAX_MEMO_BYTES + 4), st.text(max_size=4)),
    signature=st.binary(max_size=66), tag=st.sampled_from([1, 1, 1, 2, True]),
)
@example(chain_id=CHAIN_ID, sender=bytes(33), recipient=bytes(20), ints=[1, 300, 2**40], memo=b"m",
         signature=bytes(64), tag=1)  # accepted: both paths agree on a good one too
@example(chain_id=CHAIN_ID, sender=bytes(33), recipient=bytes(20), ints=[1, -1, 0], memo=b"", signature=bytes(64),
         tag=1)
def test_tx_fast_path_agrees_with_the_field_checks(  # type: ignore[no-untyped-def]
    chain_id, sender, recipient, ints, memo, signature, tag
) -> None:
    """decode_tx inlines its accepted path; it must accept exactly what the general checks accept."""
    raw = msgpack.packb([tag, 1, chain_id, sender, recipient, *ints, memo, signature], use_bin_type=True)
    try:
        _decode_tx_checked(raw)
    except DecodeError as exc:
        general_accepts = exc.message == "transaction: refused"
    try:
        tx = decode_tx(raw)
    except DecodeError as exc:
        assert not general_accepts and exc.message != "transaction: refused"
    else:
        assert general_accepts and tx.encoded == raw


def test_block_round_trip() -> None:
    raw = SAMPLES[1]
    block = decode_block(raw)
    assert block.encoded == raw
    assert decode_header(block.header.encoded) == block.header
    assert len(block.txs) == 2


@pytest.mark.parametrize("decoder", DECODERS)
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_decode_error(decoder, data: bytes) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(DecodeError):
        decoder(data)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("bad", [None, 5, "text", [1, 2], {"a": 1}, 3.5, object()])
def test_wrong_types_raise_decode_error(decoder, bad: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DecodeError):
        decoder(bad)


@pytest.mark.parametrize("sample", SAMPLES)
@given(data=st.data())
def test_truncations_and_bit_flips(sample: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(sample) - 1))
    with pytest.raises(DecodeError):
        decode_tx(sample[:cut]) if sample is SAMPLES[0] else decode_block(sample[:cut])
    position = data.draw(st.integers(0, len(sample) - 1))
    flipped = bytearray(sample)
    flipped[position] ^= 1 << data.draw(st.integers(0, 7))
    decoder = decode_tx if sample is SAMPLES[0] else decode_block
    try:
        obj = decoder(bytes(flipped))
    except DecodeError:
        return
    assert obj.encoded == bytes(flipped)  # whatever is accepted re-encodes to exactly the input


SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=10)


@given(obj=st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=12), max_leaves=30))
def test_arbitrary_msgpack_values_raise_only_decode_error(obj: object) -> None:
    data = msgpack.packb(obj, use_bin_type=True)
    for decoder in DECODERS:
        try:
            decoded = decoder(data)
        except DecodeError:
            continue
        assert decoded is not None


def test_non_canonical_integer_width_rejected() -> None:
    tx = transfer(0, 1, 10, 1, 0)
    fields = msgpack.unpackb(tx.encoded)
    # Re-pack the amount (10) as a uint64 instead of a positive fixint: same value, different bytes.
    packer = msgpack.Packer(use_bin_type=True)
    parts = [bytes([0x90 + len(fields)])]
    for index, value in enumerate(fields):
        parts.append(b"\xcf" + value.to_bytes(8, "big") if index == 5 else packer.pack(value))
    with pytest.raises(DecodeError, match="non-canonical"):
        decode_tx(b"".join(parts))


def test_trailing_bytes_rejected() -> None:
    with pytest.raises(DecodeError):
        decode_tx(SAMPLES[0] + b"\x00")


def test_unsigned_tx_rejected_on_decode() -> None:
    unsigned = Transaction(chain_id=CHAIN_ID, sender=key(0).public_key, recipient=key(1).address, amount=1, fee=1,
                           nonce=0)
    with pytest.raises(DecodeError, match="unsigned"):
        decode_tx(unsigned.encoded)


def test_oversize_has_its_own_code() -> None:
    with pytest.raises(DecodeError) as info:
        decode_tx(b"\x00" * 10_000)
    assert info.value.code == "oversize"
