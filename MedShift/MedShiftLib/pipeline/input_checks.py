"""Naming inputs that lie outside what a model was made for, before they are translated.

Each finding is one sentence that names the image and says what follows from it. The translation still
runs (a researcher may want to see what happens); `--strict` on the command line turns any finding
into an error, and the Slicer panel shows them beside the result.
"""
from __future__ import annotations

import numpy as np

from ..engine.checkpoint import CheckpointInfo
from ..errors import InputImageError
from ..io.radiograph import RadiographImage
from ..settings import TranslationSettings
from .image_translation import PLAUSIBLE_SPACING_MM, recorded_spacing_mm

PROJECTION_MODALITIES = ("CR", "DX", "XA", "RF", "MG", "PX", "IO", "DF", "DR", "RG", "OT")
"""DICOM modalities of projection radiographs (OT: secondary captures, which MedShift writes itself)."""
PIXEL_SIZE_RANGE = (1 / 16, 4.0)
"""Input pixel size over the model's: outside this the working grid is far from the image's own."""
FIELD_OF_VIEW_RANGE = (0.25, 4.0)
"""Input field of view over the model's training field of view."""
CT_NUMBER_SHARE = 0.1
"""Share of pixels at or below -500 from which signed pixel values look like CT numbers (HU)."""


def _name(image: RadiographImage) -> str:
    return str(image.metadata.get("source_path", "input image"))


def out_of_range_findings(image: RadiographImage, settings: TranslationSettings, info: CheckpointInfo) -> list[str]:
    """One sentence per way `image` (or the settings) lies outside what the model was trained for."""
    name, findings = _name(image), []
    dataset = image.metadata.get("dicom_dataset")
    modality = str(dataset.get("Modality", "")).upper() if dataset is not None else ""
    if modality and modality not in PROJECTION_MODALITIES:
        findings.append(f"{name}: DICOM modality {modality} is not a projection radiograph (CR, DX, XA, RF); "
                        "MedShift models translate X-ray radiographs, so expect a meaningless result")
    if image.metadata.get("converted_from_rgb"):
        findings.append(f"{name}: a colour (RGB) image, converted to grey; radiographs are grey, so it may not be one")
    pixels = image.pixels
    if pixels.dtype.kind in "if" and np.count_nonzero(pixels <= -500) >= CT_NUMBER_SHARE * pixels.size:
        findings.append(f"{name}: its values look like CT numbers (many at or below -500 HU), not a radiograph's; "
                        "to make a radiograph from a CT, project it first (MedShift's CT projection)")
    if settings.source_domain == settings.target_domain:
        findings.append(f"source and target domain are both {settings.source_domain!r}: the translation can only "
                        "reproduce the image; choose another target domain")
    recorded = recorded_spacing_mm(image)
    if recorded is not None and not PLAUSIBLE_SPACING_MM[0] <= recorded <= PLAUSIBLE_SPACING_MM[1]:
        findings.append(f"{name}: recorded pixel spacing {recorded:g} mm is implausible for a radiograph; taken as "
                        f"unknown, so the short side is brought to {info.resolution} px")
    elif recorded is not None and info.pixel_spacing_mm:
        ratio = recorded / info.pixel_spacing_mm
        if not PIXEL_SIZE_RANGE[0] <= ratio <= PIXEL_SIZE_RANGE[1]:
            findings.append(f"{name}: pixel size {recorded:g} mm is far from the model's {info.pixel_spacing_mm:g} mm; "
                            "the result may be poor")
        field = min(image.shape) * recorded
        trained = info.resolution * info.pixel_spacing_mm
        if not FIELD_OF_VIEW_RANGE[0] <= field / trained <= FIELD_OF_VIEW_RANGE[1]:
            findings.append(f"{name}: field of view {field:.0f} mm is far from the {trained:.0f} mm views the model "
                            "was trained on; the result may be poor")
    return findings


def refuse_findings(findings: list[str]) -> None:
    """Raise InputImageError for the first finding (`--strict`)."""
    if findings:
        raise InputImageError(f"{findings[0]} (--strict refuses such inputs; leave it out to translate anyway)")
