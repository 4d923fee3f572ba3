"""PoW engine: presence heartbeats, failure detector, share estimation and the partition handler."""

from __future__ import annotations

import math
from random import Random

import pytest

from chain.blocktree import BlockTree
from chain.chainstore import ChainStore
from chain.errors import RejectError
from chain.genesis import Genesis
from consensus.engine import EngineContext, EngineMessage, MemoryEngineState
from consensus.pow.engine import PowEngine
from consensus.pow.partition import Inputs, MiningState, next_state
from consensus.pow.presence import KIND, encode_presence
from consensus.pow.shares import estimate_shares, minority_finality_risk, partition_risk_warning
from storage.memory import MemoryStore
from tests.conftest import key

A, B, C, D = key(10), key(11), key(12), key(13)


def genesis(weights: dict[int, int], **params: object) -> Genesis:
    base = {"heartbeat_interval_s": 1.0, "heartbeat_timeout_multiple": 3.0, "partition_hysteresis": 0.1}
    base.update(params)
    return Genesis(chain_id="pow-test", consensus="pow", params=base,
                   validators={key(i).address: w for i, w in weights.items()})


def pow_engine(g: Genesis, miner=A) -> PowEngine:  # type: ignore[no-untyped-def]
    return PowEngine(EngineContext(genesis=g, key=miner, rng=Random(1)))


def engine_for(g: Genesis, miner=A) -> tuple[PowEngine, BlockTree]:  # type: ignore[no-untyped-def]
    tree = BlockTree(ChainStore(MemoryStore()), g, pow_engine(g, None).policy)
    engine = pow_engine(g, miner)
    engine.start(tree, MemoryEngineState(), now=0.0, now_ms=1_000)
    return engine, tree


def heartbeat(seq: int) -> EngineMessage:
    """A heartbeat body (the envelope, tested in test_envelope.py, names and authenticates its miner)."""
    return EngineMessage(kind=KIND, payload=encode_presence(seq))


def test_minority_pauses_until_it_hears_the_majority() -> None:
    g = genesis({10: 1, 11: 1, 12: 1})
    engine, _ = engine_for(g)
    ready = engine.ready()
    assert ready.proposing is not None and not ready.proposing.active  # alone: 1/3 of the hash power
    assert "partition" in ready.proposing.reason
    assert any(m.message.kind == KIND and m.to is None for m in ready.messages)  # our own heartbeat went out
    engine.on_message(B.address, heartbeat(1), now=0.5, now_ms=1_500)
    assert engine.reachable_share(0.5) == pytest.approx(2 / 3)
    ready = engine.ready()
    assert ready.proposing is not None and ready.proposing.active and ready.propose is not None
    assert ready.propose.proposer == A.address
    # B goes silent: after the timeout (3 x 1 s) A is a minority again.
    engine.tick(now=3.6, now_ms=4_600)
    decision = engine.ready().proposing
    assert decision is not None and not decision.active
    assert engine.status(now=3.6).to_json()["paused_by_partition"] is True


def test_two_exact_halves_both_pause() -> None:
    g = genesis({10: 1, 11: 1})
    engine_a, _ = engine_for(g, A)
    engine_b, _ = engine_for(g, B)
    for engine in (engine_a, engine_b):
        engine.ready()
        assert engine.reachable_share(0.0) == pytest.approx(0.5)
        assert engine.status(now=0.0).to_json()["mining"] is False


def test_hysteresis_on_resume() -> None:
    g = genesis({10: 45, 11: 10, 12: 45}, partition_hysteresis=0.1)
    engine, _ = engine_for(g)
    engine.ready()
    engine.on_message(B.address, heartbeat(1), now=0.1, now_ms=1_100)
    share = engine.reachable_share(0.1)
    assert share == pytest.approx(0.55)  # above 0.5 but below 0.5 + 0.1: stays paused
    assert engine.status(now=0.1).to_json()["mining"] is False
    engine.on_message(C.address, heartbeat(1), now=0.2, now_ms=1_200)
    assert engine.status(now=0.2).to_json()["mining"] is True


