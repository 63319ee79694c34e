"""NumPy `.npy` radiographs: a 2-D array (rows, cols) is one image, a 3-D array (frames, rows, cols) a stack.

Only numpy is needed, so a machine without SimpleITK or pydicom still reads and writes them. A `.npy`
file records no geometry: the pixel spacing is unknown (the translation works on the field of view) and
origin and direction are the defaults. Any real or integer dtype is kept exactly; pickled objects are
never loaded.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import InputImageError


def _load(path: Path) -> np.ndarray:
    """The array of a .npy file, memory-mapped (so counting frames reads the header only)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputImageError(f"{path}: cannot read this .npy file, it looks truncated or damaged, or holds "
                              f"Python objects ({exc})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise InputImageError(f"{path}: holds {kind} values; a radiograph .npy holds integers or real numbers")
    if array.ndim not in (2, 3):
        raise InputImageError(f"{path}: holds an array of shape {array.shape}; a radiograph .npy is (rows, cols) "
                              "or a stack (frames, rows, cols)")
    return array


def array_frame_count(path: Path) -> int:
    """1 for a 2-D array, the length of the first axis for a stack."""
    array = _load(path)
    return 1 if array.ndim == 2 else int(array.shape[0])


def read_array_frames(path: Path, frames: list[int] | None) -> list[np.ndarray]:
    """The chosen frames (all when None) as in-memory arrays."""
    array = _load(path)
    stack = array[np.newaxis] if array.ndim == 2 else array
    try:
        return [np.array(stack[k]) for k in (range(len(stack)) if frames is None else frames)]
    except (OSError, ValueError) as exc:  # a file shorter than its header says
        raise InputImageError(f"{path}: cannot read this .npy file, it looks truncated ({exc})") from None


def write_array(pixels: np.ndarray, path: Path) -> None:
    """Write the 2-D pixels as a .npy file, dtype and values exactly."""
    encoded = io.BytesIO()
    np.save(encoded, np.ascontiguousarray(pixels), allow_pickle=False)
    with open(path, "xb") as handle:  # one Python write: a full disk raises OSError with its errno (numpy's doesn't)
        handle.write(encoded.getbuffer())
