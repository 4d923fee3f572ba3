"""`chainlab chain ...`: generate, import, export, verify, status and tips on real LevelDB data directories, and
one-line errors for every way a user can get it wrong (locked, newer schema, truncated file, wrong genesis)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from chain import crypto
from chain.block import Block, make_block
from chain.devtools import block_on, dev_genesis, dev_keys
from chain.state import Account, apply_block, decode_account
from cli.chain import best_chain_blocks
from cli.main import main
from consensus.pow.devtools import generate_pow_chain
from consensus.pow.params import PowParams
from consensus.pow.seal import grind
from node.chainfile import iter_blocks, read_header, write_chain_file
from node.datadir import open_chain, read_genesis_file
from storage import LevelDBStore, keys, open_store
from tests.cli.helpers import Invoke, assert_ok, assert_one_line_error, ok_json

BLOCKS = 30
TXS = 20
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Generated:
    """A generated chain file and its genesis."""

    chain: Path
    genesis: Path
    tip: str
    genesis_hash: str


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    directory = tmp_path_factory.mktemp("generated")
    chain, genesis = directory / "chain.bin", directory / "genesis.toml"
    result = CliRunner().invoke(main, ["chain", "generate", "--blocks", str(BLOCKS), "--txs", str(TXS), "--out",
                                       str(chain), "--genesis-out", str(genesis), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    return Generated(chain=chain, genesis=genesis, tip=report["tip"], genesis_hash=report["genesis"])


@pytest.fixture
def imported(invoke: Invoke, generated: Generated, tmp_path: Path) -> Path:
    """A data directory holding the whole generated chain."""
    datadir = tmp_path / "node"
    assert_ok(invoke("chain", "import", str(generated.chain), "--datadir", str(datadir),
                     "--genesis", str(generated.genesis), "--json"))
    return datadir


def _cli_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60)


# -- the happy path ----------------------------------------------------------------------------------------------


def test_generate_is_deterministic_and_streams_a_readable_file(generated: Generated, tmp_path: Path) -> None:
    genesis = read_genesis_file(generated.genesis)
    assert genesis.hash.hex() == generated.genesis_hash
    assert genesis.param("block_interval_s") == 1.0 and genesis.finality_threshold == 6
    assert len(genesis.balances) == TXS  # one funded sender per transaction of a block, by default
    with open(generated.chain, "rb") as stream:
        assert read_header(stream, "chain").hex() == generated.genesis_hash
    again = tmp_path / "again.bin"
    result = CliRunner().invoke(main, ["chain", "generate", "--blocks", str(BLOCKS), "--txs", str(TXS), "--out",
                                       str(again), "--genesis-out", str(tmp_path / "g.toml")])
    assert_ok(result)
    assert again.read_bytes() == generated.chain.read_bytes()
    assert f"wrote {BLOCKS} blocks" in result.stdout and generated.tip in result.stdout
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_import_status_tips_verify_and_export_round_trip(
    invoke: Invoke, generated: Generated, tmp_path: Path
) -> None:
    datadir = tmp_path / "node"
    report = ok_json(invoke("chain", "import", str(generated.chain), "--datadir", str(datadir),
                            "--genesis", str(generated.genesis), "--json"))
    assert report == {"imported": BLOCKS, "side_branch": 0, "skipped": 0, "height": BLOCKS, "tip": generated.tip,
                      "final_height": BLOCKS - 6 + 1, "genesis": generated.genesis_hash}

    status = ok_json(invoke("chain", "status", "--datadir", str(datadir), "--json"))
    assert status["height"] == BLOCKS and status["head"] == generated.tip
    assert status["final_height"] == BLOCKS - 5 and status["genesis"] == generated.genesis_hash
    assert status["chain_id"] == "chainlab-dev" and status["consensus"] == "pow"
    text = invoke("chain", "status", "--datadir", str(datadir))
    assert_ok(text)
    assert f"head:             {generated.tip}" in text.stdout

    tips = ok_json(invoke("chain", "tips", "--datadir", str(datadir), "--json"))["tips"]
    assert [(t["hash"], t["height"], t["status"], t["branch_length"]) for t in tips] == [
        (generated.tip, BLOCKS, "active", 0)]
    assert int(tips[0]["work"], 16) > 0
    table = invoke("chain", "tips", "--datadir", str(datadir))
    assert_ok(table)
    assert generated.tip[:16] in table.stdout and "active" in table.stdout

    verified = invoke("chain", "verify", "--datadir", str(datadir))
    assert_ok(verified)
    assert verified.stdout.strip() == f"ok: {BLOCKS} blocks, state commitment {status['state_commitment']}"

    exported = tmp_path / "exported.bin"
    assert ok_json(invoke("chain", "export", "--datadir", str(datadir), "--out", str(exported), "--json"))[
        "blocks"] == BLOCKS
    assert exported.read_bytes() == generated.chain.read_bytes()  # same blocks, same canonical bytes
    second = tmp_path / "second"
    again = ok_json(invoke("chain", "import", str(exported), "--datadir", str(second),
                           "--genesis", str(generated.genesis), "--json"))
    assert again["tip"] == generated.tip and again["height"] == BLOCKS
    assert ok_json(invoke("chain", "verify", "--datadir", str(second), "--json"))["state_commitment"] == status[
        "state_commitment"]


def test_reimport_skips_known_blocks_and_resumes_a_partial_import(
    invoke: Invoke, generated: Generated, imported: Path, tmp_path: Path
) -> None:
    again = ok_json(invoke("chain", "import", str(generated.chain), "--datadir", str(imported), "--json"))
    assert (again["imported"], again["skipped"], again["height"]) == (0, BLOCKS, BLOCKS)

    partial = tmp_path / "first-ten.bin"
    with open_chain(imported) as opened:
        first_ten = list(best_chain_blocks(opened.tree, 1, 10))
        write_chain_file(partial, opened.genesis.hash, first_ten)
    fresh = tmp_path / "fresh"
    assert ok_json(invoke("chain", "import", str(partial), "--datadir", str(fresh), "--genesis",
                          str(generated.genesis), "--json"))["height"] == 10
    resumed = ok_json(invoke("chain", "import", str(generated.chain), "--datadir", str(fresh), "--json"))
    assert (resumed["imported"], resumed["skipped"], resumed["tip"]) == (BLOCKS - 10, 10, generated.tip)


def test_export_from_a_height_and_importing_it_alone_does_not_connect(
    invoke: Invoke, generated: Generated, imported: Path, tmp_path: Path
) -> None:
    tail = tmp_path / "tail.bin"
    report = ok_json(invoke("chain", "export", "--datadir", str(imported), "--out", str(tail), "--from-height", "21",
                            "--json"))
    assert (report["blocks"], report["from_height"], report["to_height"]) == (BLOCKS - 20, 21, BLOCKS)
    result = invoke("chain", "import", str(tail), "--datadir", str(tmp_path / "empty"), "--genesis",
                    str(generated.genesis))
    assert_one_line_error(result, "block 21 (", "does not connect", "import the blocks before it first")
    assert_one_line_error(invoke("chain", "export", "--datadir", str(imported), "--out", str(tail), "--from-height",
                                 str(BLOCKS + 1)), "nothing to export", f"height {BLOCKS}")


def test_help_reads_well(invoke: Invoke) -> None:
    result = invoke("chain", "--help")
    assert_ok(result)
    listing = {line.split()[0]: line for line in result.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert set(listing) == {"generate", "import", "export", "verify", "status", "tips", "block"}
    assert not [line for line in listing.values() if line.endswith("...")]  # every short help fits


def test_a_side_branch_is_stored_and_listed_in_tips(
    invoke: Invoke, generated: Generated, imported: Path, tmp_path: Path
) -> None:
    genesis = read_genesis_file(generated.genesis)
    with open(generated.chain, "rb") as stream:
        read_header(stream, "chain")
        blocks = [block for _, block in iter_blocks(stream, "chain")]
    state = genesis.initial_state()
    for block in blocks[:BLOCKS - 2]:
        state = apply_block(state, block, reward=genesis.block_reward).state
    parent = blocks[BLOCKS - 3]  # a sibling of the block at height BLOCKS - 1, above the final height
    draft, _ = block_on(state, parent, [], reward=genesis.block_reward, proposer=parent.header.proposer,
                        timestamp_ms=parent.header.timestamp_ms + 1500)
    sealed = grind(draft.header, PowParams.of(genesis).initial_target)
    assert sealed is not None
    fork = Block(header=sealed, txs=())
    fork_file = tmp_path / "fork.bin"
    write_chain_file(fork_file, genesis.hash, [fork])
    report = ok_json(invoke("chain", "import", str(fork_file), "--datadir", str(imported), "--json"))
    assert (report["imported"], report["side_branch"], report["tip"]) == (1, 1, generated.tip)
    tips = ok_json(invoke("chain", "tips", "--datadir", str(imported), "--json"))["tips"]
    assert [(t["hash"], t["height"], t["status"], t["branch_length"]) for t in tips] == [
        (generated.tip, BLOCKS, "active", 0), (fork.hash.hex(), BLOCKS - 1, "valid-headers", 1)]
    assert int(tips[0]["work"], 16) > int(tips[1]["work"], 16)
    table = invoke("chain", "tips", "--datadir", str(imported)).stdout.splitlines()
    assert len(table) == 3 and table[2].startswith(fork.hash.hex()[:16]) and "valid-headers" in table[2]
    assert_ok(invoke("chain", "verify", "--datadir", str(imported)))


# -- verify finds damage ---------------------------------------------------------------------------------------


def test_verify_names_a_tampered_account(invoke: Invoke, imported: Path) -> None:
    store = open_store(str(imported / "chain"))
    try:
        key, value = next(iter(store.iterate(prefix=keys.ACCOUNT)))
        account = decode_account(value)
        store.write_batch({key: Account(account.balance + 1, account.nonce).encode()}, sync=True)
    finally:
        store.close()
    address = crypto.address_to_text(keys.address_from_key(key))
    result = invoke("chain", "verify", "--datadir", str(imported))
    assert_one_line_error(result, "verify failed", f"height {BLOCKS} (block ", "stored accounts commit to",
                          f"account {address} is stored as balance {account.balance + 1}",
                          f"the replay has balance {account.balance} nonce {account.nonce}")


def test_verify_names_the_height_of_a_missing_index_entry(invoke: Invoke, imported: Path) -> None:
    store = open_store(str(imported / "chain"))
    try:
        store.write_batch({}, [keys.height_key(10)], sync=True)
    finally:
        store.close()
    assert_one_line_error(invoke("chain", "verify", "--datadir", str(imported)), "verify failed at height 10:",
                          "no entry below the tip")


def test_verify_names_a_swapped_block_body(invoke: Invoke, imported: Path) -> None:
    store = open_store(str(imported / "chain"))
    try:
        fifth, sixth = store.get(keys.height_key(5)), store.get(keys.height_key(6))
        assert fifth is not None and sixth is not None
        body = store.get(keys.block_key(sixth))
        assert body is not None
        store.write_batch({keys.block_key(fifth): body}, sync=True)
    finally:
        store.close()
    assert_one_line_error(invoke("chain", "verify", "--datadir", str(imported)),
                          f"verify failed at height 5 (block {fifth.hex()})", f"the stored body is block {sixth.hex()}")


# -- rejects and user errors -----------------------------------------------------------------------------------


def test_an_invalid_block_stops_the_import_with_its_reject_code(invoke: Invoke, tmp_path: Path) -> None:
    keys_ = dev_keys(3, b"reject-test")
    genesis = dev_genesis(keys_, params={"block_interval_s": 1.0})
    genesis_path = tmp_path / "genesis.toml"
    genesis_path.write_text(genesis.to_toml(), encoding="utf-8")
    first, second, _ = generate_pow_chain(genesis, keys_, blocks=3, txs_per_block=2, miner=keys_[0].address)
    lying = make_block(parent=first.header, height=2, timestamp_ms=second.header.timestamp_ms, txs=second.txs,
                       state_root=bytes(32), proposer=second.header.proposer)
    sealed = grind(lying.header, PowParams.of(genesis).initial_target)
    assert sealed is not None
    bad = Block(header=sealed, txs=lying.txs)
    path = tmp_path / "bad.bin"
    write_chain_file(path, genesis.hash, [first, bad])
    datadir = tmp_path / "node"
    result = invoke("chain", "import", str(path), "--datadir", str(datadir), "--genesis", str(genesis_path))
    assert_one_line_error(result, f"block 2 ({bad.hash.hex()}) rejected [bad-state-commitment]")
    assert ok_json(invoke("chain", "status", "--datadir", str(datadir), "--json"))["height"] == 1
    again = invoke("chain", "import", str(path), "--datadir", str(datadir))
    assert_one_line_error(again, f"block 2 ({bad.hash.hex()}) is known to be invalid [bad-state-commitment]")
    assert_ok(invoke("chain", "verify", "--datadir", str(datadir)))


def test_a_datadir_locked_by_another_process_is_a_clear_error(
    invoke: Invoke, generated: Generated, imported: Path
) -> None:
    with open_chain(imported):
        result = _cli_subprocess("chain", "import", str(generated.chain), "--datadir", str(imported))
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert str(imported / "chain") in lines[0] and "locked" in lines[0]
        # Inside this process too (LevelDB's lock alone would not stop a second open here).
        assert_one_line_error(invoke("chain", "status", "--datadir", str(imported)), str(imported / "chain"),
                              "locked")
    assert_ok(invoke("chain", "status", "--datadir", str(imported)))  # released by close


def test_a_newer_schema_version_is_a_clear_error(invoke: Invoke, generated: Generated, imported: Path) -> None:
    store = LevelDBStore(imported / "chain")
    try:
        store.write_batch({keys.SCHEMA_KEY: b"99"}, sync=True)
    finally:
        store.close()
    for args in (("status",), ("verify",), ("import", str(generated.chain))):
        result = invoke("chain", *args, "--datadir", str(imported))
        assert_one_line_error(result, str(imported / "chain"), "schema version 99 is newer than this build reads")


def test_a_truncated_chain_file_keeps_the_blocks_before_the_cut(
    invoke: Invoke, generated: Generated, tmp_path: Path
) -> None:
    data = generated.chain.read_bytes()
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(data[:-100])
    datadir = tmp_path / "node"
    result = invoke("chain", "import", str(truncated), "--datadir", str(datadir), "--genesis", str(generated.genesis))
    assert_one_line_error(result, str(truncated), "truncated block at offset", f"kept the {BLOCKS - 1} block(s)")
    assert ok_json(invoke("chain", "status", "--datadir", str(datadir), "--json"))["height"] == BLOCKS - 1
    header_only = tmp_path / "header.bin"
    header_only.write_bytes(data[:20])
    assert_one_line_error(invoke("chain", "import", str(header_only), "--datadir", str(datadir)),
                          "not a chainlab chain file")


def test_a_wrong_genesis_is_a_clear_error(invoke: Invoke, generated: Generated, imported: Path,
                                          tmp_path: Path) -> None:
    other_chain, other_genesis = tmp_path / "other.bin", tmp_path / "other.toml"
    assert_ok(invoke("chain", "generate", "--blocks", "2", "--txs", "1", "--seed", "other", "--out",
                     str(other_chain), "--genesis-out", str(other_genesis)))
    other_hash = read_genesis_file(other_genesis).hash.hex()
    # The file and --genesis disagree: nothing is created.
    result = invoke("chain", "import", str(generated.chain), "--datadir", str(tmp_path / "new"),
                    "--genesis", str(other_genesis))
    assert_one_line_error(result, f"belongs to the network with genesis {generated.genesis_hash}", other_hash)
    assert not (tmp_path / "new").exists()
    # The data directory holds another network than the file.
    assert_one_line_error(invoke("chain", "import", str(other_chain), "--datadir", str(imported)),
                          f"but {imported} holds", generated.genesis_hash)
    # --genesis names another network than the data directory's.
    assert_one_line_error(invoke("chain", "import", str(other_chain), "--datadir", str(imported), "--genesis",
                                 str(other_genesis)), f"{imported} already holds the network")


def test_missing_paths_are_clear_errors(invoke: Invoke, generated: Generated, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    for command in ("status", "tips", "verify"):
        assert_one_line_error(invoke("chain", command, "--datadir", str(missing)), str(missing),
                              "not a chainlab data directory")
    assert not missing.exists()
    assert_one_line_error(invoke("chain", "import", str(tmp_path / "none.bin"), "--datadir", str(missing)),
                          "none.bin", "No such file")
    assert_one_line_error(invoke("chain", "generate", "--blocks", "1", "--txs", "1", "--out",
                                 str(missing / "c.bin"), "--genesis-out", str(tmp_path / "g.toml")),
                          f"{missing} is not a directory")


def test_a_node_error_names_its_code_once(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.chain import _from_node
    from node.client import RpcError

    def refuse(_client: object) -> None:
        raise RpcError("unknown-block", "no block at height 999", 404)

    with pytest.raises(SystemExit):
        _from_node("http://127.0.0.1:1", refuse)
    assert capsys.readouterr().err == "error: http://127.0.0.1:1: [unknown-block] no block at height 999\n"
