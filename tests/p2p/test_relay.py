"""The relay core (p2p/protocol/relay.py): messages and verdicts in, actions out, with no I/O around it."""

from __future__ import annotations

from chain.block import Block
from chain.errors import RejectError
from p2p.protocol.limits import block_penalty, sync_stall_penalty
from p2p.protocol.messages import BlockMsg, Blocks, GetBlocks, GetData, Inv, NotFound, TxMsg
from p2p.protocol.relay import (
    Action,
    BatchJob,
    BatchProgress,
    BlockJob,
    BlockVerdict,
    Punish,
    Relay,
    Send,
    Submit,
    TxJob,
)
from tests.p2p.fakes import TreeChain, pow_chain, transfer

NOW = 100.0


def sends(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.peer, a.message.name) for a in actions if isinstance(a, Send)]


def relay_with_peers(chain: TreeChain, *peers: str, height: int = 0) -> Relay:
    relay = Relay(chain)
    for peer in peers:
        relay.peer_up(peer, height, NOW)
    return relay


def test_a_pushed_block_is_relayed_before_it_is_submitted_and_an_orphan_syncs_from_its_sender() -> None:
    blocks = pow_chain(3)
    chain = TreeChain()
    relay = relay_with_peers(chain, "a", "b", "c")
    actions = relay.on_message("b", BlockMsg(raw=blocks[2].encoded), NOW)
    assert sends(actions) == [("a", "BlockMsg"), ("c", "BlockMsg")]  # onward first, never back to the sender
    submit = actions[-1]
    assert isinstance(submit, Submit) and isinstance(submit.job, BlockJob) and submit.job.block == blocks[2]
    assert relay.on_message("c", BlockMsg(raw=blocks[2].encoded), NOW) == []  # seen already
    follow = relay.block_imported(submit.job, BlockVerdict(status="orphan"), NOW)
    assert sends(follow) == [("b", "GetBlocks")]


def test_an_invalid_relayed_block_is_held_against_its_sender_only_for_what_precheck_could_catch() -> None:
    block = pow_chain(1)[0]
    relay = relay_with_peers(TreeChain(), "a")
    job = BlockJob(peer="a", block=block)
    punished = relay.block_imported(job, RejectError("bad-signature", "x"), NOW)
    assert len(punished) == 1 and isinstance(punished[0], Punish) and punished[0].code == "bad-signature"


def test_a_sync_batch_is_imported_in_order_and_its_last_connected_block_announced() -> None:
    blocks = pow_chain(4)
    chain = TreeChain()
    relay = relay_with_peers(chain, "a", "b", height=4)
    asked = [a for a in relay.poll_sync(NOW) if isinstance(a, Send)]
    assert not asked  # peer_up already asked
    peer = relay.sync.in_flight_peer()
    assert peer == "a"
    actions = relay.on_message("a", Blocks(raws=tuple(b.encoded for b in blocks)), NOW)
    submit = [a for a in actions if isinstance(a, Submit)]
    assert len(submit) == 1 and isinstance(submit[0].job, BatchJob)
    progress = BatchProgress()
    for block in blocks:
        chain.tree.add_block(block, now_ms=chain.now_ms(), source="a")
        assert progress.record(block, BlockVerdict(status="connected"))
    after = relay.batch_imported(submit[0].job, progress, NOW)
    assert ("b", "BlockMsg") in sends(after)  # our new tip, to the peer that did not send it


def test_an_invalid_block_in_a_batch_stops_the_import_and_punishes_the_sender() -> None:
    blocks = pow_chain(2)
    progress = BatchProgress()
    assert not progress.record(blocks[0], RejectError("bad-merkle-root", "x"))
    relay = relay_with_peers(TreeChain(), "a")
    actions = relay.batch_imported(BatchJob(peer="a", blocks=blocks), progress, NOW)
    assert isinstance(actions[0], Punish) and actions[0].penalty == block_penalty("bad-merkle-root")


