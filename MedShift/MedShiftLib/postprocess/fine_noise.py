"""A dose change at the output's own pixel pitch, shaped by the image's own noise (torch, any device).

Detail finer than the model's working grid is carried from the input (detail_transfer.py), and with it
the input detector's quantum noise. When the translation changes the noise (noise synthesis or noise
matching) and the input has measurable noise, the dose change between the domains is made here, at the
input's pitch, as physics noise insertion does it (Veldkamp et al. 2009, Med Phys 36:3119, here in the
display space):

* the dose fraction r = dose_target / dose_source comes from the model's domain statistics
  (noise_model.statistics_dose_fraction); quantum noise variance goes as 1/dose;
* the image's own noise (`measure_own_noise`): its noise level curve (variance by grey level,
  noise_model.py) and its 2-D noise power spectrum (the median periodogram of the flatter half of its
  NPS_PATCH-pixel patches away from the ends of the range), both at the output pitch;
* lower dose (r < 1): Gaussian noise with the image's own NPS (white noise filtered by sqrt(NPS)) and,
  at each pixel, the variance own_level(g) x (1/r - 1) at the input's local grey level g, where the
  image carries noise locally (none in clipped regions) and the target domain carries noise at the
  output's grey level (none where it renders direct exposure noise-free);
* higher dose (r > 1): the fine band's noise part (a local Wiener split against the band's own noise
  level by grey level; edges and trabeculae, whose local variance is far above the noise's, are kept)
  scaled by 1/sqrt(r), its variance by 1/r.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .noise_model import (
    HIGHPASS_SIGMA_PX,
    carries_noise,
    curve_at,
    filled_curve,
    highpass_residual,
    local_grey_level,
    noise_level_curve,
    smooth,
)
from .noise_power import flat_patch_corners, patch_nps_2d

LOCAL_VARIANCE_SIGMA_PX = 2.0  # local Wiener split
LOCAL_GATE_SIGMA_PX = 4.0  # where the image carries noise locally
LOCAL_GATE_SHARE = 0.25  # local residual variance below this share of the curve's: (partly) clipped
MEASURABLE_NOISE_VARIANCE = 1e-6  # model range^2; below it an image counts as noise-free


@dataclass(frozen=True)
class OwnNoise:
    """An image's own noise: variance by grey level (filled curve of residual variance), 2-D NPS, and the
    image's local grey level and high-pass residual (1, 1, H, W) it was measured from."""

    level: Tensor
    nps_2d: Tensor
    grey: Tensor
    residual: Tensor


def measure_own_noise(x: Tensor) -> OwnNoise | None:
    """The noise model of one image (1, 1, H, W) at its own pitch; None when it has no measurable noise."""
    image = x.float()
    residual, grey = highpass_residual(image), local_grey_level(image)
    level = filled_curve(noise_level_curve(image, residual=residual, grey=grey), x.device)
    if float(level.max()) < MEASURABLE_NOISE_VARIANCE:
        return None
    corners = flat_patch_corners(grey[0, 0], count=image.numel(), smoothing_px=0.0)  # flattest first
    if not corners:
        return None
    texture = patch_nps_2d([image[0, 0]], [corners[:max(len(corners) // 2, 1)]], robust=True)
    return OwnNoise(level=level, nps_2d=texture, grey=grey, residual=residual)


def shaped_noise(shape: Sequence[int], nps_2d: Tensor, generator: torch.Generator) -> Tensor:
    """Gaussian noise (B, 1, H, W) with the 2-D NPS `nps_2d` (FFT layout, any size), scaled so that its
    high-pass residual (noise_model.highpass_residual) has unit variance."""
    size, device = nps_2d.shape[-1], nps_2d.device
    rows, cols = shape[-2:]
    centred = torch.fft.fftshift(nps_2d.float().sqrt())[None, None]
    fy, fx = torch.fft.fftfreq(rows, device=device), torch.fft.fftfreq(cols, device=device)
    # frequency f sits at index f * size + size / 2 of the centred grid; grid_sample wants 2 index / (size - 1) - 1
    grid = torch.stack(torch.meshgrid(fx, fy, indexing="xy"), dim=-1) * (2.0 * size / (size - 1)) + 1.0 / (size - 1)
    amplitude = F.grid_sample(centred, grid[None], mode="bilinear", padding_mode="border", align_corners=True)[0, 0]
    highpass = 1.0 - torch.exp(-2.0 * math.pi ** 2 * HIGHPASS_SIGMA_PX ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    scale = float((amplitude * highpass).square().mean().sqrt().clamp_min(1e-12))
    white = torch.randn(tuple(shape), generator=generator, device=device, dtype=torch.float32)
    return torch.fft.ifft2(torch.fft.fft2(white) * (amplitude / scale)).real


def insert_dose_noise(y: Tensor, own: OwnNoise, dose_fraction: float, generator: torch.Generator,
                      target_curve: Sequence[float | None] | None = None) -> Tensor:
    """`y` plus the noise a dose fraction `dose_fraction` < 1 of the measured input adds (module docstring).

    `target_curve`: the target domain's noise level curve; nothing is added at output grey levels where
    it carries no noise. Without it (the physics baseline) only the image's own noise decides.
    """
    expected = curve_at(own.level, own.grey)
    gate = (smooth(own.residual.square(), LOCAL_GATE_SIGMA_PX) / (LOCAL_GATE_SHARE * expected).clamp_min(1e-20))
    variance = expected * (1.0 / dose_fraction - 1.0) * gate.clamp(0.0, 1.0)
    if target_curve is not None:
        target_carries = carries_noise(filled_curve(target_curve, y.device))
        variance = variance * curve_at(target_carries, local_grey_level(y.float()))
    noise = shaped_noise(y.shape, own.nps_2d, generator)
    return y + (noise * variance.clamp_min(0.0).sqrt()).to(y.dtype)


def noise_part(band: Tensor, noise_variance: Tensor) -> Tensor:
    """The part of a fine band that is noise: band x min(1, noise variance / local variance) (local Wiener split)."""
    local_variance = smooth(band * band, LOCAL_VARIANCE_SIGMA_PX)
    return band * torch.clamp(noise_variance / local_variance.clamp_min(1e-20), max=1.0)


def remove_dose_noise(y: Tensor, x: Tensor, band: Tensor, own: OwnNoise, dose_fraction: float) -> Tensor:
    """`y` with the noise of the input `x`'s fine `band` reduced to a dose fraction > 1 (its variance / r)."""
    band_level = filled_curve(noise_level_curve(x, residual=band, grey=own.grey), x.device)
    expected = curve_at(band_level, own.grey).to(band.dtype)
    keep = 1.0 / math.sqrt(dose_fraction)
    return y - ((1.0 - keep) * noise_part(band, expected)).to(y.dtype)


def change_dose(y: Tensor, x: Tensor, band: Tensor, own: OwnNoise, dose_fraction: float, seed: int,
                target_curve: Sequence[float | None] | None) -> Tensor:
    """`y` (the translated input `x`, both (1, 1, H, W)) with the noise of a dose fraction `dose_fraction`.

    `band`: the input's fine band (what the working grid cannot hold), from which noise is removed.
    """
    if abs(dose_fraction - 1.0) < 1e-3:
        return y
    if dose_fraction > 1.0:
        return remove_dose_noise(y, x, band, own, dose_fraction)
    generator = torch.Generator(device=y.device).manual_seed(seed)
    return insert_dose_noise(y, own, dose_fraction, generator, target_curve)
