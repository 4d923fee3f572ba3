"""`chainlab chain ...`: a node's chain, offline, on its data directory.

`generate` writes a deterministic PoW dev chain and its genesis; `import` and `export` move chain files
(node/chainfile.py) into and out of a data directory; `verify` replays the stored best chain from genesis and
recomputes the state commitment from scratch; `status` and `tips` show what the directory holds. Every command
opens the directory's store for as long as it runs and always closes it, so the LevelDB lock is released.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

import click

from chain import crypto
from chain.block import Block
from chain.blocktree import BlockTree
from chain.chainstore import BlockMeta, BlockStatus, ChainStoreError
from chain.crypto import PrivateKey
from chain.devtools import dev_genesis, dev_keys
from chain.errors import DecodeError, RejectError
from chain.genesis import CHAIN_PARAMETERS, GenesisError
from chain.state import Account, AccountDict, ElementCache, State, accumulate, apply_block, commitment_of
from cli.common import emit_json, fail
from consensus.pow.devtools import generate_pow_chain
from node.chainfile import ChainFileError, iter_blocks, read_header, write_chain_file
from node.client import RpcClient, RpcError, RpcUnavailable
from node.datadir import DatadirError, OpenChain, init_datadir, open_chain, read_genesis_file
from storage import StoreError

MAX_GENERATED_TXS = int(CHAIN_PARAMETERS["max_block_txs"].default)  # what a dev genesis accepts per block
DEFAULT_MAX_ACCOUNTS = 1000
SHORT_HASH_CHARS = 16

datadir_option = click.option(
    "--datadir", "-d", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="the node's data directory (genesis.toml and the chain/ store)",
)
json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON object on stdout")


@click.group(name="chain")
def command() -> None:
    """Make, import, export, verify and inspect a chain: offline in a data directory, or (status, tips, block)
    from a running node with --node URL.

    A data directory is locked while a command (or a node) uses it. Interrupted imports resume where they stopped:
    run the same command again.
    """


# -- shared helpers --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can cause (paths, locks, files, genesis, a corrupt store) into `error: ...`."""
    try:
        yield
    except (DatadirError, ChainFileError, ChainStoreError, StoreError, GenesisError) as exc:
        fail(str(exc))
    except DecodeError as exc:
        fail(f"corrupt record in the store: {exc}")
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))


def _no_progress(steps: int) -> None:
    """Progress sink when no bar is shown."""


@contextlib.contextmanager
def _progress(label: str, length: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """`advance(steps)` of a progress bar on stderr, drawn only when `enabled` and stderr is a terminal (never
    into --json output, and no stray label line in logs)."""
    stderr = sys.stderr
    if not enabled or not stderr.isatty():
        yield _no_progress
        return
    with click.progressbar(length=length, label=label, file=stderr) as bar:
        yield bar.update


def _short(block_hash: bytes) -> str:
    return block_hash.hex()[:SHORT_HASH_CHARS]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- generate --------------------------------------------------------------------------------------------------


@command.command(name="generate", short_help="Mine a deterministic PoW dev chain and its genesis.")
@click.option("--blocks", type=click.IntRange(min=1), required=True, help="blocks to mine after genesis")
@click.option("--txs", "txs_per_block", type=click.IntRange(0, MAX_GENERATED_TXS), required=True,
              help="signed transfers per block")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="chain file to write")
