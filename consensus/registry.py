"""Picks the consensus engine's chain policy named in genesis."""

from __future__ import annotations

from chain.blocktree import ChainPolicy
from chain.genesis import Genesis


class UnknownEngineError(ValueError):
    """Genesis names an engine this build does not have."""


def chain_policy(genesis: Genesis) -> ChainPolicy:
    """The fork-choice and header policy of `genesis.consensus`."""
    if genesis.consensus == "pow":
        from consensus.pow.policy import PowPolicy

        return PowPolicy(genesis)
    raise UnknownEngineError(f"consensus engine {genesis.consensus!r} has no chain policy in this build")
