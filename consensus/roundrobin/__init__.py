"""Round-robin: the contract's reference engine (see engine.py)."""
