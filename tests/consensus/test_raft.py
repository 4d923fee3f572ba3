"""Raft (consensus/raft/engine.py) through real node cores, section by section of the paper (Ongaro and Ousterhout,
extended version): elections (5.2), replication (5.3), safety and Figure 8 (5.4), crashes (5.5). The harness
(testnet/sim/raftnet.py) steps the network and the clock by hand."""

from __future__ import annotations

from random import Random

from chain.block import Block
from chain.devtools import fresh_transfers
from consensus.engine import EngineMessage
from consensus.raft.engine import HARD_STATE_KEY, Role
from consensus.raft.messages import (
    APPEND_RESP_KIND,
    VOTE_KIND,
    VOTE_RESP_KIND,
    AppendResponse,
    VoteRequest,
    VoteResponse,
    decode_hard_state,
)
from consensus.raft.seal import seal_term
from storage.memory import MemoryStore
from testnet.sim.raftnet import Packet, RaftNet
from tests.sim.helpers import node_core_factory


def assert_final_prefixes_agree(net: RaftNet) -> None:
    """State Machine Safety: every two final chains agree where both are defined."""
    finals = [net.final(n) for n in net.live()]
    for a in finals:
        for b in finals:
            short = min(len(a), len(b))
            assert a[:short] == b[:short], net.describe()


def tick_until_someone_campaigns(net: RaftNet, limit_s: float = 5.0) -> str:
    """Tick without delivering until a node leaves the follower role; its name."""
    end = net.now + limit_s
    while net.now < end:
        net.tick()
        moved = [n for n in net.live() if net.engine(n).role is not Role.FOLLOWER]
        if moved:
            return moved[0]
    raise AssertionError("nobody timed out")


# -- 5.2 leader election -----------------------------------------------------------------------------------------


def test_an_election_reports_the_votes_cast_and_the_leader_for_the_causal_trace() -> None:
    net = RaftNet(3, node_core_factory)
    leader = net.elect()
    term = net.engine(leader).term
    elected = [(node, detail) for node, what, detail in net.decisions if what == "leader-elected"]
    assert elected[-1][0] == leader and elected[-1][1]["term"] == term
    votes = [(node, detail) for node, what, detail in net.decisions if what == "vote-cast" and detail["term"] == term]
    assert votes and all(node != leader for node, _ in votes)  # a candidate's vote for itself is not a message


def test_follower_times_out_prevotes_at_its_unchanged_term_then_campaigns() -> None:
    net = RaftNet(3, node_core_factory)
    name = tick_until_someone_campaigns(net)
    engine = net.engine(name)
    assert engine.role is Role.PRE_CANDIDATE
    assert engine.term == 0  # a pre-vote does not raise the term
    assert net.now >= 1.0  # not before the election timeout T
    requests = [VoteRequest.decode(p.inner.payload) for p in net.queue
                if p.src == name and p.inner is not None and p.inner.kind == VOTE_KIND]
    assert requests and all(r.prevote and r.term == 1 for r in requests)
    net.deliver()
    campaigned = [VoteRequest.decode(p.inner.payload) for p in net.delivered
                  if p.src == name and p.inner is not None and p.inner.kind == VOTE_KIND]
    assert any(not r.prevote and r.term == 1 for r in campaigned)
    assert net.engine(name).role is Role.LEADER and net.engine(name).term == 1
    assert net.leaders() == [name]


def test_candidate_with_a_majority_becomes_leader_and_a_minority_raises_no_term() -> None:
    net = RaftNet(5, node_core_factory)
    net.partition(["n0", "n1", "n2"], ["n3", "n4"])
    leader = net.elect()
    assert leader in ("n0", "n1", "n2")
    net.run(3.0)
    for name in ("n3", "n4"):
        assert net.engine(name).role is not Role.LEADER
        assert net.engine(name).term == 0  # PreVote: a minority never wins a pre-vote, so never raises its term
    assert net.leaders() == [leader]


def test_split_vote_retries_with_new_random_timeouts() -> None:
    net = RaftNet(3, node_core_factory)
    # n0 and n1 time out together; n2's votes of the first real term are lost: nobody gets a majority.
    net.engine("n0")._election_deadline = net.engine("n1")._election_deadline = 1.0
    net.engine("n2")._election_deadline = 100.0

    def lose_term_one_votes_to_n2(packet: Packet) -> list[Packet]:
        if packet.inner is not None and packet.inner.kind in (VOTE_KIND, VOTE_RESP_KIND) and "n2" in (
                packet.src, packet.dst):
            if packet.inner.kind == VOTE_KIND and not VoteRequest.decode(packet.inner.payload).prevote:
                return []
            if packet.inner.kind == VOTE_RESP_KIND and not VoteResponse.decode(packet.inner.payload).prevote:
                return []
        return [packet]

    net.filter = lose_term_one_votes_to_n2
    while net.now < 1.0:
        net.tick()
    net.deliver()
    assert net.engine("n0").role is Role.CANDIDATE and net.engine("n1").role is Role.CANDIDATE, net.describe()
    assert net.engine("n0").term == net.engine("n1").term == 1
    assert net.leaders() == []
    deadlines = (net.engine("n0")._election_deadline, net.engine("n1")._election_deadline)
    assert deadlines[0] != deadlines[1]  # each drew its own timeout: the retry is unlikely to split again
    net.filter = None
    leader = net.elect()
    assert net.engine(leader).term >= 2


