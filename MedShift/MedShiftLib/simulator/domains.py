"""The names of the simulator's five domains, in label order (no other import, so the Slicer panel can list them
before the simulator's packages are installed)."""

SIMULATOR_DOMAINS: tuple[str, ...] = ("sim-low", "sim-high", "clinical-low", "clinical-normal", "clinical-exposure")
