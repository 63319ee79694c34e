"""Noise matching: give an image the target domain's noise power spectrum (NPS).

The deterministic flow carries the source's noise through the translation: a smooth simulator image
comes out without the clinical quantum noise, a noisy one comes out with noise a high-dose domain
does not have. Noise matching compares the image's NPS (measured in its own flattest patches) with
the target domain's (measured the same way on its training images and recorded in the model's domain
statistics) ring by ring, then

* removes the excess: a radial Wiener filter H = (P - E) / P, with P the image's radially averaged
  power spectrum and E the excess noise power, proposes what to remove, and a local Wiener split keeps
  of that only what looks like noise locally, so anatomy (whose local variance is far above the
  noise's) is never removed, only the noise around it;
* adds the deficit: Gaussian noise shaped to the missing power.

All in the model range on the working grid (NPS rings in cycles per pixel, noise_power.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..engine.domain_statistics import NPS_BINS
from .fine_noise import noise_part, robust_noise_sigma
from .noise_power import image_nps, noise_power_spectrum, own_flat_patches

SPECTRUM_RINGS = 32  # rings of the image's own power spectrum in the Wiener filter


def _radius(shape: tuple[int, int]) -> np.ndarray:
    """Spatial frequency of each FFT element, 1 = Nyquist (clipped there)."""
    fy, fx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
    return np.minimum(np.hypot(fx, fy) / 0.5, 1.0)


def _ring_power(nps_rings: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """NPS rings 1.. (of NPS_BINS) interpolated to each frequency; ring 0 (the lowest) taken like ring 1."""
    rings = np.concatenate([[nps_rings[0]], nps_rings])
    centres = (np.arange(NPS_BINS) + 0.5) / NPS_BINS
    return np.clip(np.interp(radius, centres, rings), 0.0, None)


def shaped_noise(shape: tuple[int, int], nps_rings: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose radially averaged power spectrum follows `nps_rings` (rings 1.. of NPS_BINS)."""
    white = rng.standard_normal(shape)
    return np.real(np.fft.ifft2(np.fft.fft2(white) * np.sqrt(_ring_power(nps_rings, _radius(shape)))))


def remove_noise_power(image: np.ndarray, excess_rings: np.ndarray) -> np.ndarray:
    """Take about `excess_rings` of noise power out of an image, never an edge.

    A radial Wiener filter proposes what to remove (the image is mirrored to twice its size first, so
    the FFT sees no jump between opposite borders); of that, only the part whose local variance is the
    noise's own is removed (fine_noise.noise_part): where the proposal holds an edge, a rib or a
    trabecula, its local variance is far above the noise's and it stays in the image.
    """
    if not np.any(excess_rings > 0):
        return image
    rows, cols = image.shape
    mean = image.mean()
    mirrored = np.pad(image - mean, ((0, rows), (0, cols)), mode="symmetric")
    spectrum = np.fft.fft2(mirrored)
    power = np.abs(spectrum) ** 2 / mirrored.size
    radius = _radius(mirrored.shape)
    ring = np.minimum((radius * SPECTRUM_RINGS).astype(int), SPECTRUM_RINGS - 1).ravel()
    counts = np.maximum(np.bincount(ring, minlength=SPECTRUM_RINGS), 1)
    ring_power = (np.bincount(ring, power.ravel(), SPECTRUM_RINGS) / counts)[ring].reshape(mirrored.shape)
    excess = np.where(radius < 1.0 / NPS_BINS, 0.0, _ring_power(excess_rings, radius))  # ring 0 is anatomy
    gain = np.clip((ring_power - excess) / np.maximum(ring_power, 1e-20), 0.0, 1.0)
    removed = image - mean - np.real(np.fft.ifft2(spectrum * gain))[:rows, :cols]
    return image - noise_part(removed, robust_noise_sigma(removed))


def match_noise(image: np.ndarray, target_nps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image (model range, 2-D) with its noise taken to `target_nps`: excess removed, deficit added.

    An image with no measurable patch (smaller than NPS_PATCH, or all air) is returned unchanged.
    """
    corners = own_flat_patches(image)
    if not corners:
        return image
    target_nps = np.asarray(target_nps, dtype=np.float64)
    own = noise_power_spectrum([image], [corners])
    excess = np.clip(own - target_nps, 0.0, None)
    if np.any(excess > 0):
        image, own = remove_noise_power(image, excess), None  # filtered: its NPS is measured again
    return add_missing_noise(image, target_nps, rng, own)


def add_missing_noise(image: np.ndarray, target_nps: np.ndarray, rng: np.random.Generator,
                      own_nps: np.ndarray | None = None) -> np.ndarray:
    """The image plus Gaussian noise with the power it lacks, ring by ring, to reach `target_nps`.

    `own_nps`: the image's image_nps when already measured.
    """
    own = image_nps([image]) if own_nps is None else own_nps
    missing = np.clip(np.asarray(target_nps, dtype=np.float64) - own, 0.0, None)
    return image + shaped_noise(image.shape, missing, rng)


def match_noise_batch(x: Tensor, target_nps: Sequence[float], seed: int) -> Tensor:
    """match_noise for each image of (B, 1, H, W), noise drawn from `seed` image after image; same dtype/device."""
    rng = np.random.default_rng(seed)
    target = np.asarray(target_nps, dtype=np.float64)
    images = x.detach().double().cpu().numpy()
    matched = np.stack([match_noise(image[0], target, rng)[None] for image in images])
    return torch.from_numpy(matched).to(dtype=x.dtype, device=x.device)
