"""LevelDB-only behaviour: persistence across reopen, directory locking, schema checks on open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import (
    SCHEMA_VERSION,
    LevelDBStore,
    MemoryStore,
    SchemaVersionError,
    StoreError,
    StoreLockedError,
    open_store,
)
from storage.keys import SCHEMA_KEY

ROOT = Path(__file__).resolve().parents[2]

# Run by a second interpreter: try to open the directory and report what happened.
OPEN_IN_CHILD = """
import sys
from storage import LevelDBStore, StoreLockedError
try:
    LevelDBStore(sys.argv[1]).close()
except StoreLockedError as exc:
    print("LOCKED", exc)
else:
    print("OPENED")
"""


def open_in_other_process(path: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", OPEN_IN_CHILD, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_reopen_after_close_keeps_data(tmp_path: Path) -> None:
    with LevelDBStore(tmp_path / "db") as store:
        store.write_batch({b"a": b"1", b"b": b"2"}, sync=True)
        store.write_batch({b"c": b"3"}, deletes=[b"a"])
    with LevelDBStore(tmp_path / "db", create=False) as store:
        assert list(store.iterate()) == [(b"b", b"2"), (b"c", b"3")]


def test_missing_directory_without_create_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(StoreError, match="cannot open") as info:
        LevelDBStore(path, create=False)
    assert not isinstance(info.value, StoreLockedError)
    assert str(path) in str(info.value)


def test_second_process_gets_locked_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with LevelDBStore(path):
        outcome = open_in_other_process(path)
        assert outcome.startswith("LOCKED")
        assert str(path) in outcome
    assert open_in_other_process(path) == "OPENED"


def test_second_open_in_process_is_locked_and_keeps_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with LevelDBStore(path) as first:
        with pytest.raises(StoreLockedError) as info:
            LevelDBStore(path)
        assert str(path) in str(info.value)
        with pytest.raises(StoreLockedError):
            LevelDBStore(tmp_path / "." / "db")
        # Had LevelDB tried the second open, it would have dropped the first one's fcntl lock:
        # other processes must still be shut out.
        assert open_in_other_process(path).startswith("LOCKED")
        first.write_batch({b"k": b"v"})
    with LevelDBStore(path) as again:
        assert again.get(b"k") == b"v"


def test_newer_schema_version_names_the_path_and_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "db"
    open_store(path).close()
    with LevelDBStore(path) as store:
        assert store.get(SCHEMA_KEY) == str(SCHEMA_VERSION).encode()
        store.write_batch({SCHEMA_KEY: str(SCHEMA_VERSION + 1).encode()})
    with pytest.raises(SchemaVersionError, match="newer") as info:
        open_store(path)
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    LevelDBStore(path).close()


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    with open_store(None) as memory:
        assert isinstance(memory, MemoryStore)
        assert memory.get(SCHEMA_KEY) == str(SCHEMA_VERSION).encode()
    with open_store(str(tmp_path / "db")) as disk:
        assert isinstance(disk, LevelDBStore)
        assert disk.get(SCHEMA_KEY) == str(SCHEMA_VERSION).encode()
