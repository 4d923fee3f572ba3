"""Address book (backoff with jitter, bounds) and admission (one connection per node id)."""

from __future__ import annotations

from random import Random

from p2p.protocol.peers import (
    MAX_LEARNT_FAILURES,
    AddressBook,
    PeerActivity,
    PeerBook,
    backoff_delay,
    choose_eviction,
    netgroup,
)

URL = "ws://127.0.0.1:9000/p2p"


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    rng = Random(1)
    for failures, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 30.0), (60, 30.0)]:
        for _ in range(20):
            delay = backoff_delay(failures, rng, min_s=0.5, max_s=30.0)
            assert base / 2 <= delay <= base
    assert 0.25 <= backoff_delay(0, rng, min_s=0.5, max_s=30.0) <= 0.5


def test_failed_dials_back_off_and_success_resets() -> None:
    book = AddressBook(backoff_min_s=1.0, backoff_max_s=8.0)
    assert book.add(URL, now=0.0, persistent=True)
    assert book.due(0.0, persistent=True, exclude=set()) == [URL]
    book.dial_started(URL)
    assert book.due(0.0, persistent=True, exclude=set()) == []  # one dial at a time
    rng = Random(2)
    delays = []
    now = 0.0
    for _ in range(5):
        delay = book.failed(URL, now, rng)
        delays.append(delay)
        assert book.due(now + delay - 0.001, persistent=True, exclude=set()) == []
        now += delay
        assert book.due(now, persistent=True, exclude=set()) == [URL]
    assert delays[3] > delays[0] and max(delays) <= 8.0
    book.connected(URL)
    assert book.failures(URL) == 0
    assert book.disconnected(URL, now, rng) <= 1.0


def test_learnt_addresses_are_bounded_validated_and_forgotten_after_failures() -> None:
    book = AddressBook(backoff_min_s=0.1, backoff_max_s=1.0, capacity=3, own_urls=("ws://me/p2p",))
    assert not book.add("http://x", now=0.0)
    assert not book.add("ws://me/p2p", now=0.0)
    for n in range(5):
        book.add(f"ws://peer{n}/p2p", now=0.0)
    assert len(book) == 3
    rng = Random(3)
    for _ in range(MAX_LEARNT_FAILURES):
        book.failed("ws://peer4/p2p", 0.0, rng)
    assert "ws://peer4/p2p" not in book
    book.add(URL, now=0.0, persistent=True)
    for _ in range(MAX_LEARNT_FAILURES + 5):
        book.failed(URL, 0.0, rng)
    assert URL in book  # bootstrap addresses are never given up


def test_sample_shares_working_addresses_and_reset_makes_all_due() -> None:
    book = AddressBook(backoff_min_s=1.0, backoff_max_s=10.0)
    for n in range(5):
        book.add(f"ws://peer{n}/p2p", now=0.0)
    book.failed("ws://peer0/p2p", 0.0, Random(1))
    shared = book.sample(Random(1), 10, exclude={"ws://peer1/p2p"})
    assert sorted(shared) == ["ws://peer2/p2p", "ws://peer3/p2p", "ws://peer4/p2p"]
    assert "ws://peer0/p2p" not in book.due(0.0, persistent=False, exclude=set())
    book.reset_backoff(0.0)
    assert "ws://peer0/p2p" in book.due(0.0, persistent=False, exclude=set())
    book.forget("ws://peer1/p2p", forever=True)
    assert not book.add("ws://peer1/p2p", now=0.0)


def test_simultaneous_connections_resolve_the_same_way_on_both_ends() -> None:
    small, large = "02" + "00" * 32, "03" + "00" * 32
    small_book = PeerBook(our_id=small, max_peers=8)
    large_book = PeerBook(our_id=large, max_peers=8)
    # Connection 1 is dialed by `small`, connection 2 by `large`; each side admits its first arrival first.
    assert small_book.admit(2, large, outbound=False).accepted  # small accepted large's dial first
    second = small_book.admit(1, large, outbound=True)
    assert second.accepted and second.replaces == 2  # small's own dial wins
    assert large_book.admit(1, small, outbound=False).accepted
    refused = large_book.admit(2, small, outbound=True)
    assert not refused.accepted and refused.code == "duplicate-peer"
    assert small_book.connection_of(large) == 1 and large_book.connection_of(small) == 1


