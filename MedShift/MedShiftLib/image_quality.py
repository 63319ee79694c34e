"""Image-quality measures of `medshift evaluate`: structure, noise texture, and distribution distances.

All images are compared in the model range (robust percentiles to [-1, 1], `model_range`), so a
translation is judged on its content and texture, not on the absolute values of its file.

* structure: SSIM and PSNR (scikit-image) against a reference, data range 2;
* noise texture: the noise power spectrum (NPS) in flat regions, radially averaged, and its relative
  error against the target domain's NPS measured on the same regions of real target images;
* distributions: KID (torchmetrics' polynomial-kernel MMD) and coverage (prdc) of feature vectors.
"""
from __future__ import annotations

import contextlib
import io
from typing import Sequence

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from .intensity import fit_intensity_window, normalize

NPS_PATCH = 32
NPS_PATCHES_PER_IMAGE = 12
NPS_BINS = 8


def model_range(pixels: np.ndarray) -> np.ndarray:
    """An image as the model sees it: robust percentiles mapped to [-1, 1] (float64)."""
    return normalize(pixels, fit_intensity_window(pixels)).astype(np.float64)


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of `image` against `reference` (model range, data range 2)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, image, data_range=2.0))


def structure_scores(image: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(SSIM, PSNR in dB) of `image` against `reference`, both already in the model range; PSNR inf when equal."""
    from skimage.metrics import peak_signal_noise_ratio

    clipped = np.clip(image, -1.5, 1.5)
    if np.array_equal(clipped, reference):
        return ssim(image, reference), float("inf")
    return ssim(image, reference), float(peak_signal_noise_ratio(reference, clipped, data_range=2.0))


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


def nps_relative_error(nps: np.ndarray, target_nps: np.ndarray) -> float:
    """||NPS - NPS_target|| / ||NPS_target|| over the rings (0 = the target's noise texture exactly)."""
    return float(np.linalg.norm(nps - target_nps) / max(np.linalg.norm(target_nps), 1e-20))


def kernel_inception_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 50,
                              subset_size: int | None = None, seed: int = 0) -> float:
    """KID (unbiased polynomial-kernel MMD^2, mean over random subsets) between two feature sets (N, D).

    The kernel is torchmetrics'; subsets are drawn with a seeded generator, so the value is reproducible.
    """
    from torchmetrics.image.kid import poly_mmd

    size = min(len(real), len(fake)) if subset_size is None else subset_size
    if size < 2 or size > min(len(real), len(fake)):
        raise ValueError(f"KID needs at least 2 and at most {min(len(real), len(fake))} samples per subset")
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=generator)[:size]].double()
        f = fake[torch.randperm(len(fake), generator=generator)[:size]].double()
        scores.append(float(poly_mmd(r, f)))
    return float(np.mean(scores))


def coverage(real: torch.Tensor, fake: torch.Tensor, nearest_k: int = 5) -> float:
    """prdc's coverage: the fraction of real samples whose k-NN ball holds at least one fake sample."""
    from prdc import compute_prdc

    k = min(nearest_k, len(real) - 2, len(fake) - 2)  # prdc needs k + 1 < samples
    if k < 1:
        raise ValueError("coverage needs at least three real and three generated samples")
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        result = compute_prdc(real.double().numpy(), fake.double().numpy(), nearest_k=k)
    return float(result["coverage"])