def test_bad_heartbeats_are_rejected() -> None:
    g = genesis({10: 1, 11: 1})
    engine, _ = engine_for(g)
    with pytest.raises(RejectError):
        engine.on_message(B.address, EngineMessage(kind=KIND, payload=b"\x00garbage"), now=0.1, now_ms=1)
    with pytest.raises(RejectError) as info:
        engine.on_message(B.address, EngineMessage(kind="pb/ack", payload=b""), now=0.1, now_ms=1)
    assert info.value.code == "unknown-engine-message"
    engine.on_message(A.address, heartbeat(5), now=0.1, now_ms=1)  # our own, come back around: ignored
    assert A.address not in engine.handler.detector.known()


def test_transition_table_orders_its_reasons() -> None:
    def decide(**changes: object) -> MiningState:
        inputs = {"has_key": True, "enabled": True, "share": 0.9, "partition_paused": False, "blocks_behind": 0}
        inputs.update(changes)
        return next_state(Inputs(**inputs), threshold=0.5, hysteresis=0.1).state  # type: ignore[arg-type]

    assert decide() is MiningState.MINING
    assert decide(has_key=False, share=0.1) is MiningState.NO_KEY
    assert decide(enabled=False, share=0.1) is MiningState.DISABLED
    assert decide(share=0.5) is MiningState.PAUSED_PARTITION  # strictly above
    assert decide(share=0.55, partition_paused=True) is MiningState.PAUSED_PARTITION  # hysteresis
    assert decide(share=0.6, partition_paused=True) is MiningState.MINING
    assert decide(blocks_behind=2) is MiningState.PAUSED_SYNCING
    assert decide(blocks_behind=2, share=0.1) is MiningState.PAUSED_PARTITION  # the partition is named first
    assert decide(awaiting_peers=True) is MiningState.PAUSED_STARTUP
    assert decide(awaiting_peers=True, share=0.1) is MiningState.PAUSED_STARTUP  # the start-up wait comes first
    assert decide(awaiting_peers=True, enabled=False) is MiningState.DISABLED


def test_share_estimate_mixes_blocks_and_declared_rates() -> None:
    a, b = A.address, B.address
    assert estimate_shares([], {}, prior_blocks=10) == {}
    assert estimate_shares([a, a, b, a], {}, prior_blocks=10) == {a: 0.75, b: 0.25}
    seeded = estimate_shares([], {a: 3, b: 1}, prior_blocks=10)
    assert seeded == {a: 0.75, b: 0.25}
    mixed = estimate_shares([b] * 10, {a: 1, b: 1}, prior_blocks=10)
    assert mixed[b] == pytest.approx(0.75) and mixed[a] == pytest.approx(0.25)
    many = [key(100 + i).address for i in range(20)]
    shares = estimate_shares(many[::-1] + many[:5], {m: 1 for m in many[3:9]}, prior_blocks=7)
    assert list(shares) == sorted(many)  # a fixed order, so float sums over it never depend on hash seeds


def test_single_miner_without_declarations_mines_at_once() -> None:
    g = Genesis(chain_id="solo", consensus="pow")
    engine, tree = engine_for(g)
    ready = engine.ready()
    assert ready.proposing is not None and ready.proposing.active
    assert ready.propose is not None and ready.propose.parent_hash == tree.tip.hash


def test_non_miner_never_mines_and_sends_no_heartbeat() -> None:
    g = genesis({10: 1})
    engine, _ = engine_for(g, None)
    ready = engine.ready()
    assert not ready.messages
    assert ready.proposing is not None and not ready.proposing.active