def run_with_partitions_and_losses(seed: int) -> None:
    """Five nodes, 20% message loss and a new random partition every 1.5 s, then healing: at most one leader per
    term throughout (Election Safety), a leader at the end, final chains that agree."""
    rng = Random(seed)
    net = RaftNet(5, node_core_factory, seed=seed, max_empty_interval_s=0.5)
    leaders_of: dict[int, set[str]] = {}

    def drop_some(packet: Packet) -> list[Packet]:
        return [] if rng.random() < 0.2 else [packet]

    def record() -> bool:
        for name in net.leaders():
            leaders_of.setdefault(net.engine(name).term, set()).add(name)
        return False

    for _ in range(4):
        net.recover()
        net.filter = drop_some
        group = rng.sample(net.names, 2)
        net.partition(group, [n for n in net.names if n not in group])
        net.run(1.5, dt=0.05, until=record)
    net.recover()
    net.run(4.0, dt=0.05, until=record)
    assert all(len(names) == 1 for names in leaders_of.values()), (seed, leaders_of)
    assert net.leader() is not None, (seed, net.describe())
    assert_final_prefixes_agree(net)


def test_at_most_one_leader_per_term_across_seeded_runs() -> None:
    for seed in range(12):
        run_with_partitions_and_losses(seed)


def test_a_node_with_a_stale_log_is_not_elected() -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.2, block_interval_s=0.1)
    leader = net.elect()
    stale, current = [n for n in net.names if n != leader]
    net.isolate(stale)
    net.run(2.0)
    assert net.cores[current].tree.height > net.cores[stale].tree.height + 3
    net.crash(leader)
    net.recover()
    new_leader = net.elect()
    assert new_leader == current  # the stale node's requests are refused (5.4.1)
    assert net.engine(stale).role is Role.FOLLOWER


def test_vote_and_term_are_persisted_durably_in_the_ready_that_carries_the_reply() -> None:
    """Regression PySyncObj#84: a vote must be on disk before the reply that grants it leaves."""
    net = RaftNet(3, node_core_factory)
    engine = net.engine("n0")
    engine.ready()
    candidate = net.address["n1"]
    request = VoteRequest(term=3, last_index=0, last_term=0)
    engine.on_message(candidate, EngineMessage(kind=VOTE_KIND, payload=request.encode()), now=0.5, now_ms=0)
    ready = engine.ready()
    replies = [VoteResponse.decode(o.message.payload) for o in ready.messages if o.message.kind == VOTE_RESP_KIND]
    assert replies == [VoteResponse(term=3, granted=True)]
    assert ready.durable
    assert decode_hard_state(ready.persist.puts[HARD_STATE_KEY]) == (3, candidate)


def test_recovered_vote_is_kept_after_a_restart() -> None:
    """PySyncObj#84 end to end: a node that voted and restarted does not vote again in the same term."""
    net = RaftNet(3, node_core_factory)
    net.inject("n1", "n0", EngineMessage(kind=VOTE_KIND, payload=VoteRequest(term=4, last_index=0,
                                                                              last_term=0).encode()))
    net.deliver()
    net.crash("n0")
    net.restart("n0")
    assert (net.engine("n0").term, net.engine("n0").voted_for) == (4, net.address["n1"])
    net.inject("n2", "n0", EngineMessage(kind=VOTE_KIND, payload=VoteRequest(term=4, last_index=0,
                                                                              last_term=0).encode()))
    net.queue = [p for p in net.queue if p.dst == "n0"]
    net.deliver()
    answers = [VoteResponse.decode(p.inner.payload) for p in net.delivered
               if p.src == "n0" and p.dst == "n2" and p.inner is not None and p.inner.kind == VOTE_RESP_KIND]
    assert answers == [VoteResponse(term=4, granted=False)]


# -- 5.3 log replication -----------------------------------------------------------------------------------------


