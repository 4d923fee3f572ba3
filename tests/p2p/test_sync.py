"""Sync planning: ask peers that are ahead, one batch in flight, round-robin, timeouts, orphans."""

from __future__ import annotations

from p2p.protocol.sync import SyncPlanner, fit_batch


def h(n: int) -> bytes:
    return n.to_bytes(32, "big")


LOCATOR = [h(100), h(0)]


def our_locator() -> list[bytes]:
    return LOCATOR


def blocks(first: int, last: int) -> list[tuple[bytes, int]]:
    return [(h(n), n) for n in range(first, last + 1)]


def test_nobody_ahead_means_no_sync() -> None:
    planner = SyncPlanner()
    planner.add_peer("a", 10)
    assert planner.poll(0.0, 10, our_locator) is None
    assert not planner.active(10)
    assert planner.target_height() == 10


def test_picks_only_peers_ahead_and_one_batch_at_a_time() -> None:
    planner = SyncPlanner(batch_limit=100)
    planner.add_peer("behind", 5)
    planner.add_peer("ahead", 300)
    request = planner.poll(0.0, 10, our_locator)
    assert request is not None and request.peer == "ahead"
    assert request.message.locator == tuple(LOCATOR) and request.message.limit == 100
    assert planner.poll(0.1, 10, our_locator) is None  # one in flight
    assert planner.active(10) and planner.in_flight_peer() == "ahead"


def test_batches_rotate_over_peers_ahead_and_continue_from_the_frontier() -> None:
    planner = SyncPlanner(batch_limit=100)
    for peer in "abc":
        planner.add_peer(peer, 300)
    first = planner.poll(0.0, 0, our_locator)
    assert first is not None and first.peer == "a"
    assert planner.on_blocks("a", blocks(1, 100), local_height=0)
    second = planner.poll(0.1, 0, our_locator)  # batch 1 is still importing
    assert second is not None and second.peer == "b"
    assert second.message.locator[0] == h(100)  # the frontier leads the locator
    assert planner.on_blocks("b", blocks(101, 200), local_height=50)
    assert planner.poll(0.2, 50, our_locator) is None  # two batches wait for import
    planner.batch_done(imported=True)
    third = planner.poll(0.3, 100, our_locator)
    assert third is not None and third.peer == "c" and third.message.locator[0] == h(200)


def test_the_sender_of_a_short_batch_is_asked_until_it_sends_nothing() -> None:
    planner = SyncPlanner()
    planner.add_peer("a", 10)  # a stale claim: a has grown since its Hello
    request = planner.poll(0.0, 0, our_locator)
    assert request is not None
    planner.on_blocks("a", blocks(1, 10), local_height=0)
    planner.batch_done(imported=True)
    again = planner.poll(0.1, 10, our_locator)
    assert again is not None and again.peer == "a"
    planner.on_blocks("a", blocks(11, 12), local_height=10)
    planner.batch_done(imported=True)
    third = planner.poll(0.2, 12, our_locator)
    assert third is not None
    assert planner.on_blocks("a", [], local_height=12)
    assert planner.poll(0.3, 12, our_locator) is None
    assert not planner.active(12)


def test_timeout_moves_the_batch_to_the_next_peer() -> None:
    planner = SyncPlanner(timeout_s=5.0)
    planner.add_peer("a", 50)
    planner.add_peer("b", 50)
    first = planner.poll(0.0, 0, our_locator)
    assert first is not None and first.peer == "a"
    for at in (0.625, 1.25, 1.875):  # resent to the same peer three times: the request or its answer may be lost
        assert planner.poll(at - 0.01, 0, our_locator) is None
        assert planner.poll(at, 0, our_locator) == first
    assert planner.poll(4.0, 0, our_locator) is None
    retry = planner.poll(5.0, 0, our_locator)
    assert retry is not None and retry.peer == "b"
    assert not planner.on_blocks("a", blocks(1, 5), local_height=0)  # late answer: ignored


def test_an_answer_to_a_resent_request_is_the_awaited_answer() -> None:
    planner = SyncPlanner(timeout_s=8.0)
    planner.add_peer("a", 50)
    first = planner.poll(0.0, 0, our_locator)
    assert planner.poll(1.0, 0, our_locator) == first
    assert planner.on_blocks("a", blocks(1, 5), local_height=0)
    assert planner.take_stalled() == []


def test_the_second_answer_to_a_resent_request_is_not_taken_for_the_next_answer() -> None:
    planner = SyncPlanner(timeout_s=8.0)
    planner.add_peer("a", 50)
    first = planner.poll(0.0, 0, our_locator)
    assert planner.poll(1.0, 0, our_locator) == first  # resent: two answers will come
    assert planner.on_blocks("a", blocks(1, 5), local_height=0)
    second = planner.poll(1.1, 0, our_locator)
    assert second is not None and second.peer == "a" and second.message.locator[0] == h(5)
    assert not planner.on_blocks("a", blocks(1, 5), local_height=0)  # the copy: ignored, the request still waits
    assert planner.in_flight_peer() == "a"
    assert planner.on_blocks("a", blocks(6, 9), local_height=0)


def test_a_peer_that_never_answers_stops_being_asked_beyond_its_claim() -> None:
    planner = SyncPlanner(timeout_s=1.0)
    planner.add_peer("a", 10)
    planner.poll(0.0, 0, our_locator)
    planner.on_blocks("a", blocks(1, 10), local_height=0)
    planner.batch_done(imported=True)
    assert planner.poll(0.1, 10, our_locator) is not None  # asked again: it may have more
    assert planner.poll(1.1, 10, our_locator) is None  # it did not answer, and it claimed only 10
    assert not planner.active(10)


