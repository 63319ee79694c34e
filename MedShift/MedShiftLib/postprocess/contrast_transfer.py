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

A band is not cut because the source is noisier: a noisier domain has more power in its fine bands
without more anatomy there, and with the raw rms clinical-low -> clinical-normal (the same processing,
a third of the dose) cut the 1-2 working-pixel band by 15 %. A gain below 1 is raised to the ratio of
the bands' noise-free rms (rms^2 less the noise power the domain's NPS puts in the band), at most 1
(`band_gains`); boosts keep the raw ratio (the noise-free estimate is too rough to raise them: the
flattest-patch NPS also holds some anatomy). Changing the noise is noise matching's job.

Bands are differences of Gaussians at sigma 1, 2, 4, 8, 16 working pixels. The finest band (noise
and the finest detail) is left alone: texture is what the flow synthesises. All images are in the
model range ([-1, 1], `intensity.normalize`) on the model's working grid; docs/evaluation.md
("Contrast transfer") tells why one curve per domain pair and not a histogram match per image.

On an input finer than the working grid the grey-level curve is applied at the input's own resolution
(`split_contrast_transfer`): a pointwise curve evaluated on the working grid and interpolated up
turns every bend of the curve into working-pixel blobs.

`measure_domain_statistics` measures what this needs, with each domain's noise power spectrum for
noise matching, into an engine.domain_statistics.DomainStatistics.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..engine.domain_statistics import NPS_BINS, QUANTILE_COUNT, DomainStatistics
from ..errors import MedShiftError
from .blur import gaussian_blur, gaussian_radius, gaussian_taps
from .noise_model import domain_noise_statistics

BAND_SIGMAS_PX: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
FIRST_TRANSFERRED_BAND = 1  # band 0 (sigma < 1 px: noise and finest detail) keeps gain 1
NPS_GRID = 128  # frequencies per axis on which a domain's NPS is integrated against the bands' filters
MIN_SIGNAL_SHARE = 0.1  # a source band with less anatomy power than this share keeps the raw rms ratio
BAND_RMS_CHUNK = 4  # images per FFT in band_rms
AIR_LEVEL = -0.999  # grey levels at or below this are air or direct exposure, where the images carry no noise


def detail_bands(x: Tensor, sigmas_px: Sequence[float]) -> tuple[list[Tensor], Tensor]:
    """Difference-of-Gaussian detail bands at increasing scales and the residual low-pass."""
    bands, previous = [], x
    for sigma in sigmas_px:
        smooth = gaussian_blur(x, sigma)
        bands.append(previous - smooth)
        previous = smooth
    return bands, previous


def map_grey_levels(x: Tensor, source_quantiles: Sequence[float], target_quantiles: Sequence[float]) -> Tensor:
    """The monotone curve taking one grey-level distribution (given by quantiles) onto another, applied to x.

    Runs where x is, in x's dtype, on any batch shape. The segments' ends and slopes are worked out in
    float64; the segment of each value is searched among the ends rounded down to x's dtype, which for a
    value of that dtype is the same comparison as with the exact ends (no run of equal rounded ends is
    entered in its middle), and values beyond the ends take the end segments' ends (weight clamped).
    """
    return GreyLevelSegments(x, source_quantiles).onto(target_quantiles)


