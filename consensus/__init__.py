"""chainlab consensus package."""
