"""`chainlab genesis new` and `genesis show`: round trips through parse_genesis, and clean failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain import crypto
from chain.genesis import parse_genesis
from consensus.registry import all_parameters, engine_names, spec_named
from tests.cli.helpers import Invoke, assert_ok, assert_one_line_error, assert_usage_error, ok_json
from tests.conftest import key

OTHER = crypto.address_to_text(key(7).address)
# Two miners: a partition can split them, so the partition handler's risk applies.
TWO_MINERS = ("--validator", OTHER, "--validator", crypto.address_to_text(key(8).address))


@pytest.fixture
def alice(invoke: Invoke) -> str:
    """Address of a wallet named alice."""
    address: str = ok_json(invoke("wallet", "new", "alice", "--json"))["address"]
    return address


def test_new_round_trips(invoke: Invoke, alice: str, tmp_path: Path) -> None:
    out = tmp_path / "genesis.toml"
    result = invoke(
        "genesis", "new", "--out", str(out), "--consensus", "pow", "--chain-id", "lab-1",
        "--fund", "alice=1_000_000", "--fund", f"{OTHER}=500", "--validator", "alice", "--validator", f"{OTHER}=3",
        "--param", "block_interval_s=2", "--param", "min_fee=5", "--param", "initial_target=" + "0f" * 32,
        "--param", "finality_threshold=3", "--param", "block_reward=7", "--param", "timestamp_ms=1700000000000",
        password=None,  # funding a wallet needs no passphrase
    )
    assert_ok(result)
    genesis = parse_genesis(out.read_text())
    assert result.stdout.strip() == genesis.hash.hex()
    assert genesis.chain_id == "lab-1" and genesis.consensus == "pow"
    assert dict(genesis.balances) == {crypto.address_from_text(alice): 1_000_000, key(7).address: 500}
    assert dict(genesis.validators) == {crypto.address_from_text(alice): 1, key(7).address: 3}
    assert dict(genesis.params) == {"block_interval_s": 2.0, "min_fee": 5, "initial_target": "0f" * 32}
    assert (genesis.finality_threshold, genesis.block_reward, genesis.timestamp_ms) == (3, 7, 1_700_000_000_000)


def test_new_json_and_defaults(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "g.toml"
    view = ok_json(invoke("genesis", "new", "--out", str(out), "--consensus", "primary-backup",
                          "--validator", OTHER, "--json"))
    genesis = parse_genesis(out.read_text())
    assert view == {"path": str(out), "hash": genesis.hash.hex(), "chain_id": "chainlab-dev",
                    "consensus": "primary-backup", "warnings": [], "measured": ""}
    assert dict(genesis.balances) == {} and dict(genesis.params) == {}


def test_pow_partition_risk_warns_and_names_a_safe_heartbeat(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "g.toml"
    risky = invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--param", "block_interval_s=2",
                   *TWO_MINERS)
    assert_ok(risky)  # a warning, not a refusal: fast test networks choose this on purpose
    assert "warning: partition handler" in risky.stderr and "probability 5.9e-04" in risky.stderr
    assert "heartbeat_interval_s <= 0.313" in risky.stderr
    view = ok_json(invoke("genesis", "show", str(out), "--json"))
    assert view["partition_finality_risk"] == 0.00059 and len(view["warnings"]) == 1
    safe = invoke("genesis", "new", "--out", str(out), "--force", "--consensus", "pow", "--param",
                  "block_interval_s=2", "--param", "heartbeat_interval_s=0.3", *TWO_MINERS, "--json")
    assert ok_json(safe)["warnings"] == []
    assert ok_json(invoke("genesis", "show", str(out), "--json"))["partition_finality_risk"] < 1e-6


@pytest.mark.parametrize(("param", "needle"), [
    ("partition_threshold=0.2", "never pauses a side holding between 20% and 50%"),  # certain risk
    ("block_interval_s=0", "no pace"),  # a legal genesis: written with a warning, not a crash
])
def test_certain_partition_risk_is_written_with_a_warning(invoke: Invoke, tmp_path: Path, param: str,
                                                           needle: str) -> None:
    out = tmp_path / "g.toml"
    result = invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--param", param, *TWO_MINERS)
    assert_ok(result)
    assert needle in result.stderr
    assert ok_json(invoke("genesis", "show", str(out), "--json"))["partition_finality_risk"] == 1.0


def test_a_one_miner_network_has_no_partition_warning(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "g.toml"
    view = ok_json(invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--param",
                          "block_interval_s=2", "--validator", OTHER, "--json"))
    assert view["warnings"] == []  # nothing to split: a devnet's single miner


def test_primary_backup_without_acks_warns_when_there_are_backups(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "g.toml"
    backups = ("--validator", OTHER, "--validator", crypto.address_to_text(key(8).address), "--validator",
               crypto.address_to_text(key(9).address))
    risky = invoke("genesis", "new", "--out", str(out), "--consensus", "primary-backup", *backups)
    assert_ok(risky)
    assert "warning: acks_required = 0 with 2 backups" in risky.stderr and "acks_required = 2" in risky.stderr
    safe = invoke("genesis", "new", "--out", str(out), "--force", "--consensus", "primary-backup", *backups,
                  "--param", "acks_required=1", "--json")
    assert ok_json(safe)["warnings"] == []


@pytest.mark.parametrize("engine", engine_names())
def test_every_parameter_is_accepted(invoke: Invoke, tmp_path: Path, engine: str) -> None:
    out = tmp_path / "g.toml"
    table = spec_named(engine).all_parameters()
    params = [arg for name, spec in table.items() for arg in ("--param", f"{name}={spec.default}")]
    validator = ["--validator", crypto.address_to_text(key(3).address)]
    assert_ok(invoke("genesis", "new", "--out", str(out), "--consensus", engine, *validator, *params))
    assert set(parse_genesis(out.read_text()).params) == set(table)


def test_another_engines_parameter_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "g.toml"
    assert_one_line_error(invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--param",
                                 "acks_required=1"), "acks_required")
    assert not out.exists()


def test_refuses_to_overwrite_without_force(invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "g.toml"
    assert_ok(invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--chain-id", "first"))
    assert_one_line_error(invoke("genesis", "new", "--out", str(out), "--consensus", "pow"), "--force")
    assert parse_genesis(out.read_text()).chain_id == "first"
    assert_ok(invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--chain-id", "second", "--force"))
    assert parse_genesis(out.read_text()).chain_id == "second"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fund", "carol=5"], "neither a wallet"),
        (["--fund", OTHER[:-1] + ("0" if OTHER[-1] != "0" else "1") + "=5"], "checksum"),
        (["--fund", OTHER[:-2] + "=5"], "invalid address"),
        (["--fund", f"{OTHER}=-5"], "non-negative integer"),
        (["--fund", f"{OTHER}=1.5"], "non-negative integer"),
        (["--fund", f"{OTHER}=lots"], "non-negative integer"),
        (["--fund", f"{OTHER}={2**64}"], "does not fit in u64"),
        (["--fund", OTHER], "expected WALLET_OR_ADDRESS=AMOUNT"),
        (["--fund", f"{OTHER}=1", "--fund", f"{OTHER}=2"], "given twice"),
        (["--fund", f"{OTHER}={2**64 - 1}", "--fund", f"{crypto.address_to_text(key(8).address)}=1"], "beyond u64"),
        (["--validator", f"{OTHER}=x"], "weight must be a non-negative integer"),
        (["--param", "blok_interval_s=2"], "unknown genesis parameter 'blok_interval_s'"),
        (["--param", "min_fee=cheap"], "min_fee must be int"),
        (["--param", "block_interval_s=nan"], "finite"),
        (["--param", "partition_threshold=1.5"], "partition_threshold"),
        # values the engine cannot run with (each crashed or stalled a testnet before it was refused here)
        (["--param", "retarget_window=0"], "retarget_window must be at least 1"),
        (["--param", "share_window_blocks=0"], "share_window_blocks must be at least 1"),
        (["--param", "max_block_bytes=100"], "max_block_bytes must be at least 8192"),
        (["--param", "heartbeat_interval_s=0"], "heartbeat_interval_s must be above 0"),
        (["--param", "heartbeat_timeout_multiple=1"], "heartbeat_timeout_multiple must be above 1"),
        (["--param", "initial_target=00"], "initial_target"),
        (["--param", "finality_threshold=0"], "finality_threshold"),
        (["--param", "timestamp_ms=-1"], "timestamp_ms"),
        (["--param", "min_fee"], "expected KEY=VALUE"),
        (["--param", "min_fee=1", "--param", "min_fee=2"], "given twice"),
        (["--param", "consensus=pow"], "--consensus"),
        (["--param", "chain_id=a", "--chain-id", "b"], "disagree"),
        (["--chain-id", "x" * 65], "chain_id"),
    ],
)
def test_bad_input_is_one_line(invoke: Invoke, tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "g.toml"
    assert_one_line_error(invoke("genesis", "new", "--out", str(out), "--consensus", "pow", *args), needle)
    assert not out.exists()


def test_corrupt_wallet_named_in_fund_is_one_line(invoke: Invoke, alice: str, wallet_dir: Path,
                                                  tmp_path: Path) -> None:
    (wallet_dir / "alice.json").write_text("{")
    result = invoke("genesis", "new", "--out", str(tmp_path / "g.toml"), "--consensus", "pow", "--fund", "alice=1")
    assert_one_line_error(result, "alice.json")


def test_unknown_engine_and_missing_out_are_usage_errors(invoke: Invoke, tmp_path: Path) -> None:
    assert_usage_error(invoke("genesis", "new", "--out", str(tmp_path / "g"), "--consensus", "paxos"), "paxos")
    assert_usage_error(invoke("genesis", "new", "--consensus", "pow"), "--out")


def test_unwritable_out(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("genesis", "new", "--out", str(tmp_path / "missing-dir" / "g.toml"), "--consensus", "pow")
    assert_one_line_error(result, "cannot write")


def test_show(invoke: Invoke, alice: str, tmp_path: Path) -> None:
    out = tmp_path / "g.toml"
    assert_ok(invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--fund", "alice=10",
                     "--validator", "alice=2", "--param", "min_fee=3"))
    genesis = parse_genesis(out.read_text())
    view = ok_json(invoke("genesis", "show", str(out), "--json"))
    assert view["hash"] == genesis.hash.hex()
    assert view["block_hash"] == genesis.block().hash.hex()
    table = spec_named(genesis.consensus).all_parameters()
    assert view["params"] == {name: genesis.params.get(name, spec.default) for name, spec in table.items()}
    assert "min_fee" not in view["defaults"] and "block_interval_s" in view["defaults"]
    assert view["balances"] == {alice: 10} and view["validators"] == {alice: 2} and view["total_supply"] == 10
    result = invoke("genesis", "show", str(out))
    assert_ok(result)
    assert genesis.hash.hex() in result.stdout and alice in result.stdout
    assert "block_interval_s" in result.stdout and "(default)" in result.stdout


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"chain_id = [", "not valid TOML"),
        (b'chain_id = "x"\n', "missing required field 'consensus'"),
        (b'chain_id = "x"\nconsensus = "pow"\n[params]\nblok = 1\n', "unknown genesis parameter"),
        (b'chain_id = "x"\nconsensus = "pow"\n[balances]\n"cl00" = 1\n', "balances"),
        (b"\xff\xfe", "not UTF-8"),
        (f'chain_id = "x"\nconsensus = "pow"\n[balances]\n"{OTHER}" = "5"\n'.encode(), "invalid genesis"),
    ],
)
def test_show_bad_file(invoke: Invoke, tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "g.toml"
    path.write_bytes(content)
    assert_one_line_error(invoke("genesis", "show", str(path)), needle)


def test_show_missing_file(invoke: Invoke, tmp_path: Path) -> None:
    assert_one_line_error(invoke("genesis", "show", str(tmp_path / "none.toml")), "cannot read genesis file")


def test_help_lists_every_parameter(invoke: Invoke) -> None:
    result = invoke("genesis", "new", "--help")
    assert_ok(result)
    for name in all_parameters():
        assert name in result.stdout


def test_pow_initial_target_comes_from_this_machines_hash_rate_unless_given(invoke: Invoke, tmp_path: Path) -> None:
    # The README's genesis once left the default target (256 hashes a block): ~160 blocks in 15 s at
    # block_interval_s=1. Now `genesis new` grinds for a moment and picks a target for the interval.
    out = tmp_path / "g.toml"
    view = ok_json(invoke("genesis", "new", "--out", str(out), "--consensus", "pow", "--validator", OTHER,
                          "--validator", crypto.address_to_text(key(8).address), "--param", "block_interval_s=2",
                          "--json"))
    assert "H/s" in view["measured"] and "2 miner(s)" in view["measured"]
    target = int(parse_genesis(out.read_text()).params["initial_target"], 16)
    hashes_per_block = (1 << 256) / target
    hps = float(view["measured"].split(" does ")[1].split(" H/s")[0].replace(",", ""))
    assert hps > 10_000  # a mining process does at least this much anywhere we run
    assert hashes_per_block == pytest.approx(hps * 2 * 2, rel=0.01)  # two miners, two seconds
    given = "0f" * 32
    kept = ok_json(invoke("genesis", "new", "--out", str(out), "--force", "--consensus", "pow", "--param",
                          f"initial_target={given}", "--json"))
    assert kept["measured"] == "" and parse_genesis(out.read_text()).params["initial_target"] == given


def test_pbft_warns_that_validator_weights_are_ignored(invoke: Invoke, tmp_path: Path) -> None:
    """`--validator a=2` on a pbft genesis was taken without a word, though quorums count validators."""
    four = [crypto.address_to_text(key(i).address) for i in range(7, 11)]
    out = tmp_path / "g.toml"
    weighted = invoke("genesis", "new", "--out", str(out), "--consensus", "pbft", "--validator", f"{four[0]}=2",
                      *[arg for address in four[1:] for arg in ("--validator", address)])
    assert_ok(weighted)
    assert "warning: pbft counts validators, one vote each: the validator weights of this genesis are ignored" in (
        weighted.stderr)
    plain = invoke("genesis", "new", "--out", str(out), "--force", "--consensus", "pbft",
                   *[arg for address in four for arg in ("--validator", address)], "--json")
    assert ok_json(plain)["warnings"] == []
