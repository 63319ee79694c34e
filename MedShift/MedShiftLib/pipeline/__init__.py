"""The whole translation path: image -> normalise -> working grid -> contrast transfer -> invert/regenerate
-> noise matching -> back to the image's grid and values; and the same for files on disk.
"""
