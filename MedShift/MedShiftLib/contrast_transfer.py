"""Contrast transfer: give a source image the target domain's grey levels and multi-scale contrast.

At tau = 0.6 the flow keeps the source's contrast at the 2-16 px scales (the latent pins them; see
docs/evaluation.md), so a translation into a clinical domain lacks the vendor's multi-scale contrast
equalisation. Contrast transfer prepares the source before the inversion, from unpaired statistics
of each domain's training images (recorded in the checkpoint as `domain_contrast`):

    h   = T(x),  T = F_target^-1 o F_source: the source domain's grey-level distribution mapped onto
          the target's (both from quantiles of the training images; one curve for every image, so
          an image darker than the typical source image stays darker than the typical target one)
    h'  = h + sum_k (g_k - 1) band_k(h),   g_k = rms of band k in the target's training images
                                                 / rms of band k in the source's after T
    out = h' clipped to the target domain's grey-level range

Bands are differences of Gaussians at sigma 1, 2, 4, 8, 16 working pixels. The finest band (noise
and the finest detail) is left alone: texture is what the flow synthesises. All images are in the
model range ([-1, 1], `intensity.normalize`) on the model's working grid. (A first version matched
each image's own histogram to the target's instead of T; it imposed one histogram on every view and
cost structure between similar domains: docs/evaluation.md.)

The same statistics carry each domain's noise power spectrum for noise matching (noise_matching.py);
checkpoints measured before it existed lack it (`noise_power` None).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import CheckpointError, MedShiftError
from .image_quality import NPS_BINS
from .noise_matching import image_nps

BAND_SIGMAS_PX: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
QUANTILE_COUNT = 257
FIRST_TRANSFERRED_BAND = 1  # band 0 (sigma < 1 px: noise and finest detail) keeps gain 1


@dataclass(frozen=True)
class DomainContrast:
    """Per-domain grey-level quantiles, per-pair band contrast and per-domain noise power of training images."""

    band_sigmas_px: tuple[float, ...]
    quantiles: dict[str, tuple[float, ...]]  # domain -> QUANTILE_COUNT values at levels 0..1
    # band_rms[s][t]: rms of each band of domain s's images mapped onto t's grey levels ([t][t]: t's own)
    band_rms: dict[str, dict[str, tuple[float, ...]]]
    # noise_power[d]: NPS rings 1..NPS_BINS-1 of d's images (noise_matching.image_nps); None: not measured
    noise_power: dict[str, tuple[float, ...]] | None = None

    def noise_power_of(self, domain: str) -> tuple[float, ...]:
        """The domain's noise power spectrum; MedShiftError naming the fix when it was not measured."""
        if self.noise_power is None or domain not in self.noise_power:
            raise MedShiftError(f"the model's domain statistics hold no noise power spectrum of {domain!r}, which "
                                "noise matching needs; re-measure them with `medshift domain-contrast --model CKPT "
                                "--data TRAINING_DIR --out NEW.safetensors`, or translate without noise matching")
        return self.noise_power[domain]

    def gains(self, source: str, target: str) -> Tensor:
        """Band gains that take the source domain's contrast to the target's (band 0 fixed at 1)."""
        for domain in (source, target):
            if domain not in self.quantiles:
                raise MedShiftError(f"the model's contrast statistics do not cover domain {domain!r}; "
                                    "re-measure them with `medshift domain-contrast`, or translate without "
                                    "contrast transfer")
        matched, own = self.band_rms[source][target], self.band_rms[target][target]
        gains = torch.tensor([o / m if m > 0 else 1.0 for m, o in zip(matched, own)], dtype=torch.float64)
        gains[:FIRST_TRANSFERRED_BAND] = 1.0
        return gains

    def to_dict(self) -> dict:
        """JSON-ready form stored in the checkpoint metadata."""
        entry = {"band_sigmas_px": list(self.band_sigmas_px),
                 "quantiles": {d: list(q) for d, q in self.quantiles.items()},
                 "band_rms": {s: {t: list(v) for t, v in row.items()} for s, row in self.band_rms.items()}}
        if self.noise_power is not None:
            entry["noise_power"] = {d: list(v) for d, v in self.noise_power.items()}
        return entry

    @classmethod
    def from_dict(cls, raw: object, domains: Sequence[str]) -> "DomainContrast":
        """Parse and check the checkpoint's `domain_contrast` entry; CheckpointError when malformed."""
        def numbers(values: object, count: int, what: str) -> tuple[float, ...]:
            if (not isinstance(values, list) or len(values) != count
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in values)):
                raise CheckpointError(f"domain_contrast: {what} must be {count} finite numbers")
            return tuple(float(v) for v in values)

        if not isinstance(raw, dict):
            raise CheckpointError("domain_contrast must be a JSON object")
        sigmas_raw = raw.get("band_sigmas_px")
        sigmas = numbers(sigmas_raw, len(sigmas_raw) if isinstance(sigmas_raw, list) else -1, "band_sigmas_px")
        if not sigmas or any(s <= 0 for s in sigmas) or list(sigmas) != sorted(sigmas):
            raise CheckpointError("domain_contrast: band_sigmas_px must be increasing positive numbers")
        quantiles_raw, rms_raw = raw.get("quantiles"), raw.get("band_rms")
        if not isinstance(quantiles_raw, dict) or set(quantiles_raw) != set(domains):
            raise CheckpointError("domain_contrast: quantiles must list exactly the model's domains")
        quantiles = {d: numbers(quantiles_raw[d], QUANTILE_COUNT, f"quantiles of {d}") for d in domains}
        if any(list(q) != sorted(q) for q in quantiles.values()):
            raise CheckpointError("domain_contrast: quantiles must be non-decreasing")
        if not isinstance(rms_raw, dict) or set(rms_raw) != set(domains):
            raise CheckpointError("domain_contrast: band_rms must list exactly the model's domains")
        band_rms = {}
        for source in domains:
            row = rms_raw[source]
            if not isinstance(row, dict) or set(row) != set(domains):
                raise CheckpointError(f"domain_contrast: band_rms of {source} must list every domain")
            band_rms[source] = {t: numbers(row[t], len(sigmas), f"band_rms {source}->{t}") for t in domains}
            if any(v < 0 for row_values in band_rms[source].values() for v in row_values):
                raise CheckpointError("domain_contrast: band_rms must not be negative")
        noise_raw, noise_power = raw.get("noise_power"), None
        if noise_raw is not None:
            if not isinstance(noise_raw, dict) or set(noise_raw) != set(domains):
                raise CheckpointError("domain_contrast: noise_power must list exactly the model's domains")
            noise_power = {d: numbers(noise_raw[d], NPS_BINS - 1, f"noise_power of {d}") for d in domains}
            if any(v < 0 for values in noise_power.values() for v in values):
                raise CheckpointError("domain_contrast: noise_power must not be negative")
        return cls(band_sigmas_px=sigmas, quantiles=quantiles, band_rms=band_rms, noise_power=noise_power)


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


