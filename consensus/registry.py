"""Picks the consensus engine's chain policy named in genesis."""

from __future__ import annotations

from chain.blocktree import ChainPolicy
from chain.genesis import Genesis
from consensus.engine import Engine


class UnknownEngineError(ValueError):
    """Genesis names an engine this build does not have."""


def chain_policy(genesis: Genesis) -> ChainPolicy:
    """The fork-choice and header policy of `genesis.consensus`."""
    if genesis.consensus == "pow":
        from consensus.pow.policy import PowPolicy

        return PowPolicy(genesis)
    if genesis.consensus == "primary-backup":
        from consensus.primary_backup.policy import PrimaryBackupPolicy

        return PrimaryBackupPolicy(genesis)
    raise UnknownEngineError(f"consensus engine {genesis.consensus!r} has no chain policy in this build")


def engine_for(genesis: Genesis, key: object, *, mining: bool) -> Engine:
    """The engine of `genesis.consensus` for a node holding `key` (a chain.crypto.PrivateKey)."""
    from chain.crypto import PrivateKey

    if not isinstance(key, PrivateKey):
        raise TypeError("engine_for needs the node's PrivateKey")
    if genesis.consensus == "pow":
        from consensus.pow.engine import PowEngine

        return PowEngine(genesis, key, mining=mining)
    if genesis.consensus == "primary-backup":
        from consensus.primary_backup.engine import PrimaryBackupEngine

        return PrimaryBackupEngine(genesis, key)
    raise UnknownEngineError(f"consensus engine {genesis.consensus!r} is not available in this build")
