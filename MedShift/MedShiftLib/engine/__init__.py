"""The flow-matching engine: network, couplings and loss, ODE solvers, the invert/regenerate translation,
tiling, the working grid, intensity mapping, checkpoints and their domain statistics.

Imports only the base modules `errors`, `settings` and `atomic_files`; every other package builds on it.
"""