def test_leader_blocks_reach_followers_and_commit_on_a_majority() -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.2, block_interval_s=0.1)
    leader = net.elect()
    follower, lagging = [n for n in net.names if n != leader]
    net.isolate(lagging)
    net.run(2.0)
    commit = net.engine(leader).commit
    assert commit >= 5, net.describe()  # the leader and one follower are a majority
    assert net.final(follower)[:commit + 1] == net.chain(leader)[:commit + 1]
    assert net.cores[lagging].tree.final_height <= 1
    net.recover()
    net.run(1.0)
    assert net.final(lagging)[:commit + 1] == net.chain(leader)[:commit + 1]
    assert_final_prefixes_agree(net)


def test_a_leader_alone_commits_nothing_new() -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.2, block_interval_s=0.1)
    leader = net.elect()
    net.run(0.5)
    net.isolate(leader)
    commit = net.engine(leader).commit
    net.run(0.8)
    assert net.engine(leader).commit == commit
    assert net.cores[leader].tree.height > commit  # it proposed, uncommitted


def test_a_conflicting_uncommitted_suffix_is_replaced_by_the_new_leaders_log() -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.2, block_interval_s=0.1)
    old = net.elect()
    net.run(0.5)
    net.isolate(old)
    committed = net.engine(old).commit
    net.run(0.8)  # the old leader proposes blocks nobody gets
    orphaned = net.chain(old)[committed + 1:]
    assert orphaned
    net.run(4.0)  # it steps down (CheckQuorum); the others elect and extend
    new = net.leader()
    assert new is not None and new != old
    assert net.engine(new).commit > net.cores[old].tree.height
    net.recover()
    net.run(1.5)
    assert net.chain(old)[:net.engine(new).commit + 1] == net.chain(new)[:net.engine(new).commit + 1]
    assert not set(orphaned) & set(net.chain(old))
    assert_final_prefixes_agree(net)


def append_rejections(net: RaftNet, src: str) -> int:
    count = 0
    for packet in net.delivered:
        if packet.src == src and packet.inner is not None and packet.inner.kind == APPEND_RESP_KIND:
            count += not AppendResponse.decode(packet.inner.payload).success
    return count


def test_a_follower_far_behind_a_new_leader_catches_up_with_at_most_two_rejections() -> None:
    """5.3 backtracking: the new leader starts at next = its last index + 1 and match 0; it must find the match
    in a round trip or two, not one step back per entry. (The heartbeat at the match resynchronises before the
    follower's hint matters: this does not isolate the hint itself.)"""
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.05, block_interval_s=0.05, max_inflight_blocks=16)
    leader = net.elect()
    behind = next(n for n in net.names if n != leader)
    net.isolate(behind)
    net.run(6.0)
    gap = net.engine(leader).commit - net.cores[behind].tree.height
    assert gap > 50, net.describe()
    # A new leader knows nothing of the follower (next = its last index + 1, match 0): it has to find the match.
    other = next(n for n in net.names if n not in (leader, behind))
    net.admin(leader, "transfer-leader", net.text(other))
    assert net.run(1.0, until=lambda: net.leader() == other)
    leader = other
    before = append_rejections(net, behind)
    net.recover()
    assert net.run(3.0, until=lambda: net.cores[behind].tree.final_height >= net.engine(leader).commit - 2)
    assert append_rejections(net, behind) - before <= 2  # one hint, not one step back per entry


def test_a_new_empty_member_catches_up() -> None:
    net = RaftNet(3, node_core_factory, spares=1, max_empty_interval_s=0.1, block_interval_s=0.1)
    leader = net.elect()
    net.run(2.0)
    assert net.cores["n3"].tree.height == 0  # not a member: nobody replicates to it
    net.admin(leader, "add-member", net.text("n3"))
    assert net.run(3.0, until=lambda: net.cores["n3"].tree.final_height >= net.engine(leader).commit - 1)
    assert net.engine(leader).commit >= 20
    assert_final_prefixes_agree(net)


def test_a_follower_that_lost_its_log_does_not_make_the_leader_spin() -> None:
    """Outside Raft's model (storage must not be lost), but a leader used to answer a rejection below the match
    it knows with an immediate resend, which the follower rejected again: the pair looped without time passing.
    Such a rejection is stale and ignored now (as etcd's MaybeDecrTo does)."""
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.1, block_interval_s=0.1)
    leader = net.elect()
    net.run(1.0)
    wiped = next(n for n in net.names if n != leader)
    net.crash(wiped)
    net.stores[wiped] = MemoryStore()
    net.restart(wiped)
    for _ in range(40):
        net.tick()
        assert net.deliver(max_packets=2000) < 2000


# -- 5.4 safety: Figure 8 ----------------------------------------------------------------------------------------