def transfer_contrast(x: Tensor, contrast: DomainContrast, source: str, target: str) -> Tensor:
    """Source images (B, 1, H, W, model range) with the target domain's grey levels and band contrast."""
    gains = contrast.gains(source, target)
    mapped = map_grey_levels(x, contrast.quantiles[source], contrast.quantiles[target])
    bands, _ = detail_bands(mapped, contrast.band_sigmas_px)
    adjusted = mapped + sum((float(g) - 1.0) * band for g, band in zip(gains, bands))
    low, high = contrast.quantiles[target][0], contrast.quantiles[target][-1]
    return adjusted.clamp(low, high)


def band_rms(images: Tensor, sigmas_px: Sequence[float]) -> tuple[float, ...]:
    """Root mean square of each detail band, averaged over images (B, 1, H, W)."""
    bands, _ = detail_bands(images.float(), sigmas_px)
    return tuple(float(band.double().pow(2).mean(dim=(1, 2, 3)).sqrt().mean()) for band in bands)


def measure_domain_contrast(images: Mapping[str, Tensor], sigmas_px: Sequence[float] = BAND_SIGMAS_PX
                            ) -> DomainContrast:
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
    return DomainContrast(band_sigmas_px=tuple(float(s) for s in sigmas_px), quantiles=quantiles, band_rms=rms,
                          noise_power=_noise_power(images))


def _noise_power(images: Mapping[str, Tensor]) -> dict[str, tuple[float, ...]] | None:
    """Each domain's NPS over its images' flattest patches; None when some domain has no measurable patch."""
    try:
        return {domain: tuple(image_nps(list(batch[:, 0].double().numpy())).tolist())
                for domain, batch in images.items()}
    except ValueError:  # some domain has no measurable patch (images smaller than a patch, or all air)
        return None
