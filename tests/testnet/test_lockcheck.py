"""The lock checker (testnet/lockcheck.py): silent on histories the state machine produces, and each promise
shown to fail on a hand-made bad history."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import locks as chain_locks
from chain.crypto import address_to_text
from chain.genesis import parse_genesis
from chain.locks import (
    KvPut,
    LockAcquire,
    LockRelease,
    LockRenew,
    Operation,
    decode_lock_record,
    fencing_token,
)
from node.client import RpcClient
from node.lockclient import LockClient, LockRefused
from testnet.collect import rpc_view
from testnet.lockcheck import LockOp, check_lock_history, check_locks, lock_op_of_json, lock_ops_of_blocks
from tests.chain.test_locks import Chain
from tests.cli.test_lock_cli import node_url
from tests.conftest import key
from tests.lockplant import accept_stale
from tests.node.test_reads import scripted_engine

__all__ = ["node_url", "scripted_engine"]  # fixtures: a real in-process node, and the engine it runs

A, B = key(0).address, key(1).address


def _ops_of(chain: Chain) -> list[LockOp]:
    outcomes = {r.tx_hash: r.code for application in chain.applications for r in application.op_results}
    return lock_ops_of_blocks((application.block for application in chain.applications), outcomes.get)


def test_a_real_history_with_contention_expiry_and_a_refused_stale_write_is_clean() -> None:
    chain = Chain()
    chain.step(chain.tx(0, LockAcquire(name="jobs", lease_blocks=2)), chain.tx(1, LockAcquire(name="jobs",
                                                                                             lease_blocks=2)))
    old = fencing_token(1, 0)
    chain.step(chain.tx(0, KvPut(key="k", value=b"a", lock="jobs", token=old)))
    chain.step(chain.tx(1, LockAcquire(name="jobs", lease_blocks=5)))  # height 3: alice's lease ended at 3
    chain.step(chain.tx(0, KvPut(key="k", value=b"late", lock="jobs", token=old)),
               chain.tx(1, KvPut(key="k", value=b"b", lock="jobs", token=fencing_token(3, 0))))
    ops = _ops_of(chain)
    assert [op.outcome for op in ops] == ["ok", "lock-held", "ok", "ok", "stale-fencing-token", "ok"]
    assert check_lock_history(ops) == []


def _acquire(height: int, index: int, sender: bytes, lease: int, outcome: str = "ok") -> LockOp:
    return LockOp(height=height, index=index, kind="lock-acquire", sender=sender, lock="l", lease_blocks=lease,
                  outcome=outcome)


def _put(height: int, index: int, sender: bytes, token: int) -> LockOp:
    return LockOp(height=height, index=index, kind="kv-put", sender=sender, lock="l", key="k", token=token,
                  outcome="ok")


def test_two_holders_at_one_height_are_found() -> None:
    history = [_acquire(1, 0, A, 5), _acquire(3, 0, B, 5)]  # B granted at 3 while A holds until 6
    (violation,) = check_lock_history(history)
    assert violation.kind == "two-holders" and violation.height == 3
    assert "two-holders at height 3" in violation.describe()
    # refused acquires are no grant at all; the lease's end is exclusive
    assert check_lock_history([_acquire(1, 0, A, 5), _acquire(3, 0, B, 5, "lock-held"), _acquire(6, 0, B, 5)]) == []


def test_a_renew_or_release_accepted_from_a_non_holder_is_found() -> None:
    renew = LockOp(height=2, index=0, kind="lock-renew", sender=B, lock="l", lease_blocks=9, outcome="ok")
    release = LockOp(height=9, index=0, kind="lock-release", sender=A, lock="l", outcome="ok")  # A's lease is over
    kinds = [v.kind for v in check_lock_history([_acquire(1, 0, A, 5), renew, release])]
    assert kinds == ["two-holders", "two-holders"]


def test_an_accepted_stale_write_is_found() -> None:
    history = [_acquire(1, 0, A, 2), _acquire(3, 1, B, 5), _put(4, 0, A, fencing_token(1, 0))]
    (violation,) = check_lock_history(history)
    assert violation.kind == "stale-write-accepted" and violation.height == 4


def test_a_write_without_the_newest_token_or_a_live_lease_is_found() -> None:
    newer = [_acquire(1, 0, A, 5), _put(2, 0, A, fencing_token(1, 0) + 7)]  # a token no grant issued
    expired = [_acquire(1, 0, A, 2), _put(3, 0, A, fencing_token(1, 0))]  # the lease ended at 3
    stranger = [_acquire(1, 0, A, 5), _put(2, 0, B, fencing_token(1, 0))]  # B never held it
    ungranted = [_put(2, 0, B, 5)]
    for history in (newer, expired, stranger, ungranted):
        (violation,) = check_lock_history(history)
        assert violation.kind == "write-not-newest-token"


OPS = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["acquire", "renew", "release", "put"]),
                         st.integers(1, 4), st.booleans()), max_size=40)


@settings(max_examples=40, deadline=None)
@given(script=OPS)
def test_whatever_clients_do_the_state_machine_keeps_the_promises(script: list[tuple[int, str, int, bool]]) -> None:
    chain = Chain()
    for sender, action, lease, stale in script:
        raw = chain.state.get_record(b"Ll")
        token = 0
        if raw is not None:
            token = decode_lock_record(raw).token - (1 if stale else 0)
        operation: Operation = {
            "acquire": LockAcquire(name="l", lease_blocks=lease), "renew": LockRenew(name="l", lease_blocks=lease),
            "release": LockRelease(name="l"), "put": KvPut(key="k", value=b"v", lock="l", token=max(token, 0)),
        }[action]
        chain.step(chain.tx(sender, operation))
    assert check_lock_history(_ops_of(chain)) == []


# -- the `locks` check of `chainlab testnet check`: operations and outcomes read over RPC ----------------------


def _until_height(client: RpcClient, height: int) -> None:
    deadline = time.monotonic() + 10
    while int(client.status()["final_height"]) < height:
        assert time.monotonic() < deadline, f"the node did not reach height {height}"
        time.sleep(0.02)




def test_the_locks_check_reads_operations_over_rpc_and_fails_on_a_planted_stale_write(
        node_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rpc = RpcClient(node_url)
    genesis = parse_genesis(str(rpc.genesis()["toml"]))
    alice, bob = LockClient(rpc, key(0)), LockClient(rpc, key(1))
    old = alice.acquire("jobs", lease_blocks=2)
    alice.put("cfg", b"a", old)
    _until_height(rpc, old.expires_at)
    new = bob.acquire("jobs", lease_blocks=500)
    with pytest.raises(LockRefused) as refused:  # the honest node: refused, at admission
        alice.put("cfg", b"late", old)
    assert refused.value.code == "stale-fencing-token"
    view = rpc_view("node0", rpc, genesis, with_ledger=False)
    assert [(op.kind, op.outcome) for op in view.lock_ops] == [
        ("lock-acquire", "ok"), ("kv-put", "ok"), ("lock-acquire", "ok")]
    ok, detail = check_locks("node0", view.lock_ops)
    assert ok and detail == ("node0: 3 operations on 1 locks (2 grants, 1 fenced writes accepted, 0 refused), "
                             "no violation")

    monkeypatch.setattr(chain_locks, "_apply_kv_put", accept_stale)
    height = alice.put("cfg", b"late", old)  # the planted rule lets the paused client's write in
    assert rpc.kv("cfg")["token"] == old.token and new.token > old.token
    _until_height(rpc, height)
    ok, detail = check_locks("node0", rpc_view("node0", rpc, genesis, with_ledger=False).lock_ops)
    assert not ok
    assert detail.startswith(f"node0: stale-write-accepted at height {height} on lock 'jobs': write of 'cfg' with "
                             f"token {old.token}, the newest grant is {new.token}")


def test_an_operation_without_an_outcome_cannot_be_judged() -> None:
    tx = {"from": address_to_text(A), "op": {"kind": "lock-acquire", "name": "l", "lease_blocks": 3}}
    op = lock_op_of_json(4, 1, tx)
    assert op == LockOp(height=4, index=1, kind="lock-acquire", sender=A, lock="l", lease_blocks=3, outcome="unknown")
    assert check_locks("n", [op]) == (False, "n: 1 operation(s) without a recorded outcome, e.g. lock-acquire at "
                                             "height 4 index 1")
    assert lock_op_of_json(4, 2, {"from": address_to_text(A)}) is None  # a transfer
    with pytest.raises(ValueError, match="unknown operation kind"):
        lock_op_of_json(4, 3, {"from": address_to_text(A), "op": {"kind": "lock-steal"}})
    assert check_locks("n", []) == (True, "n: no lock or register operations")
