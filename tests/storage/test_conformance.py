"""One conformance suite for every `Store` backend: each test runs on MemoryStore and on LevelDBStore."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from storage import (
    SCHEMA_VERSION,
    LevelDBStore,
    MemoryStore,
    SchemaVersionError,
    Store,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    WriteBatch,
    check_schema,
)
from storage.base import MEMORY_PATH
from storage.keys import SCHEMA_KEY

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["memory", "leveldb"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of fresh, empty stores of one backend; every store it made is closed afterwards."""
    made: list[Store] = []
    counter = itertools.count()

    def make() -> Store:
        store: Store = (
            MemoryStore() if request.param == "memory" else LevelDBStore(tmp_path / f"db{next(counter)}")
        )
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


def path_of(store: Store) -> str:
    return store.path if isinstance(store, LevelDBStore) else MEMORY_PATH


def expected(
    model: dict[bytes, bytes],
    prefix: bytes = b"",
    start: bytes | None = None,
    stop: bytes | None = None,
    reverse: bool = False,
) -> list[tuple[bytes, bytes]]:
    """What `iterate` must return, computed the obvious way from a dict."""
    pairs = [
        (key, value)
        for key, value in sorted(model.items())
        if key.startswith(prefix) and (start is None or key >= start) and (stop is None or key < stop)
    ]
    return pairs[::-1] if reverse else pairs


# --- point reads and writes ---------------------------------------------------------------------------------


def test_backend_satisfies_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert not store.closed


def test_get_put_overwrite_delete(store: Store) -> None:
    assert store.get(b"k") is None
    store.write_batch({b"k": b"v1"})
    assert store.get(b"k") == b"v1"
    store.write_batch([(b"k", b"v2")])
    assert store.get(b"k") == b"v2"
    store.write_batch({}, deletes=[b"k"])
    assert store.get(b"k") is None
    store.write_batch({}, deletes=[b"k", b"never-there"])
    assert list(store.iterate()) == []


def test_empty_key_and_empty_value(store: Store) -> None:
    store.write_batch({b"": b"root", b"e": b""})
    assert store.get(b"") == b"root"
    assert store.get(b"e") == b""
    assert list(store.iterate()) == [(b"", b"root"), (b"e", b"")]


def test_later_pair_wins_within_puts(store: Store) -> None:
    store.write_batch([(b"k", b"1"), (b"j", b"x"), (b"k", b"2")])
    assert store.get(b"k") == b"2"


def test_puts_win_over_deletes_of_same_key(store: Store) -> None:
    store.write_batch({b"k": b"old", b"gone": b"x"})
    store.write_batch({b"k": b"new"}, deletes=[b"k", b"gone"])
    assert list(store.iterate()) == [(b"k", b"new")]


