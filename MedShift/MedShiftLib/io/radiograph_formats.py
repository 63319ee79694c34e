"""Which format a radiograph file is: told from its extension, or DICOM by its preamble ("DICM" at byte 128).

Also the key that marks, in an NRRD or MHA file, a pixel spacing that is no physical size (written by
radiograph_writing.py, read by radiograph_files.py).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputImageError

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


def extension_format(path: Path) -> str | None:
    """The format named by the path's extension ("dicom", "nrrd", ... as radiograph_format), or None."""
    name = path.name.lower()
    for extension in sorted(_FORMAT_OF_EXTENSION, key=len, reverse=True):
        if name.endswith(extension):
            return _FORMAT_OF_EXTENSION[extension]
    return None


def has_supported_extension(path: str | Path) -> bool:
    """True when the file name ends with one of SUPPORTED_EXTENSIONS (case-insensitive)."""
    return extension_format(Path(path)) is not None


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
    fmt = extension_format(path)
    if fmt is not None:
        return fmt
    if has_dicom_preamble(path):
        return "dicom"
    raise InputImageError(
        f"{path}: unsupported file type '{path.suffix}'; MedShift reads {', '.join(SUPPORTED_EXTENSIONS)}"
    )