class GreyLevelSegments:
    """Each value's segment of the source curve and its place in it, to map onto several targets (map_grey_levels)."""

    def __init__(self, x: Tensor, source_quantiles: Sequence[float]) -> None:
        source = torch.tensor(source_quantiles, dtype=torch.float64)
        source = source + torch.arange(len(source), dtype=torch.float64) * 1e-9  # flat air: a run of tiny segments
        ends = source.to(x.dtype)
        ends = torch.where(ends.double() > source, torch.nextafter(ends, torch.tensor(-torch.inf, dtype=x.dtype)),
                           ends)
        values = x.detach()
        self.segment = (torch.searchsorted(ends.to(x.device), values.contiguous()) - 1).clamp_(0, len(source) - 2)
        start, inverse_width = (table.to(x.device, x.dtype)[self.segment] for table in (
            source[:-1], 1.0 / (source[1:] - source[:-1])))
        self.fraction = (values - start).mul_(inverse_width).clamp_(0.0, 1.0)

    def onto(self, target_quantiles: Sequence[float]) -> Tensor:
        """The values mapped onto the target distribution."""
        target = torch.tensor(target_quantiles, dtype=torch.float64)
        low, rise = (table.to(self.fraction.device, self.fraction.dtype)[self.segment]
                     for table in (target[:-1], target[1:] - target[:-1]))
        return self.fraction.mul(rise).add_(low)


def band_gains(statistics: DomainStatistics, source: str, target: str) -> Tensor:
    """Band gains that take the source domain's anatomy contrast to the target's (band 0 fixed at 1).

    Ratios of the bands' rms; a ratio below 1 is raised to that of their noise-free rms (at most 1) where
    the domains' noise spectra are recorded and the source's band is not mostly noise (module docstring).
    """
    for domain in (source, target):
        if domain not in statistics.quantiles:
            raise MedShiftError(f"the model's domain statistics do not cover domain {domain!r}; "
                                "re-measure them with `medshift domain-contrast`, or translate without "
                                "contrast transfer")
    matched, own = statistics.band_rms[source][target], statistics.band_rms[target][target]
    gains = torch.tensor([o / m if m > 0 else 1.0 for m, o in zip(matched, own)], dtype=torch.float64)
    if statistics.noise_power is not None and {source, target} <= set(statistics.noise_power):
        source_noise = _band_noise_power(statistics, source, statistics.band_rms[source][source])
        slope = matched[0] / max(statistics.band_rms[source][source][0], 1e-12)  # the grey-level curve's, on noise
        source_noise = source_noise * slope ** 2
        target_noise = _band_noise_power(statistics, target, own)
        signal_matched = torch.tensor(matched, dtype=torch.float64) ** 2 - source_noise
        signal_own = torch.tensor(own, dtype=torch.float64) ** 2 - target_noise
        measurable = signal_matched > MIN_SIGNAL_SHARE * torch.tensor(matched, dtype=torch.float64) ** 2
        noise_free = (signal_own.clamp(min=0) / signal_matched.clamp(min=1e-20)).sqrt().clamp(max=1.0)
        gains = torch.where(measurable & (gains < 1), torch.maximum(gains, noise_free), gains)
    gains[:FIRST_TRANSFERRED_BAND] = 1.0
    return gains


def _band_noise_power(statistics: DomainStatistics, domain: str, own_band_rms: Sequence[float]) -> Tensor:
    """Noise power in each detail band of a domain's images, from its NPS (rings 1.., per pixel^2).

    The NPS is integrated against each band's filter; it is taken only where the domain's images are not
    air (the quantiles say how much), and scaled down if needed so the finest band is at most all noise.
    """
    nps = torch.tensor(statistics.noise_power[domain], dtype=torch.float64)
    frequencies = torch.fft.fftfreq(NPS_GRID, dtype=torch.float64)
    frequency = torch.hypot(frequencies[:, None], frequencies[None, :])  # cycles per pixel
    radius = (frequency / 0.5).clamp(max=1.0)  # 1 = Nyquist, as the NPS rings
    rings = torch.cat([nps[:1], nps])  # ring 0 (mean and trend) taken like ring 1
    centres = (torch.arange(NPS_BINS, dtype=torch.float64) + 0.5) / NPS_BINS
    upper = torch.searchsorted(centres, radius.contiguous()).clamp(1, NPS_BINS - 1)
    weight = ((radius - centres[upper - 1]) / (centres[upper] - centres[upper - 1])).clamp(0.0, 1.0)
    power = (rings[upper - 1] + weight * (rings[upper] - rings[upper - 1])).clamp(min=0.0)
    previous, band_power = torch.ones_like(radius), []
    for sigma in statistics.band_sigmas_px:
        smooth = torch.exp(-2.0 * math.pi ** 2 * sigma ** 2 * frequency ** 2)
        band_power.append(float((power * (previous - smooth) ** 2).mean()))
        previous = smooth
    not_air = float((torch.tensor(statistics.quantiles[domain]) > AIR_LEVEL).double().mean())
    noise = torch.tensor(band_power, dtype=torch.float64) * not_air
    return noise * min(1.0, own_band_rms[0] ** 2 / max(float(noise[0]), 1e-20))


