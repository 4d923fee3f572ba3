"""Raft's decoders (messages, seal, persisted state) answer anything but their own canonical encoding with
DecodeError only: what a peer or a corrupted store can hand them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.errors import DecodeError
from consensus.raft.messages import (
    Append,
    AppendResponse,
    ReadRequest,
    ReadResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_config_base,
    decode_hard_state,
    encode_config_base,
    encode_hard_state,
)
from consensus.raft.seal import decode_raft_seal

DECODERS: list[Callable[[bytes], object]] = [
    Append.decode, AppendResponse.decode, VoteRequest.decode, VoteResponse.decode, ReadRequest.decode,
    ReadResponse.decode, TimeoutNow.decode, decode_hard_state, decode_config_base, decode_raft_seal]
SAMPLES = [
    Append(term=3, prev_index=7, prev_term=2, prev_hash=bytes(32), entries=(b"\1" * 32, b"\2" * 32), commit=5,
           ctx=1).encode(),
    AppendResponse(term=3, success=False, match=0, hint=6, ctx=1).encode(),
    VoteRequest(term=4, last_index=9, last_term=3, prevote=True).encode(),
    ReadResponse(term=3, request_id=8, index=5, error="no-quorum").encode(),
    encode_hard_state(4, b"\3" * 20), encode_config_base(12, (b"\4" * 20, b"\5" * 20)),
]


def test_samples_round_trip() -> None:
    assert Append.decode(SAMPLES[0]).entries == (b"\1" * 32, b"\2" * 32)
    assert decode_hard_state(encode_hard_state(4, None)) == (4, None)
    assert decode_config_base(SAMPLES[5]) == (12, (b"\4" * 20, b"\5" * 20))


@pytest.mark.parametrize("decoder", DECODERS)
@given(data=st.binary(max_size=400))
def test_random_bytes_raise_only_decode_error(decoder: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decoder(data)


@pytest.mark.parametrize("sample", SAMPLES)
@given(data=st.data())
def test_truncations_and_bit_flips_raise_only_decode_error(sample: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(sample) - 1))
    flipped = bytearray(sample)
    flipped[data.draw(st.integers(0, len(sample) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    for decoder in DECODERS:
        for candidate in (sample[:cut], bytes(flipped)):
            with contextlib.suppress(DecodeError):
                decoder(candidate)


@pytest.mark.parametrize("fields", [
    [24, 1, 1, 0, 0, bytes(32), [bytes(32)] * 257, 0, 0],  # too many entries
    [24, 1, 1, 0, 0, bytes(31), [], 0, 0],  # short prev_hash
    [21, 1, 1, 0, 0, 1, 0],  # an int where a bool belongs
    [29, 1, 1, b"\1" * 5],  # a vote for a 5-byte "address"
])
def test_hostile_fields_are_refused(fields: list[object]) -> None:
    data = msgpack.packb(fields, use_bin_type=True)
    with pytest.raises(DecodeError):
        {24: Append.decode, 21: VoteRequest.decode, 29: decode_hard_state}[int(fields[0])](data)  # type: ignore[call-overload]