def test_admission_limits_and_removal() -> None:
    book = PeerBook(our_id="00", max_peers=2)
    assert not book.admit(1, "00", outbound=True).accepted
    assert book.admit(1, "aa", outbound=True).accepted
    assert book.admit(2, "bb", outbound=False).accepted
    full = book.admit(3, "cc", outbound=False)
    assert not full.accepted and full.code == "too-many-peers"
    assert book.remove(1) == "aa"
    assert book.remove(1) is None
    assert book.admit(3, "cc", outbound=False).accepted and len(book) == 2


def test_a_failing_address_keeps_its_last_error_and_is_warned_about_once_per_interval() -> None:
    book = AddressBook(backoff_min_s=1.0, backoff_max_s=8.0)
    url = "ws://127.0.0.1:9/p2p"
    book.add(url, 0.0, persistent=True)
    book.add("ws://learnt:1/p2p", 0.0)
    book.failed(url, 1.0, Random(1), "connection refused")
    assert book.should_warn(url, 1.0, 60.0) == (True, 0)
    for at in (2.0, 3.0, 4.0):
        book.failed(url, at, Random(1), "connection refused")
        assert book.should_warn(url, at, 60.0) == (False, 0)
    assert book.should_warn(url, 61.5, 60.0) == (True, 3)  # says how many it held back
    [row] = book.persistent_rows(5.0)  # the configured address only
    assert row["url"] == url and row["failures"] == 4 and row["last_error"] == "connection refused"
    assert row["last_error_s_ago"] == 1.0
    book.connected(url)
    assert book.persistent_rows(6.0)[0]["last_error"] == ""


def test_inbound_peers_cannot_take_the_outbound_slots_and_our_dials_always_get_one() -> None:
    book = PeerBook(our_id="00", max_peers=4, outbound_slots=2)
    assert book.admit(1, "a1", outbound=False).accepted and book.admit(2, "a2", outbound=False).accepted
    third = book.admit(3, "a3", outbound=False)  # without activity reports nobody is evicted
    assert not third.accepted and third.code == "too-many-peers"
    assert book.admit(4, "b1", outbound=True).accepted and book.admit(5, "b2", outbound=True).accepted
    activity = {1: PeerActivity(connected_at=1.0), 2: PeerActivity(connected_at=2.0)}
    fifth = book.admit(6, "b3", outbound=True, activity=activity.__getitem__)  # full: an inbound one makes room
    assert fifth.accepted and fifth.evicts is not None and len(book) == 4


def test_inbound_peers_are_limited_per_address_when_asked() -> None:
    book = PeerBook(our_id="00", max_peers=8, max_inbound_per_ip=2)
    for conn in (1, 2):
        assert book.admit(conn, f"p{conn}", outbound=False, ip="10.0.0.1", limit_ip=True).accepted
    refused = book.admit(3, "p3", outbound=False, ip="10.0.0.1", limit_ip=True)
    assert not refused.accepted and refused.code == "too-many-from-address"
    assert book.admit(4, "p4", outbound=False, ip="10.0.0.2", limit_ip=True).accepted
    assert book.admit(5, "p5", outbound=False, ip="127.0.0.1", limit_ip=False).accepted  # exempt (loopback)


def test_eviction_protects_fast_useful_and_long_lived_peers_and_hits_the_crowded_group() -> None:
    crowd = {10 + n: ("1.2.0.0/16", PeerActivity(connected_at=100.0 + n)) for n in range(6)}
    fast = {20 + n: ("5.6.0.0/16", PeerActivity(connected_at=50.0 + n, rtt_s=0.001 * n)) for n in range(4)}
    blocks = {30 + n: ("7.8.0.0/16", PeerActivity(connected_at=200.0, last_block_at=90.0 + n)) for n in range(4)}
    elder = {40: ("9.9.0.0/16", PeerActivity(connected_at=1.0))}
    victim = choose_eviction({**crowd, **fast, **blocks, **elder})
    assert victim == 15  # the youngest of the most represented group
    assert choose_eviction({**fast}) is None  # all protected: the newcomer is refused instead
    assert netgroup("1.2.3.4") == "1.2.0.0/16" and netgroup("127.0.0.1") == "127.0.0.0/16"