def transfer_contrast(x: Tensor, statistics: DomainStatistics, source: str, target: str) -> Tensor:
    """Source images (B, 1, H, W, model range) with the target domain's grey levels and band contrast."""
    mapped = map_grey_levels(x, statistics.quantiles[source], statistics.quantiles[target])
    return _with_band_gains(mapped, statistics, source, target)


def split_contrast_transfer(full: Tensor, coarse: Tensor, statistics: DomainStatistics, source: str, target: str
                            ) -> tuple[Tensor, Tensor, Tensor]:
    """Contrast transfer of full-resolution images `full` (B, 1, H, W) whose working-grid version is `coarse`.

    Returns transfer_contrast(coarse), the band gains' change on the working grid, and the grey-level
    curve's change applied to `full` pixel by pixel (module docstring).
    """
    mapped = map_grey_levels(coarse, statistics.quantiles[source], statistics.quantiles[target])
    transferred = _with_band_gains(mapped, statistics, source, target)
    grey_levels = map_grey_levels(full, statistics.quantiles[source], statistics.quantiles[target]) - full
    return transferred, transferred - mapped, grey_levels


def _with_band_gains(mapped: Tensor, statistics: DomainStatistics, source: str, target: str) -> Tensor:
    """Images on the target's grey levels with the band gains applied, clipped to the target's range."""
    gains = band_gains(statistics, source, target)
    bands, _ = detail_bands(mapped, statistics.band_sigmas_px)
    adjusted = mapped + sum((float(g) - 1.0) * band for g, band in zip(gains, bands))
    low, high = statistics.quantiles[target][0], statistics.quantiles[target][-1]
    return adjusted.clamp(low, high)


def without_band_gain_changes(change: Tensor, transferred: Tensor, sigmas_px: Sequence[float]) -> Tensor:
    """The flow's `change` to `transferred` (B, 1, H, W) less its change of each transferred band's overall gain.

    With contrast transfer the band gains come from the statistics; the flow at tau 0.6 also scales
    the detail bands of a real image (it takes fine anatomy for the source's noise and smooths it, 18 %
    of the 1-2 working-pixel band on RG3 from clinical-low), which no statistic asked for. Of each band
    of the change, the least-squares multiple of the same band of `transferred` is taken out; the rest
    of the change (tone, new texture, local changes) stays.
    """
    change_bands, _ = detail_bands(change, sigmas_px)
    image_bands, _ = detail_bands(transferred, sigmas_px)
    for change_band, image_band in zip(change_bands[FIRST_TRANSFERRED_BAND:], image_bands[FIRST_TRANSFERRED_BAND:]):
        scale = (change_band * image_band).sum(dim=(-2, -1), keepdim=True) / (
            image_band * image_band).sum(dim=(-2, -1), keepdim=True).clamp(min=1e-20)
        change = change - scale * image_band
    return change


