"""chainlab node package."""