@click.option("--genesis-out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="genesis TOML to write")
@click.option("--accounts", type=click.IntRange(min=1), default=None,
              help=f"funded sender keys (default: the --txs value, capped at {DEFAULT_MAX_ACCOUNTS})")
@click.option("--seed", default="chainlab-dev", show_default=True, help="seed of the dev keys (same seed, same chain)")
@click.option("--chain-id", default="chainlab-dev", show_default=True, help="the network's chain id")
@click.option("--block-interval-s", type=click.FloatRange(min=0.001, max=86_400.0), default=1.0, show_default=True,
              help="genesis block interval; block timestamps advance by exactly this")
@click.option("--finality-threshold", type=click.IntRange(min=1), default=6, show_default=True,
              help="confirmations that make a block final")
@json_option
def generate_command(
    blocks: int, txs_per_block: int, out: Path, genesis_out: Path, accounts: int | None, seed: str, chain_id: str,
    block_interval_s: float, finality_threshold: int, as_json: bool,
) -> None:
    """Write a deterministic PoW dev chain (--out) and the genesis that funds its senders (--genesis-out).

    Keys come from --seed: never use them for real funds. Blocks are mined at the genesis' minimum difficulty and
    streamed to the file, so long chains need little memory. Import the result with `chain import`.
    """
    _check_output(out, genesis_out)
    sender_count = accounts if accounts is not None else max(1, min(txs_per_block, DEFAULT_MAX_ACCOUNTS))
    seed_bytes = seed.encode("utf-8")
    with _user_errors():
        keys = dev_keys(sender_count, seed_bytes)
        genesis = dev_genesis(keys, chain_id=chain_id, params={"block_interval_s": block_interval_s},
                              finality_threshold=finality_threshold)
        interval_ms = max(1, int(block_interval_s * 1000))
        if genesis.timestamp_ms + blocks * interval_ms > _now_ms():
            fail(f"{blocks} blocks {block_interval_s} s apart would end in the future, and importing would reject "
                 "them (time-too-new); use fewer blocks or a shorter --block-interval-s")
        miner = PrivateKey.from_seed(seed_bytes + b"/miner").address
        _write_text_atomically(genesis_out, genesis.to_toml())
        tip: list[Block] = []
        with _progress("mining", blocks, not as_json) as advance:
            mined = generate_pow_chain(genesis, keys, blocks=blocks, txs_per_block=txs_per_block, miner=miner)
            written = write_chain_file(out, genesis.hash, _tracked(mined, advance, tip))
    result = {
        "blocks": written, "txs_per_block": txs_per_block, "accounts": sender_count, "chain_id": chain_id,
        "genesis": genesis.hash.hex(), "tip": tip[-1].hash.hex(), "out": str(out), "genesis_out": str(genesis_out),
    }
    if as_json:
        emit_json(result)
        return
    click.echo(f"wrote {written} blocks of {txs_per_block} txs from {sender_count} accounts to {out}")
    click.echo(f"genesis {genesis.hash.hex()} ({chain_id}) to {genesis_out}")
    click.echo(f"tip     {tip[-1].hash.hex()} at height {tip[-1].height}")


def _tracked(blocks: Iterable[Block], advance: Callable[[int], None], tip: list[Block]) -> Iterator[Block]:
    """Pass `blocks` through, ticking progress and keeping only the latest one in `tip`."""
    for block in blocks:
        tip[:] = [block]
        advance(1)
        yield block


def _check_output(*paths: Path) -> None:
    """Fail before any work when an output's directory is missing (the error would otherwise name a temp file)."""
    for path in paths:
        if not path.parent.is_dir():
            fail(f"cannot write {path}: {path.parent} is not a directory")


def _write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# -- import ----------------------------------------------------------------------------------------------------


class ChainImportError(Exception):
    """A chain file's block that the data directory refuses (rejected, not connecting, or unreadable)."""


class ImportInterrupted(Exception):
    """The import stopped between two blocks because it was asked to (SIGINT or SIGTERM)."""


@dataclass(slots=True)
class ImportCounts:
    """What an import did so far."""

    connected: int = 0
    side_branch: int = 0
    skipped: int = 0

    @property
    def imported(self) -> int:
        """Blocks newly stored."""
        return self.connected + self.side_branch


def import_blocks(tree: BlockTree, stream: BinaryIO, name: str, counts: ImportCounts, *,
                  advance: Callable[[int], None] = _no_progress,
                  stop_requested: Callable[[], bool] = lambda: False) -> None:
    """Feed every block of the chain file body in `stream` to `tree`, skipping blocks it already knows (that is
    what makes a re-run after an interruption resume quickly). Updates `counts` as it goes; raises
    ChainImportError naming the block on a reject, on a block that does not connect, or on a bad file, and
    ImportInterrupted between two blocks once `stop_requested()`."""
    try:
        for _, block in iter_blocks(stream, name):
            _import_one(tree, block, counts)
            advance(4 + block.size)
            if stop_requested():
                raise ImportInterrupted
    except ChainFileError as exc:
        raise ChainImportError(f"{exc} (kept the {counts.imported} block(s) imported before it)") from exc


def _import_one(tree: BlockTree, block: Block, counts: ImportCounts) -> None:
    where = f"block {block.height} ({block.hash.hex()})"
    known = tree.meta(block.hash)
    if known is not None:
        if known.status is BlockStatus.INVALID:
            raise ChainImportError(f"{where} is known to be invalid [{known.reason or 'invalid'}]")
        counts.skipped += 1
        return
    try:
        result = tree.add_block(block, now_ms=_now_ms(), source="import")
    except RejectError as exc:
        raise ChainImportError(f"{where} rejected [{exc.code}]: {exc.message}") from exc
    if result.status == "orphan":
        raise ChainImportError(
            f"{where} does not connect: its parent {block.parent.hex()} is not in the data directory (at height "
            f"{tree.height}); import the blocks before it first"
        )
    if result.status == "connected":
        counts.connected += 1
    else:
        counts.side_branch += 1


@command.command(name="import", short_help="Validate and store a chain file's blocks (resumable).")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@datadir_option
@click.option("--genesis", "genesis_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="create the data directory for this genesis (or check that it holds this one)")
@json_option
def import_command(file: Path, datadir: Path, genesis_path: Path | None, as_json: bool) -> None:
    """Validate and store the blocks of a chain FILE in a data directory.

    Blocks the directory already knows are skipped, so an interrupted import resumes when run again. The first
    invalid block stops the import with its reject code; the blocks before it are kept.
    """
    counts = ImportCounts()
    with _user_errors(), open(file, "rb") as stream:
        file_genesis = read_header(stream, str(file))
        if genesis_path is not None:
            genesis = read_genesis_file(genesis_path)
            if genesis.hash != file_genesis:
                fail(f"{file} belongs to the network with genesis {file_genesis.hex()}, not to {genesis_path} "
                     f"(genesis {genesis.hash.hex()})")
            init_datadir(datadir, genesis)
        with open_chain(datadir, create=True, sync_every_blocks=256) as opened:
            if opened.genesis.hash != file_genesis:
                fail(f"{file} belongs to the network with genesis {file_genesis.hex()}, but {datadir} holds "
                     f"{opened.genesis.chain_id} (genesis {opened.genesis.hash.hex()})")
            size = os.fstat(stream.fileno()).st_size
            with _signals_between_blocks() as received:
                try:
                    with _progress("importing", size, not as_json) as advance:
                        import_blocks(opened.tree, stream, str(file), counts, advance=advance,
                                      stop_requested=lambda: bool(received))
                except ChainImportError as exc:
                    fail(str(exc))
                except (ImportInterrupted, KeyboardInterrupt):
                    fail(f"interrupted at height {_durable_height(opened.tree)}; the data directory is consistent, "
                         "run the same command again to resume", code=128 + (received[0] if received else 2))
            summary = _import_summary(opened, counts)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"imported {counts.imported} blocks ({counts.side_branch} on side branches), "
               f"skipped {counts.skipped} already known")
    click.echo(f"height {summary['height']}, tip {summary['tip']}, final height {summary['final_height']}")


@contextlib.contextmanager
def _signals_between_blocks() -> Iterator[list[int]]:
    """Note SIGINT and SIGTERM in the yielded list instead of acting on them, so the import stops on a block
    boundary; a second signal raises KeyboardInterrupt at once. Signals the process ignores stay ignored."""
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signum)

    previous: dict[int, Any] = {}
    try:
        for caught in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(caught) is not signal.SIG_IGN:
                previous[caught] = signal.signal(caught, note)
    except ValueError:  # not the main thread (an embedding program): signals keep their usual behaviour
        pass
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _durable_height(tree: BlockTree) -> int:
    """Height of the store's tip record (the in-memory tree can lag it by a block when interrupted mid-connect)."""
    tip_hash, _ = tree.store.tip()
    meta = tree.meta(tip_hash)
    return tree.height if meta is None else meta.height


