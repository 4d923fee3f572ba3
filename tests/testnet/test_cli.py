"""`chainlab testnet` user errors: one `error: ...` line and exit 1, never a traceback; and the offline
commands (scenarios, run --dry-run, check on a testnet that never ran)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.crypto import PrivateKey, address_to_text
from testnet.cluster import load_key
from tests.testnet.clitools import one_error, run, stopped_testnet

FUNDED = address_to_text(PrivateKey.from_seed(b"a wallet of the user's").address)
LOAD0_OF_S1 = address_to_text(load_key("s1", 0).address)


@pytest.fixture
def fake_testnet(tmp_path: Path) -> Path:
    """A testnet record whose nodes never ran (no process, no store)."""
    stopped_testnet(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("args", "message"), [
    (["up", "--load-tps", "5"], "--load-tps goes with --foreground"),
    (["up", "--nodes", "3", "--hashrate-shares", "1,x"], "give numbers separated by commas"),
    (["up", "--nodes", "3", "--hashrate-shares", "1,1"], "gives 2 shares for 3 nodes"),
    (["up", "--nodes", "2", "--hashrate-shares", "0,0"], "at least one positive"),
    (["up", "--genesis-param", "blok_interval_s=1"], "unknown genesis parameter 'blok_interval_s'"),
    (["up", "--genesis-param", "block_interval_s"], "use KEY=VALUE"),
    (["up", "--genesis-param", "block_interval_s=fast"], "must be float"),
    (["up", "--seed", "my seed"], "--seed 'my seed': use 1 to 40 letters"),
    (["run", "no-such-scenario"], "no scenario file 'no-such-scenario'"),
    (["up", "--fund", "alice"], "--fund 'alice': use WALLET_OR_ADDRESS=AMOUNT"),
    (["up", "--fund", "no-such-wallet-zz=5"], "--fund no-such-wallet-zz: 'no-such-wallet-zz' is neither a wallet"),
    (["up", "--fund", f"{FUNDED}=-3"], "the amount must be a non-negative integer"),
    (["up", "--fund", f"{FUNDED}=1", "--fund", f"{FUNDED}=2"], "is given twice"),
    (["up", "--seed", "s1", "--fund", f"{LOAD0_OF_S1}=5"], "it is a load account, funded already"),
])
def test_up_and_run_refuse_bad_input_before_starting_anything(args: list[str], message: str,
                                                              tmp_path: Path) -> None:
    code, stdout, stderr = run(*args, "--dir", str(tmp_path / "t")) if args[0] == "up" else run(*args)
    assert code == 1 and stdout == ""
    assert message in one_error(stderr)
    assert not (tmp_path / "t").exists()


def test_a_bad_manifest_names_the_key(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.toml"
    manifest.write_text("[network]\nnodes = 3\n[[timeline]]\naction = 'kill'\nnode = 7\n")
    code, _, stderr = run("run", str(manifest))
    assert code == 1 and "timeline[0].node: 7 is not a node of this network" in one_error(stderr)


def test_commands_without_a_testnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHAINLAB_TESTNET", raising=False)
    code, _, stderr = run("status")
    assert code == 1 and "which testnet?" in one_error(stderr)
    code, _, stderr = run("status", "--dir", str(tmp_path / "nothing"))
    assert code == 1 and "not a testnet directory" in one_error(stderr)


@pytest.mark.parametrize(("args", "message"), [
    (["kill", "node1"], "node1 is not running (it is stopped)"),
    (["pause", "2"], "node2 is not running"),
    (["resume", "node0"], "node0 is not paused"),
    (["logs", "node9"], "no node 'node9'"),
    (["logs", "node0"], "node0 has no log yet"),
    (["partition"], "give either groups"),
    (["partition", "0,1"], "node(s) 2 in no group"),
    (["partition", "0,1", "1,2"], "node 1 is in two groups"),
    (["partition", "--shape", "majorities-ring"], "at least 4 nodes"),
    (["partition", "--shape", "isolate:node7"], "no node 'node7'"),
    (["heal", "--partition-only", "--netem-only"], "exclude each other"),
    (["load", "--tps", "10", "--duration", "1", "--accounts", "99"], "--accounts must be 1..8"),
])
def test_nemesis_and_load_errors(fake_testnet: Path, args: list[str], message: str) -> None:
    code, stdout, stderr = run(*args, "--dir", str(fake_testnet))
    assert code == 1 and stdout == ""
    assert message in one_error(stderr)


def test_env_variable_selects_the_testnet(fake_testnet: Path) -> None:
    code, _, stderr = run("kill", "0", env={"CHAINLAB_TESTNET": str(fake_testnet)})
    assert code == 1 and "node0 is not running" in stderr


def test_partition_of_stopped_nodes_is_recorded_for_later(fake_testnet: Path) -> None:
    code, stdout, _ = run("partition", "0", "1,2", "--dir", str(fake_testnet), "--json")
    assert code == 0
    event = json.loads(stdout)
    assert event["action"] == "partition" and event["network"]["blocked"] == {
        "node0": ["node1", "node2"], "node1": ["node0"], "node2": ["node0"]}
    code, stdout, _ = run("netem", "--nodes", "0", "--delay-ms", "40", "--dir", str(fake_testnet), "--json")
    record = json.loads((fake_testnet / "testnet.json").read_text())["nodes"][0]
    assert record["faults"]["blocked"] == ["node1", "node2"] and record["faults"]["delay_ms"] == 40.0
    assert record["faults_applied"] is False
    run("heal", "--netem-only", "--dir", str(fake_testnet))
    record = json.loads((fake_testnet / "testnet.json").read_text())["nodes"][0]
    assert record["faults"]["blocked"] == ["node1", "node2"] and record["faults"]["delay_ms"] == 0.0


def test_check_on_a_testnet_without_data_fails_cleanly(fake_testnet: Path) -> None:
    code, _, stderr = run("check", "--dir", str(fake_testnet), "--json")
    assert code == 1 and "cannot read genesis" in one_error(stderr)


def test_scenarios_and_dry_run() -> None:
    code, stdout, _ = run("scenarios", "--json")
    assert code == 0 and "pow-partition-heal" in {s["name"] for s in json.loads(stdout)}
    code, stdout, _ = run("run", "pow-random-faults", "--dry-run", "--seed", "5", "--json")
    assert code == 0
    first = json.loads(stdout)
    assert first["seed"] == 5 and len(first["plan"]) >= 10
    assert json.loads(run("run", "pow-random-faults", "--dry-run", "--seed", "5", "--json")[1]) == first
    code, stdout, _ = run("run", "ci-pow-partition-heal", "--dry-run")
    assert code == 0 and stdout.startswith("SEED=")


@pytest.mark.parametrize("command", [["down"], ["kill", "0"], ["stop", "0"], ["start", "0"], ["restart", "0"],
                                     ["heal"], ["pause", "0"], ["resume", "0"], ["netem", "--delay-ms", "5"]])
def test_commands_on_a_directory_that_is_no_testnet_are_one_line_errors(tmp_path: Path, command: list[str]) -> None:
    missing, foreign = tmp_path / "missing", tmp_path / "foreign"
    foreign.mkdir()
    for directory in (missing, foreign):
        code, _, stderr = run(*command, "--dir", str(directory))
        assert code == 1 and "is not a testnet directory" in one_error(stderr)
    assert not missing.exists() and list(foreign.iterdir()) == []  # nothing created, not even a lock file


def test_a_load_nothing_accepts_exits_non_zero_after_its_summary(fake_testnet: Path) -> None:
    code, stdout, stderr = run("load", "--dir", str(fake_testnet), "--tps", "5", "--duration", "1", "--json")
    assert code == 1 and "no transaction was accepted" in one_error(stderr)
    summary = json.loads(stdout)  # the summary still comes first, for the record
    assert summary["accepted"] == 0


def test_logs_json_names_the_node_and_keeps_json_records(fake_testnet: Path) -> None:
    record = {"time": "2026-12-05T17:00:00.000Z", "level": "info", "logger": "chainlab.node", "message": "up"}
    (fake_testnet / "n1.log").write_text("2026-12-05 17:00:00,000 INFO  [node1] chainlab.node: up\n"
                                         + json.dumps(record) + "\n", encoding="utf-8")
    code, stdout, _ = run("logs", "node1", "--dir", str(fake_testnet), "--json")
    assert code == 0
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert lines == [{"node": "node1", "line": "2026-12-05 17:00:00,000 INFO  [node1] chainlab.node: up"},
                     {**record, "node": "node1"}]
    code, stdout, _ = run("logs", "node1", "--dir", str(fake_testnet))
    assert code == 0 and stdout.splitlines()[0].endswith("chainlab.node: up")


def test_a_busy_web_port_is_refused_before_any_node_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, stdout, stderr = run("up", "--nodes", "1", "--foreground", "--web-port", str(port),
                                   "--dir", str(tmp_path / "t"))
    assert code == 1 and stdout == ""
    assert f"--web-port {port}: 127.0.0.1:{port} cannot be listened on" in one_error(stderr)
    assert not (tmp_path / "t").exists()


def test_faults_for_nodes_that_are_not_running_say_so(fake_testnet: Path) -> None:
    for args in (["partition", "0", "1,2"], ["netem", "--nodes", "1", "--loss", "0.1"], ["heal"]):
        code, stdout, stderr = run(*args, "--dir", str(fake_testnet))
        assert code == 0 and stdout.strip()
        assert "note  not running:" in stderr and "when they start" in stderr, (args, stderr)
    code, _, stderr = run("netem", "--nodes", "1", "--loss", "0.1", "--dir", str(fake_testnet))
    assert "not running: node1;" in stderr
    code, _, stderr = run("heal", "--dir", str(fake_testnet), "--json")
    assert code == 0 and stderr == ""


def test_a_change_the_kernel_refuses_names_the_action_not_an_unreachable_node(
        capsys: pytest.CaptureFixture[str]) -> None:
    # A user on a kernel without sch_netem read "could not reach node0, node1: this kernel has no netem qdisc"
    # about nodes that answered fine. The nemesis records every failure alike (unreachable node, refusal, kernel).
    from cli import testnet as testnet_cli

    no_netem = "this kernel has no netem qdisc (sch_netem): `modprobe sch_netem`"
    event = {"time": "2026-12-06T23:42:23.936Z", "action": "netem", "nodes": ["node0", "node1"],
             "detail": {"delay_ms": 50.0, "failures": {"node0": no_netem, "node1": no_netem}}}
    with pytest.raises(SystemExit) as exited:
        testnet_cli._emit_event(event, as_json=False)
    assert exited.value.code == 1
    stderr = capsys.readouterr().err
    assert one_error(stderr) == f"error: netem failed on node0, node1: {no_netem}"
    assert "could not reach" not in stderr