def test_rejects_keys_and_values_that_are_not_bytes(store: Store) -> None:
    with pytest.raises(TypeError):
        store.write_batch({bytearray(b"k"): b"v"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.write_batch({b"k": "v"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single key"):
        store.write_batch({}, deletes=b"key")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.get("k")  # type: ignore[arg-type]
    assert list(store.iterate()) == []


# --- atomic batches -----------------------------------------------------------------------------------------


def test_batch_whose_puts_raise_midway_writes_nothing(store: Store) -> None:
    store.write_batch({b"a": b"1"})

    def puts() -> Iterator[tuple[bytes, bytes]]:
        yield b"b", b"2"
        yield b"c", b"3"
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError, match="producer failed"):
        store.write_batch(puts(), deletes=[b"a"])
    assert list(store.iterate()) == [(b"a", b"1")]


def test_batch_with_a_bad_value_midway_writes_nothing(store: Store) -> None:
    with pytest.raises(TypeError):
        store.write_batch([(b"a", b"1"), (b"b", None)], deletes=[b"x"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        store.write_batch({b"a": b"1"}, deletes=[b"x", 7])  # type: ignore[list-item]
    assert list(store.iterate()) == []


def test_write_applies_a_write_batch(store: Store) -> None:
    store.write_batch({b"a": b"1", b"b": b"2"})
    batch = WriteBatch()
    batch.put(b"c", b"3")
    batch.delete(b"a")
    batch.put(b"b", b"two")
    store.write(batch, sync=True)
    assert list(store.iterate()) == [(b"b", b"two"), (b"c", b"3")]


def test_write_batch_later_operation_wins_and_counts_bytes() -> None:
    batch = WriteBatch()
    batch.put(b"k", b"vvv")
    batch.put(b"j", b"v")
    assert (len(batch), batch.size_bytes) == (2, 6)
    batch.delete(b"k")
    assert dict(batch.puts) == {b"j": b"v"}
    assert batch.deletes == {b"k"}
    assert (len(batch), batch.size_bytes) == (2, 3)
    batch.put(b"k", b"")
    assert batch.deletes == frozenset()
    assert (len(batch), batch.size_bytes) == (2, 3)
    batch.put(b"j", b"longer")
    assert batch.size_bytes == 1 + 7
    batch.clear()
    assert (len(batch), batch.size_bytes) == (0, 0)
    with pytest.raises(TypeError):
        batch.put(b"k", bytearray(b"v"))  # type: ignore[arg-type]


# --- iteration ----------------------------------------------------------------------------------------------

DATASET_KEYS = [
    b"",
    b"a",
    b"a\x00",
    b"a\xff",
    b"a\xff\xff",
    b"ab",
    b"abc",
    b"b",
    b"b\x00",
    b"\xff",
    b"\xff\xff",
]
DATASET = {key: key.hex().encode() for key in DATASET_KEYS}
BOUNDS = [None, b"", b"a", b"a\xff", b"ab", b"abd", b"b", b"\xff", b"\xff\xff\xff"]
PREFIXES = [b"", b"a", b"a\xff", b"ab", b"b", b"c", b"\xff"]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_iterate_matches_model_for_every_bound_combination(
    store: Store, prefix: bytes, reverse: bool
) -> None:
    store.write_batch(DATASET)
    for start, stop in itertools.product(BOUNDS, BOUNDS):
        got = list(store.iterate(prefix=prefix, start=start, stop=stop, reverse=reverse))
        assert got == expected(DATASET, prefix, start, stop, reverse), (prefix, start, stop, reverse)


def test_iterate_examples(store: Store) -> None:
    store.write_batch(DATASET)

    def keys(**kwargs: object) -> list[bytes]:
        return [key for key, _ in store.iterate(**kwargs)]  # type: ignore[arg-type]

    assert keys(prefix=b"a\xff") == [b"a\xff", b"a\xff\xff"]
    assert keys(prefix=b"\xff", reverse=True) == [b"\xff\xff", b"\xff"]
    # 0xff sorts after every other byte: b"abc" < b"a\xff".
    assert keys(prefix=b"a", start=b"ab", stop=b"a\xff") == [b"ab", b"abc"]
    assert keys(prefix=b"a", start=b"a\x00", reverse=True) == [
        b"a\xff\xff",
        b"a\xff",
        b"abc",
        b"ab",
        b"a\x00",
    ]
    assert keys(start=b"a", stop=b"ab", reverse=True) == [b"a\x00", b"a"]
    # Reverse walks whose first key is the start key (plyvel 1.5 returns nothing for these by itself).
    assert keys(start=b"b", stop=b"b\x00", reverse=True) == [b"b"]
    assert keys(prefix=b"ab", start=b"abc", reverse=True) == [b"abc"]
    assert keys(start=b"b", stop=b"b") == []
    assert keys(start=b"c", stop=b"a") == []
    assert keys(prefix=b"b", stop=b"a") == []


def test_iterator_is_a_snapshot_of_its_call(store: Store) -> None:
    store.write_batch({b"a": b"1", b"b": b"2", b"c": b"3"})
    untouched = store.iterate()
    walked = store.iterate(reverse=True)
    assert next(walked) == (b"c", b"3")
    store.write_batch({b"b": b"changed", b"bb": b"new"}, deletes=[b"a"])
    assert list(untouched) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    assert list(walked) == [(b"b", b"2"), (b"a", b"1")]
    assert list(store.iterate()) == [(b"b", b"changed"), (b"bb", b"new"), (b"c", b"3")]


def test_deleting_while_iterating_visits_every_key(store: Store) -> None:
    store.write_batch({bytes([n]): b"x" for n in range(50)})
    seen = []
    for key, _ in store.iterate():
        seen.append(key)
        store.write_batch({}, deletes=[key, bytes([key[0] + 1])])
    assert len(seen) == 50
    assert list(store.iterate()) == []


# --- close --------------------------------------------------------------------------------------------------


def test_use_after_close_raises_naming_the_path(store: Store) -> None:
    store.write_batch({b"k": b"v"})
    store.close()
    store.close()  # idempotent
    assert store.closed
    calls: list[Callable[[], object]] = [
        lambda: store.get(b"k"),
        lambda: store.iterate(),
        lambda: store.write_batch({b"k": b"v"}),
        lambda: store.write(WriteBatch()),
        lambda: store.__enter__(),
    ]
    for call in calls:
        with pytest.raises(StoreClosedError) as info:
            call()
        assert info.value.path == path_of(store)
        assert path_of(store) in str(info.value)


def test_open_iterator_fails_once_store_is_closed(store: Store) -> None:
    store.write_batch({b"a": b"1", b"b": b"2"})
    iterator = store.iterate()
    assert next(iterator) == (b"a", b"1")
    store.close()
    with pytest.raises(StoreClosedError):
        next(iterator)


def test_context_manager_closes(make_store: StoreFactory) -> None:
    with make_store() as store:
        store.write_batch({b"k": b"v"})
        assert not store.closed
    assert store.closed


# --- schema -------------------------------------------------------------------------------------------------


def test_schema_stamped_in_empty_store_then_accepted(store: Store) -> None:
    assert check_schema(store, "somewhere", supported=1) == 1
    assert store.get(SCHEMA_KEY) == b"1"
    assert check_schema(store, "somewhere", supported=1) == 1
    with pytest.raises(SchemaVersionError) as info:
        check_schema(store, "somewhere", supported=2)
    assert (info.value.found, info.value.supported) == (1, 2)
    assert "somewhere" in str(info.value)


def test_an_empty_store_is_stamped_with_the_current_version(store: Store) -> None:
    assert check_schema(store, "somewhere") == SCHEMA_VERSION
    assert store.get(SCHEMA_KEY) == str(SCHEMA_VERSION).encode()


def test_an_older_store_runs_each_upgrade_in_order_and_writes_each_version_after_it(store: Store) -> None:
    store.write_batch({SCHEMA_KEY: b"1", b"data": b"v1"})
    seen: list[tuple[int, bytes | None]] = []

    def step(version: int) -> Callable[[Store], None]:
        def upgrade(upgraded: Store) -> None:
            seen.append((version, upgraded.get(SCHEMA_KEY)))
            upgraded.write_batch({b"data": f"v{version + 1}".encode()})
        return upgrade

    assert check_schema(store, "somewhere", supported=3, upgrades={1: step(1), 2: step(2)}) == 3
    assert seen == [(1, b"1"), (2, b"2")]
    assert (store.get(SCHEMA_KEY), store.get(b"data")) == (b"3", b"v3")


def test_an_older_store_with_a_missing_upgrade_is_refused_untouched(store: Store) -> None:
    store.write_batch({SCHEMA_KEY: b"1"})
    ran: list[int] = []
    with pytest.raises(SchemaVersionError, match="not supported") as info:
        check_schema(store, "somewhere", supported=3, upgrades={2: lambda _: ran.append(2)})
    assert info.value.found == 1 and ran == [] and store.get(SCHEMA_KEY) == b"1"


@pytest.mark.parametrize(
    ("stored", "found", "words"),
    [
        (str(SCHEMA_VERSION + 1).encode(), SCHEMA_VERSION + 1, "newer"),
        (b"0", 0, "not supported"),
        (b"01", None, "no readable"),
        (b"x", None, "no readable"),
    ],
)
def test_schema_rejects_other_versions(store: Store, stored: bytes, found: int | None, words: str) -> None:
    store.write_batch({SCHEMA_KEY: stored})
    with pytest.raises(SchemaVersionError, match=words) as info:
        check_schema(store, "/data/node1")
    assert info.value.found == found
    assert "/data/node1" in str(info.value)


def test_schema_refuses_data_without_a_version(store: Store) -> None:
    store.write_batch({b"A" + bytes(20): b"account"})
    with pytest.raises(SchemaVersionError, match="no readable"):
        check_schema(store, "/data/node1")
    assert store.get(SCHEMA_KEY) is None


def test_errors_survive_pickling() -> None:
    for error in [
        StoreError("/d", "cannot open: disk on fire"),
        StoreLockedError("/d"),
        SchemaVersionError("/d", 3, 1),
    ]:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (str(copy), copy.path) == (str(error), "/d")
        assert vars(copy) == vars(error)


# --- random operation sequences against a dict --------------------------------------------------------------

KEYS = st.lists(st.sampled_from(b"ab\x00\xff"), max_size=3).map(bytes)
VALUES = st.binary(max_size=3)
BOUND = st.none() | KEYS
PAIRS = st.lists(st.tuples(KEYS, VALUES), max_size=5)
OPS = st.lists(st.tuples(KEYS, st.none() | VALUES), max_size=6)


class StoreMatchesDict(RuleBasedStateMachine):
    """Drives a store and a dict with the same operations; they must always agree."""

    def __init__(self, make: StoreFactory) -> None:
        super().__init__()
        self.store = make()
        self.model: dict[bytes, bytes] = {}

    def apply(self, puts: list[tuple[bytes, bytes]], deletes: list[bytes]) -> None:
        for key in deletes:
            self.model.pop(key, None)
        self.model.update(puts)

    @rule(puts=PAIRS, deletes=st.lists(KEYS, max_size=4), as_mapping=st.booleans(), sync=st.booleans())
    def write_batch(
        self, puts: list[tuple[bytes, bytes]], deletes: list[bytes], as_mapping: bool, sync: bool
    ) -> None:
        self.store.write_batch(dict(puts) if as_mapping else puts, deletes, sync=sync)
        self.apply(puts, deletes)

    @rule(ops=OPS)
    def write(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        batch = WriteBatch()
        for key, value in ops:
            if value is None:
                batch.delete(key)
                self.model.pop(key, None)
            else:
                batch.put(key, value)
                self.model[key] = value
        self.store.write(batch)

    @rule(puts=PAIRS, fail_after=st.integers(min_value=0, max_value=5))
    def failed_write(self, puts: list[tuple[bytes, bytes]], fail_after: int) -> None:
        def failing() -> Iterator[tuple[bytes, bytes]]:
            yield from puts[:fail_after]
            raise ValueError("producer failed")

        with pytest.raises(ValueError, match="producer failed"):
            self.store.write_batch(failing(), deletes=list(self.model))

    @rule(key=KEYS)
    def get(self, key: bytes) -> None:
        assert self.store.get(key) == self.model.get(key)

    @rule(prefix=KEYS, start=BOUND, stop=BOUND, reverse=st.booleans())
    def iterate(self, prefix: bytes, start: bytes | None, stop: bytes | None, reverse: bool) -> None:
        got = list(self.store.iterate(prefix, start, stop, reverse))
        assert got == expected(self.model, prefix, start, stop, reverse)

    @rule(
        prefix=KEYS,
        taken=st.integers(min_value=0, max_value=3),
        reverse=st.booleans(),
        puts=PAIRS,
        deletes=st.lists(KEYS, max_size=4),
    )
    def write_while_iterating(
        self, prefix: bytes, taken: int, reverse: bool, puts: list[tuple[bytes, bytes]], deletes: list[bytes]
    ) -> None:
        before = expected(self.model, prefix, reverse=reverse)
        iterator = self.store.iterate(prefix, reverse=reverse)
        head = list(itertools.islice(iterator, taken))
        self.store.write_batch(puts, deletes)
        self.apply(puts, deletes)
        assert head + list(iterator) == before

    @invariant()
    def contents_agree(self) -> None:
        assert list(self.store.iterate()) == expected(self.model)

    def teardown(self) -> None:
        self.store.close()


def test_random_operations_match_a_dict(make_store: StoreFactory) -> None:
    class OnThisBackend(StoreMatchesDict):
        def __init__(self) -> None:
            super().__init__(make_store)

    run_state_machine_as_test(
        OnThisBackend,
        settings=settings(max_examples=60, stateful_step_count=25, deadline=None),
    )
