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
    # integers are ranked in their own type (exact, and a quarter of a float64 copy's memory)
    low, high = np.percentile(pixels if pixels.dtype.kind in "iu" else pixels.astype(np.float64, copy=False),
                              percentiles)
    if high <= low:  # almost-constant image: fall back to the full range
        low, high = float(pixels.min()), float(pixels.max())
    return IntensityWindow(float(low), float(high), invert=(photometric == "MONOCHROME1"))


CHUNK_PIXELS = 1 << 20
"""Pixels converted at a time: the float64 arithmetic of (de)normalisation runs on chunks of this many values,
so a large image needs its float64 copies only chunk by chunk (the results are the same as in one pass)."""


def _chunked(values: np.ndarray, dtype: np.dtype | type, convert) -> np.ndarray:
    """`convert` (element-wise, on float64 values) applied chunk by chunk into a new array of `dtype`."""
    values = np.asarray(values)
    out = np.empty(values.shape, dtype=dtype)
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)
    for start in range(0, flat_in.size, CHUNK_PIXELS):
        flat_out[start:start + CHUNK_PIXELS] = convert(flat_in[start:start + CHUNK_PIXELS].astype(np.float64))
    return out


def normalize(pixels: np.ndarray, window: IntensityWindow) -> np.ndarray:
    """Stored values -> model range (float32, display convention, bright = +1)."""
    scale = 2.0 / (window.high - window.low)

    def convert(v: np.ndarray) -> np.ndarray:
        x = (v - window.low) * scale - 1.0
        return -x if window.invert else x

    return _chunked(pixels, np.float32, convert)


def denormalize(x: np.ndarray, window: IntensityWindow, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """Model range -> stored values of `dtype` (the inverse of `normalize`, rounded and clipped for integers)."""
    dtype = np.dtype(dtype)
    half_range = (window.high - window.low) / 2.0

    def convert(values: np.ndarray) -> np.ndarray:
        if window.invert:
            values = -values
        v = (values + 1.0) * half_range + window.low
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            v = np.clip(np.rint(v), info.min, info.max)
        elif dtype.kind == "b":
            v = v > 0.5
        return v

    return _chunked(x, dtype, convert)
