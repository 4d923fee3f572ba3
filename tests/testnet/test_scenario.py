"""Scenario manifests (testnet/scenario.py): the shipped ones parse, bad ones are refused naming the key, and a
seed always gives the same plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from testnet.scenario import ManifestError, load_manifest, parse_manifest, plan

SCENARIOS = Path(__file__).resolve().parents[2] / "testnet" / "scenarios"
MINIMAL = """
[network]
nodes = 4
"""


LOCK_STEP = "[network]\nnodes = 3\n[[timeline]]\naction = 'lock'\n"


def manifest(extra: str) -> str:
    return MINIMAL + extra


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_scenarios_parse_and_plan(path: Path) -> None:
    scenario = load_manifest(path)
    assert scenario.name == path.stem and scenario.description
    steps = plan(scenario, 1)
    assert steps and all(step.kind in ("action", "wait", "expect") for step in steps)


def test_the_shipped_set_is_complete() -> None:
    names = {p.stem for p in SCENARIOS.glob("*.toml")}
    assert {"pow-partition-heal", "pow-crash-restart", "pow-netem", "pow-random-faults", "primary-backup-crash",
            "ci-pow-partition-heal", "ci-pow-crash-restart", "raft-leader-kill", "raft-minority-partition",
            "raft-leader-pause", "ci-raft-leader-kill", "ci-raft-minority-partition", "pbft-primary-kill",
            "pbft-equivocating-primary", "pbft-f-byzantine", "pbft-f-plus-one-twins",
            "ci-pbft-equivocating-primary"} <= names


def test_leader_and_previous_stay_for_the_run_to_resolve() -> None:
    scenario = parse_manifest(manifest("""
[[timeline]]
action = "pause"
node = "leader"
[[timeline]]
expect = "new leader"
nodes = [0, 1, 2, 3]
[[timeline]]
action = "resume"
node = "previous"
[[timeline]]
expect = "no stale read"
nodes = ["previous"]
"""))
    steps = [s.spec for s in plan(scenario, 3)]
    assert steps[0]["node"] == "leader" and steps[2]["node"] == "previous"
    assert steps[1]["nodes"] == [0, 1, 2, 3] and steps[3]["nodes"] == ["previous"]
    with pytest.raises(ManifestError, match=r"timeline\[0\]\.nodes"):
        parse_manifest(manifest('[[timeline]]\nexpect = "no quorum"\nnodes = ["leader"]\n'))


def test_partition_heal_scenario_is_two_against_three_at_40_60() -> None:
    scenario = load_manifest(SCENARIOS / "pow-partition-heal.toml")
    shares = scenario.network.hashrate_shares
    partition = next(s for s in plan(scenario, 0) if s.spec.get("action") == "partition")
    minority, majority = partition.spec["groups"]
    assert sum(shares[i] for i in minority) / sum(shares) == pytest.approx(0.4)
    assert sum(shares[i] for i in majority) / sum(shares) == pytest.approx(0.6)


def test_defaults() -> None:
    scenario = parse_manifest(MINIMAL, default_name="x")
    assert scenario.name == "x" and scenario.network.consensus == "pow" and scenario.network.topology == "full"
    assert scenario.load is None and scenario.timeline == [] and scenario.end_heal
    assert scenario.end_wait == ["converged", "all final"]


def test_node_names_and_indices_resolve() -> None:
    scenario = parse_manifest(manifest("""
