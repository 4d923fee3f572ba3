"""Practical Byzantine Fault Tolerance (docs/ENGINES.md, "PBFT")."""
