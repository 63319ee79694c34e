"""Writing a RadiographImage to a radiograph file (any format radiograph_files.py reads but JPEG), atomically.

What each format keeps on a write-then-read round trip (tested in Testing/test_radiograph_io.py):
- NRRD, MHA/MHD: pixels, dtype, spacing, origin and direction exactly.
- NIfTI: pixels and dtype exactly; spacing, origin and direction to float32 precision (the format's own).
- PNG: pixels exactly (8- or 16-bit unsigned); spacing exactly (in an sCAL chunk, as SimpleITK writes
  it), but read back as unknown; origin and direction are lost (read back as 0 and identity).
- TIFF: pixels exactly (8- or 16-bit unsigned); a known spacing to ~1e-9 relative (a rational in pixels
  per cm), an unknown one is not written; origin and direction are lost.
- BMP: 8-bit pixels exactly; spacing, origin and direction are lost.
- .npy: pixels and dtype exactly; spacing, origin and direction are lost.
- JPEG is read (8-bit grey or colour) but never written: it is lossy. translate writes a JPEG input's
  output as PNG (pipeline/output_plan.py); write_radiograph refuses a .jpg path.
- DICOM: pixels exactly (through the rescale when needed, 16-bit otherwise), spacing; see dicom.

PNG/TIFF hold only unsigned 8- or 16-bit integers (BMP only 8-bit). write_radiograph stores an image
there only when that is lossless: uint8 pixels as 8-bit, other pixels whose values are all whole
numbers in 0..65535 as 16-bit. Anything else (fractional, negative or larger values) is refused with
InputImageError that suggests NRRD, MHA or NIfTI, which keep any pixel type: no silent rescaling of
stored values.

An image whose pixel spacing is not a physical size (read from PNG, JPEG, BMP, .npy or a TIFF without physical
resolution tags, or a Slicer node loaded from one: metadata["spacing_known"] False) is written to NRRD or MHA with
the key `medshift_spacing` = `unknown`, and read back with spacing_known False, so the translation still treats its
spacing as unknown (NIfTI has no room for the key); to TIFF without resolution tags.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic_files import publish_folder, temporary_folder
from ..errors import InputImageError, MedShiftError
from ..optional_packages import OptionalModule
from .array_files import write_array
from .checked_writes import write_itk_checked
from .file_dependencies import files_of_image, files_written_for, same_file
from .itk_files import itk_error_text, sitk
from .radiograph import RadiographImage
from .radiograph_formats import SPACING_KEY, SUPPORTED_EXTENSIONS, UNKNOWN_SPACING, extension_format
from .raster_files import write_raster

dicom = OptionalModule(f"{__package__}.dicom", "DICOM files", requires="pydicom")


def _refuse_overwriting_source(paths: list[Path], *images: RadiographImage | None) -> None:
    """Raise MedShiftError when one of `paths` is a file one of the images was read from (header or data file)."""
    for image in images:
        source_path = image.metadata.get("source_path") if image is not None else None
        if not source_path:
            continue
        header, *data_files = files_of_image(source_path)
        for read in (header, *data_files):
            for path in paths:
                if same_file(read, path):
                    what = "the input file" if read == header else f"a data file of the input {source_path}"
                    raise MedShiftError(f"{path}: is {what}; MedShift never overwrites its input, choose another "
                                        "output name or --out")


def _png_tiff_pixels(pixels: np.ndarray, path: Path, fmt: str) -> np.ndarray:
    """Pixels as uint8/uint16 when that stores them exactly, else InputImageError (see the module docstring)."""
    if pixels.dtype == np.uint8 or pixels.dtype == np.bool_:
        return pixels.astype(np.uint8)
    if pixels.dtype.kind in "iu" and pixels.size and pixels.min() >= 0 and pixels.max() <= 65535:
        return pixels.astype(np.uint16, copy=False)  # whole numbers already: no float64 copy of a large image
    values = pixels.astype(np.float64)
    finite = bool(np.all(np.isfinite(values)))
    if finite and np.all(values == np.rint(values)) and values.min() >= 0 and values.max() <= 65535:
        return values.astype(np.uint16)
    low, high = (float(np.nanmin(values)), float(np.nanmax(values))) if values.size else (0.0, 0.0)
    raise InputImageError(
        f"{path}: {fmt.upper()} stores only whole numbers 0..65535, but this {pixels.dtype} image has values "
        f"{low:g}..{high:g}{'' if finite else ' and NaN/infinite pixels'}; write .nrrd, .mha or .nii.gz to keep "
        "the values exactly, or rescale the image to 0..65535 first"
    )


def _is_planar(image: RadiographImage) -> bool:
    """True when the geometry is that of a plain 2-D image (so a 2-D file keeps it)."""
    d = image.direction
    return (
        image.metadata.get("dimension", 2) == 2
        and d[2] == 0 and d[5] == 0 and d[6] == 0 and d[7] == 0 and d[8] == 1
        and image.origin[2] == 0
    )


def _itk_image(image: RadiographImage, pixels: np.ndarray, two_d: bool) -> sitk.Image:
    """A SimpleITK image of `pixels` on the image's grid (2-D, or a single-slice 3-D volume)."""
    if pixels.dtype == np.bool_:
        pixels = pixels.astype(np.uint8)
    elif pixels.dtype == np.float16:
        pixels = pixels.astype(np.float32)
    if two_d:
        out = sitk.GetImageFromArray(pixels)
        d = image.direction
        out.SetSpacing(tuple(image.spacing[:2]))
        out.SetOrigin(tuple(image.origin[:2]))
        out.SetDirection((d[0], d[1], d[3], d[4]))
    else:
        out = sitk.GetImageFromArray(pixels[np.newaxis])
        out.SetSpacing(tuple(image.spacing))
        out.SetOrigin(tuple(image.origin))
        out.SetDirection(tuple(image.direction))
    return out


