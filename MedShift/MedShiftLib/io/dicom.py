"""DICOM radiographs (CR, DX, XA, RF, secondary capture) to and from RadiographImage, through pydicom.

Reading keeps the stored values after the modality rescale (RescaleSlope/RescaleIntercept or a
Modality LUT) and never applies the VOI LUT: window centre/width are kept in the metadata instead.

Geometry, decided once here:
- spacing (x, y) comes from ImagerPixelSpacing when present (the detector pitch of CR/DX/XA/RF, what
  SimpleITK and Slicer report), else from PixelSpacing, else (no tag, or `0\\0`) it is unknown: 1 mm
  as a placeholder, with metadata["spacing_known"] False; metadata["spacing_source"]
  names the tag used ("ImagerPixelSpacing", "PixelSpacing" or "none"). Both tags list the row pitch
  (y) first, the column pitch (x) second.
- origin/direction come from ImagePositionPatient/ImageOrientationPatient when present (rare for
  projection images), else origin 0 and the identity direction.

Writing makes a derived, single-frame, uncompressed Explicit VR Little Endian instance: from a
reference dataset (same patient and study, new series and instance UIDs) or, without one, a
Secondary Capture.
"""
from __future__ import annotations

import copy
import datetime
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from ..errors import InputImageError
from .dicom_decoders import check_decoder_available, decoding_error
from .dicom_text import DERIVATION_DESCRIPTION_LIMIT, derived_series_number, fit_long_string
from .radiograph import IDENTITY_DIRECTION, RadiographImage

# SOP classes whose single-frame form is still a valid instance of the same class (multi-frame module optional).
_CLASSIC_CINE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
    "1.2.840.10008.5.1.4.1.1.12.2",  # X-Ray Radiofluoroscopic Image Storage
}
# SOP classes that require a multi-frame module: a derived single frame becomes a Secondary Capture.
_MULTI_FRAME_ONLY_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",  # multi-frame single bit / grayscale byte SC
    "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4",  # multi-frame grayscale word / true colour SC
}
# Elements that describe a cine and mean nothing for one derived frame.
_CINE_KEYWORDS = (
    "NumberOfFrames", "FrameIncrementPointer", "FrameTime", "FrameTimeVector", "StartTrim", "StopTrim",
    "RecommendedDisplayFrameRate", "CineRate", "ActualFrameDuration", "FrameDelay", "FrameLabelVector",
    "PreferredPlaybackSequencing", "FrameDisplaySequence", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "DimensionOrganizationSequence", "DimensionIndexSequence",
    "RepresentativeFrameNumber", "FrameNumbersOfInterest", "FrameOfInterestDescription",
)
# Elements that describe the stored encoding or content of the source's pixels.
_PIXEL_KEYWORDS = (
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    "PlanarConfiguration", "SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries", "IconImageSequence", "PixelDataProviderURL", "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor", "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "ModalityLUTSequence",
)
# Encoding elements that are kept only while the stored encoding is unchanged.
_ENCODING_DEPENDENT_KEYWORDS = ("PixelPaddingValue", "PixelPaddingRangeLimit")


def read_dicom_header(path: Path) -> Dataset:
    """The dataset of a DICOM file (pixel data included), or InputImageError if it is not a readable DICOM."""
    try:
        ds = pydicom.dcmread(str(path))
    except InvalidDicomError as exc:
        raise InputImageError(f"{path}: not a DICOM file ({exc}); check the file or its extension") from exc
    except Exception as exc:  # pydicom raises many types for truncated or damaged files
        raise InputImageError(f"{path}: cannot read this DICOM file, it looks truncated or damaged ({exc})") from exc
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        sop = ds.get("SOPClassUID")
        kind = f" (a {UID(sop).name} object)" if sop else ""
        raise InputImageError(f"{path}: this DICOM file has no pixel data{kind}; pick the image file of the series")
    return ds


