"""Shared fixtures: deterministic keys (key generation and signing dominate test time, so keys are cached)."""

from __future__ import annotations

import functools

from hypothesis import HealthCheck, settings

from chain.crypto import PrivateKey

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@functools.cache
def key(index: int) -> PrivateKey:
    """The test key number `index` (deterministic)."""
    return PrivateKey.from_seed(b"chainlab-test-key" + index.to_bytes(4, "big"))
