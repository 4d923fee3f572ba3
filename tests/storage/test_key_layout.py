"""The chain key layout in storage.keys: builders, parsers and their validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage import keys

HASH = bytes(range(32))
ADDRESS = bytes(range(20))


def test_hash_keys_have_their_prefix_and_parse_back() -> None:
    for build, prefix in [
        (keys.block_key, b"B"),
        (keys.block_meta_key, b"M"),
        (keys.undo_key, b"U"),
        (keys.tx_index_key, b"T"),
    ]:
        key = build(HASH)
        assert key == prefix + HASH
        assert keys.hash_from_key(key) == HASH


def test_account_and_engine_keys() -> None:
    assert keys.account_key(ADDRESS) == b"A" + ADDRESS
    assert keys.address_from_key(keys.account_key(ADDRESS)) == ADDRESS
    assert keys.engine_key("raft") == b"Eraft"


def test_meta_keys_sort_before_every_prefixed_key() -> None:
    assert {keys.TIP_KEY, keys.FINAL_KEY, keys.SCHEMA_KEY} == {b"\x00tip", b"\x00final", b"\x00schema"}
    assert max(keys.TIP_KEY, keys.FINAL_KEY, keys.SCHEMA_KEY) < keys.account_key(ADDRESS)


@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=0, max_value=2**64 - 1))
def test_height_keys_round_trip_and_sort_numerically(a: int, b: int) -> None:
    assert keys.height_from_key(keys.height_key(a)) == a
    assert (keys.height_key(a) < keys.height_key(b)) == (a < b)
    assert len(keys.height_key(a)) == 9


@pytest.mark.parametrize("height", [-1, 2**64])
def test_height_out_of_range(height: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        keys.height_key(height)


def test_height_must_be_an_int() -> None:
    with pytest.raises(TypeError):
        keys.height_key(True)
    with pytest.raises(TypeError):
        keys.height_key(1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 31, 33])
def test_wrong_hash_length(size: int) -> None:
    for build in (keys.block_key, keys.block_meta_key, keys.undo_key, keys.tx_index_key):
        with pytest.raises(ValueError, match="32 bytes"):
            build(bytes(size))


def test_wrong_address_length_and_type() -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        keys.account_key(bytes(32))
    with pytest.raises(TypeError):
        keys.account_key(ADDRESS.hex())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [b"H" + bytes(7), b"H" + bytes(9), b"B" + bytes(8), b""],
)
def test_height_from_malformed_key(key: bytes) -> None:
    with pytest.raises(ValueError, match="not a height key"):
        keys.height_from_key(key)


@pytest.mark.parametrize("key", [b"A" + HASH, b"B" + HASH[:31], b"H" + HASH, b""])
def test_hash_from_malformed_key(key: bytes) -> None:
    with pytest.raises(ValueError, match="not a hash key"):
        keys.hash_from_key(key)


def test_address_from_malformed_key() -> None:
    with pytest.raises(ValueError, match="not an account key"):
        keys.address_from_key(b"B" + ADDRESS)


@pytest.mark.parametrize("name", ["", "rä ft", "a\nb", "x" * 65])
def test_bad_engine_names(name: str) -> None:
    with pytest.raises(ValueError, match="engine name"):
        keys.engine_key(name)


@given(st.binary(min_size=20, max_size=20), st.integers(min_value=0, max_value=2**64 - 1),
       st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=0, max_value=2**64 - 1),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_address_index_keys_round_trip_and_sort_by_height_then_position(
        address: bytes, height: int, position: int, other_height: int, other_position: int) -> None:
    key = keys.address_tx_key(address, height, position)
    assert len(key) == 33 and key.startswith(keys.address_tx_prefix(address)) and key[:1] == b"X"
    assert keys.address_tx_from_key(key) == (address, height, position)
    other = keys.address_tx_key(address, other_height, other_position)
    assert (key < other) == ((height, position) < (other_height, other_position))


@pytest.mark.parametrize(("height", "position"), [(-1, 0), (2**64, 0), (0, -1), (0, 2**32)])
def test_address_index_key_out_of_range(height: int, position: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        keys.address_tx_key(ADDRESS, height, position)


def test_address_index_key_types_and_lengths() -> None:
    with pytest.raises(ValueError, match="20 bytes"):
        keys.address_tx_key(bytes(21), 0, 0)
    with pytest.raises(TypeError):
        keys.address_tx_key(ADDRESS, 0, True)
    with pytest.raises(TypeError):
        keys.address_tx_prefix(ADDRESS.hex())  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [b"X" + bytes(31), b"X" + bytes(33), b"A" + bytes(32), b""])
def test_address_index_from_malformed_key(key: bytes) -> None:
    with pytest.raises(ValueError, match="not an address-index key"):
        keys.address_tx_from_key(key)
