"""Raft: blocks through a replicated log (see engine.py)."""
