"""The target domain's noise level in the fine band, at the output's own pixel pitch.

Detail finer than the model's working grid is carried from the input (detail_transfer.py), and with it
the input detector's noise in that band. Quantum noise scales with dose at every frequency alike, so
when the translation changes the noise (noise synthesis or noise matching), the fine band's noise is
scaled by the ratio of the target's to the source's noise amplitude recorded in the model's domain
statistics (their top NPS rings, where the domains differ only by noise), at the input's own pitch
and with the input detector's own texture:

* less noise (ratio < 1): an edge-aware local Wiener split of the fine band into structure
  and noise (noise = the part whose local variance is that of the noise; edges and trabeculae, whose
  local variance is far above it, are kept) and only the noise part is scaled down;
* more noise (ratio > 1): fresh Gaussian noise with the input's own fine-band correlation is added
  (nothing is taken away, so no edge can be lost).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

NOISE_RATIO_RINGS = 3  # top NPS rings whose mean gives the domains' noise power
LOCAL_VARIANCE_SIGMA_PX = 2.0
MAX_NOISE_RATIO = 4.0


def noise_amplitude_ratio(source_nps: Sequence[float], target_nps: Sequence[float]) -> float:
    """sqrt(target / source) of the mean of the top NOISE_RATIO_RINGS rings, within [0, MAX_NOISE_RATIO]."""
    source = float(np.mean(np.asarray(source_nps, dtype=np.float64)[-NOISE_RATIO_RINGS:]))
    target = float(np.mean(np.asarray(target_nps, dtype=np.float64)[-NOISE_RATIO_RINGS:]))
    if not (source > 0 and math.isfinite(source) and math.isfinite(target)):
        return 1.0
    return float(np.clip(math.sqrt(max(target, 0.0) / source), 0.0, MAX_NOISE_RATIO))


def robust_noise_sigma(band: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Noise standard deviation of a zero-mean band: 1.4826 x its median absolute deviation (edges are outliers)."""
    values = band[mask] if mask is not None and mask.any() else band.ravel()
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def noise_part(band: np.ndarray, sigma: float) -> np.ndarray:
    """The part of a fine band that is noise: band x min(1, sigma^2 / local variance) (local Wiener split)."""
    local_variance = gaussian_filter(band * band, LOCAL_VARIANCE_SIGMA_PX)
    return band * np.minimum(1.0, sigma * sigma / np.maximum(local_variance, 1e-20))


def correlated_noise_like(band: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise of the band's shape with its lag-1 correlation (white noise blurred to match)."""
    lag = np.median(band[:, 1:] * band[:, :-1]) / max(float(np.median(band * band)), 1e-20)
    white = rng.standard_normal(band.shape)
    if not 0.05 < lag < 0.95:
        return white
    blurred = gaussian_filter(white, math.sqrt(-1.0 / (4.0 * math.log(lag))))
    return blurred / max(float(blurred.std()), 1e-12)


def rescale_fine_noise(image: np.ndarray, fine_band: np.ndarray, ratio: float, rng: np.random.Generator,
                       fine_band_of: Callable[[np.ndarray], np.ndarray], mask: np.ndarray | None = None,
                       sigma: float | None = None) -> np.ndarray:
    """`image` with the noise of `fine_band` (its part of the image) scaled by `ratio` (see module docstring).

    `fine_band_of` takes any image to its fine band (the same split), so added noise stays in that band;
    `mask` says where the noise level is measured (the body, not air or shutters); `sigma`: that level,
    robust_noise_sigma(fine_band, mask), when the caller has measured it already.
    """
    sigma = robust_noise_sigma(fine_band, mask) if sigma is None else sigma
    if sigma <= 0 or abs(ratio - 1.0) < 1e-3:
        return image
    if ratio < 1.0:
        return image - (1.0 - ratio) * noise_part(fine_band, sigma)
    extra = fine_band_of(correlated_noise_like(fine_band, rng))
    extra_sigma = max(robust_noise_sigma(extra), 1e-12)
    return image + math.sqrt(ratio * ratio - 1.0) * sigma / extra_sigma * extra
