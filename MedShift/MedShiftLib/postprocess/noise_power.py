"""Noise power spectra (NPS) of radiographs in the model range, measured in their flattest patches (torch).

The NPS of detrended NPS_PATCH-pixel patches, either 2-D (`patch_nps_2d`, the texture that noise
insertion copies) or radially averaged in NPS_BINS rings from 0 to Nyquist (ring 0, which holds the
mean and trend remnants, is dropped). Patches come either from a noise-free reference
(`flat_patch_corners` of a clean rendering, as `medshift evaluate` does) or from the image itself,
lightly smoothed (`image_nps`, as the recorded domain statistics and noise matching do). Images may be
NumPy arrays or tensors on any device; spectra are computed where the pixels are.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..engine.domain_statistics import NPS_BINS, NPS_PATCH, NPS_PATCHES_PER_IMAGE
from .blur import local_mean

FLAT_RANGE = 0.9  # patches whose smoothed mean lies beyond +-this (air, clipped) are not measured


def _image(image: np.ndarray | Tensor) -> Tensor:
    """A 2-D image as a float64 tensor on its own device."""
    tensor = torch.as_tensor(image)
    return tensor.reshape(tensor.shape[-2:]).double()


def _plane(image: np.ndarray | Tensor) -> Tensor:
    """A 2-D view of an image (array or tensor, any leading singleton axes), without copying."""
    tensor = torch.as_tensor(image)
    return tensor.reshape(tensor.shape[-2:])


def flat_patch_corners(reference: np.ndarray | Tensor, patch: int = NPS_PATCH,
                       count: int = NPS_PATCHES_PER_IMAGE, smoothing_px: float = 1.0) -> list[tuple[int, int]]:
    """Top-left corners of the `count` flattest non-overlapping patches of a noise-free image (model range).

    Flat = least structure (standard deviation of the image smoothed by `smoothing_px` inside the patch;
    0: `reference` is smooth already); patches near the ends of the range (air or clipped regions, where
    there is no noise to measure) are left out.
    """
    image = _image(reference)
    rows, cols = image.shape
    if rows < patch or cols < patch:
        return []
    smooth = local_mean(image[None, None], smoothing_px)[0, 0] if smoothing_px > 0 else image
    blocks = smooth[:rows // patch * patch, :cols // patch * patch].reshape(rows // patch, patch, cols // patch, patch)
    means, stds = blocks.mean(dim=(1, 3)), blocks.std(dim=(1, 3), correction=0)
    order = torch.argsort(torch.where(means.abs() < FLAT_RANGE, stds, torch.inf).flatten(), stable=True)
    usable = int((means.abs() < FLAT_RANGE).sum())
    width = cols // patch
    return [(int(k) // width * patch, int(k) % width * patch) for k in order[:min(count, usable)].tolist()]


def _quadratic_surface_basis(patch: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(patch^2, 6) basis of quadratic surfaces over a flattened patch and its pseudo-inverse (6, patch^2)."""
    y, x = torch.meshgrid(torch.arange(patch, dtype=torch.float64, device=device) / patch,
                          torch.arange(patch, dtype=torch.float64, device=device) / patch, indexing="ij")
    basis = torch.stack([torch.ones_like(x), x, y, x * x, x * y, y * y], dim=-1).reshape(-1, 6)
    return basis, torch.linalg.pinv(basis)


def patch_nps_2d(images: Sequence[np.ndarray | Tensor], corners: Sequence[Sequence[tuple[int, int]]],
                 patch: int = NPS_PATCH, robust: bool = False) -> Tensor:
    """Mean 2-D NPS (per pixel^2, unshifted FFT layout) of the detrended patches; ValueError when there are none.

    `robust`: the median periodogram over ln 2 (the mean for Gaussian noise) instead of the mean, so the
    few patches that hold structure do not colour the spectrum.
    """
    blocks = [pixels[top:top + patch, left:left + patch].double()
              for image, image_corners in zip(images, corners) if image_corners
              for pixels in [_plane(image)]
              for top, left in image_corners]
    if not blocks:
        raise ValueError("no flat patches to measure the noise power spectrum on")
    stacked = torch.stack(blocks).reshape(len(blocks), -1)
    basis, inverse = _quadratic_surface_basis(patch, stacked.device)
    detrended = (stacked - (stacked @ inverse.T) @ basis.T).reshape(-1, patch, patch)  # less the fitted surface
    periodograms = torch.fft.fft2(detrended).abs() ** 2 / (patch * patch)
    return periodograms.median(dim=0).values / math.log(2.0) if robust else periodograms.mean(dim=0)


def radial_rings(spectrum: Tensor, bins: int = NPS_BINS) -> np.ndarray:
    """Rings 1..bins-1 (0 to Nyquist) of a square 2-D power spectrum in FFT layout, radially averaged."""
    size = spectrum.shape[-1]
    frequency = torch.fft.fftfreq(size, dtype=torch.float64, device=spectrum.device)
    radius = torch.hypot(frequency[None, :], frequency[:, None]) / 0.5  # 1 = Nyquist
    ring = torch.clamp((radius * bins).long(), max=bins)  # corners beyond Nyquist go to an extra ring, dropped
    sums = torch.zeros(bins + 1, dtype=torch.float64, device=spectrum.device).index_add_(
        0, ring.flatten(), spectrum.flatten().double())
    counts = torch.bincount(ring.flatten(), minlength=bins + 1).double()
    return (sums / counts)[1:bins].cpu().numpy()


def noise_power_spectrum(images: Sequence[np.ndarray | Tensor], corners: Sequence[Sequence[tuple[int, int]]],
                         patch: int = NPS_PATCH, bins: int = NPS_BINS) -> np.ndarray:
    """Radially averaged NPS (per pixel^2, rings 1..`bins`-1 from 0 to Nyquist) over the given patches of each image.

    `corners[i]` lists the patches of `images[i]` (model range); patches are detrended before the FFT.
    """
    return radial_rings(patch_nps_2d(images, corners, patch), bins)


def own_flat_patches(image: np.ndarray | Tensor) -> list[tuple[int, int]]:
    """Corners of an image's own flattest patches (none when it is smaller than a patch, or all air)."""
    return flat_patch_corners(local_mean(_image(image)[None, None], 2.0)[0, 0])


def image_nps(images: Sequence[np.ndarray | Tensor]) -> np.ndarray:
    """Radial NPS of images (model range) over their own flattest patches (no noise-free reference needed).

    Images without a measurable patch are skipped; ValueError when none has one.
    """
    return noise_power_spectrum(images, [own_flat_patches(im) for im in images])