def test_unsolicited_batches_are_ignored() -> None:
    relay = relay_with_peers(TreeChain(), "a")
    assert relay.on_message("a", Blocks(raws=(pow_chain(1)[0].encoded,)), NOW) == []


def test_transactions_go_announce_fetch_admit_announce_onward() -> None:
    tx = transfer(0)
    chain = TreeChain()
    relay = relay_with_peers(chain, "a", "b")
    assert sends(relay.on_message("a", Inv(kind="tx", hashes=(tx.hash,)), NOW)) == [("a", "GetData")]
    actions = relay.on_message("a", TxMsg(raw=tx.encoded), NOW)
    assert len(actions) == 1 and isinstance(actions[0], Submit) and isinstance(actions[0].job, TxJob)
    chain.mempool[tx.hash] = tx
    assert relay.tx_imported(actions[0].job, None) == []
    assert relay.take_announcements() == []  # the node announces what it admitted, where its engine says
    relay.announce_tx(tx.hash, exclude="a")  # as node.core does for an engine that gossips
    announced = relay.take_announcements()
    assert sends(announced) == [("b", "Inv")]  # one Inv per peer, not back to the sender
    served = relay.on_message("b", GetData(kind="tx", hashes=(tx.hash, bytes(32))), NOW)
    assert sends(served) == [("b", "TxMsg"), ("b", "NotFound")]


def test_a_transaction_for_one_proposer_is_announced_to_it_alone() -> None:
    tx = transfer(0)
    chain = TreeChain()
    relay = relay_with_peers(chain, "a", "b", "c")
    chain.mempool[tx.hash] = tx
    relay.announce_tx(tx.hash, only="b")
    pushed = relay.take_announcements()
    assert sends(pushed) == [("b", "TxMsg")]  # pushed whole: no Inv/GetData round trip
    assert isinstance(pushed[0], Send) and pushed[0].message == TxMsg(raw=tx.encoded)
    relay.announce_tx(tx.hash, only="b")
    assert relay.take_announcements() == []  # b has it now
    other = transfer(1)
    relay.announce_tx(other.hash, only="gone")  # not a ready peer: to everyone, so that it can be relayed there
    assert sorted(sends(relay.take_announcements())) == [("a", "Inv"), ("b", "Inv"), ("c", "Inv")]


def test_a_fetch_that_times_out_goes_to_the_next_announcer() -> None:
    tx = transfer(0)
    relay = relay_with_peers(TreeChain(), "a", "b")
    relay.on_message("a", Inv(kind="tx", hashes=(tx.hash,)), NOW)
    assert relay.on_message("b", Inv(kind="tx", hashes=(tx.hash,)), NOW) == []
    assert sends(relay.tick(NOW + 60)) == [("b", "GetData")]
    assert sends(relay.on_message("b", NotFound(kind="tx", hashes=(tx.hash,)), NOW + 61)) == []


def test_get_blocks_is_answered_from_the_best_chain() -> None:
    blocks: tuple[Block, ...] = pow_chain(3)
    chain = TreeChain(blocks=blocks)
    relay = relay_with_peers(chain, "a")
    answer = relay.on_message("a", GetBlocks(locator=(chain.tree.genesis.hash,), limit=10), NOW)
    assert len(answer) == 1 and isinstance(answer[0], Send) and isinstance(answer[0].message, Blocks)
    assert answer[0].message.raws == tuple(b.encoded for b in blocks)


def test_a_dropped_job_may_be_fetched_again() -> None:
    tx = transfer(0)
    relay = relay_with_peers(TreeChain(), "a")
    relay.on_message("a", TxMsg(raw=tx.encoded), NOW)
    relay.job_dropped(TxJob(peer="a", tx=tx))
    assert relay.on_message("a", TxMsg(raw=tx.encoded), NOW) != []


