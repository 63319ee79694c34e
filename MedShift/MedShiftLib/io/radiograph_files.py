"""Radiograph files (DICOM, NRRD, NIfTI, MHA/MHD, PNG, TIFF, JPEG, BMP, NumPy .npy) to and from RadiographImage.

DICOM goes through pydicom (see dicom.py for its rules); NRRD, NIfTI and MHA through SimpleITK (itk_files.py); PNG,
TIFF, JPEG and BMP through Pillow (raster_files.py: pixel spacing from TIFF resolution tags); .npy through numpy
(array_files.py). Each package is imported when a file of its format is first read or written, so importing this
module needs only numpy; a missing one is named in a one-line MissingPackageError with its pip command.

Which format a path is: radiograph_formats.py. Writing, and what each format keeps on a write-then-read
round trip: radiograph_writing.py (write_radiograph, also importable from here).

Colour inputs are converted to grey with the ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, rounded
back to the input's integer type), with a warning and metadata["converted_from_rgb"] = True.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..engine.intensity import check_finite_grey
from ..errors import InputImageError
from ..optional_packages import OptionalModule
from .array_files import array_frame_count, read_array_frames
from .dicom_classes import read_checked_dicom_header
from .itk_files import itk_frame_count, read_itk_slices
from .radiograph import RadiographImage
from .radiograph_formats import (  # noqa: F401 (SUPPORTED_EXTENSIONS ... is_radiograph_file: this module's API too)
    SPACING_KEY,
    SUPPORTED_EXTENSIONS,
    UNKNOWN_SPACING,
    has_dicom_preamble,
    has_supported_extension,
    is_radiograph_file,
    radiograph_format,
)
from .radiograph_writing import write_radiograph  # noqa: F401 (this module's API: files to and from RadiographImage)
from .raster_files import raster_frame_count, read_raster_frames
from .regular_files import check_regular_file

dicom = OptionalModule(f"{__package__}.dicom", "DICOM files", requires="pydicom")
BT601_LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)


def _check_readable(path: Path) -> str:
    """The file's format, after checking that it exists and is a file."""
    if not path.exists():
        raise InputImageError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputImageError(f"{path}: is a folder; give one image file")
    check_regular_file(path)  # a FIFO, device or socket is refused here, never opened to wait
    return radiograph_format(path)


def _grey(pixels: np.ndarray, path: Path, metadata: dict) -> np.ndarray:
    """Colour (rows, cols, C) pixels as grey (BT.601 luma, with a warning); grey pixels unchanged."""
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[-1] == 2:  # grey + alpha
        metadata["dropped_alpha"] = True
        return pixels[..., 0]
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        luma = pixels[..., :3].astype(np.float64) @ np.array(BT601_LUMA)
        if pixels.dtype.kind in "iu":
            info = np.iinfo(pixels.dtype)
            luma = np.clip(np.rint(luma), info.min, info.max)
        grey = luma.astype(pixels.dtype if pixels.dtype.kind in "iuf" else np.float32)
        metadata["converted_from_rgb"] = True
        warnings.warn(
            f"{path}: colour image converted to grey with the ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B)",
            UserWarning,
            stacklevel=3,
        )
        return grey
    raise InputImageError(f"{path}: pixels of shape {pixels.shape} are not a 2-D grey or colour image")


def _finish(pixels: np.ndarray, path: Path, **fields) -> RadiographImage:
    """A checked RadiographImage from decoded pixels: colour made grey, NaN and constant images refused."""
    metadata = fields.pop("metadata")
    pixels = _grey(pixels, path, metadata)
    if pixels.dtype.kind == "f" and pixels.dtype.itemsize < 4:
        pixels = pixels.astype(np.float32)
    check_finite_grey(pixels, name=str(path))
    return RadiographImage(pixels=np.ascontiguousarray(pixels), metadata=metadata, **fields)


def _select_frame(path: Path, frame: int | None, count: int) -> int:
    """The frame index to read, or InputImageError for a volume read without a frame or a frame out of range."""
    if frame is None:
        if count > 1:
            raise InputImageError(
                f"{path}: holds {count} frames (a cine or a 3-D volume), but one 2-D radiograph is needed; "
                f"pick a frame (0..{count - 1}), translate every frame, or, for a CT volume, "
                "make a projection radiograph from it first"
            )
        return 0
    if not 0 <= frame < count:
        raise InputImageError(f"{path}: frame {frame} does not exist; the file has {count} frame(s), 0..{count - 1}")
    return frame


# ---- DICOM -----------------------------------------------------------------------------------------