def dicom_frame_count(ds: Dataset) -> int:
    """Number of frames in the dataset's pixel data (1 for a single image)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def decode_dicom_frame(ds: Dataset, path: Path, frame: int) -> np.ndarray:
    """Pixels of one frame after the modality rescale: (rows, cols) grey or (rows, cols, 3) RGB."""
    check_decoder_available(ds, path)
    try:
        arr = pydicom.pixels.pixel_array(ds, index=frame if dicom_frame_count(ds) > 1 else None)
    except Exception as exc:  # truncated data, inconsistent tags, decoder failures
        raise decoding_error(ds, path, frame, exc) from exc
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # big-endian sources
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        return pydicom.pixels.apply_color_lut(arr, ds)
    if arr.ndim == 3 or int(ds.get("SamplesPerPixel", 1)) != 1:
        return arr  # colour: converted to grey by the caller
    return _apply_modality_rescale(arr, ds, frame)


def _find_attribute(ds: Dataset, keyword: str, frame: int) -> Any:
    """An attribute from the top level, else from the per-frame or shared functional groups (enhanced objects)."""
    if keyword in ds:
        return ds[keyword].value
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame):
        groups.append(per_frame[frame])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        for element in group:
            if element.VR == "SQ" and element.value and keyword in element.value[0]:
                return element.value[0][keyword].value
    return None


def _apply_modality_rescale(arr: np.ndarray, ds: Dataset, frame: int) -> np.ndarray:
    """Stored values -> modality values, keeping an integer dtype when the rescale is an integer shift."""
    if "ModalityLUTSequence" in ds:
        return pydicom.pixels.apply_modality_lut(arr, ds)
    slope = _find_attribute(ds, "RescaleSlope", frame)
    intercept = _find_attribute(ds, "RescaleIntercept", frame)
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    if slope == 1.0 and intercept == 0.0:
        return arr
    if slope == 1.0 and float(intercept).is_integer() and arr.dtype.kind in "iu":
        bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        low = (-(2 ** (bits - 1)) if signed else 0) + intercept
        high = ((2 ** (bits - 1) - 1) if signed else 2**bits - 1) + intercept
        candidates = (np.uint8, np.uint16, np.uint32) if low >= 0 else (np.int16, np.int32, np.int64)
        for dtype in candidates:
            info = np.iinfo(dtype)
            if np.dtype(dtype).itemsize >= arr.dtype.itemsize and info.min <= low and high <= info.max:
                return (arr.astype(dtype) + dtype(intercept)).astype(dtype)
    return (arr.astype(np.float64) * slope + intercept).astype(np.float32)


def dicom_geometry(ds: Dataset, frame: int, name: str = "DICOM") -> tuple[tuple[float, float, float],
                                                                         tuple[float, float, float],
                                                                         tuple[float, ...], str]:
    """(spacing, origin, direction, spacing_source) of one frame; see the module docstring for the rules.

    A negative pitch (a distance cannot be) is used by its magnitude, with a warning naming `name`."""
    spacing_source = "none"
    spacing = (1.0, 1.0, 1.0)
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = _find_attribute(ds, keyword, frame)
        pitches = [float(v) for v in value[:2]] if value and len(value) >= 2 else []
        if len(pitches) == 2 and all(math.isfinite(p) and p != 0 for p in pitches):
            if min(pitches) < 0:
                warnings.warn(f"{name}: {keyword} {pitches[0]:g}\\{pitches[1]:g} is negative; a pixel spacing is a "
                              "distance, so its magnitude is used", UserWarning, stacklevel=2)
            spacing = (abs(pitches[1]), abs(pitches[0]), 1.0)
            spacing_source = keyword
            break
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = IDENTITY_DIRECTION
    position = _find_attribute(ds, "ImagePositionPatient", frame)
    orientation = _find_attribute(ds, "ImageOrientationPatient", frame)
    if position and len(position) == 3:
        origin = tuple(float(v) for v in position)  # type: ignore[assignment]
    if orientation and len(orientation) == 6:
        row = np.array([float(v) for v in orientation[:3]])
        col = np.array([float(v) for v in orientation[3:]])
        normal = np.cross(row, col)
        direction = tuple(float(v) for v in np.column_stack([row, col, normal]).ravel())
    return spacing, origin, direction, spacing_source


def dicom_display_metadata(ds: Dataset, frame: int) -> dict[str, Any]:
    """Window centre/width, VOI LUT function and rescale of one frame, for writers and viewers (not applied)."""
    meta: dict[str, Any] = {}
    center = _find_attribute(ds, "WindowCenter", frame)
    width = _find_attribute(ds, "WindowWidth", frame)
    if center not in (None, "") and width not in (None, ""):
        centers = list(center) if isinstance(center, (list, tuple, pydicom.multival.MultiValue)) else [center]
        widths = list(width) if isinstance(width, (list, tuple, pydicom.multival.MultiValue)) else [width]
        meta["window_center"] = float(centers[0])
        meta["window_width"] = float(widths[0])
        if len(centers) > 1:
            meta["window_centers"] = [float(c) for c in centers]
            meta["window_widths"] = [float(w) for w in widths]
    function = _find_attribute(ds, "VOILUTFunction", frame)
    if function:
        meta["voi_lut_function"] = str(function)
    meta["has_voi_lut_sequence"] = "VOILUTSequence" in ds
    for keyword, key in (("RescaleSlope", "rescale_slope"), ("RescaleIntercept", "rescale_intercept")):
        value = _find_attribute(ds, keyword, frame)
        if value not in (None, ""):
            meta[key] = float(value)
    for keyword, key in (("Modality", "modality"), ("SOPInstanceUID", "sop_instance_uid")):
        if keyword in ds:
            meta[key] = str(ds[keyword].value)
    if "SOPClassUID" in ds:
        meta["sop_class"] = UID(ds.SOPClassUID).name
    return meta


def header_without_pixels(ds: Dataset) -> Dataset:
    """A new dataset with every element of `ds` but its pixel data (what a RadiographImage keeps as "dicom_dataset")."""
    pixel_tags = {0x7FE00008, 0x7FE00009, 0x7FE00010}
    header = Dataset()
    for tag in ds.keys():
        if tag not in pixel_tags:
            header.add(ds[tag])  # decoded with the source's encoding, so any transfer syntax can be rewritten
    header.file_meta = copy.deepcopy(ds.file_meta) if hasattr(ds, "file_meta") else FileMetaDataset()
    return header


def _pixel_encoding(pixels: np.ndarray, reference: Dataset | None) -> tuple[np.ndarray, int, int, float, float]:
    """(stored array, bits, pixel representation, slope, intercept) storing `pixels` exactly, or as 16 bits allow."""
    values = pixels.astype(np.float64)
    if reference is not None and "PixelData" not in reference and "BitsStored" in reference:
        slope = float(reference.get("RescaleSlope", 1) or 1)
        intercept = float(reference.get("RescaleIntercept", 0) or 0)
        bits_allocated = int(reference.get("BitsAllocated", 16))
        bits_stored = int(reference.BitsStored)
        signed = int(reference.get("PixelRepresentation", 0)) == 1
        if bits_allocated in (8, 16) and slope != 0:
            stored = (values - intercept) / slope
            low, high = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
            if np.allclose(stored, np.rint(stored), rtol=0, atol=1e-3) and stored.min() >= low and stored.max() <= high:
                dtype = {(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16}[
                    (bits_allocated, signed)]
                return np.rint(stored).astype(dtype), bits_stored, int(signed), slope, intercept
    integral = pixels.dtype.kind in "biu" or bool(np.all(values == np.rint(values)))
    if integral and values.min() >= 0 and values.max() <= 255 and pixels.dtype.itemsize == 1:
        return values.astype(np.uint8), 8, 0, 1.0, 0.0
    if integral and values.min() >= 0 and values.max() <= 65535:
        return values.astype(np.uint16), 16, 0, 1.0, 0.0
    if integral and values.min() >= -32768 and values.max() <= 32767:
        return values.astype(np.int16), 16, 1, 1.0, 0.0
    low, high = float(values.min()), float(values.max())
    slope = (high - low) / 65535.0 if high > low else 1.0
    stored = np.clip(np.rint((values - low) / slope), 0, 65535).astype(np.uint16)
    return stored, 16, 0, slope, low


def _secondary_capture_dataset() -> Dataset:
    """A minimal Secondary Capture dataset with new study/series identity and empty patient identity."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    ds.StudyID = ""
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.AccessionNumber = ""
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    ds.PatientOrientation = ""
    return ds


