"""MedShiftLib: the MedShift engine (flow-matching domain translation of radiographs).

One sub-package per concern, each importing only those below it (docs/engine.md has the map):
errors, settings, atomic_files, optional_packages < engine < io, postprocess < simulator, pipeline, training
< evaluation < cli, demo.
Imports neither Slicer, Qt nor VTK, so the Slicer modules, the `medshift` command and the tests share it.
"""

__version__ = "0.1.0"