def _dicom_image(ds, path: Path, frame: int, header) -> RadiographImage:
    """One decoded DICOM frame as a RadiographImage sharing `header` (the dataset without pixel data)."""
    pixels = dicom.decode_dicom_frame(ds, path, frame)
    spacing, origin, direction, spacing_source = dicom.dicom_geometry(ds, frame, str(path))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    metadata = {
        "source_path": str(path.resolve()),
        "dicom_dataset": header,
        "frame": frame,
        "number_of_frames": dicom.dicom_frame_count(ds),
        "spacing_source": spacing_source,
        **dicom.dicom_display_metadata(ds, frame),
    }
    if spacing_source == "none":  # no ImagerPixelSpacing/PixelSpacing, or 0\0: the 1 mm is a placeholder
        metadata["spacing_known"] = False
    return _finish(
        pixels, path, spacing=spacing, origin=origin, direction=direction,
        photometric=photometric if photometric in ("MONOCHROME1", "MONOCHROME2") else "MONOCHROME2",
        file_format="dicom", metadata=metadata,
    )


# ---- SimpleITK, Pillow and NumPy formats ------------------------------------------------------------

def _frame_count(path: Path, fmt: str) -> int:
    """Frames of a non-DICOM file, from its header where the format allows."""
    if fmt in ("png", "tiff", "jpeg", "bmp"):
        return raster_frame_count(path, fmt)
    if fmt == "npy":
        return array_frame_count(path)
    return itk_frame_count(path, fmt)


def _file_images(path: Path, fmt: str, frames: list[int] | None, count: int) -> list[RadiographImage]:
    """The chosen frames (all when frames is None) of a non-DICOM file."""
    chosen = list(range(count)) if frames is None else frames
    base = {"source_path": str(path.resolve()), "number_of_frames": count}
    if fmt in ("nrrd", "nifti", "mha"):
        slices = read_itk_slices(path, fmt, frames, count)
        base.update(dimension=slices.dimension, itk_metadata=dict(slices.keys))
        if slices.keys.get(SPACING_KEY) == UNKNOWN_SPACING:
            base["spacing_known"] = False
        return [_finish(array, path, spacing=slices.spacing, origin=origin, direction=slices.direction,
                        photometric="MONOCHROME2", file_format=fmt, metadata={**base, "frame": k})
                for k, array, origin in zip(chosen, slices.arrays, slices.origins)]
    if fmt == "npy":
        arrays, spacing, base["spacing_known"] = read_array_frames(path, frames), (1.0, 1.0), False
    else:
        raster = read_raster_frames(path, fmt, frames)
        arrays, spacing = raster.arrays, raster.spacing
        base.update(spacing_known=raster.spacing_known, spacing_source=raster.spacing_source)
    return [_finish(array, path, spacing=(*spacing, 1.0), file_format=fmt, metadata={**base, "frame": k})
            for k, array in zip(chosen, arrays)]


# ---- public reading API ----------------------------------------------------------------------------

def count_frames(path: str | Path) -> int:
    """Number of 2-D frames in a radiograph file (DICOM frames, TIFF pages, slices of a 3-D NRRD/NIfTI/MHA or .npy)."""
    path = Path(path)
    fmt = _check_readable(path)
    if fmt == "dicom":
        return dicom.dicom_frame_count(read_checked_dicom_header(path))  # a SEG or RT dose, or too large: refused
    return _frame_count(path, fmt)


def read_radiograph(path: str | Path, frame: int | None = None) -> RadiographImage:
    """Read one 2-D radiograph (or frame `frame` of a cine or volume) from any supported file.

    Pixels are the stored values after the modality rescale, in their stored dtype (integer when the
    rescale is an integer shift, else float32); the VOI LUT is not applied (window centre/width are in
    the metadata). DICOM spacing comes from ImagerPixelSpacing if present, else PixelSpacing (see
    dicom.py). Raises InputImageError naming the file for every unusable input.
    """
    path = Path(path)
    fmt = _check_readable(path)
    if fmt == "dicom":
        ds = read_checked_dicom_header(path)
        index = _select_frame(path, frame, dicom.dicom_frame_count(ds))
        header = dicom.header_without_pixels(ds)
        return _dicom_image(ds, path, index, header)
    count = _frame_count(path, fmt)
    return _file_images(path, fmt, [_select_frame(path, frame, count)], count)[0]


def read_radiograph_frames(path: str | Path) -> list[RadiographImage]:
    """Every frame of a radiograph file in order (one item for a single image), to translate a cine frame by frame."""
    path = Path(path)
    fmt = _check_readable(path)
    if fmt == "dicom":
        ds = read_checked_dicom_header(path)
        header = dicom.header_without_pixels(ds)
        return [_dicom_image(ds, path, k, header) for k in range(dicom.dicom_frame_count(ds))]
    return _file_images(path, fmt, None, _frame_count(path, fmt))