def _import_summary(opened: OpenChain, counts: ImportCounts) -> dict[str, Any]:
    tree = opened.tree
    return {
        "imported": counts.imported, "side_branch": counts.side_branch, "skipped": counts.skipped,
        "height": tree.height, "tip": tree.tip.hash.hex(), "final_height": tree.final_height,
        "genesis": opened.genesis.hash.hex(),
    }


# -- export ----------------------------------------------------------------------------------------------------


def best_chain_blocks(tree: BlockTree, first: int, last: int) -> Iterator[Block]:
    """The active chain's blocks from height `first` to `last`, read from the store one at a time."""
    for height in range(first, last + 1):
        block_hash = tree.hash_at(height)
        block = None if block_hash is None else tree.get_block(block_hash)
        if block is None:
            raise ChainStoreError(f"the best chain has no stored block at height {height}")
        yield block


@command.command(name="export", short_help="Write the best chain to a chain file.")
@datadir_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="chain file to write")
@click.option("--from-height", type=click.IntRange(min=1), default=1, show_default=True,
              help="first block to write (genesis is implied by the file's genesis hash)")
@json_option
def export_command(datadir: Path, out: Path, from_height: int, as_json: bool) -> None:
    """Write the best chain of a data directory to a chain file that `chain import` reads."""
    _check_output(out)
    with _user_errors(), open_chain(datadir) as opened:
        tree = opened.tree
        height = tree.height
        if from_height > height:
            fail(f"nothing to export: {datadir} is at height {height}, below --from-height {from_height}")
        with _progress("exporting", height - from_height + 1, not as_json) as advance:
            blocks = best_chain_blocks(tree, from_height, height)
            written = write_chain_file(out, opened.genesis.hash, _tracked(blocks, advance, []))
        summary = {"blocks": written, "from_height": from_height, "to_height": height, "tip": tree.tip.hash.hex(),
                   "genesis": opened.genesis.hash.hex(), "out": str(out)}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"wrote {written} blocks (heights {from_height}..{height}, tip {summary['tip']}) to {out}")


