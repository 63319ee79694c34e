"""Contrast transfer: give a source image the target domain's grey levels and multi-scale contrast.

At tau = 0.6 the flow keeps the source's contrast at the 2-16 px scales (the latent pins them; see
docs/evaluation.md), so a translation into a clinical domain lacks the vendor's multi-scale contrast
equalisation. Contrast transfer prepares the source before the inversion, from unpaired statistics
of each domain's training images (the model's domain statistics, engine/domain_statistics.py):

    h   = T(x),  T = F_target^-1 o F_source: the source domain's grey-level distribution mapped onto
          the target's (both from quantiles of the training images; one curve for every image, so
          an image darker than the typical source image stays darker than the typical target one)
    h'  = h + sum_k (g_k - 1) band_k(h),   g_k = rms of band k in the target's training images
                                                 / rms of band k in the source's after T
    out = h' clipped to the target domain's grey-level range

Bands are differences of Gaussians at sigma 1, 2, 4, 8, 16 working pixels. The finest band (noise
and the finest detail) is left alone: texture is what the flow synthesises. All images are in the
model range ([-1, 1], `intensity.normalize`) on the model's working grid; docs/evaluation.md
("Contrast transfer") tells why one curve per domain pair and not a histogram match per image.

`measure_domain_statistics` measures what this needs, with each domain's noise power spectrum for
noise matching, into an engine.domain_statistics.DomainStatistics.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..engine.domain_statistics import QUANTILE_COUNT, DomainStatistics
from ..errors import MedShiftError
from .noise_model import domain_noise_statistics

BAND_SIGMAS_PX: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
FIRST_TRANSFERRED_BAND = 1  # band 0 (sigma < 1 px: noise and finest detail) keeps gain 1


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, 1, H, W) with edge replication (scipy's mode="nearest")."""
    radius = int(math.ceil(4.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    rows = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return F.conv2d(F.pad(rows, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))


def detail_bands(x: Tensor, sigmas_px: Sequence[float]) -> tuple[list[Tensor], Tensor]:
    """Difference-of-Gaussian detail bands at increasing scales and the residual low-pass."""
    bands, previous = [], x
    for sigma in sigmas_px:
        smooth = gaussian_blur(x, sigma)
        bands.append(previous - smooth)
        previous = smooth
    return bands, previous


def map_grey_levels(x: Tensor, source_quantiles: Sequence[float], target_quantiles: Sequence[float]) -> Tensor:
    """The monotone curve taking one grey-level distribution (given by quantiles) onto another, applied to x."""
    source = torch.tensor(source_quantiles, dtype=torch.float64)
    source = source + torch.arange(len(source), dtype=torch.float64) * 1e-9  # strictly increasing (flat air)
    target = torch.tensor(target_quantiles, dtype=torch.float64)
    values = x.detach().double().cpu().clamp(float(source[0]), float(source[-1])).contiguous()
    upper = torch.searchsorted(source, values).clamp(1, len(source) - 1)
    low, high = source[upper - 1], source[upper]
    weight = (values - low) / (high - low)
    mapped = target[upper - 1] + weight * (target[upper] - target[upper - 1])
    return mapped.to(dtype=x.dtype, device=x.device)


def band_gains(statistics: DomainStatistics, source: str, target: str) -> Tensor:
    """Band gains that take the source domain's contrast to the target's (band 0 fixed at 1)."""
    for domain in (source, target):
        if domain not in statistics.quantiles:
            raise MedShiftError(f"the model's domain statistics do not cover domain {domain!r}; "
                                "re-measure them with `medshift domain-contrast`, or translate without "
                                "contrast transfer")
    matched, own = statistics.band_rms[source][target], statistics.band_rms[target][target]
    gains = torch.tensor([o / m if m > 0 else 1.0 for m, o in zip(matched, own)], dtype=torch.float64)
    gains[:FIRST_TRANSFERRED_BAND] = 1.0
    return gains


def transfer_contrast(x: Tensor, statistics: DomainStatistics, source: str, target: str) -> Tensor:
    """Source images (B, 1, H, W, model range) with the target domain's grey levels and band contrast."""
    gains = band_gains(statistics, source, target)
    mapped = map_grey_levels(x, statistics.quantiles[source], statistics.quantiles[target])
    bands, _ = detail_bands(mapped, statistics.band_sigmas_px)
    adjusted = mapped + sum((float(g) - 1.0) * band for g, band in zip(gains, bands))
    low, high = statistics.quantiles[target][0], statistics.quantiles[target][-1]
    return adjusted.clamp(low, high)


def band_rms(images: Tensor, sigmas_px: Sequence[float]) -> tuple[float, ...]:
    """Root mean square of each detail band, averaged over images (B, 1, H, W)."""
    bands, _ = detail_bands(images.float(), sigmas_px)
    return tuple(float(band.double().pow(2).mean(dim=(1, 2, 3)).sqrt().mean()) for band in bands)


def measure_domain_statistics(images: Mapping[str, Tensor], sigmas_px: Sequence[float] = BAND_SIGMAS_PX
                              ) -> DomainStatistics:
    """Statistics for contrast transfer and noise matching from unpaired training images of each domain.

    images[domain]: (N, 1, H, W) in the model range.
    """
    levels = torch.linspace(0.0, 1.0, QUANTILE_COUNT, dtype=torch.float64)
    quantiles = {}
    for domain, batch in images.items():
        if len(batch) == 0:
            raise MedShiftError(f"no training images of domain {domain!r} to measure its contrast from")
        pooled = batch.double().flatten()
        if pooled.numel() > 4_000_000:  # torch.quantile's size limit; an even subsample keeps the distribution
            pooled = pooled[torch.linspace(0, pooled.numel() - 1, 4_000_000).long()]
        quantiles[domain] = tuple(torch.quantile(pooled, levels).tolist())
    rms = {source: {target: band_rms(map_grey_levels(images[source].float(), quantiles[source], quantiles[target]),
                                     sigmas_px)
                    for target in images} for source in images}
    return DomainStatistics(band_sigmas_px=tuple(float(s) for s in sigmas_px), quantiles=quantiles, band_rms=rms,
                          **domain_noise_statistics(images))
