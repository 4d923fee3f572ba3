"""The demonstrations of the theory tour, one module per concept or family of concepts (pure)."""