# -- verify ----------------------------------------------------------------------------------------------------


class ChainMismatch(Exception):
    """The first place where the stored chain disagrees with a replay from genesis."""

    def __init__(self, height: int, block_hash: bytes | None, what: str) -> None:
        where = f"height {height}" + ("" if block_hash is None else f" (block {block_hash.hex()})")
        super().__init__(f"{where}: {what}")
        self.height = height
        self.block_hash = block_hash
        self.what = what


def verify_chain(opened: OpenChain) -> dict[str, Any]:
    """Replay the stored best chain from genesis in memory and recompute the state commitment from the stored
    accounts; return a summary, or raise ChainMismatch at the first disagreement."""
    tree = opened.tree
    height = tree.height
    replayed, accumulator, tip_hash = _replay_best_chain(tree, height)
    above = tree.store.hash_at(height + 1)
    if above is not None:
        raise ChainMismatch(height + 1, above, "the best-chain height index has an entry above the tip")
    stored_tip, stored_accumulator = tree.store.tip()
    if stored_tip != tip_hash:
        raise ChainMismatch(height, tip_hash, f"the store's tip record names {stored_tip.hex()}")
    if stored_accumulator != accumulator:
        stored_commitment, replayed_commitment = commitment_of(stored_accumulator), commitment_of(accumulator)
        raise ChainMismatch(height, tip_hash, f"the store's tip record commits to {stored_commitment.hex()}, "
                            f"the replay to {replayed_commitment.hex()}")
    commitment = _check_stored_accounts(tree, tree.tip, replayed, accumulator)
    return {"ok": True, "blocks": height, "height": height, "tip": tip_hash.hex(), "state_commitment": commitment.hex(),
            "accounts": len(replayed), "final_height": tree.final_height}


