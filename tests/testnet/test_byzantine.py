"""Byzantine nodes in a testnet without processes (testnet/byzantine.py, the nemesis action, `testnet byzantine`'s
errors, what testnet.json remembers) and the certificate oracle's inputs (testnet/checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.block import BlockHeader
from consensus.registry import spec_named
from consensus.spec import FinalityProof
from testnet.byzantine import behaviours, check_behaviour
from testnet.checks import (
    ChainSnapshot,
    certificate_heights,
    certificates_of_headers,
    check_certificates,
    tolerated_faults,
)
from testnet.state import NodeRecord, Testnet, TestnetError, load_testnet, save_testnet
from tests.testnet.clitools import run, stopped_testnet


def make(tmp_path: Path, consensus: str = "pbft", count: int = 4) -> Testnet:
    return stopped_testnet(tmp_path, consensus=consensus, count=count)


def test_behaviours_come_from_the_engine_spec() -> None:
    assert behaviours("pbft") == (*spec_named("pbft").byzantine_behaviours, "twins", "honest")
    assert behaviours("raft") == ()
    with pytest.raises(TestnetError, match=r"^raft has no Byzantine behaviours \(engines that have: pbft\)$"):
        check_behaviour("raft", "equivocate")
    with pytest.raises(TestnetError, match=r"unknown behaviour 'lie' for pbft \(known: equivocate, .*twins, honest\)"):
        check_behaviour("pbft", "lie")


@pytest.mark.parametrize(("consensus", "node", "behaviour", "message"), [
    ("pow", "node0", "equivocate", "pow has no Byzantine behaviours (engines that have: pbft)"),
    ("pbft", "node0", "lie", "unknown behaviour 'lie' for pbft (known: equivocate, silent"),
    ("pbft", "node1", "equivocate", "node1 is not running (it is stopped); start it first"),
    ("pbft", "node9", "flood", "no node 'node9' in this testnet"),
])
def test_byzantine_refuses_in_one_line(tmp_path: Path, consensus: str, node: str, behaviour: str,
                                       message: str) -> None:
    make(tmp_path, consensus)
    code, stdout, stderr = run("byzantine", node, "--behaviour", behaviour, "--dir", str(tmp_path))
    lines = stderr.strip().splitlines()
    assert code == 1 and stdout == "" and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not load_testnet(tmp_path).byzantine()


def test_a_paused_node_is_to_be_resumed_first(tmp_path: Path) -> None:
    """`testnet byzantine` on a paused node said 'start it first', and `testnet start` refuses a paused node."""
    import subprocess
    import sys

    testnet = make(tmp_path)
    # A live process whose command line names the node's data directory stands for the frozen node.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", testnet.nodes[2].datadir])
    try:
        testnet.nodes[2].state, testnet.nodes[2].pid = "paused", stand_in.pid
        save_testnet(testnet)
        code, _, stderr = run("byzantine", "node2", "--behaviour", "silent", "--dir", str(tmp_path))
        assert code == 1 and "node2 is not running (it is paused); resume it first" in stderr
        # `honest` on a paused liar cleared the record without telling the node: resumed, it went on equivocating
        # while `testnet check` judged it as honest.
        testnet.nodes[2].byzantine = "equivocate"
        save_testnet(testnet)
        code, _, stderr = run("byzantine", "node2", "--behaviour", "honest", "--dir", str(tmp_path))
        assert code == 1 and "node2 is paused with behaviour equivocate; resume it first" in stderr
        assert load_testnet(tmp_path).nodes[2].byzantine == "equivocate"
    finally:
        stand_in.kill()
        stand_in.wait()


def test_honest_on_a_stopped_node_clears_what_it_would_start_with(tmp_path: Path) -> None:
    testnet = make(tmp_path)
    testnet.nodes[2].byzantine = "flood"
    save_testnet(testnet)
    code, _, stderr = run("byzantine", "node2", "--behaviour", "honest", "--dir", str(tmp_path))
    assert code == 0, stderr
    assert load_testnet(tmp_path).byzantine() == {}


@pytest.mark.parametrize(("was", "noted"), [("bad-signatures", True), ("flood", False)])
def test_honest_after_bad_signatures_says_the_peers_still_ban_it(tmp_path: Path, was: str, noted: bool) -> None:
    """Switched back to honest after bad-signatures, a validator stayed at 0 peers for ten minutes (its peers ban
    a forged signature for the P2P ban time) while the command said nothing: the user took it for a hang."""
    testnet = make(tmp_path)
    testnet.nodes[1].byzantine = was
    save_testnet(testnet)
    code, stdout, stderr = run("byzantine", "node1", "--behaviour", "honest", "--dir", str(tmp_path))
    assert code == 0, stderr
    assert f'"was": "{was}"' in stdout
    assert ("note  node1's peers banned it for its bad-signatures (for 600 s)" in stderr) is noted
    assert spec_named("pbft").byzantine_banned == ("bad-signatures",)


def test_the_record_says_who_is_byzantine_and_why(tmp_path: Path) -> None:
    testnet = make(tmp_path)
    testnet.nodes[0].byzantine = "equivocate"
    testnet.nodes.append(NodeRecord(index=4, name="node1-twin", datadir="d", log="l", admin_token="t",
                                    twin_of="node1", byzantine="twins"))
    save_testnet(testnet)
    loaded = load_testnet(tmp_path)
    assert loaded.byzantine() == {"node0": "behaviour equivocate", "node1": "has a twin (node1-twin)",
                                  "node1-twin": "twin of node1"}
    code, _, stderr = run("byzantine", "node1-twin", "--behaviour", "flood", "--dir", str(tmp_path))
    assert code == 1 and "node1-twin is a twin of node1" in stderr


def test_tolerated_faults_follow_the_engines_quorum(tmp_path: Path) -> None:
    from chain.genesis import Genesis

    for count, f in ((4, 1), (7, 2), (3, 0)):
        genesis = Genesis(chain_id="c", consensus="pbft", params={}, balances={},
                          validators={bytes([i]) * 20: 1 for i in range(count)}, finality_threshold=1)
        assert tolerated_faults(genesis, spec_named("pbft")) == f


# -- the certificate oracle's inputs ---------------------------------------------------------------------------


def header(height: int, parent: bytes) -> BlockHeader:
    return BlockHeader(version=1, height=height, parent=parent, timestamp_ms=height, tx_root=bytes(32),
                       state_root=bytes(32), proposer=bytes(20), seal=b"")


def test_certificate_heights_are_bounded_but_keep_every_disagreement() -> None:
    agreed = {h: f"{h:064x}" for h in range(1001)}
    forked = {**agreed, 5: "f" * 64}
    snapshots = [ChainSnapshot(node="a", height=1000, head="", final_height=1000, hashes=agreed),
                 ChainSnapshot(node="b", height=990, head="", final_height=990, hashes=forked)]
    assert certificate_heights(snapshots, window=10) == {5, *range(981, 1001)}


def test_a_planted_conflict_fails_and_names_both_certificates_and_the_double_signers() -> None:
    v = [bytes([i]) * 20 for i in range(4)]
    names = {v[0]: "node0+node0-twin", v[1]: "node1+node1-twin", v[2]: "node2", v[3]: "node3"}
    block_a, block_b = b"\xaa" * 32, b"\xbb" * 32

    def describe_for(signers: tuple[bytes, ...]):  # type: ignore[no-untyped-def]
        def describe(child: BlockHeader) -> FinalityProof:
            return FinalityProof(height=child.height - 1, block_hash=child.parent, view=0, signers=signers)
        return describe

    # node2's child of height 3 certifies block_a at 2 (signed by 0, 1, 2); node3's certifies block_b (0, 1, 3)
    side_a = certificates_of_headers({3: header(3, block_a)}, 2, {2}, describe_for((v[0], v[1], v[2])))
    side_b = certificates_of_headers({3: header(3, block_b)}, 2, {2}, describe_for((v[0], v[1], v[3])))
    assert certificates_of_headers({3: header(3, block_a)}, 1, {2}, describe_for(())) == []  # not final yet
    result = check_certificates({"node2": side_a, "node3": side_b}, f=1, names=names)
    assert not result.ok
    assert "height 2: node2 committed aaaaaaaaaaaaaaaa" in result.detail
    assert "node3 committed bbbbbbbbbbbbbbbb" in result.detail
    assert "2 validators signed both (node0+node0-twin" in result.detail and "more than f = 1" in result.detail
    assert check_certificates({"node2": side_a, "node3": side_a}, f=1, names=names).ok


def test_more_byzantine_validators_than_f_are_said_so(tmp_path: Path) -> None:
    """`testnet check` on 7 validators with 3 silent ones (f = 2) passed without a word that the network was
    beyond its fault model; a twin pair is one Byzantine validator."""
    from chain.genesis import Genesis
    from testnet.audit import beyond_tolerance

    genesis = Genesis(chain_id="c", consensus="pbft", params={}, balances={},
                      validators={bytes([i]) * 20: 1 for i in range(7)}, finality_threshold=1)
    testnet = make(tmp_path, count=7)
    testnet.nodes[0].byzantine = "equivocate"
    testnet.nodes.append(NodeRecord(index=7, name="node1-twin", datadir="d", log="l", admin_token="t",
                                    twin_of="node1", byzantine="twins"))
    assert beyond_tolerance(testnet, genesis, testnet.byzantine()) is None  # node0, and node1 with its twin: 2
    testnet.nodes[2].byzantine = "silent"
    assert beyond_tolerance(testnet, genesis, testnet.byzantine()) == {"byzantine": 3, "f": 2, "validators": 7}
    assert beyond_tolerance(testnet, genesis, {}) is None
    # Two validators (f = 0): one silent stalls them, though two quorums of 2 still share an honest one.
    pair = Genesis(chain_id="c", consensus="pbft", params={}, balances={},
                   validators={bytes([i]) * 20: 1 for i in range(2)}, finality_threshold=1)
    (tmp_path / "two").mkdir()
    two = make(tmp_path / "two", count=2)
    two.nodes[0].byzantine = "silent"
    assert beyond_tolerance(two, pair, two.byzantine()) == {"byzantine": 1, "f": 0, "validators": 2}


def test_check_prints_the_beyond_f_warning(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.testnet import _print_excluded

    _print_excluded({"node0": "behaviour silent", "node1": "behaviour flood"},
                    {"byzantine": 2, "f": 1, "validators": 4})
    output = capsys.readouterr().out
    assert "not judged, Byzantine: node0 (behaviour silent); node1 (behaviour flood)" in output
    assert "2 of 4 validators are Byzantine, more than f = 1" in output


def test_a_node_made_byzantine_over_the_admin_api_is_not_judged(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`chainlab node admin byzantine --value equivocate` (or curl) bypasses testnet.json: `testnet check` then
    judged the equivocating node as honest, while `testnet status` showed it as byz:equivocate."""
    import testnet.audit as audit

    testnet = make(tmp_path)
    for record in testnet.nodes:
        record.state, record.pid, record.rpc_url = "running", 1, f"http://{record.name}"
    testnet.nodes[3].byzantine = "flood"  # known from the record: not asked again
    reports = {"http://node0": {"engine": {"byzantine": "equivocate"}}, "http://node1": {"engine": {"byzantine": None}},
               "http://node2": {"height": 3}}
    asked: list[str] = []

    class FakeClient:
        def __init__(self, url: str, **_: object) -> None:
            self.url = url

        def status(self) -> dict[str, object]:
            asked.append(self.url)
            return reports[self.url]

    monkeypatch.setattr(audit, "RpcClient", FakeClient)
    monkeypatch.setattr(audit, "node_up", lambda record: True)
    found = audit.reported_byzantine(testnet, testnet.byzantine())
    assert found == {"node0": "behaviour equivocate, reported by the node itself: set outside `testnet byzantine`"}
    assert sorted(asked) == ["http://node0", "http://node1", "http://node2"]
    testnet.consensus = "raft"  # no behaviours: nobody is asked
    assert audit.reported_byzantine(testnet, {}) == {} and len(asked) == 3


def test_liveness_owes_progress_only_to_a_quorum_of_honest_validators(tmp_path: Path) -> None:
    """One silent validator and one killed of four: `testnet check` failed liveness ('quorum connected for
    38.6 s'), counting the silent liar towards the quorum of 3 that PBFT never promised to make progress with."""
    from chain import crypto
    from chain.genesis import Genesis
    from testnet.audit import quorum_predicate
    from tests.conftest import key

    testnet = make(tmp_path)
    for i, record in enumerate(testnet.nodes):
        record.address = crypto.address_to_text(key(i + 1).address)
    genesis = Genesis(chain_id="c", consensus="pbft", params={}, balances={},
                      validators={key(i + 1).address: 1 for i in range(4)}, finality_threshold=1)
    has_quorum = quorum_predicate(testnet, genesis)
    three = {"running": ["node0", "node2", "node3"], "blocked": {}}
    assert has_quorum(three)
    assert not has_quorum({**three, "byzantine": {"node0": "behaviour silent"}})
    assert has_quorum({"running": ["node0", "node1", "node2", "node3"], "byzantine": {"node0": "behaviour silent"}})
