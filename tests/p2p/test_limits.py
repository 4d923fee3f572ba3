"""Rate limiting, misbehaviour penalties, scores and bans, with manual time."""

from __future__ import annotations

import pytest

from p2p.protocol.limits import (
    BAN,
    BAN_SCORE,
    DISCONNECT,
    NO_PENALTY,
    RateLimiter,
    Scoreboard,
    TokenBucket,
    block_penalty,
    connection_penalty,
    relayed_block_penalty,
    tx_penalty,
)


def test_token_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=5.0, now=0.0)
    assert all(bucket.take(1, 0.0) for _ in range(5))
    assert not bucket.take(1, 0.0)
    assert not bucket.take(1, 0.05)  # half a token
    assert bucket.take(1, 0.1)
    assert bucket.take(5, 100.0) and not bucket.take(1, 100.0)  # refill capped at the burst
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)


def test_a_refused_take_spends_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=3.0, now=0.0)
    assert not bucket.take(4, 0.0)
    assert bucket.take(3, 0.0)


def test_rate_limiter_counts_messages_and_bytes() -> None:
    limiter = RateLimiter(messages_per_s=100, bytes_per_s=1000, max_message_bytes=4000, now=0.0)
    assert limiter.allow(4000, 0.0)  # one maximum frame always fits an idle budget
    assert not limiter.allow(1, 0.0)
    assert limiter.allow(1000, 1.0)
    by_count = RateLimiter(messages_per_s=3, bytes_per_s=10**9, max_message_bytes=10, now=0.0)
    assert [by_count.allow(1, 0.0) for _ in range(4)] == [True, True, True, False]
    assert by_count.allow(1, 0.4)


def test_penalty_tables() -> None:
    for code in ("malformed", "oversize", "unknown-message", "unexpected-message", "bad-handshake-signature"):
        assert connection_penalty(code) is BAN
    for code in ("wrong-genesis", "wrong-chain-id", "bad-version", "self-connection", "duplicate-peer"):
        assert connection_penalty(code) is DISCONNECT
    assert connection_penalty("rate-limited").points < BAN_SCORE
    assert not connection_penalty("rate-limited").disconnect
    assert block_penalty("bad-pow") is BAN and block_penalty("bad-signature") is BAN
    assert block_penalty("time-too-new") is NO_PENALTY and block_penalty("fork-below-final") is NO_PENALTY
    assert relayed_block_penalty("bad-pow") is BAN
    assert relayed_block_penalty("bad-signature") is BAN  # found only by full validation, still banned
    assert relayed_block_penalty("bad-state-commitment") is BAN
    assert relayed_block_penalty("time-too-new") is NO_PENALTY
    assert tx_penalty("bad-signature") is BAN and tx_penalty("malformed") is BAN
    for code in ("already-known", "fee-too-low", "nonce-too-low", "mempool-full", "insufficient-funds"):
        assert tx_penalty(code) is NO_PENALTY


def test_scores_add_up_to_a_ban_that_expires() -> None:
    board = Scoreboard(ban_s=60.0)
    for _ in range(9):
        assert not board.penalize("peer", 10, "rate-limited", now=0.0)
    assert board.score("peer") == 90
    assert board.penalize("peer", 10, "rate-limited", now=1.0, also=("ws://peer/p2p",))
    assert board.is_banned("peer", 30.0) and board.is_banned("ws://peer/p2p", 30.0)
    assert board.score("peer") == 0
    ban = board.ban_of("peer", 30.0)
    assert ban is not None and ban.reason == "rate-limited" and ban.until == 61.0
    assert not board.penalize("peer", 100, "malformed", now=31.0)  # already banned
    assert not board.is_banned("peer", 61.0)
    assert board.bans_total == 1


def test_immediate_ban_and_bounded_tables() -> None:
    board = Scoreboard(ban_s=10.0, max_entries=3)
    assert board.penalize("a", BAN_SCORE, "bad-pow", now=0.0)
    for peer in "bcde":
        board.ban([peer], "malformed", now=0.0)
    assert not board.is_banned("a", 1.0)  # the oldest ban made room
    assert board.is_banned("e", 1.0)
    board.expire(20.0)
    assert not board.is_banned("e", 20.0)