def _replay_best_chain(tree: BlockTree, height: int) -> tuple[AccountDict, int, bytes]:
    """(accounts, accumulator, tip hash) after re-applying heights 1..height to the genesis state.

    The replayed accounts live in one dict updated in place after each block (as the node rebases its tip state on
    the store), so each block costs O(accounts it touches) however long the chain is.
    """
    genesis_hash = tree.genesis.block().hash
    stored_genesis = tree.store.hash_at(0)
    if stored_genesis != genesis_hash:
        raise ChainMismatch(0, stored_genesis, f"the height index does not name the genesis block {genesis_hash.hex()}")
    initial = tree.genesis.initial_state()
    accounts = AccountDict(initial.items())
    elements = ElementCache()
    state = State(accounts, initial.accumulator, elements=elements)
    parent = genesis_hash
    for block_height in range(1, height + 1):
        block = _stored_block(tree, block_height)
        if block.parent != parent:
            raise ChainMismatch(block_height, block.hash, f"its parent is {block.parent.hex()}, but height "
                                f"{block_height - 1} holds {parent.hex()}")
        if block.computed_tx_root() != block.header.tx_root:
            raise ChainMismatch(block_height, block.hash, "its transactions do not match the header's tx root")
        try:
            application = apply_block(state, block, reward=tree.policy.block_reward(block.header))
        except RejectError as exc:
            raise ChainMismatch(block_height, block.hash, f"the replay rejects it [{exc.code}]: {exc.message}") from exc
        after = application.state
        if after.commitment != block.header.state_root:
            raise ChainMismatch(block_height, block.hash, f"the replayed state commits to {after.commitment.hex()}, "
                                f"the header's state_root is {block.header.state_root.hex()}")
        for address, account in after.changes.items():
            if account is None:
                accounts.pop(address, None)
            else:
                accounts[address] = account
        for key, value in after.record_changes.items():
            if value is None:
                accounts.records.pop(key, None)
            else:
                accounts.records[key] = value
        state = State(accounts, after.accumulator, elements=elements)
        parent = block.hash
    return accounts, state.accumulator, parent


def _stored_block(tree: BlockTree, height: int) -> Block:
    """The best-chain block at `height`, checked against the height index and the tip's ancestry."""
    block_hash = tree.store.hash_at(height)
    if block_hash is None:
        raise ChainMismatch(height, None, "the best-chain height index has no entry below the tip")
    ancestry = tree.hash_at(height)
    if ancestry != block_hash:
        raise ChainMismatch(height, block_hash, f"the height index names this block, the tip's ancestry "
                            f"{'nothing' if ancestry is None else ancestry.hex()}")
    try:
        block = tree.store.get_block(block_hash)
    except DecodeError as exc:
        raise ChainMismatch(height, block_hash, f"the stored body does not decode: {exc}") from exc
    if block is None:
        raise ChainMismatch(height, block_hash, "no stored body")
    if block.hash != block_hash or block.height != height:
        raise ChainMismatch(height, block_hash,
                            f"the stored body is block {block.hash.hex()} at height {block.height}")
    return block


def _describe(account: Account | None) -> str:
    return "absent" if account is None else f"balance {account.balance} nonce {account.nonce}"