def test_admin_switch() -> None:
    g = Genesis(chain_id="solo", consensus="pow")
    engine, _ = engine_for(g)
    engine.ready()
    answer = engine.admin("mining", False, now=0.1)
    assert answer == {"mining_enabled": False, "mining": False, "reason": "mining disabled"}
    decision = engine.ready().proposing
    assert decision is not None and not decision.active and decision.reason == "mining disabled"
    engine.admin("mining", True, now=0.2)
    decision = engine.ready().proposing
    assert decision is not None and decision.active
    with pytest.raises(RejectError) as info:
        engine.admin("view-change", True, now=0.3)
    assert info.value.code == "unsupported"


def test_minority_finality_risk_is_the_poisson_tail() -> None:
    def tail(mean: float, k: int) -> float:  # 1 - P(N < k), fine at these sizes
        return 1 - sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k))

    assert minority_finality_risk(share=0.5, detection_window_s=4, block_interval_s=2, finality_threshold=6) == (
        pytest.approx(tail(1.0, 6), rel=1e-9))
    assert minority_finality_risk(share=0.4, detection_window_s=4, block_interval_s=10, finality_threshold=6) == (
        pytest.approx(tail(0.16, 6), rel=1e-6))
    assert minority_finality_risk(share=0.4, detection_window_s=4, block_interval_s=10, finality_threshold=6) < 1e-7
    assert minority_finality_risk(share=0.5, detection_window_s=0, block_interval_s=2, finality_threshold=1) == 0.0
    assert minority_finality_risk(share=0.5, detection_window_s=1e6, block_interval_s=1, finality_threshold=6) == 1.0
    # far above the threshold the tail is 1, not an underflow to 0; huge arguments stay fast and bounded
    assert minority_finality_risk(share=1.0, detection_window_s=1100, block_interval_s=1, finality_threshold=100) == 1.0
    assert minority_finality_risk(share=0.5, detection_window_s=4, block_interval_s=0, finality_threshold=6) == 1.0
    assert minority_finality_risk(share=0.5, detection_window_s=4, block_interval_s=10,
                                  finality_threshold=2**64 - 1) == 0.0
    assert minority_finality_risk(share=1.0, detection_window_s=1e7, block_interval_s=1,
                                  finality_threshold=10**7) == pytest.approx(0.5, abs=1e-3)
    tiny = minority_finality_risk(share=0.5, detection_window_s=0.1, block_interval_s=10, finality_threshold=12)
    assert tiny == pytest.approx(0.005**12 * math.exp(-0.005) / math.factorial(12), rel=1e-3)  # no cancellation


def test_partition_risk_warning_and_status() -> None:
    fast = genesis({10: 1, 11: 1}, block_interval_s=2.0, heartbeat_interval_s=1.0, heartbeat_timeout_multiple=4.0)
    warning = partition_risk_warning(fast)
    assert warning is not None and "5.9e-04" in warning and "heartbeat_interval_s <= 0.313" in warning
    engine, _ = engine_for(fast)
    assert engine.status(now=0.0).to_json()["partition_finality_risk"] == 0.00059
    assert partition_risk_warning(Genesis(chain_id="solo", consensus="pow")) is None  # the defaults are safe
    unpaced = Genesis(chain_id="zero", consensus="pow", params={"block_interval_s": 0.0})
    assert "no pace" in (partition_risk_warning(unpaced) or "")
    assert pow_engine(unpaced, None).partition_finality_risk == 1.0  # a legal genesis: the engine still starts
    fast = Genesis(chain_id="fast", consensus="pow", params={"block_interval_s": 0.001})
    assert "heartbeat_interval_s <= 0.000156 or finality_threshold >= 2217" in (partition_risk_warning(fast) or "")
    assert partition_risk_warning(Genesis(chain_id="pb", consensus="primary-backup", validators={A.address: 1})) is None


