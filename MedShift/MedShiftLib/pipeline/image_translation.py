"""The translation path of one radiograph, each step one function:

    RadiographImage -> intensity window + normalise            engine/intensity.py
      -> working grid (the model's pixel scale)                engine/working_grid.py
      -> contrast transfer (optional)                          postprocess/contrast_transfer.py
      -> invert to tau, regenerate (+ noise renewal)           engine/translation.py
      -> noise matching (optional)                             postprocess/noise_matching.py
      -> back to the input's grid, window and dtype

`translate_batch` runs the middle three on normalised tensors; `translate_image` the whole path.
The same input, settings and seed give the same output; runs over several images draw image k's noise
from seed + k (`TranslationSettings.for_image`), so no two images share a noise field.
"""
from __future__ import annotations

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
from ..postprocess.contrast_transfer import transfer_contrast
from ..postprocess.noise_matching import match_noise_batch
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
    if settings.contrast_transfer:
        x = transfer_contrast(x, statistics, settings.source_domain, settings.target_domain)
    x = invert_and_regenerate(model, x, source_labels, target_labels, settings, progress, cancel, stats)
    return match_noise_batch(x, target_nps, settings.seed) if target_nps is not None else x


def image_spacing_mm(image: RadiographImage) -> float | None:
    """The image's pixel spacing in mm when its format records one (mean of x and y), else None."""
    known = image.metadata.get("spacing_known", image.file_format in SPACING_FORMATS)
    return float(np.mean(image.spacing[:2])) if known else None


def translate_image(
    image: RadiographImage,
    model: VelocityUNet,
    info: CheckpointInfo,
    settings: TranslationSettings,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stats: IntegrationStats | None = None,
) -> RadiographImage:
    """Translate one radiograph; the result lies on the input's grid with the input's value range and dtype."""
    settings = info.validate(settings)
    try:
        window = fit_intensity_window(image.pixels, image.photometric)
    except InputImageError as exc:
        raise InputImageError(f"{image.metadata.get('source_path', 'input image')}: {exc}") from None
    device = next(model.parameters()).device
    x = torch.from_numpy(normalize(image.pixels, window))[None, None].to(device)
    shape = working_shape(image.shape, info.resolution, image_spacing_mm(image), info.pixel_spacing_mm,
                          settings.resample)
    source = torch.tensor([info.label_of(settings.source_domain)])
    target = torch.tensor([info.label_of(settings.target_domain)])
    y = translate_batch(model, resample(x, shape), source, target, settings, progress, cancel, stats, info.statistics)
    y = resample(y, image.shape).float().cpu().numpy()[0, 0]
    return image.with_pixels(denormalize(y, window, image.pixels.dtype))