def band_rms(images: Tensor, sigmas_px: Sequence[float], chunk: int = BAND_RMS_CHUNK) -> tuple[float, ...]:
    """Root mean square of each detail band (`detail_bands`), averaged over images (B, 1, H, W).

    The same bands by FFT, `chunk` images at a time: each image is padded once by the largest blur's radius
    with its edge pixels (the blur's "replicate" border), so the circular convolution with each band's filter
    (difference of two truncated Gaussians' taps) equals the direct one on the image. In float32 like the
    direct blurs (the squares summed in float64): within 1e-6 relative of the direct float64 sums.
    """
    height, width = images.shape[-2:]
    radii = [gaussian_radius(sigma) for sigma in sigmas_px]  # gaussian_blur's taps
    pad = max(radii)
    rows, columns = height + 2 * pad, width + 2 * pad
    previous = (torch.ones(rows, 1, dtype=torch.float64, device=images.device),
                torch.ones(1, columns // 2 + 1, dtype=torch.float64, device=images.device))
    filters = []
    for sigma, radius in zip(sigmas_px, radii):
        taps = gaussian_taps(sigma, radius, torch.float64, images.device)
        current = (_circular_response(taps, rows)[:, None], _circular_response(taps, columns, half=True)[None, :])
        filters.append((previous[0] * previous[1] - current[0] * current[1]).float())
        previous = current
    totals = torch.zeros(len(filters), dtype=torch.float64, device=images.device)
    for start in range(0, len(images), chunk):
        padded = F.pad(images[start:start + chunk].float(), (pad, pad, pad, pad), mode="replicate")
        spectrum = torch.fft.rfft2(padded)
        for k, band_filter in enumerate(filters):
            band = torch.fft.ifft(spectrum * band_filter, dim=-2)[..., pad:pad + height, :]  # only the rows kept
            band = torch.fft.irfft(band, n=columns, dim=-1)[..., pad:pad + width]
            totals[k] += band.pow(2).mean(dim=(1, 2, 3), dtype=torch.float64).sqrt().sum()
    return tuple((totals / len(images)).tolist())


def _circular_response(taps: Tensor, length: int, half: bool = False) -> Tensor:
    """The DFT (rfft when `half`) of symmetric `taps` centred on index 0 of a circle of `length` samples."""
    radius = (len(taps) - 1) // 2
    kernel = torch.zeros(length, dtype=taps.dtype, device=taps.device)
    kernel[:radius + 1] = taps[radius:]
    kernel[length - radius:] = taps[:radius]
    return (torch.fft.rfft(kernel) if half else torch.fft.fft(kernel)).real


def measure_domain_statistics(images: Mapping[str, Tensor], sigmas_px: Sequence[float] = BAND_SIGMAS_PX,
                              device: str | torch.device | None = None) -> DomainStatistics:
    """Statistics for contrast transfer and noise matching from unpaired training images of each domain.

    images[domain]: (N, 1, H, W) in the model range. The band contrast of every source -> target pair is
    measured on `device` (default: where the images are); the same numbers to float32 rounding on any device.
    """
    levels = torch.linspace(0.0, 1.0, QUANTILE_COUNT, dtype=torch.float64)
    quantiles = {}
    for domain, batch in images.items():
        if len(batch) == 0:
            raise MedShiftError(f"no training images of domain {domain!r} to measure its contrast from")
        pooled = batch.double().flatten()
        if pooled.numel() > 4_000_000:  # an even subsample keeps the distribution (and the statistics measured
            pooled = pooled[torch.linspace(0, pooled.numel() - 1, 4_000_000).long()]  # when torch.quantile needed it)
        quantiles[domain] = tuple(np.quantile(pooled.cpu().numpy(), levels.numpy()).tolist())  # = torch.quantile's
    rms = {}
    for source, batch in images.items():
        segments = GreyLevelSegments(batch.to(device).float(), quantiles[source])  # searched once per source
        rms[source] = {target: band_rms(segments.onto(quantiles[target]), sigmas_px) for target in images}
    return DomainStatistics(band_sigmas_px=tuple(float(s) for s in sigmas_px), quantiles=quantiles, band_rms=rms,
                            **domain_noise_statistics(images))
