"""The Slicer side of MedShift: volume nodes <-> radiographs, translating nodes, the panel's background job,
CT projection into a node, and the panel's parameters. Used by MedShift.py; MedShiftLib never imports it.

A sub-folder package, so Slicer does not take its files for modules. Modules that touch MRML import
`slicer`/`vtk` inside their functions, so they load without a scene (the background worker runs in
PythonSlicer, and the tests use the PyPI slicer-core package).
"""
