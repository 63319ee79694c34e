"""Radiograph files (DICOM, NRRD, NIfTI, MHA/MHD, PNG, TIFF) to and from RadiographImage.

DICOM goes through pydicom (see dicom.py for its rules); every other format through SimpleITK.

What each format keeps on a write-then-read round trip (tested in Testing/test_radiograph_io.py):
- NRRD, MHA/MHD: pixels, dtype, spacing, origin and direction exactly.
- NIfTI: pixels and dtype exactly; spacing, origin and direction to float32 precision (the format's own).
- PNG: pixels exactly (8- or 16-bit unsigned); spacing exactly (SimpleITK writes it in the file);
  origin and direction are lost (read back as 0 and identity).
- TIFF: pixels exactly (8- or 16-bit unsigned); spacing to ~1e-8 relative (a float32 rational);
  origin and direction are lost.
- DICOM: pixels exactly (through the rescale when needed, 16-bit otherwise), spacing; see dicom.

PNG/TIFF hold only unsigned 8- or 16-bit integers. write_radiograph stores an image there only when
that is lossless: uint8 pixels as 8-bit, other pixels whose values are all whole numbers in 0..65535
as 16-bit. Anything else (fractional, negative or larger values) is refused with InputImageError that
suggests NRRD, MHA or NIfTI, which keep any pixel type: no silent rescaling of stored values.

An image whose pixel spacing is not a physical size (read from PNG or TIFF, or a Slicer node loaded from
one: metadata["spacing_known"] False) is written to NRRD or MHA with the key `medshift_spacing` =
`unknown`, and read back with spacing_known False, so the translation still treats its spacing as unknown
(NIfTI has no room for the key).

Colour inputs are converted to grey with the ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, rounded
back to the input's integer type), with a warning and metadata["converted_from_rgb"] = True.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..atomic_files import publish_folder, temporary_folder
from ..engine.intensity import check_finite_grey
from ..errors import InputImageError, MedShiftError
from . import dicom
from .checked_writes import itk_error_text, write_itk_checked
from .dicom_classes import refuse_non_image
from .file_dependencies import files_of_image, files_written_for, same_file
from .input_size import check_dicom_input_size, check_itk_input_size
from .radiograph import RadiographImage
from .regular_files import check_regular_file, readable_path

_FORMAT_OF_EXTENSION: dict[str, str] = {
    ".dcm": "dicom", ".dicom": "dicom", ".ima": "dicom",
    ".nrrd": "nrrd", ".nhdr": "nrrd",
    ".nii.gz": "nifti", ".nii": "nifti",
    ".mha": "mha", ".mhd": "mha",
    ".png": "png",
    ".tif": "tiff", ".tiff": "tiff",
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


def radiograph_format(path: str | Path) -> str:
    """The format of a radiograph file: "dicom", "nrrd", "nifti", "mha", "png" or "tiff".

    Told from the extension; an existing file with another or no extension is taken for DICOM when it
    carries the DICOM preamble ("DICM" at byte 128), else InputImageError.
    """
    path = Path(path)
    fmt = _extension_format(path)
    if fmt is not None:
        return fmt
    if path.is_file():
        with open(path, "rb") as handle:
            handle.seek(128)
            if handle.read(4) == b"DICM":
                return "dicom"
    raise InputImageError(
        f"{path}: unsupported file type '{path.suffix}'; MedShift reads and writes {', '.join(SUPPORTED_EXTENSIONS)}"
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
    refuse_non_image(ds, path)  # a SEG, RT dose or parametric map has pixels but is no radiograph
    check_dicom_input_size(str(path), ds)  # from the header, before decoding
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


# ---- SimpleITK formats -----------------------------------------------------------------------------

def _unreadable(path: Path, fmt: str, exc: Exception) -> InputImageError:
    """The error for a file SimpleITK cannot read."""
    return InputImageError(
        f"{path}: cannot read this {fmt.upper()} file, it looks truncated or damaged ({itk_error_text(exc)})"
    )


def _read_itk(path: Path, fmt: str) -> sitk.Image:
    """The whole image, or InputImageError for an unreadable file."""
    try:
        with readable_path(path) as readable:
            return sitk.ReadImage(str(readable))
    except RuntimeError as exc:
        raise _unreadable(path, fmt, exc) from exc


def _itk_frame_count(path: Path, fmt: str) -> int:
    """Slices along the third axis (1 for a 2-D image), read from the header only."""
    reader = sitk.ImageFileReader()
    try:
        with readable_path(path) as readable:
            reader.SetFileName(str(readable))
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _unreadable(path, fmt, exc) from exc
    size = reader.GetSize()
    if len(size) > 3:
        raise InputImageError(f"{path}: a {len(size)}-D image cannot be read as radiographs")
    check_itk_input_size(str(path), reader)  # from the header, before decoding
    return int(size[2]) if len(size) == 3 else 1


def _itk_images(path: Path, fmt: str, frames: list[int] | None, count: int) -> list[RadiographImage]:
    """The chosen slices (all when frames is None) of a SimpleITK-readable file."""
    image = _read_itk(path, fmt)
    dim = image.GetDimension()
    if dim > 3:
        raise InputImageError(f"{path}: a {dim}-D image cannot be read as radiographs")
    array = sitk.GetArrayFromImage(image)  # (z,) rows, cols (, components)
    components = image.GetNumberOfComponentsPerPixel()
    if dim == 2:
        array = array[np.newaxis]
        spacing = (*image.GetSpacing(), 1.0)
        origin = (*image.GetOrigin(), 0.0)
        d = image.GetDirection()
        direction = (d[0], d[1], 0.0, d[2], d[3], 0.0, 0.0, 0.0, 1.0)
    else:
        spacing, origin, direction = image.GetSpacing(), image.GetOrigin(), image.GetDirection()
    if components == 1 and array.ndim == 4:
        array = array[..., 0]
    keys = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
    result = []
    for k in range(count) if frames is None else frames:
        slice_origin = tuple(
            float(o + k * spacing[2] * direction[3 * i + 2]) for i, o in enumerate(origin)
        )
        metadata = {"source_path": str(path.resolve()), "dimension": dim, "frame": k, "number_of_frames": count,
                    "itk_metadata": dict(keys)}
        if keys.get(SPACING_KEY) == UNKNOWN_SPACING:
            metadata["spacing_known"] = False
        result.append(_finish(
            array[k], path, spacing=tuple(float(s) for s in spacing), origin=slice_origin,
            direction=tuple(float(v) for v in direction), photometric="MONOCHROME2", file_format=fmt,
            metadata=metadata,
        ))
    return result


# ---- public reading API ----------------------------------------------------------------------------

def count_frames(path: str | Path) -> int:
    """Number of 2-D frames in a radiograph file (DICOM frames, or slices of a 3-D NRRD/NIfTI/MHA/TIFF)."""
    path = Path(path)
    fmt = _check_readable(path)
    if fmt == "dicom":
        return dicom.dicom_frame_count(dicom.read_dicom_header(path))
    return _itk_frame_count(path, fmt)


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
        ds = dicom.read_dicom_header(path)
        index = _select_frame(path, frame, dicom.dicom_frame_count(ds))
        header = dicom.header_without_pixels(ds)
        return _dicom_image(ds, path, index, header)
    count = _itk_frame_count(path, fmt)
    return _itk_images(path, fmt, [_select_frame(path, frame, count)], count)[0]


def read_radiograph_frames(path: str | Path) -> list[RadiographImage]:
    """Every frame of a radiograph file in order (one item for a single image), to translate a cine frame by frame."""
    path = Path(path)
    fmt = _check_readable(path)
    if fmt == "dicom":
        ds = dicom.read_dicom_header(path)
        header = dicom.header_without_pixels(ds)
        return [_dicom_image(ds, path, k, header) for k in range(dicom.dicom_frame_count(ds))]
    return _itk_images(path, fmt, None, _itk_frame_count(path, fmt))


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
    if fmt in ("png", "tiff"):
        pixels = _png_tiff_pixels(image.pixels, final_path, fmt)
        write_itk_checked(_itk_image(image, pixels, two_d=True), target, final_path, fmt)
        return
    out = _itk_image(image, image.pixels, two_d=_is_planar(image))
    if image.metadata.get("spacing_known") is False or (image.metadata.get("spacing_known") is None
                                                        and image.file_format in ("png", "tiff")):
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
    targets = files_written_for(path)
    _refuse_overwriting_source(targets, source, image)
    with temporary_folder(path) as temp_folder:
        try:
            _write_into(temp_folder, path.name, fmt, image, source, series_description, path)
        except RuntimeError as exc:  # SimpleITK writer errors
            raise MedShiftError(f"{path}: cannot write this {fmt.upper()} file ({itk_error_text(exc)})") from exc
        publish_folder(temp_folder, path, overwrite)  # data files of a detached header first, the header last
    return path
