"""Raft's extensions through real node cores: CheckQuorum and PreVote (dissertation 9.6), ReadIndex (6.4), write
refusal, one-at-a-time membership changes (4.1) and leadership transfer (3.10)."""

from __future__ import annotations

import pytest

from chain.crypto import PrivateKey
from chain.errors import RejectError
from consensus.engine import EngineMessage
from consensus.raft.engine import Role
from consensus.raft.messages import APPEND_KIND, APPEND_RESP_KIND, READ_KIND, Append, AppendResponse, VoteRequest
from testnet.sim.raftnet import Packet, RaftNet
from tests.sim.helpers import node_core_factory


def test_a_key_that_was_never_a_member_cannot_take_followers_with_a_huge_term() -> None:
    """Any node key can sign an envelope; a stranger's append at term 2^64-1 must be refused with a code, not
    followed (the term would be spent for ever)."""
    net = RaftNet(3, node_core_factory)
    leader = net.elect()
    follower = next(n for n in net.names if n != leader)
    engine = net.engine(follower)
    term, chain = engine.term, net.cores[follower].tree
    stranger = PrivateKey.from_seed(b"raft-stranger").address
    append = Append(term=2**64 - 1, prev_index=0, prev_term=0, prev_hash=chain.hash_at(0) or b"", entries=(),
                    commit=0)
    with pytest.raises(RejectError) as refused:
        engine.on_message(stranger, EngineMessage(kind=APPEND_KIND, payload=append.encode()), now=net.now,
                          now_ms=net.now_ms)
    assert refused.value.code == "not-a-member"
    assert engine.term == term and engine.leader == net.address[leader]


# -- CheckQuorum and PreVote -------------------------------------------------------------------------------------


def test_an_isolated_leader_steps_down_within_about_the_election_timeout() -> None:
    net = RaftNet(3, node_core_factory)
    leader = net.elect()
    net.isolate(leader)
    isolated_at = net.now
    assert net.run(3.0, until=lambda: net.engine(leader).role is not Role.LEADER)
    assert net.now - isolated_at <= 2 * 1.0 + 0.05  # CheckQuorum rounds every T: at most two rounds


def test_an_isolated_follower_does_not_raise_its_term_nor_disrupt_the_leader_after_healing() -> None:
    net = RaftNet(3, node_core_factory)
    leader = net.elect()
    term = net.engine(leader).term
    follower = next(n for n in net.names if n != leader)
    net.isolate(follower)
    net.run(5.0)
    assert net.engine(follower).term == term  # pre-votes fail; the term stays
    net.recover()
    net.run(2.0)
    assert net.leader() == leader and net.engine(leader).term == term
    assert net.engine(follower).leader == net.address[leader]


def test_a_node_with_a_higher_term_and_a_stale_log_does_not_livelock_the_cluster() -> None:
    """Regression etcd#8243: a rejoining node whose term is higher but whose log is stale must make the leader
    step down (it learns the term from the reply to its append) and a leader must be elected within bounded
    time, though the others ignore its vote requests while their lease holds."""
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.2, block_interval_s=0.1)
    leader = net.elect()
    term = net.engine(leader).term
    stale = next(n for n in net.names if n != leader)
    other = next(n for n in net.names if n not in (leader, stale))
    net.isolate(stale)
    net.run(2.0)  # the others move on; the stale node's lease has long expired
    net.inject(other, stale, EngineMessage(kind="raft/vote", payload=VoteRequest(
        term=term + 5, last_index=0, last_term=0).encode()))
    net.step(net.queue.pop(), bypass=True)
    net.queue.clear()  # the refusal back to `other` would carry the term there itself: drop it
    assert net.engine(stale).term == term + 5
    net.recover()
    assert net.run(5.0, until=lambda: (name := net.leader()) is not None and name != stale
                   and net.engine(name).term > term + 5 and net.engine(stale).leader == net.address[name])
    assert net.engine(stale).role is Role.FOLLOWER


# -- ReadIndex ---------------------------------------------------------------------------------------------------


def test_a_read_at_the_leader_is_served_after_a_heartbeat_round_at_the_commit_index() -> None:
    net = RaftNet(3, node_core_factory)
    leader = net.elect()
    net.read(leader, 1)
    assert net.read_result(leader, 1) is None  # needs a majority's heartbeat answers first
    net.deliver()
    result = net.read_result(leader, 1)
    assert result is not None and result.error is None
    assert result.index == net.engine(leader).commit


def test_a_new_leader_answers_no_read_before_it_commits_an_entry_of_its_term() -> None:
    """Regression etcd#7331: a leader's commit index may be behind its predecessor's until its no-op commits."""
    net = RaftNet(3, node_core_factory)
    old = net.elect()
    net.crash(old)

    def no_blocks(packet: Packet) -> list[Packet]:
        return [] if packet.kind in ("block", "fetch") else [packet]

    net.filter = no_blocks
    assert net.run(5.0, until=lambda: net.leader() is not None)
    new = net.leader()
    assert new is not None
    engine = net.engine(new)
    assert engine._term_at(engine.commit) != engine.term
    net.read(new, 7)
    net.run(0.5)
    assert net.read_result(new, 7) is None
    net.filter = None
    net.run(0.5)
    result = net.read_result(new, 7)
    assert result is not None and result.error is None
    assert engine._term_at(result.index) == engine.term  # at least the new term's first entry


