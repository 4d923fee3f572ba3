"""Primary-backup chain policy: the seal is the primary's signature (pure).

Seal: `primary_pubkey (33) || signature (64)` over the header's seal hash. Every block weighs 1, so fork choice is
the longest chain, first seen on a tie; with one honest primary there is only one chain.
"""

from __future__ import annotations

from chain import crypto
from chain.block import BlockHeader
from chain.blocktree import ForkChoice, HeaderView
from chain.chainstore import BlockMeta
from chain.errors import RejectError
from chain.genesis import Genesis, GenesisError, ParamSpec
from consensus.params import engine_param
from consensus.signed_seal import check_signed_seal, make_signed_seal


def _address_or_empty(value: str) -> str | None:
    if not value:
        return None
    try:
        crypto.address_from_text(value)
    except crypto.AddressError as exc:
        return f"is not an address: {exc}"
    return None


PB_PARAMETERS: dict[str, ParamSpec] = {
    "primary": ParamSpec(kind=str, default="", meaning="address of the primary (default: the first validator by "
                         "address)", check=_address_or_empty),
    "acks_required": ParamSpec(kind=int, default=0, meaning="backup acknowledgements that make a block final "
                               "(0 = final at once)"),
}


def check_primary_backup_genesis(genesis: Genesis) -> None:
    """GenesisError unless the network names a primary (parameter or validators) and can reach acks_required."""
    try:
        primary = primary_address(genesis)
    except ValueError as exc:
        raise GenesisError(str(exc)) from exc
    backups = [a for a in genesis.validators if a != primary]
    required = int(engine_param(genesis, PB_PARAMETERS, "acks_required"))
    if required > len(backups):
        raise GenesisError(f"acks_required = {required}, but the genesis names only {len(backups)} backups")


def majority_of_backups(backups: int) -> int:
    """Acknowledgements from a majority of `backups` (0 without backups): the default of `testnet up` and the
    simulator, under which a primary partitioned off alone cannot make a block final."""
    return backups // 2 + 1 if backups > 0 else 0


def zero_acks_warning(genesis: Genesis) -> str | None:
    """A one-line warning when a network with backups makes blocks final without any acknowledgement; else None."""
    try:
        backups = [a for a in genesis.validators if a != primary_address(genesis)]
    except ValueError:
        return None
    if not backups or int(engine_param(genesis, PB_PARAMETERS, "acks_required")) > 0:
        return None
    return (f"acks_required = 0 with {len(backups)} backups: the primary alone makes blocks final, so a primary "
            "cut off from its backups reports blocks final that no backup has (and that are lost if it fails); "
            f"use acks_required = {majority_of_backups(len(backups))} (a majority of the backups)")


def primary_address(genesis: Genesis) -> bytes:
    """The primary named in genesis (`primary` parameter, else the first validator by address)."""
    named = str(engine_param(genesis, PB_PARAMETERS, "primary"))
    if named:
        return crypto.address_from_text(named)
    if not genesis.validators:
        raise ValueError("a primary-backup genesis needs a `primary` parameter or at least one validator")
    return min(genesis.validators)


def make_seal(key: crypto.PrivateKey, header: BlockHeader) -> bytes:
    """The primary's seal of `header`."""
    return make_signed_seal(key, header)


class PrimaryBackupPolicy:
    """Header rules of primary-backup: signed by the primary, time moves forward."""

    fork_choice = ForkChoice.MOST_WORK  # every block weighs 1: the longest chain
    confirmation_finality = False  # blocks become final when the engine commits them (acknowledgements)

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.primary = primary_address(genesis)

    def check_detached_header(self, header: BlockHeader) -> None:
        """Without the parent, the primary's signature can still be checked."""
        self._check_seal(header)

    def block_work(self, header: BlockHeader) -> int:
        """Every block weighs the same: longest chain."""
        return 1

    def block_reward(self, header: BlockHeader) -> int:
        """The genesis block reward, to the primary."""
        return self.genesis.block_reward

    def check_header(self, header: BlockHeader, parent: BlockMeta, view: HeaderView, now_ms: int) -> None:
        """The seal must be the primary's signature over the seal hash; timestamps strictly increase."""
        self._check_seal(header)
        if header.timestamp_ms <= parent.header.timestamp_ms:
            raise RejectError("time-too-old", "timestamp not after the parent's")

    def _check_seal(self, header: BlockHeader) -> None:
        check_signed_seal(header, self.primary, "the primary")
