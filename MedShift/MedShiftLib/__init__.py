"""MedShiftLib: the MedShift engine (flow-matching domain translation of radiographs).

Imports neither Slicer nor Qt, so the Slicer modules, the `medshift` command and the tests share it.
"""

__version__ = "0.1.0"
