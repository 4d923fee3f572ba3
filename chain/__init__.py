"""chainlab chain package."""
