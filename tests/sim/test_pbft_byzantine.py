"""Byzantine PBFT validators in the simulator: with f of 3f+1 lying in any of the documented ways (one each, or a
mix drawn by the seed) the honest nodes stay safe and keep committing; with f twins the network stays safe, with
f+1 twins both sides of the split commit, and the oracle names the two certificates and the validators that
signed both. The behaviours are each shown to do what they claim (the honest nodes see their lies)."""

from __future__ import annotations

from typing import Any

import pytest

from consensus.pbft.byzantine import BEHAVIOURS
from testnet.sim.config import ConfigError, SimConfig, parse_faults
from testnet.sim.simulator import Simulator
from tests.sim.helpers import node_core_factory


def run(byzantine: str = "", *, nodes: int = 4, twins: int = 0, seed: int = 7, faults: str = "none",
        duration_s: float = 60.0) -> tuple[Any, Simulator]:
    config = SimConfig(seed=seed, consensus="pbft", nodes=nodes, duration_s=duration_s, block_interval_s=2.0,
                       faults=parse_faults(faults), tx_rate_per_s=0.5, byzantine=byzantine, twins=twins)
    sim = Simulator(config, node_core_factory)
    return sim.run(), sim


def engine_status(sim: Simulator, index: int) -> dict[str, Any]:
    core = sim.nodes[index].core
    assert core is not None
    return dict(core.engine.status(now=0.0).to_json())


def honest_rejections(sim: Simulator, code: str) -> int:
    return sum(engine_status(sim, i)["rejected"].get(code, 0) for i in range(sim.config.nodes)
               if i not in sim.faulty)


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
def test_f_byzantine_validators_cannot_stop_or_fork_the_honest_ones(behaviour: str) -> None:
    # Node 0 is the primary of view 0 (in address order of the simulator's keys): it lies from the first block.
    result, sim = run(f"0:{behaviour}")
    assert result.ok, [c for c in result.checks if not c.ok]
    assert sim.faulty == {0}
    assert engine_status(sim, 0)["byzantine"] == behaviour
    finals = result.stats["final_heights"]
    assert set(finals) == {"node1", "node2", "node3"} and min(finals.values()) >= 15
    assert any(c.name == "certificates" and c.ok for c in result.checks)


def test_each_behaviour_is_seen_by_the_honest_nodes() -> None:
    """The lies reach the honest nodes and are refused or survived: not a behaviour that does nothing."""
    _, sim = run("0:equivocate")
    assert all(engine_status(sim, i)["view"] >= 1 for i in (1, 2, 3))  # the equivocating primary was replaced
    _, sim = run("0:silent")
    assert all(engine_status(sim, i)["view"] >= 1 for i in (1, 2, 3))
    _, sim = run("1:bad-signatures")
    assert honest_rejections(sim, "bad-signature") > 10
    _, sim = run("1:flood")
    assert sim.stats["delivered"] > run("")[1].stats["delivered"] * 2  # the flood is on the wire


def test_a_mix_of_f_liars_among_seven_keeps_committing() -> None:
    result, _ = run("0:equivocate,3:stale-view-change", nodes=7, faults="crash,loss")
    assert result.ok, [c for c in result.checks if not c.ok]


def test_the_seed_draws_the_liars() -> None:
    result, sim = run("random", nodes=7, seed=11)
    assert 1 <= len(sim.byzantine) <= 2 and set(sim.byzantine.values()) <= set(BEHAVIOURS)
    assert result.ok, [c for c in result.checks if not c.ok]
    assert run("random", nodes=7, seed=11)[1].byzantine == sim.byzantine


def test_f_twins_are_safe_and_f_plus_one_twins_break_safety_visibly() -> None:
    safe, sim = run(twins=1)
    assert safe.ok, [c for c in safe.checks if not c.ok]
    assert sim.faulty == {0, 4}
    broken, _ = run(twins=2)
    failed = broken.failed_checks()
    assert "final-prefix-agreement" in failed and "certificates" in failed
    detail = next(c.detail for c in broken.checks if c.name == "certificates")
    assert "validators signed both (node0" in detail and "node1" in detail and "more than f = 1" in detail
    assert broken.first_violation is not None


def test_byzantine_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="no Byzantine behaviours"):
        SimConfig(seed=1, consensus="raft", byzantine="random")
    with pytest.raises(ConfigError, match="unknown behaviour"):
        SimConfig(seed=1, consensus="pbft", nodes=4, byzantine="1:lie")
    with pytest.raises(ConfigError, match="NODE:BEHAVIOUR"):
        SimConfig(seed=1, consensus="pbft", nodes=4, byzantine="9:silent")
    with pytest.raises(ConfigError, match="twins"):
        SimConfig(seed=1, consensus="pbft", nodes=4, twins=4)
    config = SimConfig(seed=1, consensus="pbft", nodes=4, byzantine="1:flood", twins=1)
    assert "--byzantine 1:flood --twins 1" in config.command()


def test_a_lie_relayed_by_an_honest_node_is_blamed_on_its_author() -> None:
    """An honest node relays what is not addressed to it (or not of its view) unchecked; when the addressee
    refuses it, the fault is the author's (chain.errors.RelayedRejectError): no honest relayer is punished."""
    result, sim = run("0:equivocate", nodes=7, faults="partition")
    assert result.ok, [c for c in result.checks if not c.ok]
    relayed = [p for node in sim.nodes for p in node.stats.punishments if "relayed by" in p]
    assert all(p.split(" <- ", 1)[1].startswith("node0:") for p in relayed)


def test_an_honest_node_that_accepts_a_bad_signature_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted bug: the engine skips the signature check of the statements it receives. The Byzantine validator's
    broken commits then end up in commit certificates that the next block's seal carries, which every other node's
    header check refuses: the run fails (the honest nodes stall and punish each other), where the real engine
    passes the same run."""
    from chain import crypto
    from chain.errors import RejectError
    from consensus.pbft import engine

    assert run("1:bad-signatures")[0].ok

    def careless(statement: Any, validators: Any, genesis_hash: bytes) -> bytes:
        address = crypto.address_of(statement.signer)
        if address not in validators:
            raise RejectError("not-a-validator", "not a validator")
        return address  # the bug: no signature check

    monkeypatch.setattr(engine, "check_statement", careless)
    result, _ = run("1:bad-signatures")
    assert not result.ok and {"liveness", "no-misbehaviour"} & set(result.failed_checks())


def test_the_cli_says_when_the_byzantine_validators_are_beyond_f_or_none_were_drawn() -> None:
    """`sim --byzantine random` on 3 validators (f = 0) drew nobody without a word, and `--byzantine
    0:silent,1:flood` on 4 (f = 1) passed as if PBFT had been tested within its fault model."""
    from click.testing import CliRunner

    from cli.main import main

    def sim(*args: str) -> str:
        result = CliRunner().invoke(main, ["sim", "--consensus", "pbft", "--faults", "none", "--duration", "10",
                                           "--block-interval", "2", "--seed", "5", *args])
        assert "Traceback" not in result.output
        return result.output

    assert "2 of 4 validators are Byzantine, more than f = 1" in sim("--nodes", "4", "--byzantine", "0:silent,1:flood")
    assert "drew no Byzantine validator: f = 0 with 3 validators" in sim("--nodes", "3", "--byzantine", "random")
    assert "drew no Byzantine validator: the 1 twin(s) use up f = 1" in sim("--nodes", "4", "--twins", "1",
                                                                            "--byzantine", "random")
    quiet = sim("--nodes", "4", "--byzantine", "0:silent")
    assert "note:" not in quiet and "result: OK" in quiet
