"""Block tree under engine-driven finality and fork choice: commit by hash adopts the committed chain, a commit
that conflicts with a final block raises the safety alarm, engine fork choice moves only when told, and
validate-before-connect judges a block on its parent without connecting it."""

from __future__ import annotations

from chain.block import Block, make_block
from chain.blocktree import BlockTree, ForkChoice
from chain.chainstore import ChainStore
from chain.errors import RejectError
from chain.genesis import Genesis
from chain.state import State
from storage.memory import MemoryStore
from tests.chain.helpers import WorkSealPolicy, genesis, sealed_block, transfer

NOW_MS = 10**13


def tree_of(g: Genesis, fork_choice: ForkChoice = ForkChoice.MOST_WORK) -> BlockTree:
    policy = WorkSealPolicy(confirmation_finality=False, fork_choice=fork_choice)
    return BlockTree(ChainStore(MemoryStore()), g, policy)  # type: ignore[arg-type]


def branch(g: Genesis, length: int, *, work: int = 1, start: tuple[Block, State] | None = None,
           salt: int = 0) -> list[tuple[Block, State]]:
    block, state = start or (g.block(), g.initial_state())
    out = []
    for _ in range(length):
        block, state = sealed_block(state, block, [], work=work, timestamp_ms=block.header.timestamp_ms + 1000 + salt)
        out.append((block, state))
    return out


def test_commit_adopts_a_lighter_branch_and_makes_it_final() -> None:
    g = genesis()
    tree = tree_of(g)
    heavy = branch(g, 3, work=5)
    light = branch(g, 2, work=1, salt=7)
    for block, _ in heavy + light:
        tree.add_block(block, now_ms=NOW_MS)
    assert tree.tip.hash == heavy[-1][0].hash and tree.final_height == 0  # no confirmation finality
    result = tree.commit(light[-1][0].hash)
    assert result.status == "committed"
    assert [b.hash for b in result.connected] == [b.hash for b, _ in light]
    assert len(result.disconnected) == 3
    assert tree.tip.hash == light[-1][0].hash and tree.final_height == 2
    assert tree.store.final_height() == 2  # stored durably
    # The heavier branch forks below the final block now: it can never win again.
    block, _ = sealed_block(heavy[-1][1], heavy[-1][0], [], work=50)
    try:
        tree.add_block(block, now_ms=NOW_MS)
    except RejectError as error:
        assert error.code in ("fork-below-final", "bad-prevblk")
    assert tree.tip.hash == light[-1][0].hash


def test_a_commit_conflicting_with_a_final_block_raises_the_alarm() -> None:
    g = genesis()
    tree = tree_of(g)
    ours = branch(g, 2)
    theirs = branch(g, 2, salt=3)
    for block, _ in ours + theirs:
        tree.add_block(block, now_ms=NOW_MS)
    assert tree.commit(ours[0][0].hash).status == "committed"
    # Their branch forks below the final block: pruned, so a commit of it finds nothing here...
    assert tree.commit(theirs[-1][0].hash).status == "unknown"
    # ...and when the node learns that a commit names a block the final chain excludes, that is the alarm.
    alarms_before = tree.safety_alarms
    alarm = tree.alarm_conflicting_commit(theirs[-1][0].hash, theirs[-1][0].height)
    assert tree.safety_alarms == alarms_before + 1 and alarm.candidate_tip == theirs[-1][0].hash
    assert tree.final_height == 1 and tree.hash_at(1) == ours[0][0].hash
    # A committed block on the final chain below the final height is simply final already.
    assert tree.commit(ours[0][0].hash).status == "committed"


def test_commit_of_an_unknown_block_says_so() -> None:
    g = genesis()
    tree = tree_of(g)
    assert tree.commit(bytes(32)).status == "unknown"
    assert tree.set_head(bytes(32)).status == "unknown"


def test_engine_fork_choice_moves_only_when_told() -> None:
    g = genesis()
    tree = tree_of(g, ForkChoice.ENGINE)
    blocks = branch(g, 3)
    for block, _ in blocks:
        result = tree.add_block(block, now_ms=NOW_MS)
        assert result.status == "stored" and result.stored == [block.hash]
    assert tree.height == 0  # nothing connects by itself
    moved = tree.set_head(blocks[1][0].hash)
    assert moved.status == "connected" and tree.tip.hash == blocks[1][0].hash and tree.final_height == 0
    other = branch(g, 1, salt=9)[0][0]
    tree.add_block(other, now_ms=NOW_MS)
    assert tree.set_head(other.hash).status == "connected"  # the leader's log wins: a reorg, nothing final yet
    assert tree.tip.hash == other.hash
    assert tree.commit(other.hash).status == "committed"
    assert tree.set_head(blocks[2][0].hash).status == "unknown"  # forked below the final height: pruned
    assert tree.tip.hash == other.hash


def test_validate_before_connect_gives_the_verdict_without_connecting() -> None:
    g = genesis()
    tree = tree_of(g, ForkChoice.ENGINE)
    (first, state), = branch(g, 1)
    tree.add_block(first, now_ms=NOW_MS)
    assert tree.validate(first.hash) is None and tree.height == 0
    good, _ = sealed_block(state, first, [transfer(0, 1, 10, 1, 0)])
    tree.add_block(good, now_ms=NOW_MS)
    assert tree.validate(good.hash) is None and tree.height == 0  # the stored parent applied in memory
    # A block whose header commits to a wrong state: stored (cheap checks pass), refused on validation.
    lying = make_block(parent=first.header, height=2, timestamp_ms=first.header.timestamp_ms + 2000,
                       txs=[transfer(0, 1, 10, 1, 0)], state_root=bytes(32), proposer=first.header.proposer,
                       seal=(1).to_bytes(2, "big"))
    tree.add_block(lying, now_ms=NOW_MS)
    error = tree.validate(lying.hash)
    assert error is not None and error.code == "bad-state-commitment"
    assert tree.validate(bytes(32)) is not None and tree.validate(bytes(32)).code == "not-ready"  # type: ignore[union-attr]
    elsewhere = branch(g, 1, salt=5)[0][0]
    tree.add_block(elsewhere, now_ms=NOW_MS)
    tree.set_head(first.hash)
    tree.commit(first.hash)
    assert tree.validate(good.hash) is None  # now its parent is the tip
