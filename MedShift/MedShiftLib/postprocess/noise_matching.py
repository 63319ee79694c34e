"""Noise matching on the working grid: give an image the target domain's noise (torch, batched, any device).

The deterministic flow carries the source's noise through the translation: a smooth simulator image
comes out without the clinical quantum noise, a noisy one comes out with noise a high-dose domain
does not have. Noise matching compares the image's NPS (measured in its own flattest patches) with
the target domain's (measured the same way on its training images and recorded in the model's domain
statistics) ring by ring, then

* removes the excess: a radial Wiener filter H = (P - E) / P, with P the image's radially averaged
  power spectrum and E the excess noise power, proposes what to remove, and a local Wiener split keeps
  of that only what looks like noise locally, so anatomy (whose local variance is far above the
  noise's) is never removed, only the noise around it;
* adds the deficit: Gaussian noise shaped to the missing power, whose variance follows the target
  domain's noise level at each pixel's grey level (noise_model.py; relative to the image's typical
  level, so the spectrum's power is kept on average): none where the target carries no noise (direct
  exposure it renders noise-free) or where the image is clipped; noise the image has at such grey levels
  is taken out (`quiet_where_target_is_noiseless`).

All in the model range on the working grid (NPS rings in cycles per pixel, noise_power.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..engine.domain_statistics import NPS_BINS
from .blur import local_mean
from .fine_noise import noise_part
from .noise_model import CHI2_MEDIAN, carries_noise, curve_at, filled_curve, local_grey_level, smooth
from .noise_power import image_nps, own_flat_patches

SPECTRUM_RINGS = 32  # rings of the image's own power spectrum in the Wiener filter
CLIPPED_MARGIN = 1e-3  # model-range values this close to -1 or 1 are clipped
MAX_LEVEL_GAIN = 3.0  # largest noise amplitude relative to the image's typical grey level's
QUIET_SIGMA_PX = 4.0  # the residual (image - Gaussian) whose noise part is taken out there
QUIET_VARIANCE_FACTOR = 4.0  # where the target has no noise, local variance up to 4x the noise's is noise


def _radius(shape: Sequence[int], device: torch.device) -> Tensor:
    """Spatial frequency of each FFT element, 1 = Nyquist (clipped there)."""
    fy = torch.fft.fftfreq(shape[0], dtype=torch.float64, device=device)
    fx = torch.fft.fftfreq(shape[1], dtype=torch.float64, device=device)
    return torch.clamp(torch.hypot(fy[:, None], fx[None, :]) / 0.5, max=1.0)


def _ring_power(nps_rings: Sequence[float], radius: Tensor) -> Tensor:
    """NPS rings 1.. (of NPS_BINS) interpolated to each frequency; ring 0 (the lowest) taken like ring 1."""
    rings = torch.as_tensor(list(nps_rings), dtype=torch.float64, device=radius.device)
    rings = torch.cat([rings[:1], rings])
    position = (radius * NPS_BINS - 0.5).clamp(0, NPS_BINS - 1)
    low = position.floor().long().clamp(max=NPS_BINS - 2)
    weight = position - low
    return (rings[low] * (1 - weight) + rings[low + 1] * weight).clamp_min(0.0)


def shaped_noise(shape: Sequence[int], nps_rings: Sequence[float], generator: torch.Generator,
                 device: torch.device | str = "cpu") -> Tensor:
    """Gaussian noise (float64, `shape` 2-D) whose radially averaged power spectrum follows `nps_rings`."""
    white = torch.randn(tuple(shape), generator=generator, device=device, dtype=torch.float64)
    return torch.fft.ifft2(torch.fft.fft2(white) * _ring_power(nps_rings, _radius(shape, device)).sqrt()).real


def robust_noise_sigma(band: Tensor) -> float:
    """Noise standard deviation of a zero-mean band: 1.4826 x its median absolute deviation (edges are outliers)."""
    values = band.flatten()
    return float(1.4826 * (values - values.median()).abs().median())


def remove_noise_power(image: Tensor, excess_rings: Sequence[float]) -> Tensor:
    """Take about `excess_rings` of noise power out of a 2-D image, never an edge.

    A radial Wiener filter proposes what to remove (the image is mirrored to twice its size first, so
    the FFT sees no jump between opposite borders); of that, only the part whose local variance is the
    noise's own is removed (fine_noise.noise_part): where the proposal holds an edge, a rib or a
    trabecula, its local variance is far above the noise's and it stays in the image.
    """
    excess_rings = torch.as_tensor(list(excess_rings), dtype=torch.float64)
    if not bool((excess_rings > 0).any()):
        return image
    image = image.double()
    rows, cols = image.shape
    mean = image.mean()
    centred = image - mean
    top = torch.cat([centred, centred.flip(1)], 1)
    mirrored = torch.cat([top, top.flip(0)], 0)
    spectrum = torch.fft.fft2(mirrored)
    power = (spectrum.abs() ** 2 / mirrored.numel()).flatten()
    radius = _radius(mirrored.shape, image.device)
    ring = torch.clamp((radius * SPECTRUM_RINGS).long(), max=SPECTRUM_RINGS - 1).flatten()
    counts = torch.bincount(ring, minlength=SPECTRUM_RINGS).clamp_min(1).double()
    sums = torch.zeros(SPECTRUM_RINGS, dtype=torch.float64, device=image.device).index_add_(0, ring, power)
    ring_power = (sums / counts)[ring].reshape(mirrored.shape)
    excess = torch.where(radius < 1.0 / NPS_BINS, 0.0, _ring_power(excess_rings.tolist(), radius))  # ring 0: anatomy
    gain = ((ring_power - excess) / ring_power.clamp_min(1e-20)).clamp(0.0, 1.0)
    removed = centred - torch.fft.ifft2(spectrum * gain).real[:rows, :cols]
    sigma = robust_noise_sigma(removed)
    noise = noise_part(removed[None, None], torch.tensor(sigma * sigma, dtype=torch.float64))[0, 0]
    return image - noise * unclipped(image)


def unclipped(image: Tensor) -> Tensor:
    """0..1 per pixel of a 2-D image: 0 where it is clipped at either end of the model range (and no noise is)."""
    clipped = ((image <= -1 + CLIPPED_MARGIN) | (image >= 1 - CLIPPED_MARGIN)).double()
    return 1.0 - local_mean(clipped[None, None], 1.0)[0, 0]


def grey_level_gain(image: Tensor, target_curve: Sequence[float | None] | None) -> Tensor:
    """Amplitude factor of added noise per pixel of a 2-D image: sqrt(target level at its grey level / the
    median such level over the pixels where the target carries noise), 0 where the image is clipped; 1
    everywhere without a curve."""
    free = unclipped(image)
    if target_curve is None:
        return free
    curve = filled_curve(target_curve, image.device)
    grey = local_grey_level(image.double()[None, None])[0, 0]
    level = curve_at(curve, grey)
    noisy = (free > 0.5) & (curve_at(carries_noise(curve), grey) > 0.99)  # where the target has noise at all
    typical = level[noisy].median() if bool(noisy.any()) else level.median()
    if float(typical) <= 0:
        return free
    return (level / typical).sqrt().clamp(max=MAX_LEVEL_GAIN) * free


def match_noise(image: Tensor, target_nps: Sequence[float], generator: torch.Generator,
                target_curve: Sequence[float | None] | None = None) -> Tensor:
    """A 2-D image (model range) with its noise taken to `target_nps`: excess removed, deficit added.

    `target_curve`: the target domain's noise level curve, which shapes the added noise by grey level.
    An image with no measurable patch (smaller than NPS_PATCH, or all air) is returned unchanged.
    """
    if not own_flat_patches(image):
        return image
    target = torch.as_tensor(list(target_nps), dtype=torch.float64)
    own = torch.as_tensor(image_nps([image]), dtype=torch.float64)
    excess = (own - target).clamp_min(0.0)
    result = image.double()
    if bool((excess > 0).any()):
        result = remove_noise_power(result, excess.tolist())
        own = torch.as_tensor(image_nps([result]), dtype=torch.float64)  # filtered: its NPS is measured again
    missing = (target - own).clamp_min(0.0)
    noise = shaped_noise(image.shape, missing.tolist(), generator, image.device)
    result = result + noise * grey_level_gain(result, target_curve)
    return (quiet_where_target_is_noiseless(result, target_curve) if target_curve is not None else result
            ).to(image.dtype)


def quiet_where_target_is_noiseless(image: Tensor, target_curve: Sequence[float | None]) -> Tensor:
    """A 2-D image without the noise part of its 4-px residual at grey levels where the target carries
    no noise (direct exposure it renders noise-free): a local Wiener split, so edges stay."""
    grey = local_grey_level(image.double()[None, None])
    silence = 1.0 - curve_at(carries_noise(filled_curve(target_curve, image.device)), grey)
    if not bool((silence > 0.5).any()):
        return image
    batch = image.double()[None, None]
    residual = batch - smooth(batch, QUIET_SIGMA_PX)
    variance = residual[silence > 0.5].square().median() / CHI2_MEDIAN
    return image - (silence * noise_part(residual, QUIET_VARIANCE_FACTOR * variance))[0, 0]


def match_noise_batch(x: Tensor, target_nps: Sequence[float], seed: int,
                      target_curve: Sequence[float | None] | None = None) -> Tensor:
    """match_noise for each image of (B, 1, H, W) where it lies, noise drawn from `seed` image after image."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return torch.stack([match_noise(image[0], target_nps, generator, target_curve)[None] for image in x])
