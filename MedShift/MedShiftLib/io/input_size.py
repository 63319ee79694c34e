"""Bounding an input's size by the memory its translation would need, from the file's header, before decoding.

A compressed file can be tiny and its pixels huge (a 16000 x 16000 PNG of 283 KB took 3.8 GB), so the
size is read from the header and refused, with a line saying what to do, when
* one image has more than `max_input_pixels()` pixels (MAX_INPUT_PIXELS, 64 M: an 8000 x 8000 image; the
  largest radiographs, 4096 x 5120 film scans, have 21 M), or
* decoding it plus translating it would need more memory than the machine has available now: the decoded
  file plus BYTES_PER_INPUT_PIXEL per pixel of the image (the worst per-pixel cost measured by
  benchmarks/benchmark_memory.py, docs/benchmarks.md).
The environment variable MEDSHIFT_MAX_INPUT_PIXELS sets another pixel limit (e.g. 300000000 for a
16000 x 16000 image, on a machine with the memory for it).
"""
from __future__ import annotations

import os

from ..errors import InputImageError

MAX_INPUT_PIXELS = 64 * 1024 * 1024
BYTES_PER_INPUT_PIXEL = 25
LIMIT_VARIABLE = "MEDSHIFT_MAX_INPUT_PIXELS"


def max_input_pixels() -> int:
    """The pixel limit of one input image: MEDSHIFT_MAX_INPUT_PIXELS when set to a positive whole number."""
    text = os.environ.get(LIMIT_VARIABLE, "").strip()
    if text:
        try:
            value = int(float(text))
        except ValueError:
            value = 0
        if value <= 0:
            raise InputImageError(f"{LIMIT_VARIABLE}={text!r}: give a positive number of pixels, e.g. 100000000")
        return value
    return MAX_INPUT_PIXELS


def available_memory() -> int | None:
    """Bytes of memory available to new allocations now (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_input_size(name: str, rows: int, cols: int, decoded_bytes: int) -> None:
    """InputImageError, before decoding, when an image of rows x cols (the file decoding to `decoded_bytes`)
    exceeds the pixel limit or would need more memory than is available (see the module docstring)."""
    pixels = int(rows) * int(cols)
    limit = max_input_pixels()
    if pixels > limit:
        raise InputImageError(f"{name}: {rows} x {cols} pixels ({pixels:,}) is more than the {limit:,} pixels "
                              "MedShift translates at once; downscale the image first, or set "
                              f"{LIMIT_VARIABLE} to a larger number where the memory allows it")
    needed = int(decoded_bytes) + BYTES_PER_INPUT_PIXEL * pixels
    available = available_memory()
    if available is not None and needed > available:
        raise InputImageError(f"{name}: {rows} x {cols} pixels would need about {needed / 2**30:.1f} GiB of memory "
                              f"to translate, but {available / 2**30:.1f} GiB are available; downscale the image, "
                              "or close other programs")


def check_dicom_input_size(name: str, ds) -> None:
    """check_input_size for one frame of a DICOM dataset, from Rows, Columns, SamplesPerPixel and BitsAllocated."""
    rows, cols, samples, bits = (int(ds.get(key, 1) or 1) for key in ("Rows", "Columns", "SamplesPerPixel",
                                                                       "BitsAllocated"))
    check_input_size(name, rows, cols, rows * cols * samples * max(bits // 8, 1))
