"""Radiograph files and folders: the in-memory image, DICOM and ITK formats, data folders, comparison figures.

No torch here; it takes from the engine only the check that pixels are usable grey values.
"""
