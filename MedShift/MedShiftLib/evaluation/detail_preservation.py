"""How much of a radiograph's fine detail a translation keeps, measured at the image's own resolution.

The measure of the real-radiograph issue: the Pearson correlation of the input's and the output's
band-pass (Gaussian sigma 1.5 px minus sigma 6 px, at the input's pixel grid) over the body, i.e.
away from direct exposure and collimator shutters. 1 = every edge, trabecula and rib kept in place
(with any gain); a blurred output or one whose anatomy was taken for noise scores lower. The
band-pass is computed on the images mapped to [0, 1] by the input's own robust window, so a tone
curve changes the score only where it changes local contrast unevenly.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ..postprocess.body_region import body_mask

FINE_SIGMA_PX = 1.5
COARSE_SIGMA_PX = 6.0


def band_pass(pixels: np.ndarray, fine_sigma: float = FINE_SIGMA_PX,
              coarse_sigma: float = COARSE_SIGMA_PX) -> np.ndarray:
    """Gaussian(fine_sigma) minus Gaussian(coarse_sigma) of a 2-D image, in float64."""
    image = np.asarray(pixels, dtype=np.float64)
    return gaussian_filter(image, fine_sigma) - gaussian_filter(image, coarse_sigma)


def detail_correlation(source: np.ndarray, output: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Correlation of the band-passes of `source` and `output` (same shape) over `mask` (default: the source's body)."""
    a, b = body_bands(source, [output], mask)
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def body_bands(source: np.ndarray, outputs: list[np.ndarray], mask: np.ndarray | None = None) -> list[np.ndarray]:
    """The band-passes of `source` and each output over `mask` (default: the source's body), mean removed, all
    in the source's robust window mapped to [0, 1]."""
    source = np.asarray(source, dtype=np.float64)
    for output in outputs:
        if source.shape != np.shape(output):
            raise ValueError(f"source {source.shape} and output {np.shape(output)} differ in shape")
    low, high = np.percentile(source, [0.5, 99.5])
    scale = max(high - low, 1e-12)
    mask = body_mask(source) if mask is None else mask
    bands = [band_pass((np.asarray(image, dtype=np.float64) - low) / scale)[mask] for image in [source, *outputs]]
    return [band - band.mean() for band in bands]


def lattice_peak(change: np.ndarray, period: float) -> float:
    """How much a change map repeats with `period` px: the largest power at its first lattice frequencies
    (rows, columns, diagonals) over the median power of the ring at the same radius (1: no peak).

    Smooth content (Gaussian of sigma `period`) is taken out first and the square crop is Hann-windowed,
    so the ring holds the map's own texture, not leakage from its low frequencies.
    """
    n = min(change.shape)
    square = np.asarray(change[:n, :n], dtype=np.float64)
    window = np.hanning(n)
    power = np.abs(np.fft.fft2((square - gaussian_filter(square, period)) * window[:, None] * window[None, :])) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
    radius = np.hypot(fx, fy)
    worst = 0.0
    for a, b in ((1, 0), (0, 1), (1, 1), (1, -1)):
        py, px = a / period, b / period
        near = (np.abs(fy - py) <= 1.5 / n) & (np.abs(fx - px) <= 1.5 / n)
        ring = (np.abs(radius - np.hypot(py, px)) <= 0.05 * np.hypot(py, px)) & ~near
        worst = max(worst, float(power[near].max() / np.median(power[ring])))
    return worst


def detail_under_added_noise(source: np.ndarray, output: np.ndarray, other_seed_output: np.ndarray,
                             mask: np.ndarray | None = None) -> tuple[float, float]:
    """(detail kept by the output's anatomy, the most detail kept its added noise allows) for a translation
    that adds random noise (a dose decrease), from two outputs of the same input and settings with different seeds.

    The outputs y1 = A + n1, y2 = A + n2 share their anatomy A and differ by the added noise, independent
    and alike, so var(b n) = var(b(y1 - y2)) / 2 (b: the band-pass over the body) and var(b A) = var(b y) -
    var(b n). The first number is the correlation of b x with b A (1: every detail in place), the second
    sqrt(var(b A) / var(b y)), what `detail_correlation` gives an output whose anatomy keeps every detail
    and carries that noise: added noise of the right amount lowers `detail_correlation` to it and no
    further. Their product is `detail_correlation` of the outputs (to sampling error).
    """
    a, b1, b2 = body_bands(source, [output, other_seed_output], mask)
    noise = np.var(b1 - b2) / 2
    output_variance = (np.var(b1) + np.var(b2)) / 2
    anatomy = max(output_variance - noise, 1e-30)
    covariance = (np.mean(a * b1) + np.mean(a * b2)) / 2
    return float(covariance / np.sqrt(np.var(a) * anatomy)), float(np.sqrt(anatomy / output_variance))
