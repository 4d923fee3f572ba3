"""On-demand mining in the node core (regtest's generatetoaddress): a template on the tip paying any address,
solved, then imported through the same path as a worker's block; refused by engines that do not seal with
work."""

from __future__ import annotations

import asyncio

import pytest

from chain.errors import RejectError
from node.core import NodeCore
from node.mining import grind_range, solve_puzzle
from storage.memory import MemoryStore
from tests.chain.helpers import genesis
from tests.conftest import key
from tests.node.test_core import NOW_MS, RecordingStore, backup_core


def _pow_core() -> NodeCore:
    core = NodeCore.over_store(name="n", genesis=genesis(), store=MemoryStore(), key=key(1), mining=False)
    core.start(now=0.0, now_ms=NOW_MS)
    return core


def test_a_block_on_demand_connects_pays_the_address_and_goes_to_peers() -> None:
    core = _pow_core()
    for expected_height in (1, 2, 3):
        job = core.demand_job(key(50).address, now_ms=NOW_MS)  # the same clock: timestamps still increase
        nonce, _ = grind_range(job.puzzle.prefix, job.puzzle.target, 0, 1 << 24, 1)
        assert nonce is not None
        block, out = core.mined_on_demand(job, nonce, now=1.0, now_ms=NOW_MS)
        assert core.tree.tip.hash == block.hash and block.height == expected_height
        assert block.header.proposer == key(50).address
        assert out.announce_blocks == [block] and any(e["type"] == "block" for e in out.events)
    account = core.tree.state.get(key(50).address)
    assert account is not None and account.balance == 3 * genesis().block_reward


def test_a_bad_nonce_is_rejected_by_the_normal_validation() -> None:
    core = _pow_core()
    job = core.demand_job(key(50).address, now_ms=NOW_MS)
    bad = next(n for n in range(1 << 20) if grind_range(job.puzzle.prefix, job.puzzle.target, n, n + 1, 1)[0] is None)
    _, out = core.mined_on_demand(job, bad, now=1.0, now_ms=NOW_MS)
    assert core.tree.height == 0 and not out.announce_blocks
    assert any("rejected" in note for note in out.notes)


def test_engines_without_work_refuse_with_a_typed_error() -> None:
    core = backup_core(RecordingStore())
    with pytest.raises(RejectError) as caught:
        core.demand_job(key(50).address, now_ms=NOW_MS)
    assert caught.value.code == "mining-unsupported"


def test_solve_puzzle_stops_when_no_longer_wanted() -> None:
    impossible_target = 0
    assert asyncio.run(solve_puzzle(bytes(64), impossible_target, lambda: False)) is None
    calls = iter([True, True, False])
    assert asyncio.run(solve_puzzle(bytes(64), impossible_target, lambda: next(calls), chunk=16)) is None
