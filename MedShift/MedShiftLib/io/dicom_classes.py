"""DICOM objects that are not images to translate: segmentations, RT objects, reports, presentation states.

Some carry pixel data (a SEG's binary frames, an RT dose grid, a parametric map), so "has pixels" is not
enough: translated, a SEG came out as a Secondary Capture that still said SEG. They are told by their SOP
class, or by their modality where the class is a private or newer one.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputImageError
from ..optional_packages import OptionalModule
from .input_size import check_dicom_input_size

_dicom = OptionalModule(f"{__package__}.dicom", "DICOM files", requires="pydicom")  # pydicom only for DICOM

NON_IMAGE_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.66.4": "a segmentation (SEG)",
    "1.2.840.10008.5.1.4.1.1.66.7": "a label map segmentation",
    "1.2.840.10008.5.1.4.1.1.66.8": "a height map segmentation",
    "1.2.840.10008.5.1.4.1.1.66.5": "a surface segmentation",
    "1.2.840.10008.5.1.4.1.1.30": "a parametric map",
    "1.2.840.10008.5.1.4.1.1.481.2": "an RT dose",
    "1.2.840.10008.5.1.4.1.1.481.3": "an RT structure set (RTSTRUCT)",
    "1.2.840.10008.5.1.4.1.1.481.5": "an RT plan",
    "1.2.840.10008.5.1.4.1.1.481.8": "an RT ion plan",
    "1.2.840.10008.5.1.4.1.1.88.59": "a key object selection (KOS)",
    "1.2.840.10008.5.1.4.1.1.66": "raw data",
    "1.2.840.10008.5.1.4.1.1.66.1": "a spatial registration",
    "1.2.840.10008.5.1.4.1.1.104.1": "an encapsulated PDF",
}
NON_IMAGE_CLASS_PREFIXES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.88.": "a structured report (SR)",
    "1.2.840.10008.5.1.4.1.1.11.": "a presentation state (PR)",
}
NON_IMAGE_MODALITIES: dict[str, str] = {
    "SEG": "a segmentation (SEG)", "RTSTRUCT": "an RT structure set (RTSTRUCT)", "RTDOSE": "an RT dose",
    "RTPLAN": "an RT plan", "SR": "a structured report (SR)", "PR": "a presentation state (PR)",
    "KO": "a key object selection (KOS)", "REG": "a spatial registration", "DOC": "a document",
}


def non_image_kind(sop_class: str, modality: str) -> str | None:
    """What a non-image object is ("a segmentation (SEG)"), or None for an image."""
    if sop_class in NON_IMAGE_CLASSES:
        return NON_IMAGE_CLASSES[sop_class]
    for prefix, kind in NON_IMAGE_CLASS_PREFIXES.items():
        if sop_class.startswith(prefix):
            return kind
    return NON_IMAGE_MODALITIES.get(modality.upper())


def refuse_non_image(ds, path: Path) -> None:
    """InputImageError naming the object when the dataset is not an image (see the module docstring)."""
    kind = non_image_kind(str(ds.get("SOPClassUID", "") or ""), str(ds.get("Modality", "") or ""))
    if kind is not None:
        raise InputImageError(f"{path}: is {kind}, not an image; MedShift translates radiographs: give the image "
                              "file of the series")


def check_dicom_input(ds, path: Path) -> None:
    """Before decoding: InputImageError for a non-image object or an image too large (io/input_size.py)."""
    refuse_non_image(ds, path)
    check_dicom_input_size(str(path), ds)


def read_checked_dicom_header(path: Path):
    """The DICOM dataset of `path` (dicom.read_dicom_header), refused by check_dicom_input before any decoding."""
    ds = _dicom.read_dicom_header(path)
    check_dicom_input(ds, path)
    return ds