def test_mining_pauses_while_the_peers_have_shown_a_longer_chain() -> None:
    g = Genesis(chain_id="solo", consensus="pow")
    engine, _ = engine_for(g)
    assert engine.ready().proposing.active  # type: ignore[union-attr]
    engine.on_sync_status(1, now=0.1)  # a block still propagating: keep mining
    assert engine.ready().proposing is None and engine.status(now=0.1).to_json()["mining"]
    engine.on_sync_status(3, now=0.2)
    decision = engine.ready().proposing
    assert decision is not None and not decision.active and decision.reason == "syncing: peers are 3 blocks ahead"
    engine.on_sync_status(0, now=0.3)  # caught up
    decision = engine.ready().proposing
    assert decision is not None and decision.active


def test_a_node_waiting_for_its_configured_peers_does_not_mine_until_told() -> None:
    g = Genesis(chain_id="solo", consensus="pow")
    engine = pow_engine(g)
    engine.on_bootstrap(True, now=0.0)  # before start: the first decision already waits
    tree = BlockTree(ChainStore(MemoryStore()), g, pow_engine(g, None).policy)
    engine.start(tree, MemoryEngineState(), now=0.0, now_ms=1_000)
    decision = engine.ready().proposing
    assert decision is not None and not decision.active and "configured peer" in decision.reason
    assert engine.status(now=0.1).to_json()["state"] == "paused-startup"
    engine.on_bootstrap(False, now=0.2)
    decision = engine.ready().proposing
    assert decision is not None and decision.active


def test_a_node_that_does_not_mine_logs_no_partition_pause() -> None:
    from consensus.pow.params import PowParams
    from consensus.pow.partition import PartitionHandler

    g = genesis({10: 1, 11: 1})
    handler = PartitionHandler(PowParams.of(g), g.validators, A.address)
    handler.shares = {B.address: 1.0}  # the only other miner, and no peer: reachable share 0
    handler.peers(0)
    for second in range(5):  # --no-mining: no "mining paused: reachable hash share 0.000", however long
        decision, note = handler.decide(now=float(second), has_key=True, enabled=False)
        assert decision.state is MiningState.DISABLED and note is None
    decision, note = handler.decide(now=6.0, has_key=True, enabled=True)  # switched on: the miner's decision
    assert decision.state is MiningState.PAUSED_PARTITION
    assert note is not None and note.startswith("mining paused: reachable hash share 0.000")


def test_the_partition_warning_concerns_mining_nodes_of_multi_miner_networks() -> None:
    from consensus.registry import spec_named

    spec = spec_named("pow")
    risky = {"block_interval_s": 2.0, "heartbeat_interval_s": 1.0}
    two = genesis({10: 1, 11: 1}, **risky)
    assert spec.warnings(two) and spec.start_warnings(two, A.address, True) == spec.warnings(two)
    assert spec.start_warnings(two, A.address, False) == []  # --no-mining: nothing to pause
    assert spec.start_warnings(two, C.address, True) == []  # not a miner of this network
    one = genesis({10: 1}, **risky)  # a one-node devnet: nothing to split
    assert spec.warnings(one) == [] and spec.start_warnings(one, A.address, True) == []


def test_a_relay_sends_no_heartbeat_but_a_declared_miner_with_mining_off_does() -> None:
    g = genesis({10: 1, 11: 1})
    tree = BlockTree(ChainStore(MemoryStore()), g, pow_engine(g, None).policy)
    relay = PowEngine(EngineContext(genesis=g, key=C, rng=Random(1), proposing_allowed=False))  # not declared
    relay.start(tree, MemoryEngineState(), now=0.0, now_ms=1_000)
    relay.tick(now=5.0, now_ms=6_000)
    assert not [m for m in relay.ready().messages if m.message.kind == KIND]
    declared = PowEngine(EngineContext(genesis=g, key=B, rng=Random(1), proposing_allowed=False))
    declared.start(tree, MemoryEngineState(), now=0.0, now_ms=1_000)
    assert [m for m in declared.ready().messages if m.message.kind == KIND]  # others count its share
