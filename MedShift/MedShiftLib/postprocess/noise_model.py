"""A radiograph's noise model: its noise variance as a function of grey level, and the dose ratio between domains.

Quantum noise grows with the detected signal, so in the normalised display space (model range, a
windowed log-like scale) its variance is a function of the grey level, and clipped or direct-exposure
regions carry none. The noise level curve is measured as the variance of the high-pass residual
(x - blur(x, HIGHPASS_SIGMA_PX)) in NOISE_LEVEL_BINS bins of the local mean grey level
(blur(x, LOCAL_MEAN_SIGMA_PX)) over [-1, 1]: per bin the median squared residual over 0.4549 (the
median of a chi-square with one degree of freedom), so the edges of anatomy, outliers among the
residuals, barely count. A bin with fewer than MIN_BIN_SHARE of the pixels is unmeasured (None).
An image of more than CURVE_PIXELS_PER_IMAGE pixels is measured on a regular subgrid of about that many
(the filters still run on every pixel), so that a bin's median rests on at least 2,000 residuals: on
pydicom-data's RG1/RG3 (every second pixel each way) the curve is within 1.4 % of the whole image's in
the median bin and 7.5 % in the sparsest (docs/real_images.md, "Time"; Testing/test_noise_model.py).

Each domain's curve, measured on its training images, sits in the model's domain statistics
(`noise_level`). Quantum noise variance is inversely proportional to dose, so two domains' curves
imply their dose fraction r = dose_target / dose_source = variance_source / variance_target (the
median over the grey levels where both carry noise; `dose_fraction`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..engine.domain_statistics import NOISE_LEVEL_BINS, DomainStatistics
from .blur import gaussian_blur
from .noise_power import image_nps

HIGHPASS_SIGMA_PX = 1.5
LOCAL_MEAN_SIGMA_PX = 3.0
MIN_BIN_SHARE = 0.002
CHI2_MEDIAN = 0.4549  # median of a chi-square variable with one degree of freedom
NOISELESS_SHARE = 0.05  # a grey level whose noise variance is below this share of the median carries none
DOSE_FRACTION_RANGE = (1.0 / 16.0, 16.0)
CURVE_PIXELS_PER_IMAGE = 1 << 20


def smooth(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of (B, 1, H, W) with mirrored borders (3 sigma), in x's dtype on x's device."""
    return gaussian_blur(x, sigma, border="reflect", truncate=3.0)


def highpass_residual(x: Tensor) -> Tensor:
    """(B, 1, H, W) minus its Gaussian blur at HIGHPASS_SIGMA_PX: noise and the finest edges."""
    return x - smooth(x, HIGHPASS_SIGMA_PX)


def local_grey_level(x: Tensor) -> Tensor:
    """(B, 1, H, W) local mean grey level (Gaussian, LOCAL_MEAN_SIGMA_PX)."""
    return smooth(x, LOCAL_MEAN_SIGMA_PX)


def grey_level_bin(grey: Tensor) -> Tensor:
    """Index of each grey level's bin among NOISE_LEVEL_BINS equal bins over [-1, 1]."""
    return ((grey + 1.0) * (NOISE_LEVEL_BINS / 2.0)).long().clamp(0, NOISE_LEVEL_BINS - 1)


def curve_sample_stride(shape: Sequence[int]) -> int:
    """Stride of the regular subgrid a noise level curve is measured on: 1 up to CURVE_PIXELS_PER_IMAGE pixels."""
    return max(1, math.ceil(math.sqrt(shape[-2] * shape[-1] / CURVE_PIXELS_PER_IMAGE)))


