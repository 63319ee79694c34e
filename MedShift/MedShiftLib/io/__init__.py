"""Radiograph files and folders: the in-memory image, DICOM and ITK formats, data folders, atomic writes.

No torch here; nothing in it knows about models.
"""
