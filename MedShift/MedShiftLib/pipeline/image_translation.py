"""The translation path of one radiograph, each step one function:

    RadiographImage -> intensity window + normalise            engine/intensity.py
      -> working grid (the model's pixel scale)                engine/working_grid.py
      -> contrast transfer (optional)                          postprocess/contrast_transfer.py
      -> invert to tau, regenerate (+ noise renewal)           engine/translation.py
      -> noise matching (optional)                             postprocess/noise_matching.py
      -> the change, without the patch grid (with contrast
         transfer: without the flow's band gain changes, the
         grey-level curve applied at full resolution), added to
         the input at its own resolution, bounded by its range postprocess/detail_transfer.py
      -> the fine band's noise scaled to the target's level
         (only with noise synthesis or noise matching)         postprocess/fine_noise.py
      -> the input's window and dtype

`translate_batch` runs the middle three on normalised tensors; `translate_image` the whole path.
The same input, settings and seed give the same output; runs over several images draw image k's noise
from seed + k (`TranslationSettings.for_image`), so no two images share a noise field.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from ..engine.checkpoint import CheckpointInfo
from ..engine.domain_statistics import DomainStatistics
from ..engine.intensity import denormalize, fit_intensity_window, normalize
from ..engine.network import VelocityUNet
from ..engine.ode_solvers import CancelToken, IntegrationStats
from ..engine.translation import ProgressCallback, invert_and_regenerate
from ..engine.working_grid import SPACING_FORMATS, resample, working_shape
from ..errors import InputImageError, MedShiftError
from ..io.radiograph import RadiographImage
from ..postprocess.contrast_transfer import split_contrast_transfer, transfer_contrast, without_band_gain_changes
from ..postprocess.detail_transfer import (
    add_change_at_full_resolution,
    bounded_change,
    change_smoothing_px,
    fine_band,
    translation_change,
    upsampling,
)
from ..postprocess.fine_noise import change_dose, measure_own_noise
from ..postprocess.noise_matching import match_noise_batch
from ..postprocess.noise_model import statistics_dose_fraction
from ..settings import TranslationSettings


@torch.inference_mode()
def translate_batch(
    model: VelocityUNet,
    x: Tensor,
    source_labels: Tensor,
    target_labels: Tensor,
    settings: TranslationSettings,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stats: IntegrationStats | None = None,
    statistics: DomainStatistics | None = None,
) -> Tensor:
    """Translate normalised images (B, 1, H, W) on the model's device, with contrast transfer and noise matching.

    `statistics` (the checkpoint's `info.statistics`) is needed when settings.contrast_transfer or
    settings.noise_matching is on.
    """
    if (settings.contrast_transfer or settings.noise_matching) and statistics is None:
        raise MedShiftError("contrast transfer and noise matching need the model's domain statistics (info.statistics)")
    target_nps = statistics.noise_power_of(settings.target_domain) if settings.noise_matching else None
    target_curve = statistics.noise_level_of(settings.target_domain) if settings.noise_matching else None
    if settings.contrast_transfer:
        x = transfer_contrast(x, statistics, settings.source_domain, settings.target_domain)
    x = invert_and_regenerate(model, x, source_labels, target_labels, settings, progress, cancel, stats)
    return match_noise_batch(x, target_nps, settings.seed, target_curve) if target_nps is not None else x


OUTPUT_PITCH_NOISE_SCALE = 2.0
"""From this upsampling on, noise synthesis and matching act at the output's pitch, not on the working grid."""
PLAUSIBLE_SPACING_MM = (0.02, 5.0)
"""Pixel spacings a projection radiograph can have; outside them the recorded spacing is taken as unknown."""


def recorded_spacing_mm(image: RadiographImage) -> float | None:
    """The pixel spacing in mm the image's file records (mean of x and y), or None when it records none."""
    known = image.metadata.get("spacing_known", image.file_format in SPACING_FORMATS)
    return float(np.mean(image.spacing[:2])) if known else None


def image_spacing_mm(image: RadiographImage) -> float | None:
    """The image's pixel spacing in mm when it is recorded and plausible for a radiograph, else None (unknown)."""
    spacing = recorded_spacing_mm(image)
    if spacing is None or not PLAUSIBLE_SPACING_MM[0] <= spacing <= PLAUSIBLE_SPACING_MM[1]:
        return None
    return spacing


def translate_image(
    image: RadiographImage,
    model: VelocityUNet,
    info: CheckpointInfo,
    settings: TranslationSettings,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stats: IntegrationStats | None = None,
) -> RadiographImage:
    """Translate one radiograph; the result lies on the input's grid with the input's value range and dtype.

    The model sees the image on its working grid; the input's detail finer than that grid is carried to
    the output at the input's own resolution (postprocess/detail_transfer.py).
    """
    settings = info.validate(settings)
    try:
        window = fit_intensity_window(image.pixels, image.photometric)
    except InputImageError as exc:
        raise InputImageError(f"{image.metadata.get('source_path', 'input image')}: {exc}") from None
    device = next(model.parameters()).device
    x = torch.from_numpy(normalize(image.pixels, window).astype(np.float32, copy=False))[None, None].to(device)
    shape = working_shape(image.shape, info.resolution, image_spacing_mm(image), info.pixel_spacing_mm,
                          settings.resample)
    source = torch.tensor([info.label_of(settings.source_domain)], device=device)
    target = torch.tensor([info.label_of(settings.target_domain)], device=device)
    coarse = resample(x, shape)
    dose = output_pitch_dose_fraction(settings, info.statistics, upsampling(image.shape, shape))
    own = measure_own_noise(x) if dose is not None else None
    if own is not None:  # the noise is changed at the output's pitch below, not on the coarse grid
        settings = replace(settings, noise_renewal=0.0, noise_matching=False)
    flow_input, tone = coarse, None
    if settings.contrast_transfer:  # the grey-level curve at the input's resolution, the flow on the transferred image
        flow_input, band_change, tone = split_contrast_transfer(x, coarse, info.statistics, settings.source_domain,
                                                                settings.target_domain)
    translated = translate_batch(model, flow_input, source, target, replace(settings, contrast_transfer=False),
                                 progress, cancel, stats, info.statistics)
    change = translation_change(flow_input, translated.float(), info.config.patch_size,
                                change_smoothing_px(image.shape, shape))
    if settings.contrast_transfer:  # the band gains are the statistics', not the flow's
        change = without_band_gain_changes(change, flow_input, info.statistics.band_sigmas_px) + band_change
    del coarse, translated, flow_input
    grey_level = 2.0 / (window.high - window.low) if image.pixels.dtype.kind in "iu" else 0.0  # in the model range
    y = add_change_at_full_resolution(x, change, tone, grey_level)
    if own is not None:
        y = change_dose(y, x, fine_band(x, shape), own, dose, settings.seed,
                        info.statistics.noise_level_of(settings.target_domain))
        y = x + bounded_change(x, y - x, grey_level)  # the fine band's noise adds no clipped pixels either
    y = y[0, 0].cpu().numpy()
    return image.with_pixels(denormalize(y, window, image.pixels.dtype))


def output_pitch_dose_fraction(settings: TranslationSettings, statistics: DomainStatistics | None,
                               upsampling_factor: float) -> float | None:
    """The dose fraction (target/source) to make at the output's pitch, or None to leave the noise to the working grid.

    Only settings that change the noise (noise synthesis or noise matching) change it, only from
    OUTPUT_PITCH_NOISE_SCALE upsampling on, and only with the model's recorded noise levels.
    """
    if not (settings.noise_renewal > 0 or settings.noise_matching) or upsampling_factor < OUTPUT_PITCH_NOISE_SCALE:
        return None
    return statistics_dose_fraction(statistics, settings.source_domain, settings.target_domain)
