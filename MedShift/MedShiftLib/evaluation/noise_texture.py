"""How noise a translation adds compares with the image's own quantum noise (the dose-change measures).

On a radiograph and its translation, over the flat part of the body (the input's body mask where the
local variance of its band-pass, Gaussian 2 px minus 8 px, is below the median there: anatomy's edges
do not count, and the noise, which that band barely holds, does not choose where it is measured):

* noise = the high-pass residual (image - Gaussian(NOISE_SIGMA_PX)) of the input (its own noise) and
  of output - input (the added noise); level = 1.4826 x median absolute deviation;
* grey-level dependence: level in the brightest third of the body (by local mean grey level) over the
  level in the darkest third; the added noise's over the own noise's is 1 when it follows the image's;
* lag-1 correlation: mean of the horizontal and vertical neighbour correlation (the texture's grain);
* size: the added noise's level over the own noise's; a dose fraction r implies sqrt(1/r - 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ..postprocess.body_region import body_mask
from .detail_preservation import band_pass

NOISE_SIGMA_PX = 3.0
LOCAL_VARIANCE_SIGMA_PX = 4.0
GREY_SIGMA_PX = 8.0


@dataclass(frozen=True)
class AddedNoise:
    """The dose-change measures of one translation (module docstring)."""

    own_dependence: float
    added_dependence: float
    own_lag1: float
    added_lag1: float
    size: float

    @property
    def dependence_ratio(self) -> float:
        """Added noise's grey-level dependence over the own noise's (1 = the same)."""
        return self.added_dependence / self.own_dependence


def noise_residual(image: np.ndarray) -> np.ndarray:
    """The high-pass residual that holds an image's noise: image - Gaussian(NOISE_SIGMA_PX)."""
    image = np.asarray(image, dtype=np.float64)
    return image - gaussian_filter(image, NOISE_SIGMA_PX)


def robust_level(values: np.ndarray) -> float:
    """Noise standard deviation of residual values: 1.4826 x median absolute deviation."""
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def lag1_correlation(residual: np.ndarray, where: np.ndarray) -> float:
    """Mean of the horizontal and vertical neighbour correlation of a residual over the pixels `where`."""
    values = []
    for a, b, keep in ((residual[:, 1:], residual[:, :-1], where[:, 1:] & where[:, :-1]),
                       (residual[1:, :], residual[:-1, :], where[1:, :] & where[:-1, :])):
        x, y = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
        values.append(float((x * y).sum() / max(math.sqrt((x * x).sum() * (y * y).sum()), 1e-30)))
    return float(np.mean(values))


def flat_body(source: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The input's body pixels whose local band-pass variance is below its median there (no edges)."""
    mask = body_mask(source) if mask is None else mask
    local = gaussian_filter(band_pass(source, 2.0, 8.0) ** 2, LOCAL_VARIANCE_SIGMA_PX)
    return mask & (local < np.median(local[mask]))


def added_noise(source: np.ndarray, output: np.ndarray, mask: np.ndarray | None = None) -> AddedNoise:
    """The dose-change measures of `output` against its input `source` (same grid, model range)."""
    source = np.asarray(source, dtype=np.float64)
    flat = flat_body(source, mask)
    own, added = noise_residual(source), noise_residual(np.asarray(output, dtype=np.float64) - source)
    grey = gaussian_filter(source, GREY_SIGMA_PX)
    low, high = np.quantile(grey[flat], [1 / 3, 2 / 3])
    dark, bright = flat & (grey <= low), flat & (grey >= high)

    def dependence(residual: np.ndarray) -> float:
        return robust_level(residual[bright]) / max(robust_level(residual[dark]), 1e-12)

    return AddedNoise(own_dependence=dependence(own), added_dependence=dependence(added),
                      own_lag1=lag1_correlation(own, flat), added_lag1=lag1_correlation(added, flat),
                      size=robust_level(added[flat]) / max(robust_level(own[flat]), 1e-12))


def implied_size(dose_fraction: float) -> float:
    """Added noise over own noise that a dose fraction r < 1 implies: sqrt(1/r - 1) (0 for r >= 1)."""
    return math.sqrt(max(1.0 / dose_fraction - 1.0, 0.0))
