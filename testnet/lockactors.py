"""Lock clients as scenario actors: the `lock` action of a manifest's timeline (docs/TESTNET.md, "Scenarios";
docs/LOCKS.md, "The raft-lock-pause scenario").

A client is a name in the manifest; the planner gives each name a load account of the testnet (in order of first
appearance), so its key is the load key of that account. A client keeps the leases it was granted, one per lock,
and writes through the fenced register with the token of its lease. A client does nothing between its steps: the
time between a grant and a later write is exactly a pause of that client, which is what makes a late write stale.

Each step waits until its transaction is final (node/lockclient.py) and reports the outcome; the step passes when
the outcome is the one it expects (`expect_result`, default `ok`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chain.crypto import address_to_text
from node.client import RpcClient, RpcError, RpcUnavailable
from node.lockclient import Lease, LockClient, LockRefused
from testnet.cluster import load_key
from testnet.nemesis import refresh
from testnet.remote import node_up
from testnet.state import Testnet, TestnetError

LOCK_OPS = ("acquire", "renew", "release", "put")
STEP_WAIT_TIMEOUT_S = 30


@dataclass
class LockActors:
    """The clients of one scenario run and the leases each holds."""

    leases: dict[tuple[str, str], Lease] = field(default_factory=dict)  # (client, lock) -> its newest lease

    def run(self, spec: dict[str, Any], testnet: Testnet) -> tuple[bool, str]:
        """Do one `lock` step; (passed, what happened)."""
        client_name, op, lock = str(spec["client"]), str(spec["op"]), str(spec["lock"])
        expected = str(spec.get("expect_result", "ok"))
        rpc, node = _running_node(testnet)
        key = load_key(testnet.seed, int(spec["account"]))
        who = f"client {client_name} ({address_to_text(key.address)[:12]})"
        try:
            client = LockClient(rpc, key, wait_timeout_s=STEP_WAIT_TIMEOUT_S)
            outcome, detail = self._do(client, client_name, op, lock, spec)
        except LockRefused as refused:
            where = "at admission (HTTP 422)" if "refused in block" not in refused.message else refused.message
            outcome, detail = refused.code, f"refused {refused.code} {where}"
        except (RpcError, RpcUnavailable) as exc:
            raise TestnetError(f"{who}: {op} {lock} through {node}: {exc}") from None
        verdict = "" if outcome == expected else f" (expected {expected})"
        return outcome == expected, f"{who} via {node}: {op} {lock}: {detail}{verdict}"

    def _do(self, client: LockClient, name: str, op: str, lock: str, spec: dict[str, Any]) -> tuple[str, str]:
        if op == "acquire":
            lease = client.acquire(lock, int(spec["lease_blocks"]))
            self.leases[(name, lock)] = lease
            return "ok", (f"granted token {lease.token} in block {lease.height}, held until block "
                          f"{lease.expires_at - 1}")
        held = self.leases.get((name, lock))
        if held is None:
            raise TestnetError(f"client {name} has no lease on {lock} to {op} (acquire it in an earlier step)")
        if op == "renew":
            lease = client.renew(held, int(spec["lease_blocks"]))
            self.leases[(name, lock)] = lease
            return "ok", f"renewed in block {lease.height}, held until block {lease.expires_at - 1}"
        if op == "release":
            client.release(held)
            return "ok", "released"
        key = str(spec["key"])
        height = client.put(key, str(spec["value"]).encode(), held)
        return "ok", f"wrote {key} with token {held.token} in block {height}"


def _running_node(testnet: Testnet) -> tuple[RpcClient, str]:
    """The first running node that answers: the client's node."""
    refresh(testnet)
    for record in testnet.nodes:
        if record.state == "running" and node_up(record):
            client = RpcClient(record.rpc_url, timeout_s=STEP_WAIT_TIMEOUT_S + 5)
            try:
                client.status()
            except (RpcError, RpcUnavailable):
                continue
            return client, record.name
    raise TestnetError("no running node answers: the lock client has no node to talk to")
