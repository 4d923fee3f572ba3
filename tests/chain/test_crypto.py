"""Keys, low-S signatures and checksummed addresses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain import crypto
from tests.conftest import key

ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_sign_verify() -> None:
    digest = crypto.sha256(b"message")
    signature = key(0).sign(digest)
    assert len(signature) == 64
    assert crypto.verify(key(0).public_key, signature, digest)
    assert not crypto.verify(key(1).public_key, signature, digest)
    assert not crypto.verify(key(0).public_key, signature, crypto.sha256(b"other"))


def test_signatures_are_low_s_and_high_s_is_rejected() -> None:
    digest = crypto.sha256(b"malleable?")
    signature = key(0).sign(digest)
    s = int.from_bytes(signature[32:], "big")
    assert s <= ORDER // 2
    high_s = signature[:32] + (ORDER - s).to_bytes(32, "big")
    assert not crypto.verify(key(0).public_key, high_s, digest)


@given(garbage=st.binary(max_size=80), digest=st.binary(min_size=32, max_size=32))
def test_verify_never_raises(garbage: bytes, digest: bytes) -> None:
    assert crypto.verify(garbage[:33], garbage[-64:], digest) in (True, False)


def test_address_text_round_trip_and_typo_detection() -> None:
    address = key(3).address
    text = crypto.address_to_text(address)
    assert crypto.address_from_text(text) == address
    assert crypto.address_from_text(text.upper().replace("CL", "cl", 1)) == address
    for position in range(2, len(text)):
        typo = text[:position] + ("0" if text[position] != "0" else "1") + text[position + 1 :]
        with pytest.raises(crypto.AddressError):
            crypto.address_from_text(typo)


@pytest.mark.parametrize("bad", ["", "cl", "xx" + "0" * 48, "cl" + "g" * 48, "cl" + "0" * 46])
def test_malformed_addresses(bad: str) -> None:
    with pytest.raises(crypto.AddressError):
        crypto.address_from_text(bad)


def test_public_key_validation() -> None:
    assert crypto.is_valid_public_key(key(0).public_key)
    assert not crypto.is_valid_public_key(b"\x02" + b"\xff" * 32)
    assert not crypto.is_valid_public_key(b"\x04" + b"\x01" * 32)
