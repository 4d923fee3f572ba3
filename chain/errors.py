"""Typed errors of the chain layer.

Two kinds, as STYLE.md asks: a `RejectError` means the input (from a peer, a client or a file) is at fault and
carries a stable reject code that RPC, P2P and CLI report verbatim; anything else (AssertionError, RuntimeError)
is our own bug.
"""

from __future__ import annotations


class RejectError(Exception):
    """Input rejected for a reason named by a stable, documented `code` (see docs/FORMATS.md)."""

    code: str = "invalid"

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message or code


class DecodeError(RejectError, ValueError):
    """Bytes that are not the canonical encoding of the expected object."""

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(code, message)


class RelayedRejectError(RejectError):
    """A statement an engine refused that a peer only relayed: its fault is its `origin`'s (a validator address),
    not the relaying peer's, which passes on what is not addressed to it unchecked (consensus/envelope.py)."""

    def __init__(self, error: RejectError, origin: bytes) -> None:
        super().__init__(error.code, error.message)
        self.origin = origin


class ChainStoreError(Exception):
    """The store's contents contradict themselves or this node's genesis (not a peer's fault)."""