def _check_stored_accounts(tree: BlockTree, tip: BlockMeta, replayed: AccountDict, accumulator: int) -> bytes:
    """Recompute the commitment over the store's accounts (one pass, comparing each with the replay) and check it
    against the tip header and the replay; return it."""
    differences: list[str] = []
    seen = 0

    def compared() -> Iterator[tuple[bytes, Account]]:
        nonlocal seen
        for address, account in tree.store.iter_accounts():
            seen += 1
            expected = replayed.get(address)
            if expected != account and not differences:
                differences.append(f"account {crypto.address_to_text(address)} is stored as {_describe(account)}, "
                                   f"the replay has {_describe(expected)}")
            yield address, account

    stored_records = dict(tree.store.iter_records())
    if stored_records != replayed.records and not differences:
        key = min(k for k in stored_records.keys() | replayed.records.keys()
                  if stored_records.get(k) != replayed.records.get(k))
        differences.append(f"record {key!r} is stored as {stored_records.get(key)!r}, the replay has "
                           f"{replayed.records.get(key)!r}")
    try:
        recomputed = commitment_of(accumulate(compared(), stored_records.items()))
    except DecodeError as exc:
        raise ChainMismatch(tip.height, tip.hash, f"a stored account does not decode: {exc}") from exc
    if not differences and seen != len(replayed):
        stored = {address for address, _ in tree.store.iter_accounts()}
        missing = min(address for address in replayed if address not in stored)
        differences.append(f"account {crypto.address_to_text(missing)} is missing from the store, the replay has "
                           f"{_describe(replayed[missing])}")
    detail = f"; first difference: {differences[0]}" if differences else ""
    if recomputed != tip.header.state_root:
        raise ChainMismatch(tip.height, tip.hash, f"the stored accounts commit to {recomputed.hex()}, the tip "
                            f"header's state_root is {tip.header.state_root.hex()}{detail}")
    if recomputed != commitment_of(accumulator) or differences:
        raise ChainMismatch(tip.height, tip.hash, f"the stored accounts differ from the replay{detail}")
    return recomputed


@command.command(name="verify", short_help="Replay the chain from genesis and recheck the state.")
@datadir_option
@json_option
def verify_command(datadir: Path, as_json: bool) -> None:
    """Replay the stored best chain from genesis and recompute the state commitment from scratch.

    Checks parent links, each header's state_root against the replayed state, the store's tip record, and the
    stored account set (recommitted from scratch and compared account by account with the replay). Exits 1
    naming the first mismatch.
    """
    with _user_errors(), open_chain(datadir) as opened:
        try:
            report = verify_chain(opened)
        except ChainMismatch as exc:
            fail(f"verify failed at {exc}")
    if as_json:
        emit_json(report)
        return
    click.echo(f"ok: {report['blocks']} blocks, state commitment {report['state_commitment']}")


# -- status and tips -------------------------------------------------------------------------------------------
# Each view is a dict built by one function per source, so a `--node URL` variant only needs another source.


def chain_status(opened: OpenChain) -> dict[str, Any]:
    """The status fields of RPC `/v1/status` that a stopped node's data directory can answer."""
    tree, genesis = opened.tree, opened.genesis
    final_hash = tree.hash_at(tree.final_height)
    return {
        "chain_id": genesis.chain_id, "genesis": genesis.hash.hex(), "consensus": genesis.consensus,
        "height": tree.height, "head": tree.tip.hash.hex(), "final_height": tree.final_height,
        "final_hash": None if final_hash is None else final_hash.hex(),
        "state_commitment": tree.state.commitment.hex(),
    }


def chain_tips(opened: OpenChain) -> dict[str, Any]:
    """Every branch tip the data directory knows (as RPC `/v1/tips`); work is hex, as Bitcoin's chainwork."""
    return {"tips": [
        {"hash": tip.hash.hex(), "height": tip.height, "status": tip.status, "branch_length": tip.branch_length,
         "work": f"{tip.cumulative_work:064x}"}
        for tip in opened.tree.tips()
    ]}


def _from_datadir(view: Callable[[OpenChain], dict[str, Any]], datadir: Path) -> dict[str, Any]:
    with _user_errors(), open_chain(datadir) as opened:
        return view(opened)


def _from_node(url: str, call: Callable[[RpcClient], Any]) -> Any:
    try:
        return call(RpcClient(url))
    except RpcUnavailable as exc:
        fail(f"node at {url} is not reachable: {exc.reason}")
    except RpcError as exc:
        fail(f"{url}: [{exc.code}] {exc.message}")