def test_duplicated_heartbeat_responses_do_not_confirm_a_later_read() -> None:
    """Regression etcd#20418: copies of the answers to an earlier heartbeat round, arriving late, confirm nothing
    for a read issued after them; with no majority the read fails with no-quorum."""
    net = RaftNet(3, node_core_factory)
    leader = net.elect()
    net.read(leader, 1)
    first_round = len(net.delivered)
    net.deliver()
    assert net.read_result(leader, 1) is not None
    answers = [p for p in net.delivered[first_round:] if p.dst == leader and p.inner is not None
               and p.inner.kind == APPEND_RESP_KIND and AppendResponse.decode(p.inner.payload).ctx > 0]
    assert answers
    net.isolate(leader)
    net.read(leader, 2)
    for packet in answers:
        net.step(net.resealed(packet), bypass=True)
    net.deliver()
    assert net.read_result(leader, 2) is None, "a stale heartbeat answer confirmed a later read"
    net.run(1.5)
    result = net.read_result(leader, 2)
    assert result is not None and result.error is not None and result.error.code in ("no-quorum", "no-leader")


def test_an_isolated_leaders_read_fails_with_no_quorum() -> None:
    net = RaftNet(3, node_core_factory)
    leader = net.elect()
    net.isolate(leader)
    net.read(leader, 3)
    net.run(0.9)  # within T: still the leader, the read waits
    assert net.read_result(leader, 3) is None
    net.run(0.2)
    result = net.read_result(leader, 3)
    assert result is not None and result.error is not None and result.error.code == "no-quorum"


def test_a_followers_read_goes_through_the_leader() -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.2, block_interval_s=0.1)
    leader = net.elect()
    net.run(0.5)
    follower = next(n for n in net.names if n != leader)
    net.read(follower, 9)
    net.deliver()
    result = net.read_result(follower, 9)
    assert result is not None and result.error is None
    assert result.index == net.engine(leader).commit
    assert any(p.src == follower and p.dst == leader and p.inner is not None and p.inner.kind == READ_KIND
               for p in net.delivered)


def test_match_index_never_goes_backwards_on_a_stale_response() -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.1, block_interval_s=0.1)
    leader = net.elect()
    follower = next(n for n in net.names if n != leader)
    early = [p for p in net.delivered if p.src == follower and p.dst == leader and p.inner is not None
             and p.inner.kind == APPEND_RESP_KIND and AppendResponse.decode(p.inner.payload).success]
    assert early
    net.run(1.0)
    progress = net.engine(leader)._progress[net.address[follower]]
    match = progress.match
    assert match > AppendResponse.decode(early[0].inner.payload).match  # type: ignore[union-attr]
    net.step(net.resealed(early[0]))
    assert net.engine(leader)._progress[net.address[follower]].match >= match


# -- write refusal -----------------------------------------------------------------------------------------------


def test_write_refusal_is_no_quorum_on_the_minority_side_and_none_at_the_majority_leader() -> None:
    net = RaftNet(5, node_core_factory)
    old = net.elect()
    minority = [old, next(n for n in net.names if n != old)]
    net.partition(minority, [n for n in net.names if n not in minority])
    assert net.run(5.0, until=lambda: (name := net.leader()) is not None and name not in minority)
    net.run(2.0)  # past the minority follower's lease from the old leader's last heartbeat
    new = net.leader()
    assert new is not None
    assert net.cores[new].write_refusal(now=net.now) is None
    for name in minority:
        refusal = net.cores[name].write_refusal(now=net.now)
        assert refusal is not None and refusal.code == "no-quorum", (name, refusal)


# -- membership and leadership transfer --------------------------------------------------------------------------


def test_membership_changes_one_at_a_time() -> None:
    net = RaftNet(3, node_core_factory, spares=2)
    leader = net.elect()
    net.admin(leader, "add-member", net.text("n3"))
    with pytest.raises(RejectError) as refused:
        net.admin(leader, "add-member", net.text("n4"))
    assert refused.value.code == "config-change-pending"
    net.run(1.0)
    assert all(len(net.engine(n).members) == 4 for n in ("n0", "n1", "n2", "n3"))
    assert net.engine("n3").is_member
    assert net.cores["n3"].tree.final_height == net.engine(leader).commit
    net.admin(leader, "add-member", net.text("n4"))  # the first is committed: the next may go
    net.run(1.0)
    assert len(net.engine(leader).members) == 5


def test_a_removed_leader_steps_down_after_its_removal_commits() -> None:
    net = RaftNet(3, node_core_factory)
    leader = net.elect()
    net.admin(leader, "remove-member", net.text(leader))
    assert net.run(5.0, until=lambda: (name := net.leader()) is not None and name != leader)
    assert not net.engine(leader).is_member
    assert net.engine(leader).role is Role.FOLLOWER
    net.run(3.0)
    assert net.leader() != leader and len(net.leaders()) == 1


@pytest.mark.parametrize("max_empty_interval_s", [0.0, 0.2], ids=["target-up-to-date", "target-catching-up"])
def test_leadership_transfer_makes_the_target_leader_within_a_few_heartbeats(max_empty_interval_s: float) -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=max_empty_interval_s, block_interval_s=0.1)
    leader = net.elect()
    net.run(0.5)
    target = next(n for n in net.names if n != leader)
    net.admin(leader, "transfer-leader", net.text(target))
    started = net.now
    assert net.run(1.0, until=lambda: net.leader() == target), net.describe()
    assert net.now - started <= 0.5
    net.run(1.0)
    assert net.leaders() == [target]
