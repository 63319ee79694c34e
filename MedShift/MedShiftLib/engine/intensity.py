"""Invertible mapping between a radiograph's stored values and the model's intensity range.

The model works in display convention (bright = +1) on roughly [-1, 1]:

    x = 2 * (v - low) / (high - low) - 1          (MONOCHROME2)
    x = 1 - 2 * (v - low) / (high - low)          (MONOCHROME1, inverted so bone is bright in both)

where low/high are robust percentiles (default 0.5 % and 99.5 %) of the input's own finite values.
Values outside [low, high] are not clipped, so the mapping is exactly invertible; on the way back the
result is rounded and clipped to the input dtype's range so a viewer's window/level still applies.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputImageError

DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)


@dataclass(frozen=True)
class IntensityWindow:
    """The stored values that map to -1 and +1, and whether the image is MONOCHROME1."""

    low: float
    high: float
    invert: bool = False

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def check_finite_grey(pixels: np.ndarray, name: str = "image") -> None:
    """Raise InputImageError unless `pixels` is a real-valued array with finite, non-constant values."""
    if pixels.dtype.kind not in "biuf":
        raise InputImageError(f"{name}: pixel type {pixels.dtype} is not a grey-level number type")
    if pixels.size == 0:
        raise InputImageError(f"{name}: the image is empty")
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        bad = int(np.count_nonzero(~np.isfinite(pixels)))
        raise InputImageError(
            f"{name}: {bad} pixel(s) are NaN or infinite; replace them (e.g. with the image minimum) first"
        )
    if pixels.min() == pixels.max():
        raise InputImageError(f"{name}: every pixel has the value {pixels.min()}; a constant image cannot be "
                              "translated")


def fit_intensity_window(
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> IntensityWindow:
    """Robust-percentile window of one image (or a stack of frames) for `normalize`."""
    check_finite_grey(pixels)
    low, high = np.percentile(pixels.astype(np.float64, copy=False), percentiles)
    if high <= low:  # almost-constant image: fall back to the full range
        low, high = float(pixels.min()), float(pixels.max())
    return IntensityWindow(float(low), float(high), invert=(photometric == "MONOCHROME1"))


def normalize(pixels: np.ndarray, window: IntensityWindow) -> np.ndarray:
    """Stored values -> model range (float32, display convention, bright = +1)."""
    x = (pixels.astype(np.float64) - window.low) * (2.0 / (window.high - window.low)) - 1.0
    if window.invert:
        x = -x
    return x.astype(np.float32)


def denormalize(x: np.ndarray, window: IntensityWindow, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Model range -> stored values of `dtype` (the inverse of `normalize`, rounded and clipped for integers)."""
    x = np.asarray(x, dtype=np.float64)
    if window.invert:
        x = -x
    v = (x + 1.0) * ((window.high - window.low) / 2.0) + window.low
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        v = np.clip(np.rint(v), info.min, info.max)
    elif dtype.kind == "b":
        v = v > 0.5
    return v.astype(dtype)