def test_figure_8_an_entry_of_an_earlier_term_is_not_committed_by_counting_replicas() -> None:
    """Regression LogCabin#44 / PySyncObj#169: a leader re-elected in a later term holds an entry of its earlier
    term that now sits on a majority; it commits it only together with an entry of its own term."""
    net = RaftNet(3, node_core_factory, block_interval_s=0.1)
    leader = net.elect()
    peer, other = [n for n in net.names if n != leader]
    first_term = net.engine(leader).term
    net.partition(["n0"], ["n1"], ["n2"])  # nobody can win an election meanwhile
    net.submit_transfer(leader)
    net.run(0.3)
    old_entry_index = net.cores[leader].tree.height
    old_entry = net.chain(leader)[old_entry_index]
    assert seal_term(net.cores[leader].tree.meta(old_entry).header) == first_term  # type: ignore[union-attr]
    assert net.engine(leader).commit == old_entry_index - 1
    net.run(2.5)  # CheckQuorum: it steps down and waits
    assert net.engine(leader).role is not Role.LEADER
    # Only the old leader and `peer` talk again; `peer` may take the old entry but no block of a later term.

    def hold_back_new_blocks(packet: Packet) -> list[Packet]:
        if packet.kind == "block" and isinstance(packet.payload, Block) and packet.payload.height > old_entry_index:
            return []
        return [packet]

    net.cut_links.clear()
    net.isolate(other)
    net.filter = hold_back_new_blocks
    assert net.run(5.0, until=lambda: net.engine(leader).role is Role.LEADER), net.describe()
    assert net.engine(leader).term > first_term
    net.run(1.0)
    assert net.chain(peer)[:old_entry_index + 1] == net.chain(leader)[:old_entry_index + 1]  # on a majority
    assert net.engine(leader)._progress[net.address[peer]].match == old_entry_index
    assert net.engine(leader).commit == old_entry_index - 1, "committed an earlier term's entry by counting"
    assert net.cores[peer].tree.final_height < old_entry_index
    net.recover()
    net.run(1.0)
    assert net.engine(leader).commit > old_entry_index
    assert net.final(peer)[old_entry_index] == old_entry


# -- crashes -----------------------------------------------------------------------------------------------------


def test_a_follower_crashes_and_rejoins_without_losing_committed_blocks() -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.2, block_interval_s=0.1)
    leader = net.elect()
    net.run(1.0)
    follower = next(n for n in net.names if n != leader)
    final_before = net.final(follower)
    net.crash(follower)
    net.run(1.0)
    net.restart(follower)
    assert net.final(follower) == final_before
    net.run(1.5)
    assert net.leader() == leader
    assert net.cores[follower].tree.final_height > len(final_before)
    assert_final_prefixes_agree(net)


def test_a_leader_crashes_and_rejoins_as_a_follower_with_its_term() -> None:
    net = RaftNet(3, node_core_factory, max_empty_interval_s=0.2, block_interval_s=0.1)
    leader = net.elect()
    net.run(1.0)
    term, voted = net.engine(leader).term, net.engine(leader).voted_for
    final_before = net.final(leader)
    net.crash(leader)
    new = net.elect()
    assert new != leader
    net.restart(leader)
    assert (net.engine(leader).term, net.engine(leader).voted_for) == (term, voted)
    assert net.final(leader) == final_before
    net.run(1.5)
    assert net.engine(leader).role is Role.FOLLOWER and net.engine(leader).leader == net.address[new]
    assert all(net.final(n)[:len(final_before)] == final_before for n in net.names)
    assert_final_prefixes_agree(net)


def test_transactions_go_to_the_leader_alone_and_again_to_a_new_leader() -> None:
    """A follower sends the transactions it admits to the leader and nowhere else (the leader's blocks bring them
    to everyone); the leader sends its own nowhere; a new leader gets every transaction a follower still holds
    (the old one may have died before proposing them)."""
    net = RaftNet(3, node_core_factory, seed=2)  # n1 leads first, then n2: the follower n0 forwards to both in turn
    leader = net.elect()
    follower, other = [n for n in net.names if n != leader]
    txs = fresh_transfers([net.keys[0]], {net.keys[0].address: 0}, chain_id=net.genesis.chain_id, count=2)
    out = net.cores[follower].receive_tx(txs[0], source=None, now=net.now, now_ms=net.now_ms)
    assert out.announce_txs == [(txs[0], None, net.address[leader])]
    assert net.cores[leader].receive_tx(txs[1], source=None, now=net.now, now_ms=net.now_ms).announce_txs == []
    net.crash(leader)
    new_leader = net.elect()
    assert new_leader == other
    assert (txs[0], None, net.address[new_leader]) in net.announced[follower]
