"""Causality (pure): vector and Lamport clocks and the trace event format (docs/CAUSALITY.md)."""