[[timeline]]
action = "kill"
node = "node3"
[[timeline]]
action = "partition"
groups = [["node0", 1], [2, "node3"]]
[[timeline]]
expect = "mining"
nodes = ["node1", 2]
"""))
    kill, partition, expectation = plan(scenario, 0)
    assert kill.spec["node"] == 3
    assert partition.spec["groups"] == [[0, 1], [2, 3]]
    assert expectation.spec["nodes"] == [1, 2]


RANDOM = """
[[timeline]]
at_s = 5
action = "random"
count = 6
interval_s = [1, 4]
hold_s = [2, 3]
"""


def test_random_steps_are_reproducible_from_the_seed() -> None:
    scenario = parse_manifest(manifest(RANDOM))
    first = [s.to_json() for s in plan(scenario, 42)]
    assert first == [s.to_json() for s in plan(scenario, 42)]
    assert first != [s.to_json() for s in plan(scenario, 43)]
    assert first[0]["at_s"] == 5
    for step in first[1:]:
        assert 1 <= step["after_s"] <= 4 or 2 <= step["after_s"] <= 3


def test_random_faults_are_undone() -> None:
    scenario = parse_manifest(manifest(RANDOM.replace("count = 6", "count = 40")))
    steps = [s.spec for s in plan(scenario, 7)]
    undo = {"kill": "start", "stop": "start", "pause": "resume", "partition": "heal", "netem": "heal"}
    position = 0
    while position < len(steps):
        action = steps[position]["action"]
        if action == "restart":
            position += 1
            continue
        assert steps[position + 1]["action"] == undo[action]
        if "node" in steps[position]:
            assert steps[position + 1]["node"] == steps[position]["node"]
        position += 2
    actions = {s["action"] for s in steps}
    assert {"kill", "pause", "partition", "netem", "restart"} <= actions


def test_random_shape_is_drawn_and_fits_the_network() -> None:
    scenario = parse_manifest(manifest('[[timeline]]\naction = "partition"\nshape = "random"\n'))
    shapes = {plan(scenario, seed)[0].spec["shape"].split(":")[0] for seed in range(60)}
    assert shapes == {"halves", "isolate", "bridge", "majorities-ring", "minority-third"}


@pytest.mark.parametrize(("text", "message"), [
    ("", "missing \\[network\\]"),
    ("[network]\nnodes = 0\n", "network.nodes: must be at least 1"),
    ("[network]\nnode = 3\n", "network.node: unknown key"),
    ("[network]\nnodes = 3\nconsensus = 'raft2'\n", "network.consensus: 'raft2' is not one of"),
    ("[network]\nnodes = 3\ntopology = 'star'\n", "network.topology"),
    ("[network]\nnodes = 3\nhashrate_shares = [1, 1]\n", "one share per node"),
    ("[network]\nnodes = 3\n[network.params]\nblok_interval_s = 1\n", "network.params.blok_interval_s: unknown"),
    ("[network]\nnodes = 3\n[network.params]\nblock_interval_s = 'fast'\n", "network.params.block_interval_s"),
    ("[network]\nnodes = 3\n[load]\ntps = 10\n", "load.duration_s: missing"),
    ("[network]\nnodes = 3\n[load]\ntps = -1\nduration_s = 5\n", "load.tps: must be at least"),
    ("[network]\nnodes = 3\nload_accounts = 8\n[load]\ntps = 1\nduration_s = 5\naccounts = 9\n", "load.accounts"),
    ("[network]\nnodes = 3\ncolour = 'red'\n", "network.colour: unknown key"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'explode'\n", "timeline\\[0\\].action: 'explode'"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'kill'\n", "timeline\\[0\\].node: missing"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'kill'\nnode = 3\n", "not a node of this network"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'kill'\nnode = 1\nwait = 'converged'\n", "exactly one of"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'kill'\nnode = 1\nat_s = 1\nafter_s = 2\n", "exclude each other"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'kill'\nnode = 1\nat_s = -1\n", "timeline\\[0\\].at_s"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'kill'\nnode = 1\nshape = 'halves'\n", "timeline\\[0\\].shape"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'partition'\n", "give groups or shape"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'partition'\ngroups = [[0, 1], [1, 2]]\n", "in two groups"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'partition'\nshape = 'majorities-ring'\n", "at least 4 nodes"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'netem'\nloss = 1.5\n", "timeline\\[0\\].loss"),
    ("[network]\nnodes = 3\n[[timeline]]\nwait = 'height +x'\n", "not a wait condition"),
    ("[network]\nnodes = 3\n[[timeline]]\nexpect = 'mining'\n", "timeline\\[0\\].nodes: missing"),
    ("[network]\nnodes = 3\n[[timeline]]\nexpect = 'happy'\nnodes = [0]\n", "'happy' is not one of"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'random'\nfaults = ['flood']\n", "faults\\[0\\]"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'random'\ninterval_s = [5, 1]\n", "low <= high"),
    ("[network]\nnodes = 3\n[[timeline]]\naction = 'random'\nfaults = ['partition']\nshapes = ['majorities-ring']\n",
     "none of them fits 3 nodes"),
    ("[network]\nnodes = 3\n[end]\nwait = ['done']\n", "end.wait\\[0\\]"),
    (LOCK_STEP + "op = 'acquire'\nlock = 'j'\nlease_blocks = 3\n", "timeline\\[0\\].client: missing"),
    (LOCK_STEP + "client = 'a'\nop = 'steal'\nlock = 'j'\n", "timeline\\[0\\].op: 'steal' is not one of"),
    (LOCK_STEP + "client = 'a'\nop = 'acquire'\nlock = 'j'\n", "lease_blocks: missing \\(op = 'acquire' needs"),
    (LOCK_STEP + "client = 'a'\nop = 'acquire'\nlock = 'j'\nlease_blocks = 10001\n", "must be at least 1 and"),
    (LOCK_STEP + "client = 'a'\nop = 'release'\nlock = 'j'\nkey = 'k'\n", "timeline\\[0\\].key: not used by op"),
    (LOCK_STEP + "client = 'a'\nop = 'put'\nlock = 'j'\nkey = ''\nvalue = 'v'\n", "key: 1 to 64 printable"),
    (LOCK_STEP + "client = 'a'\nop = 'release'\nlock = 'j'\nexpect_result = 'fine'\n", "'fine' is not one of"),
    (LOCK_STEP + "client = 'a'\nop = 'release'\nlock = 'j'\nnode = 1\n", "timeline\\[0\\].node: unknown key"),
    ("[network]\nnodes = 3\nload_accounts = 1\n[[timeline]]\naction = 'lock'\nclient = 'a'\nop = 'release'\n"
     "lock = 'j'\n[[timeline]]\naction = 'lock'\nclient = 'b'\nop = 'release'\nlock = 'j'\n",
     "2 lock clients, but network.load_accounts = 1"),
    ("[network]\nnodes = 3\n[checks]\nrun = ['vibes']\n", "checks.run\\[0\\]"),
    ("[network]\nnodes = 3\ntimeline = 5\n", "network.timeline: unknown key"),
    ("timeline = 5\n[network]\nnodes = 3\n", "timeline: must be an array of tables"),
    ("[network\nnodes = 3\n", "not valid TOML"),
    ("surprise = 1\n[network]\nnodes = 3\n", "surprise: unknown key"),
])
def test_bad_manifests_are_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text)


def test_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(binary)


PBFT = """
[network]
nodes = 4
consensus = "pbft"
"""


def test_byzantine_steps_and_twin_names_resolve() -> None:
    scenario = parse_manifest(PBFT + """
