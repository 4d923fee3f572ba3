"""Gossip bookkeeping: bounded seen-cache, per-peer known inventory, one fetch at a time with fallbacks."""

from __future__ import annotations

from p2p.protocol.inventory import Fetch, Gossip, LruSet


def h(n: int) -> bytes:
    return n.to_bytes(32, "big")


def nothing(_: bytes) -> bool:
    return False


def test_lru_set_is_bounded_and_refreshes() -> None:
    lru = LruSet(3)
    for n in range(3):
        assert lru.add(h(n))
    assert not lru.add(h(0))  # refreshed: now the newest
    lru.add(h(3))
    assert h(1) not in lru and h(0) in lru and len(lru) == 3


def test_seen_cache_is_bounded() -> None:
    gossip = Gossip(seen_capacity=100)
    for n in range(1000):
        gossip.on_received("a", h(n))
    assert len(gossip.seen) == 100
    assert h(999) in gossip.seen and h(0) not in gossip.seen


def test_a_hash_is_fetched_from_one_peer_at_a_time() -> None:
    gossip = Gossip(request_timeout_s=5.0)
    for peer in "abc":
        gossip.add_peer(peer)
    assert gossip.on_inv("a", "tx", [h(1), h(2)], now=0.0, have=nothing) == [h(1), h(2)]
    assert gossip.on_inv("b", "tx", [h(1), h(3)], now=0.0, have=nothing) == [h(3)]
    assert gossip.on_inv("c", "tx", [h(1)], now=0.0, have=lambda x: x == h(9)) == []
    assert gossip.on_inv("c", "tx", [h(9)], now=0.0, have=lambda x: x == h(9)) == []  # we have it
    assert gossip.pending_count() == 3
    assert gossip.on_received("a", h(1))
    assert not gossip.on_received("b", h(1))  # a second copy is not new
    assert gossip.on_inv("c", "tx", [h(1)], now=1.0, have=nothing) == []  # seen


def test_timeouts_not_found_and_departures_move_fetches_to_other_announcers() -> None:
    gossip = Gossip(request_timeout_s=5.0)
    for peer in "abc":
        gossip.add_peer(peer)
    gossip.on_inv("a", "block", [h(1), h(2), h(3)], now=0.0, have=nothing)
    gossip.on_inv("b", "block", [h(1), h(2)], now=0.0, have=nothing)
    gossip.on_inv("c", "block", [h(1), h(3)], now=0.0, have=nothing)
    assert gossip.expire(4.9) == []
    assert gossip.on_not_found("a", [h(3)], now=1.0) == [Fetch(peer="c", kind="block", hashes=(h(3),))]
    assert gossip.expire(5.0) == [Fetch(peer="b", kind="block", hashes=(h(1), h(2)))]
    assert gossip.remove_peer("b", now=6.0) == [Fetch(peer="c", kind="block", hashes=(h(1),))]  # h(2): nobody left
    assert gossip.pending_count() == 2
    assert gossip.expire(100.0) == []  # nobody else announced them: dropped
    assert gossip.pending_count() == 0


def test_announcements_skip_peers_that_know_the_hash() -> None:
    gossip = Gossip()
    for peer in "abc":
        gossip.add_peer(peer)
    gossip.on_inv("a", "tx", [h(1)], now=0.0, have=nothing)
    gossip.on_received("a", h(1))
    assert gossip.announce_to(h(1), ["a", "b", "c"], exclude="c") == ["b"]
    assert gossip.announce_to(h(1), ["a", "b", "c"]) == ["c"]  # b knows it now
    assert gossip.peer_knows("b", h(1))
    gossip.forget(h(1))
    assert h(1) not in gossip.seen


def test_known_inventory_per_peer_is_bounded() -> None:
    gossip = Gossip(known_per_peer=10)
    gossip.add_peer("a")
    for n in range(50):
        gossip.mark_known("a", h(n))
    assert gossip.peer_knows("a", h(49)) and not gossip.peer_knows("a", h(0))


def test_pending_fetches_are_bounded() -> None:
    gossip = Gossip(max_pending=5)
    gossip.add_peer("a")
    assert len(gossip.on_inv("a", "tx", [h(n) for n in range(20)], now=0.0, have=nothing)) == 5