def noise_level_curve(images: Tensor, chunk: int = 16, residual: Tensor | None = None,
                      grey: Tensor | None = None) -> tuple[float | None, ...]:
    """Noise variance in each grey-level bin over all images (N, 1, H, W) (see module docstring); None = unmeasured.

    `residual`: the part of the images holding their noise, when not the high-pass residual (a fine band);
    `grey`: their local grey levels, when already computed.
    """
    squared: list[list[Tensor]] = [[] for _ in range(NOISE_LEVEL_BINS)]
    step, total = curve_sample_stride(images.shape), 0
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].float()
        part = highpass_residual(x) if residual is None else residual[start:start + chunk].float()
        residual2 = part[..., ::step, ::step].square().flatten()
        grey_levels = local_grey_level(x) if grey is None else grey[start:start + chunk]
        bins = grey_level_bin(grey_levels[..., ::step, ::step]).flatten()
        total += bins.numel()
        for k in range(NOISE_LEVEL_BINS):
            squared[k].append(residual2[bins == k])
    curve = []
    for values in squared:
        pooled = torch.cat(values)
        measured = pooled.numel() >= max(MIN_BIN_SHARE * total, 16)
        curve.append(float(pooled.double().median()) / CHI2_MEDIAN if measured else None)
    return tuple(curve)


def filled_curve(curve: Sequence[float | None], device: torch.device | None = None) -> Tensor:
    """The curve as a tensor with unmeasured bins taken from the nearest measured one (all zero when none is)."""
    measured = [k for k, v in enumerate(curve) if v is not None]
    if not measured:
        return torch.zeros(len(curve), dtype=torch.float64, device=device)
    values = [curve[min(measured, key=lambda m: (abs(m - k), m))] for k in range(len(curve))]
    return torch.tensor(values, dtype=torch.float64, device=device)


def curve_at(curve: Tensor, grey: Tensor) -> Tensor:
    """A filled curve linearly interpolated at grey levels (bin centres; constant beyond the outer centres),
    in grey's floating dtype."""
    dtype = grey.dtype if grey.is_floating_point() else torch.float32
    position = ((grey.to(dtype) + 1.0) * (NOISE_LEVEL_BINS / 2.0) - 0.5).clamp_(0, NOISE_LEVEL_BINS - 1)
    low = position.long().clamp_(max=NOISE_LEVEL_BINS - 2)
    values = curve.to(grey.device, dtype)
    return torch.lerp(values[low], values[low + 1], position.sub_(low))


def carries_noise(curve: Tensor) -> Tensor:
    """0..1 per bin: whether a grey level carries noise (0 where the variance is far below the curve's median)."""
    positive = curve[curve > 0]
    if positive.numel() == 0:
        return torch.zeros_like(curve)
    return (curve / (NOISELESS_SHARE * positive.median())).clamp(0.0, 1.0)


def dose_fraction(source_curve: Sequence[float | None], target_curve: Sequence[float | None]) -> float | None:
    """Dose of the target over that of the source: the median of variance_source / variance_target over the
    grey levels where both domains carry noise; None when they share none."""
    source, target = filled_curve(source_curve), filled_curve(target_curve)
    both = [k for k in range(len(source_curve)) if source_curve[k] is not None and target_curve[k] is not None]
    keep = torch.zeros(len(source_curve), dtype=torch.bool)
    keep[both] = True
    keep &= (carries_noise(source) >= 1.0) & (carries_noise(target) >= 1.0)
    if not keep.any():
        return None
    ratio = float((source[keep] / target[keep]).median())
    if not math.isfinite(ratio):
        return None
    return min(max(ratio, DOSE_FRACTION_RANGE[0]), DOSE_FRACTION_RANGE[1])


def statistics_dose_fraction(statistics: DomainStatistics | None, source: str, target: str) -> float | None:
    """The dose fraction target/source the statistics imply, or None when they hold no noise levels of both."""
    if statistics is None or statistics.noise_level is None:
        return None
    levels = statistics.noise_level
    if source not in levels or target not in levels:
        return None
    return dose_fraction(levels[source], levels[target])


def domain_noise_statistics(images: Mapping[str, Tensor]) -> dict:
    """Each domain's noise power spectrum and noise level curve, as DomainStatistics fields.

    noise_power is None when some domain has no measurable patch (images smaller than a patch, or all air).
    """
    try:
        power = {domain: tuple(image_nps(list(batch[:, 0])).tolist()) for domain, batch in images.items()}
    except ValueError:
        power = None
    levels = {domain: noise_level_curve(batch) for domain, batch in images.items()}
    return {"noise_power": power, "noise_level": levels}