[[timeline]]
action = "byzantine"
node = "leader"
behaviour = "equivocate"
[[timeline]]
action = "byzantine"
node = "node2"
behaviour = "twins"
[[timeline]]
action = "byzantine"
node = 0
behaviour = "twins"
[[timeline]]
action = "partition"
groups = [["node0", "node2", 1], ["node2-twin", "node0-twin", 3]]
[[timeline]]
action = "kill"
node = "node0-twin"
""")
    steps = [s.spec for s in plan(scenario, 1)]
    assert steps[0] == {"action": "byzantine", "node": "leader", "behaviour": "equivocate"}
    assert steps[1]["node"] == 2 and steps[2]["node"] == 0
    assert steps[3]["groups"] == [[0, 2, 1], [4, 5, 3]] and steps[4]["node"] == 5  # twins follow the 4 nodes


@pytest.mark.parametrize(("text", "message"), [
    (PBFT + "[[timeline]]\naction = 'byzantine'\nnode = 1\nbehaviour = 'lie'\n",
     "timeline\\[0\\].behaviour: 'lie' is not one of equivocate, .*twins, honest"),
    (PBFT + "[[timeline]]\naction = 'byzantine'\nnode = 1\n", "timeline\\[0\\].behaviour: missing"),
    ("[network]\nnodes = 3\nconsensus = 'raft'\n[[timeline]]\naction = 'byzantine'\nnode = 1\n"
     "behaviour = 'silent'\n", "timeline\\[0\\].action: raft has no Byzantine behaviours"),
    (PBFT + "[[timeline]]\naction = 'byzantine'\nnode = 'leader'\nbehaviour = 'twins'\n",
     "twins need a node named in the manifest"),
    (PBFT + "[[timeline]]\naction = 'kill'\nnode = 'node1-twin'\n[[timeline]]\naction = 'byzantine'\n"
     "node = 1\nbehaviour = 'twins'\n", "'node1-twin': no earlier step gives node1 a twin"),
    (PBFT + "expect = 'maybe'\n", "expect: 'maybe' is not one of pass, fail"),
    (PBFT + "expect_failed_checks = ['certificates']\n", "expect_failed_checks: goes with expect"),
    (PBFT + "expect = 'fail'\nexpect_failed_checks = ['nope']\n", "expect_failed_checks\\[0\\]: 'nope'"),
])
def test_bad_byzantine_steps_are_refused_naming_the_key(text: str, message: str) -> None:
    # top-level keys must come before the tables: move an `expect...` line to the front
    lines = text.strip().splitlines()
    top = [line for line in lines if line.startswith("expect")]
    with pytest.raises(ManifestError, match=message):
        parse_manifest("\n".join(top + [line for line in lines if line not in top]))


def test_an_expected_failure_is_judged_by_the_named_checks() -> None:
    from testnet.runner import Run

    scenario = parse_manifest('expect = "fail"\nexpect_failed_checks = ["certificates"]\n' + PBFT)
    run = Run(scenario=scenario, seed=1, down={"ok": True})
    run.checks = {"rpc": {"checks": [{"name": "certificates", "ok": False, "detail": "height 3: ..."},
                                     {"name": "convergence", "ok": True, "detail": ""}]}}
    assert run.as_expected() and not run.ok() and run.failed_checks() == {"certificates": "[rpc] height 3: ..."}
    run.checks["rpc"]["checks"][0]["ok"] = True
    assert not run.as_expected()  # it passed: not the demonstration it claims to be
    run.checks["rpc"]["checks"][0]["ok"], run.down = False, {"ok": False}
    assert not run.as_expected()  # a process left behind is never as expected


def test_lock_clients_sign_with_load_accounts_in_order_of_appearance() -> None:
    steps = plan(load_manifest(SCENARIOS / "raft-lock-pause.toml"), 1)
    clients = [(s.spec["client"], s.spec["account"], s.spec["op"]) for s in steps if s.spec.get("action") == "lock"]
    assert clients == [("a", 0, "acquire"), ("a", 0, "put"), ("b", 1, "acquire"), ("b", 1, "put"), ("a", 0, "put"),
                       ("b", 1, "release")]