def build_derived_dataset(
    image: RadiographImage, reference: Dataset | None, series_description: str | None
) -> Dataset:
    """A single-frame derived dataset holding `image`: from `reference` (pixel data stripped) or a Secondary Capture."""
    now = datetime.datetime.now()
    if reference is not None:
        ds = copy.deepcopy(reference)
        source_class, source_instance = ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
        enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
        multi_frame = dicom_frame_count(ds) > 1 or enhanced
        if enhanced or str(source_class) in _MULTI_FRAME_ONLY_CLASSES or (
                multi_frame and str(source_class) not in _CLASSIC_CINE_CLASSES):
            ds.SOPClassUID = SecondaryCaptureImageStorage
            ds.ConversionType = "WSD"
        for keyword in _CINE_KEYWORDS:
            if keyword in ds:
                del ds[keyword]
        image_type = list(ds.get("ImageType", []))
        ds.ImageType = ["DERIVED", "SECONDARY", *[str(v) for v in image_type[2:]]]
        frame = image.metadata.get("frame", 0)
        derivation = f"Derived by MedShift from SOP Instance {source_instance}"
        if multi_frame:
            derivation += f", frame {int(frame) + 1}"
        if source_instance and source_class:
            item = Dataset()
            item.ReferencedSOPClassUID = source_class
            item.ReferencedSOPInstanceUID = source_instance
            if multi_frame:
                item.ReferencedFrameNumber = int(frame) + 1
            ds.SourceImageSequence = [item]
    else:
        ds = _secondary_capture_dataset()
        ds.ImageType = ["DERIVED", "SECONDARY"]
        derivation = "Created by MedShift"
    if series_description:
        derivation += f": {series_description}"
        if not series_description.isascii() and str(ds.get("SpecificCharacterSet", "")) in ("", "ISO_IR 6"):
            ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SeriesDescription = fit_long_string(series_description)
    ds.DerivationDescription = derivation[:DERIVATION_DESCRIPTION_LIMIT]
    if reference is not None:
        ds.SeriesNumber = derived_series_number(reference)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesDate = ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
    _set_pixels(ds, image, reference)
    _set_geometry(ds, image, reference)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def _set_pixels(ds: Dataset, image: RadiographImage, reference: Dataset | None) -> None:
    """Store `image.pixels` in `ds` with an encoding and rescale that keep its values."""
    stored, bits_stored, signed, slope, intercept = _pixel_encoding(image.pixels, reference)
    same_encoding = reference is not None and (
        int(reference.get("BitsStored", -1)) == bits_stored
        and int(reference.get("PixelRepresentation", -1)) == signed
        and float(reference.get("RescaleSlope", 1) or 1) == slope
        and float(reference.get("RescaleIntercept", 0) or 0) == intercept
    )
    for keyword in _PIXEL_KEYWORDS + (() if same_encoding else _ENCODING_DEPENDENT_KEYWORDS):
        if keyword in ds:
            del ds[keyword]
    bits_allocated = stored.dtype.itemsize * 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = image.photometric
    ds.Rows, ds.Columns = image.pixels.shape
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = signed
    if "PresentationLUTShape" in ds:
        ds.PresentationLUTShape = "INVERSE" if image.photometric == "MONOCHROME1" else "IDENTITY"
    if "RescaleSlope" in ds or "RescaleIntercept" in ds or slope != 1.0 or intercept != 0.0:
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = f"{intercept:.10g}"
        if "RescaleType" not in ds and reference is None:
            ds.RescaleType = "US"
    center, width = image.metadata.get("window_center"), image.metadata.get("window_width")
    if center is not None and width is not None and float(width) > 0:
        ds.WindowCenter = f"{float(center):.10g}"
        ds.WindowWidth = f"{float(width):.10g}"
    ds.PixelData = np.ascontiguousarray(stored.astype(stored.dtype.newbyteorder("<"))).tobytes()
    ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"


