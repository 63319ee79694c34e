"""Image-quality measures of `medshift evaluate`: structure, noise texture, and distribution distances.

All images are compared in the model range (robust percentiles to [-1, 1], `model_range`), so a
translation is judged on its content and texture, not on the absolute values of its file.

* structure: SSIM and PSNR (scikit-image) against a reference, data range 2;
* noise texture: the relative error of a noise power spectrum (postprocess.noise_power) against the
  target domain's, measured on the same regions of real target images;
* distributions: KID (torchmetrics' polynomial-kernel MMD) and coverage (prdc) of feature vectors.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from ..engine.intensity import fit_intensity_window, normalize


def model_range(pixels: np.ndarray, photometric: str = "MONOCHROME2") -> np.ndarray:
    """An image as the model sees it: robust percentiles mapped to [-1, 1], MONOCHROME1 inverted (float64)."""
    return normalize(pixels, fit_intensity_window(pixels, photometric)).astype(np.float64)


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
