"""Connections between simulated nodes (pure): which links are established, and since when.

The real P2P layer keeps one websocket per peer pair; the simulator models its life cycle rather than its
handshake:

- a link is *allowed* when the current topology connects the two nodes and both run;
- an allowed link that is not established gets established after a reconnect delay (the dialer's backoff, drawn
  in [RECONNECT_MIN_S, RECONNECT_MAX_S]); both ends then learn of the peer and its height (the handshake's Hello);
- a crash closes every link of the node at once (the peers see the socket close);
- a partition silences a link: messages across it are dropped, and if it is still cut `PEER_TIMEOUT_S` (plus up
  to one ping interval) later, both ends time the peer out and close the link;
- each establishment starts a new connection *epoch*: messages still in flight on an older connection of the
  pair are dropped, as they would be with their socket.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.protocol.timing import PEER_TIMEOUT_S, PING_INTERVAL_S, RECONNECT_MIN_S

__all__ = ["PEER_TIMEOUT_S", "PING_INTERVAL_S", "RECONNECT_MAX_S", "RECONNECT_MIN_S", "LinkState", "Links"]

# The modelled dialer reaches a healed peer within this; the real backoff grows to p2p.protocol.timing's
# RECONNECT_MAX_S (30 s), which a run of a few virtual minutes would mostly spend waiting.
RECONNECT_MAX_S = 5.0


@dataclass(slots=True)
class LinkState:
    """One node pair's connection."""

    up: bool = False
    epoch: int = 0
    dialing: bool = False  # a LinkUp event is scheduled
    timing_out: bool = False  # a LinkTimeout event is scheduled


class Links:
    """The LinkState of every pair the overlay links (overlay.py; default: every pair), keyed by (a, b), a < b."""

    def __init__(self, nodes: int, pairs: list[tuple[int, int]] | None = None) -> None:
        self.nodes = nodes
        if pairs is None:
            pairs = [(a, b) for a in range(nodes) for b in range(a + 1, nodes)]
        self._states = {pair: LinkState() for pair in pairs}
        self._of_node: list[list[tuple[int, int]]] = [[] for _ in range(nodes)]
        for a, b in pairs:
            self._of_node[a].append((a, b))
            self._of_node[b].append((a, b))

    def state(self, a: int, b: int) -> LinkState:
        """The state of the pair's link."""
        return self._states[(a, b) if a < b else (b, a)]

    def pairs(self) -> list[tuple[int, int]]:
        """Every pair, in a fixed order."""
        return list(self._states)

    def pairs_of(self, node: int) -> list[tuple[int, int]]:
        """The pairs `node` is in, in the order of `pairs`."""
        return self._of_node[node]

    def epoch(self, a: int, b: int) -> int:
        """Current connection epoch of the pair (valid only while up)."""
        return self.state(a, b).epoch

    def established(self, a: int, b: int) -> bool:
        """True while the pair's connection is up."""
        return self.state(a, b).up

    def all_up(self) -> bool:
        """True when every pair of the overlay is connected."""
        return all(state.up for state in self._states.values())