def _spacing_known(image: RadiographImage) -> bool:
    """False when the image's spacing is no physical size (said so, or read from a format that records none)."""
    known = image.metadata.get("spacing_known")
    return known if known is not None else image.file_format not in ("png", "tiff", "jpeg", "bmp", "npy")


def _write_into(folder: Path, name: str, fmt: str, image: RadiographImage, source: RadiographImage | None,
                series_description: str | None, final_path: Path) -> None:
    """Write the file `folder/name` (and any data file a detached header needs) in format `fmt`."""
    target = folder / name
    if fmt == "dicom":
        reference_image = source if source is not None and source.file_format == "dicom" else image
        reference = reference_image.metadata.get("dicom_dataset") if reference_image.file_format == "dicom" else None
        if reference is not None:
            image = image.with_pixels(image.pixels)
            for key in ("frame", "spacing_source"):  # the reference's frame and spacing tag, not the output's own
                if key in reference_image.metadata:
                    image.metadata[key] = reference_image.metadata[key]
        try:
            dicom.write_dicom_file(dicom.build_derived_dataset(image, reference, series_description), target)
        except OSError as exc:  # pydicom re-raises a disk error as a bare OSError with a traceback for its text
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            if cause.errno is None:
                raise
            raise OSError(cause.errno, cause.strerror, str(final_path)) from None
        return
    if fmt in ("png", "tiff", "bmp"):
        write_raster(_png_tiff_pixels(image.pixels, final_path, fmt), image.spacing[:2], _spacing_known(image), target,
                     fmt)
        return
    if fmt == "npy":
        write_array(image.pixels, target)
        return
    out = _itk_image(image, image.pixels, two_d=_is_planar(image))
    if not _spacing_known(image):
        out.SetMetaData(SPACING_KEY, UNKNOWN_SPACING)
    write_itk_checked(out, target, final_path, fmt, compress=fmt in ("nrrd", "mha"))


def write_radiograph(
    image: RadiographImage,
    path: str | Path,
    *,
    source: RadiographImage | None = None,
    series_description: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write `image` atomically in the format of the path's extension; returns the written path.

    DICOM: a derived single-frame instance built from `source`'s dataset (or the image's own, when it
    was read from DICOM): same patient and study, new series/instance UIDs, ImageType DERIVED\\SECONDARY,
    SeriesDescription = `series_description`; with no DICOM reference, a Secondary Capture.
    Refuses (MedShiftError) to overwrite a file `source` or `image` was read from (its header or a
    detached data file); the parent folder is created if missing. overwrite=False creates the file
    exclusively: FileExistsError when it exists, also when another process made it meanwhile.
    PNG/TIFF store only lossless 8/16-bit values (see the module docstring).
    """
    path = Path(path)
    fmt = extension_format(path)
    if fmt is None:
        raise MedShiftError(
            f"{path}: cannot tell the output format from '{path.suffix}'; use one of {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    if fmt == "jpeg":
        raise MedShiftError(f"{path}: JPEG is lossy, so MedShift does not write it; write .png instead (lossless)")
    targets = files_written_for(path)
    _refuse_overwriting_source(targets, source, image)
    with temporary_folder(path) as temp_folder:
        try:
            _write_into(temp_folder, path.name, fmt, image, source, series_description, path)
        except RuntimeError as exc:  # SimpleITK writer errors
            raise MedShiftError(f"{path}: cannot write this {fmt.upper()} file ({itk_error_text(exc)})") from exc
        publish_folder(temp_folder, path, overwrite)  # data files of a detached header first, the header last
    return path
