"""The theory tour (pure): every distributed-systems concept the project is built on, made to happen on the
project's own code, checked, and drawn (docs/THEORY.md, `chainlab tour`).

`tour.catalogue.CONCEPTS` lists the concepts grouped as the theory is; each has a demonstration
(`tour.model.Demonstration`) that takes a `TourContext` (seed, fast, the node core factory) and returns an
`Outcome`. cli/tour.py is the thin shell that runs them, prints, writes and opens the pictures.
"""
