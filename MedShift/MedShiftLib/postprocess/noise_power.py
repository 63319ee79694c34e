"""Noise power spectra (NPS) of radiographs in the model range, measured in their flattest patches.

The radially averaged NPS of detrended NPS_PATCH-pixel patches, in NPS_BINS rings from 0 to Nyquist
(ring 0, which holds the mean and trend remnants, is dropped). Patches come either from a noise-free
reference (`flat_patch_corners` of a clean rendering, as `medshift evaluate` does) or from the image
itself, lightly smoothed (`image_nps`, as the recorded domain statistics and noise matching do).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from ..engine.domain_statistics import NPS_BINS, NPS_PATCH, NPS_PATCHES_PER_IMAGE


def flat_patch_corners(reference: np.ndarray, patch: int = NPS_PATCH,
                       count: int = NPS_PATCHES_PER_IMAGE) -> list[tuple[int, int]]:
    """Top-left corners of the `count` flattest non-overlapping patches of a noise-free image (model range).

    Flat = least structure (standard deviation of the lightly smoothed image inside the patch);
    patches near the ends of the range (air or clipped regions, where there is no noise to measure)
    are left out.
    """
    smooth = gaussian_filter(reference, 1.0)
    rows, cols = reference.shape
    candidates = []
    for top in range(0, rows - patch + 1, patch):
        for left in range(0, cols - patch + 1, patch):
            block = smooth[top:top + patch, left:left + patch]
            if -0.9 < block.mean() < 0.9:
                candidates.append((float(block.std()), top, left))
    candidates.sort()
    return [(top, left) for _, top, left in candidates[:count]]


def _detrended(block: np.ndarray) -> np.ndarray:
    """A patch minus its least-squares quadratic surface (what remains is noise and fine texture)."""
    n, m = block.shape
    y, x = np.mgrid[0:n, 0:m] / max(n, m)
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)
    coef, *_ = np.linalg.lstsq(basis, block.reshape(-1), rcond=None)
    return block - (basis @ coef).reshape(n, m)


def noise_power_spectrum(images: Sequence[np.ndarray], corners: Sequence[Sequence[tuple[int, int]]],
                         patch: int = NPS_PATCH, bins: int = NPS_BINS) -> np.ndarray:
    """Radially averaged NPS (per pixel^2, `bins` rings from 0 to Nyquist) over the given patches of each image.

    `corners[i]` lists the patches of `images[i]` (model range); patches are detrended before the FFT.
    """
    spectra = []
    for image, image_corners in zip(images, corners):
        for top, left in image_corners:
            block = _detrended(image[top:top + patch, left:left + patch])
            spectra.append(np.abs(np.fft.fft2(block)) ** 2 / block.size)
    if not spectra:
        raise ValueError("no flat patches to measure the noise power spectrum on")
    mean = np.mean(spectra, axis=0)
    fy, fx = np.meshgrid(np.fft.fftfreq(patch), np.fft.fftfreq(patch), indexing="ij")
    radius = np.hypot(fx, fy) / 0.5  # 1 = Nyquist
    ring = np.minimum((radius * bins).astype(int), bins)  # corners beyond Nyquist go to an extra ring, dropped
    nps = np.array([mean[ring == k].mean() for k in range(bins)])
    return nps[1:]  # ring 0 holds the mean and the trend remnants, not noise


def own_flat_patches(image: np.ndarray) -> list[tuple[int, int]]:
    """Corners of an image's own flattest patches (none when it is smaller than a patch, or all air)."""
    return flat_patch_corners(gaussian_filter(image, 2.0))


def image_nps(images: Sequence[np.ndarray]) -> np.ndarray:
    """Radial NPS of images (model range) over their own flattest patches (no noise-free reference needed).

    Images without a measurable patch are skipped; ValueError when none has one.
    """
    return noise_power_spectrum(images, [own_flat_patches(im) for im in images])
