"""A node's data directory: `genesis.toml`, the LevelDB store in `chain/`, and (once the node runs) its config
and key. Opening one gives a BlockTree over the store; errors name the path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chain.blocktree import BlockTree
from chain.chainstore import SCHEMA_UPGRADES, ChainStore, ChainStoreError
from chain.genesis import Genesis, GenesisError, parse_genesis
from chain.validation import SignatureChecker
from consensus.registry import chain_policy, check_genesis
from storage import StoreError, open_store
from storage.base import Store

GENESIS_FILE = "genesis.toml"
STORE_DIR = "chain"


class DatadirError(Exception):
    """A data directory that is missing, foreign or unreadable; the message names the path."""


def read_genesis_file(path: str | os.PathLike[str]) -> Genesis:
    """Parse a genesis TOML file; DatadirError naming the file when it is missing or invalid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DatadirError(f"cannot read genesis {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DatadirError(f"genesis {path} is not UTF-8 text") from exc
    try:
        genesis = parse_genesis(text)
        check_genesis(genesis)  # the engine's own parameters and rules
        return genesis
    except GenesisError as exc:
        raise DatadirError(f"genesis {path}: {exc}") from exc


def init_datadir(datadir: str | os.PathLike[str], genesis: Genesis) -> None:
    """Create `datadir` for `genesis`, or accept it if it already holds the same genesis."""
    root = Path(datadir)
    genesis_path = root / GENESIS_FILE
    if genesis_path.exists():
        existing = read_genesis_file(genesis_path)
        if existing.hash != genesis.hash:
            raise DatadirError(
                f"{root} already holds the network {existing.chain_id} (genesis {existing.hash.hex()[:16]}...), "
                f"not {genesis.chain_id} (genesis {genesis.hash.hex()[:16]}...)"
            )
        return
    root.mkdir(parents=True, exist_ok=True)
    # The store first, then genesis.toml: a directory with a genesis file always has its store, and a crash in
    # between leaves a directory that init_datadir simply completes next time.
    try:
        store = open_store(str(root / STORE_DIR), create=True, upgrades=SCHEMA_UPGRADES)
    except (StoreError, ChainStoreError) as exc:
        raise DatadirError(str(exc)) from exc
    try:
        chain_store = ChainStore(store)
        stored = chain_store.genesis_hash()
        if stored is None:
            chain_store.init_genesis(genesis)
        elif stored != genesis.hash:
            raise DatadirError(f"{root / STORE_DIR} holds the network with genesis {stored.hex()[:16]}..., "
                               f"not {genesis.chain_id} (genesis {genesis.hash.hex()[:16]}...)")
    finally:
        store.close()
    temporary = genesis_path.with_suffix(".tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(genesis.to_toml())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, genesis_path)


@dataclass
class OpenChain:
    """A block tree over an open store; close it (or use `with`) to release the directory lock."""

    datadir: Path
    genesis: Genesis
    store: Store
    tree: BlockTree

    def close(self) -> None:
        """Make writes durable and release the store."""
        if not self.store.closed:
            try:
                self.tree.make_durable()
            finally:
                self.store.close()

    def __enter__(self) -> OpenChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_chain(datadir: str | os.PathLike[str], *, signatures: SignatureChecker | None = None,
               create: bool = False, sync_every_blocks: int = 1) -> OpenChain:
    """Open the chain in `datadir` (which `init_datadir` prepared); `create` makes the store on first use (import,
    node run), else a missing store is an error (status, verify, export). `sync_every_blocks` is the block
    tree's durability batching (1 for a node; larger for a bulk import, which syncs at the end)."""
    root = Path(datadir)
    genesis_path = root / GENESIS_FILE
    if not genesis_path.exists():
        raise DatadirError(f"{root} is not a chainlab data directory (no {GENESIS_FILE}); run `chain import` "
                           "with --genesis or `node init` first")
    genesis = read_genesis_file(genesis_path)
    if not create and not (root / STORE_DIR).exists():
        raise DatadirError(f"{root} has no chain store ({root / STORE_DIR} is missing): nothing to read; "
                           "import or sync a chain first")
    try:
        store = open_store(str(root / STORE_DIR), create=True, upgrades=SCHEMA_UPGRADES)
    except (StoreError, ChainStoreError) as exc:
        raise DatadirError(str(exc)) from exc
    try:
        tree = BlockTree(ChainStore(store), genesis, chain_policy(genesis), signatures=signatures,
                         sync_every_blocks=sync_every_blocks)
    except (ChainStoreError, GenesisError, StoreError) as exc:
        store.close()
        raise DatadirError(f"{root}: {exc}") from exc
    except BaseException:
        store.close()
        raise
    return OpenChain(datadir=root, genesis=genesis, store=store, tree=tree)
