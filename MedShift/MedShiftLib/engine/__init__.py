"""The flow-matching engine: network, couplings and loss, ODE solvers, the invert/regenerate translation,
tiling, the working grid, intensity mapping, checkpoints and their domain statistics.

Imports only `errors`, `settings` and `io` of MedShiftLib; every other package builds on it.
"""