def test_a_departed_peer_releases_its_batch() -> None:
    planner = SyncPlanner()
    planner.add_peer("a", 50)
    planner.add_peer("b", 50)
    planner.poll(0.0, 0, our_locator)
    planner.remove_peer("a")
    retry = planner.poll(0.1, 0, our_locator)
    assert retry is not None and retry.peer == "b"


def test_unsolicited_batches_are_refused() -> None:
    planner = SyncPlanner()
    planner.add_peer("a", 50)
    assert not planner.on_blocks("a", blocks(1, 3), local_height=0)


def test_an_orphan_makes_its_sender_the_next_to_ask() -> None:
    planner = SyncPlanner()
    planner.add_peer("a", 5)
    planner.add_peer("b", 5)
    planner.request_from("b", 9)
    assert planner.peer_height("b") == 9
    request = planner.poll(0.0, 5, our_locator)
    assert request is not None and request.peer == "b"


def test_a_failed_import_restarts_from_our_own_locator() -> None:
    planner = SyncPlanner()
    planner.add_peer("a", 500)
    planner.poll(0.0, 0, our_locator)
    planner.on_blocks("a", blocks(1, 100), local_height=0)
    planner.batch_done(imported=False)
    request = planner.poll(0.1, 0, our_locator)
    assert request is not None and request.message.locator == tuple(LOCATOR)


def test_fit_batch_keeps_the_frame_within_the_limit() -> None:
    from p2p.protocol.codec import encode_frame
    from p2p.protocol.messages import Blocks

    raws = [bytes([n]) * 1000 for n in range(50)]
    for limit in (1024, 5000, 20_000, 10**6):
        batch = fit_batch(raws, limit)
        assert raws[: len(batch)] == list(batch)
        assert len(encode_frame(Blocks(raws=batch))) <= limit
        assert len(batch) == 50 or len(encode_frame(Blocks(raws=(*batch, raws[len(batch)])))) > limit - 16
    assert len(fit_batch([b"x"] * 600, 10**6)) == 500


def test_locator_stays_within_the_message_limit() -> None:
    planner = SyncPlanner()
    planner.add_peer("a", 500)
    planner.poll(0.0, 0, lambda: [h(0)])
    planner.on_blocks("a", blocks(1, 10), local_height=0)
    long_locator = [h(n) for n in range(1000, 936, -1)]  # 64 entries, ending with "genesis"
    request = planner.poll(0.1, 0, lambda: long_locator)
    assert request is not None
    assert len(request.message.locator) == 64
    assert request.message.locator[0] == h(10) and request.message.locator[-1] == long_locator[-1]


def test_a_silent_peer_stops_counting_as_ahead_until_it_shows_a_block() -> None:
    planner = SyncPlanner(timeout_s=1.0)
    planner.add_peer("liar", 10**9)  # claims a chain, never sends it
    assert planner.poll(0.0, 5, our_locator) is not None
    assert planner.target_height() == 10**9
    assert planner.poll(1.0, 5, our_locator) is None  # timed out: nobody else is ahead
    assert planner.target_height() == 5 and not planner.active(5)
    planner.note_height("liar", 7)  # it sent a real block at height 7: ahead again
    assert planner.target_height() == 7


# -- height claims (docs/P2P.md, "Height claims") -------------------------------------------------------------------


def test_a_claimed_height_alone_never_counts_for_the_mining_pause() -> None:
    planner = SyncPlanner(timeout_s=1.0)
    planner.add_peer("liar", 2**63)
    request = planner.poll(0.0, 5, our_locator)
    assert request is not None and request.peer == "liar"  # the claim still says whom to ask
    assert planner.target_height() == 2**63 and planner.pause_height(0.5) == 0
    assert planner.poll(1.0, 5, our_locator) is None  # never answered
    assert planner.take_stalled() == [("liar", 2**63)] and planner.take_stalled() == []
    assert planner.pause_height(1.0) == 0


def test_a_peer_that_delivered_pauses_for_its_claim_at_most_two_timeouts_without_delivery() -> None:
    planner = SyncPlanner(timeout_s=1.0)
    planner.add_peer("honest", 300)
    planner.poll(0.0, 0, our_locator)
    planner.on_blocks("honest", blocks(1, 100), local_height=0)
    planner.batch_done(imported=True)
    assert not planner.has_delivered("honest") and planner.pause_height(0.1) == 0
    planner.delivered("honest", 0.2)  # the batch proved valid and new
    assert planner.has_delivered("honest") and planner.pause_height(0.3) == 300
    assert planner.pause_height(2.2) == 300
    assert planner.pause_height(2.3) == 0  # nobody delivered for two timeouts: no claim counts
    planner.delivered("honest", 2.4)
    assert planner.pause_height(2.5) == 300


def test_a_batch_of_known_blocks_ends_a_claim_like_an_empty_answer() -> None:
    planner = SyncPlanner(timeout_s=1.0)
    planner.add_peer("p", 10**9)
    planner.poll(0.0, 100, our_locator)
    planner.on_blocks("p", blocks(90, 100), local_height=100)
    planner.delivered("p", 0.1)  # earlier, say
    planner.batch_done(imported=True)
    planner.nothing_delivered("p", 100)
    assert planner.pause_height(0.2) == 100 and not planner.active(100)


def test_a_departed_peer_loses_its_track_record() -> None:
    planner = SyncPlanner()
    planner.add_peer("p", 50)
    planner.delivered("p", 0.0)
    planner.remove_peer("p")
    planner.add_peer("p", 50)
    assert not planner.has_delivered("p") and planner.pause_height(0.0) == 0