def _source(datadir: Path | None, node_url: str | None) -> None:
    if (datadir is None) == (node_url is None):
        fail("give exactly one of --datadir (a stopped node's data) or --node URL (a running node)")


optional_datadir_option = click.option(
    "--datadir", "-d", type=click.Path(file_okay=False, path_type=Path),
    help="read a stopped node's data directory",
)
node_option = click.option("--node", "node_url", metavar="URL", envvar="CHAINLAB_NODE",
                           help="ask a running node over RPC (default $CHAINLAB_NODE)")


@command.command(name="status", short_help="Height, head, finality and state commitment.")
@optional_datadir_option
@node_option
@json_option
def status_command(datadir: Path | None, node_url: str | None, as_json: bool) -> None:
    """Height, head and finality of a chain: from a data directory, or from a running node (--node URL), which
    also shows peers, mempool, sync progress and the engine's state (mining, reachable hash share)."""
    if node_url is not None and datadir is None:
        status = _from_node(node_url, lambda client: client.status())
    else:
        _source(datadir, node_url)
        assert datadir is not None
        status = _from_datadir(chain_status, datadir)
    if as_json:
        emit_json(status)
        return
    rows = [(label, status[key]) for label, key in (
        ("chain id", "chain_id"), ("consensus", "consensus"), ("genesis", "genesis"), ("height", "height"),
        ("head", "head"), ("final height", "final_height"), ("final hash", "final_hash"),
        ("state commitment", "state_commitment"), ("peers", "peers"), ("mempool", "mempool_size"),
        ("syncing", "syncing"), ("sync target height", "sync_target_height"),
        ("safety alarms", "safety_alarms")) if key in status]
    engine = status.get("engine")
    if isinstance(engine, dict):
        rows.extend((f"engine {key.replace('_', ' ')}", value) for key, value in engine.items() if key != "miners")
    width = max(18, *(len(label) + 2 for label, _ in rows))
    for label, value in rows:
        click.echo(f"{label + ':':<{width}}{value}")


@command.command(name="block", short_help="One block of a running node, by height or hash.")
@click.argument("ref")
@node_option
@click.option("--txs", "full_txs", is_flag=True, help="include full transactions")
@json_option
def block_command(ref: str, node_url: str | None, full_txs: bool, as_json: bool) -> None:
    """Show block REF (a height on the best chain, or a block hash) of a running node."""
    from cli.wallet import resolve_node

    url = resolve_node(node_url).url
    block = _from_node(url, lambda client: client.block(int(ref) if ref.isdigit() else ref, full_txs=full_txs))
    if as_json:
        emit_json(block)
        return
    for key in ("height", "hash", "parent", "timestamp_ms", "proposer", "tx_count", "size", "final",
                "on_best_chain", "state_root", "tx_root"):
        if key in block:
            click.echo(f"{key + ':':<15}{block[key]}")
    for tx in block.get("txs", []):
        click.echo(f"  tx {tx if isinstance(tx, str) else tx.get('hash')}")


@command.command(name="tips", short_help="Known branch tips, the active one first.")
@optional_datadir_option
@node_option
@json_option
def tips_command(datadir: Path | None, node_url: str | None, as_json: bool) -> None:
    """Known branch tips: the active one first, then forks, newest first."""
    if node_url is not None and datadir is None:
        rows = _from_node(node_url, lambda client: client.tips())
        tips = {"tips": [{**row, "work": f"{int(row['work']):064x}"} for row in rows]}
    else:
        _source(datadir, node_url)
        assert datadir is not None
        tips = _from_datadir(chain_tips, datadir)
    if as_json:
        emit_json(tips)
        return
    click.echo(f"{'hash':<{SHORT_HASH_CHARS}}  {'height':>8}  {'status':<13}  {'branch':>6}  work")
    for tip in tips["tips"]:
        click.echo(f"{tip['hash'][:SHORT_HASH_CHARS]}  {tip['height']:>8}  {tip['status']:<13}  "
                   f"{tip['branch_length']:>6}  {int(tip['work'], 16)}")
