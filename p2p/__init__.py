"""chainlab p2p package."""