def _set_geometry(ds: Dataset, image: RadiographImage, reference: Dataset | None) -> None:
    """Write the image's pixel spacing (and position/orientation when not the default) into `ds`."""
    pitch = [f"{abs(image.spacing[1]):.10g}", f"{abs(image.spacing[0]):.10g}"]  # row pitch (y) first; a distance
    source_tag = image.metadata.get("spacing_source")
    if reference is not None and source_tag in ("ImagerPixelSpacing", "PixelSpacing"):
        setattr(ds, source_tag, pitch)  # keep the reference's choice of tag
    elif reference is None or tuple(image.spacing[:2]) != (1.0, 1.0):
        ds.PixelSpacing = pitch
    default_geometry = tuple(image.origin) == (0.0, 0.0, 0.0) and tuple(image.direction) == IDENTITY_DIRECTION
    if reference is None and not default_geometry:
        d = np.asarray(image.direction, dtype=float).reshape(3, 3)
        ds.ImagePositionPatient = [f"{v:.10g}" for v in image.origin]
        ds.ImageOrientationPatient = [f"{v:.10g}" for v in (*d[:, 0], *d[:, 1])]


def write_dicom_file(ds: Dataset, path: Path) -> None:
    """Write a dataset built by build_derived_dataset as a DICOM Part 10 file."""
    ds.save_as(str(path), implicit_vr=False, little_endian=True, enforce_file_format=True)
