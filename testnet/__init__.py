"""chainlab testnet package."""
