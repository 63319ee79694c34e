"""Radiograph files (DICOM, NRRD, NIfTI, MHA/MHD, PNG, TIFF, JPEG, BMP, NumPy .npy) to and from RadiographImage.

DICOM goes through pydicom (see dicom.py for its rules); NRRD, NIfTI and MHA through SimpleITK (itk_files.py); PNG,
TIFF, JPEG and BMP through Pillow (raster_files.py: pixel spacing from TIFF resolution tags); .npy through numpy
(array_files.py). Each package is imported when a file of its format is first read or written, so importing this
module needs only numpy; a missing one is named in a one-line MissingPackageError with its pip command.

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

Colour inputs are converted to grey with the ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, rounded
back to the input's integer type), with a warning and metadata["converted_from_rgb"] = True.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..atomic_files import publish_folder, temporary_folder
from ..engine.intensity import check_finite_grey
from ..errors import InputImageError, MedShiftError
from ..optional_packages import OptionalModule
from .array_files import array_frame_count, read_array_frames, write_array
from .checked_writes import write_itk_checked
from .dicom_classes import read_checked_dicom_header
from .file_dependencies import files_of_image, files_written_for, same_file
from .itk_files import itk_error_text, itk_frame_count, read_itk_slices, sitk
from .radiograph import RadiographImage
from .raster_files import raster_frame_count, read_raster_frames, write_raster
from .regular_files import check_regular_file

dicom = OptionalModule(f"{__package__}.dicom", "DICOM files", requires="pydicom")

_FORMAT_OF_EXTENSION: dict[str, str] = {
    ".dcm": "dicom", ".dicom": "dicom", ".ima": "dicom",
    ".nrrd": "nrrd", ".nhdr": "nrrd",
    ".nii.gz": "nifti", ".nii": "nifti",
    ".mha": "mha", ".mhd": "mha",
    ".png": "png",
    ".tif": "tiff", ".tiff": "tiff",
    ".jpg": "jpeg", ".jpeg": "jpeg",
    ".bmp": "bmp",
    ".npy": "npy",
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(_FORMAT_OF_EXTENSION)
SPACING_KEY, UNKNOWN_SPACING = "medshift_spacing", "unknown"
BT601_LUMA: tuple[float, float, float] = (0.299, 0.587, 0.114)


def _extension_format(path: Path) -> str | None:
    """The format named by the path's extension, or None."""
    name = path.name.lower()
    for extension in sorted(_FORMAT_OF_EXTENSION, key=len, reverse=True):
        if name.endswith(extension):
            return _FORMAT_OF_EXTENSION[extension]
    return None


def has_supported_extension(path: str | Path) -> bool:
    """True when the file name ends with one of SUPPORTED_EXTENSIONS (case-insensitive)."""
    return _extension_format(Path(path)) is not None


def has_dicom_preamble(path: str | Path) -> bool:
    """True for a regular file with "DICM" at byte 128 (the DICOM Part 10 preamble), whatever its name."""
    path = Path(path)
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_radiograph_file(path: str | Path) -> bool:
    """True when a folder's file is read as a radiograph: a supported extension, or a DICOM file by its preamble
    (DICOM exports often have no extension, e.g. a DICOMDIR's IM000001)."""
    if Path(path).name.upper() == "DICOMDIR":  # the index of a DICOM export, no image
        return False
    return has_supported_extension(path) or has_dicom_preamble(path)


def radiograph_format(path: str | Path) -> str:
    """The format of a radiograph file: "dicom", "nrrd", "nifti", "mha", "png", "tiff", "jpeg", "bmp" or "npy".

    Told from the extension; an existing file with another or no extension is taken for DICOM when it
    carries the DICOM preamble ("DICM" at byte 128), else InputImageError.
    """
    path = Path(path)
    fmt = _extension_format(path)
    if fmt is not None:
        return fmt
    if has_dicom_preamble(path):
        return "dicom"
    raise InputImageError(
        f"{path}: unsupported file type '{path.suffix}'; MedShift reads {', '.join(SUPPORTED_EXTENSIONS)}"
    )


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


# ---- writing ---------------------------------------------------------------------------------------

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
    fmt = _extension_format(path)
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
