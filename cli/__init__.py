"""chainlab cli package."""