def test_a_copy_of_a_block_is_dropped_before_it_is_decoded() -> None:
    from chain.block import decode_block, peek_block_hash

    block = pow_chain(1)[0]
    assert peek_block_hash(block.encoded) == block.hash
    assert peek_block_hash(b"\x94\x01") is None and peek_block_hash(b"junk") is None
    decoded: list[bytes] = []

    def counting_decode(raw: bytes) -> Block:
        decoded.append(raw)
        return decode_block(raw)

    chain = TreeChain()
    relay = Relay(chain, decode_block=counting_decode)
    for peer in ("a", "b"):
        relay.peer_up(peer, 0, NOW)
    first = relay.on_message("a", BlockMsg(raw=block.encoded), NOW)
    assert any(isinstance(action, Submit) for action in first) and len(decoded) == 1
    assert relay.on_message("b", BlockMsg(raw=block.encoded), NOW) == [] and len(decoded) == 1  # the copy
    assert relay.announce_block(block) == []  # both are known to have it now: nothing goes back to them


def test_an_undelivered_claim_disconnects_a_peer_without_a_track_record_and_pauses_nothing() -> None:
    relay = Relay(TreeChain(), peer_timeout_s=1.0)
    asked = relay.peer_up("liar", 2**63, NOW)
    assert sends(asked) == [("liar", "GetBlocks")]
    assert relay.sync.pause_height(NOW) == 0
    actions = relay.tick(NOW + 1.0)
    punished = [a for a in actions if isinstance(a, Punish)]
    assert len(punished) == 1 and punished[0].peer == "liar" and punished[0].code == "sync-stalled"
    assert punished[0].penalty.disconnect and punished[0].penalty == sync_stall_penalty(delivered=False)


def test_a_delivered_batch_gives_its_sender_a_track_record_and_its_claim_counts() -> None:
    blocks = pow_chain(4)
    chain = TreeChain()
    relay = Relay(chain, peer_timeout_s=1.0)
    relay.peer_up("a", 10, NOW)
    actions = relay.on_message("a", Blocks(raws=tuple(b.encoded for b in blocks)), NOW)
    submit = next(a for a in actions if isinstance(a, Submit))
    assert isinstance(submit.job, BatchJob)
    progress = BatchProgress()
    for block in blocks:
        chain.tree.add_block(block, now_ms=chain.now_ms(), source="a")
        assert progress.record(block, BlockVerdict(status="connected"))
    relay.batch_imported(submit.job, progress, NOW)
    assert relay.sync.has_delivered("a") and relay.sync.pause_height(NOW) == 10
    # A peer with a track record that stalls later only loses its claim (its answer may have been lost).
    stalled = [a for a in relay.tick(NOW + 1.0) if isinstance(a, Punish)]
    assert all(a.penalty.points == 0 and not a.penalty.disconnect for a in stalled)
    assert relay.sync.pause_height(NOW + 1.0) == 4


def test_the_tip_is_announced_again_to_every_peer_so_a_lost_push_is_made_good() -> None:
    blocks: tuple[Block, ...] = pow_chain(3)
    relay = relay_with_peers(TreeChain(blocks=blocks), "a", "b", height=3)
    relay.tick(NOW)
    assert relay.take_announcements() == []
    relay.tick(NOW + relay.tip_announce_s - 0.01)
    assert relay.take_announcements() == []
    relay.tick(NOW + relay.tip_announce_s)
    announced = relay.take_announcements()
    assert sends(announced) == [("a", "Inv"), ("b", "Inv")]
    assert all(isinstance(a, Send) and a.message == Inv(kind="block", hashes=(blocks[-1].hash,)) for a in announced)
    # The peer that missed the push asks for the tip; one that has it asks for nothing.
    behind = relay_with_peers(TreeChain(blocks=blocks[:1]), "x", height=1)
    assert sends(behind.on_message("x", Inv(kind="block", hashes=(blocks[-1].hash,)), NOW)) == [("x", "GetData")]
