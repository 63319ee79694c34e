"""The in-memory radiograph: pixels plus the geometry and metadata needed to write it back."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

IDENTITY_DIRECTION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass
class RadiographImage:
    """One 2-D grey radiograph.

    pixels: (rows, cols) array of stored values after any modality rescale, dtype as read.
    spacing/origin/direction: ITK (LPS) geometry of the pixel grid; spacing is (x=column, y=row, z),
        direction a row-major 3x3 matrix, so a 2-D image is a single-slice 3-D volume.
    photometric: "MONOCHROME2" (high value = bright) or "MONOCHROME1" (high value = dark).
    file_format: the format the image was read from ("dicom", "nrrd", "nifti", "mha", "png", "tiff", "jpeg",
        "bmp", "npy"), or None for an image made in memory.
    metadata: format-specific data a writer needs to keep (e.g. the source pydicom Dataset under
        "dicom_dataset"); never required by the engine.
    """

    pixels: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = IDENTITY_DIRECTION
    photometric: str = "MONOCHROME2"
    file_format: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pixels.ndim != 2:
            raise ValueError(f"RadiographImage needs a 2-D pixel array, got shape {self.pixels.shape}")
        if self.photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {self.photometric!r}")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.pixels.shape  # type: ignore[return-value]

    def with_pixels(self, pixels: np.ndarray) -> RadiographImage:
        """A copy on the same grid and with the same metadata, holding other pixels."""
        if pixels.shape != self.pixels.shape:
            raise ValueError(f"new pixels {pixels.shape} do not match the grid {self.pixels.shape}")
        return replace(self, pixels=pixels, metadata=dict(self.metadata))
