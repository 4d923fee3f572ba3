"""Proof-of-work consensus: seal format, difficulty, mining, partition handler."""
