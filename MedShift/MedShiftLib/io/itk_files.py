"""Reading NRRD, NIfTI and MHA/MHD files through SimpleITK, imported when such a file is first read or written.

A GPU machine without SimpleITK still translates PNG, TIFF, JPEG, BMP and .npy files (raster_files,
array_files); asking it for one of these formats gives one line naming the package to install.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputImageError
from ..optional_packages import OptionalModule
from .input_size import check_input_size
from .regular_files import readable_path

sitk = OptionalModule("SimpleITK", "NRRD, NIfTI and MHA files")


@dataclass
class ItkSlices:
    """The chosen slices of an image file with the geometry of each and the file's metadata keys."""

    arrays: list[np.ndarray]
    spacing: tuple[float, float, float]
    origins: list[tuple[float, float, float]]
    direction: tuple[float, ...]
    dimension: int
    keys: dict[str, str]


def itk_error_text(exc: Exception) -> str:
    """The last meaningful line of a SimpleITK exception (they span many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _unreadable(path: Path, fmt: str, exc: Exception) -> InputImageError:
    """The error for a file SimpleITK cannot read."""
    return InputImageError(
        f"{path}: cannot read this {fmt.upper()} file, it looks truncated or damaged ({itk_error_text(exc)})"
    )


def _check_size(path: Path, reader) -> None:
    """check_input_size for a file whose header `reader` has read (the whole file is decoded at once)."""
    size = reader.GetSize()
    component = sitk.Image([1] * len(size), reader.GetPixelID()).GetSizeOfPixelComponent()
    check_input_size(str(path), size[1], size[0], math.prod(size) * reader.GetNumberOfComponents() * component)


def itk_frame_count(path: Path, fmt: str) -> int:
    """Slices along the third axis (1 for a 2-D image), read from the header only."""
    reader = sitk.ImageFileReader()
    try:
        with readable_path(path) as readable:  # the checked regular file, never a FIFO put in its place
            reader.SetFileName(str(readable))
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _unreadable(path, fmt, exc) from exc
    size = reader.GetSize()
    if len(size) > 3:
        raise InputImageError(f"{path}: a {len(size)}-D image cannot be read as radiographs")
    _check_size(path, reader)  # from the header, before decoding
    return int(size[2]) if len(size) == 3 else 1


def read_itk_slices(path: Path, fmt: str, frames: list[int] | None, count: int) -> ItkSlices:
    """The chosen slices (all when frames is None) of a SimpleITK-readable file, each (rows, cols[, components])."""
    try:
        with readable_path(path) as readable:
            image = sitk.ReadImage(str(readable))
    except RuntimeError as exc:
        raise _unreadable(path, fmt, exc) from exc
    dim = image.GetDimension()
    if dim > 3:
        raise InputImageError(f"{path}: a {dim}-D image cannot be read as radiographs")
    array = sitk.GetArrayFromImage(image)  # (z,) rows, cols (, components)
    if dim == 2:
        array = array[np.newaxis]
        spacing = (*image.GetSpacing(), 1.0)
        origin = (*image.GetOrigin(), 0.0)
        d = image.GetDirection()
        direction = (d[0], d[1], 0.0, d[2], d[3], 0.0, 0.0, 0.0, 1.0)
    else:
        spacing, origin, direction = image.GetSpacing(), image.GetOrigin(), image.GetDirection()
    if image.GetNumberOfComponentsPerPixel() == 1 and array.ndim == 4:
        array = array[..., 0]
    chosen = list(range(count)) if frames is None else frames
    origins = [tuple(float(o + k * spacing[2] * direction[3 * i + 2]) for i, o in enumerate(origin)) for k in chosen]
    return ItkSlices(arrays=[array[k] for k in chosen], spacing=tuple(float(s) for s in spacing),
                     origins=origins, direction=tuple(float(v) for v in direction), dimension=dim,
                     keys={key: image.GetMetaData(key) for key in image.GetMetaDataKeys()})
