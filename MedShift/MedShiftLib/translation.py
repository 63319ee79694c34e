"""Domain translation: invert the image to t=tau under the source label, regenerate under the target.

    x(1)   = source image (normalised)
    x(tau) = x(1) - integral_tau^1 v(x, t | source) dt      (inversion, integrated backwards)
    y      = x(tau) + integral_tau^1 v(x, t | target) dt    (regeneration)
    v(x, t | c) = v(x, t | null) + w * (v(x, t | c) - v(x, t | null))   (classifier-free guidance)

Large tau keeps structure, small tau gives more of the target style.

A deterministic flow cannot make texture the inverted image lacks: a smooth simulator image comes
back without the target's quantum noise. `noise_renewal` (eta in [0, 1]) replaces that share of the
latent's noise before regeneration, with seeded Gaussian noise z:

    x1_hat = x(tau) + (1 - tau) v(x(tau), tau | target)     x0_hat = x(tau) - tau v(x(tau), tau | target)
    x(tau) <- tau x1_hat + (1 - tau) (sqrt(1 - eta^2) x0_hat + eta z)

(eta = 0: the paper's deterministic translation; eta = 1: all of the latent's noise is new, like
SDEdit started from x1_hat). It pays one more network evaluation, and makes noise only when the
regeneration leg has steps close to t = 1 (`schedule="quadratic"`, 8 steps; docs/evaluation.md).
`contrast_transfer` first gives the source the target domain's grey levels and multi-scale contrast
from statistics recorded in the checkpoint (contrast_transfer.py): the flow cannot change contrast at
the 2-16 px scales at tau = 0.6, so without it a translation into a clinical domain keeps the
simulator's flat look there. `noise_matching` finally takes the result's noise power spectrum to the
target domain's (also recorded in the checkpoint; noise_matching.py): excess noise filtered out,
missing noise added, seeded like noise renewal, no network evaluation.

The same input, settings and seed give the same output; runs over several images draw image k's
noise from seed + k (`for_image`), so no two images share a noise field. `translate_batch` works on
normalised tensors; `translate_image` runs the whole path for one RadiographImage (normalise, working
grid, translate, back to the input's grid, values and dtype).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .checkpoint import CheckpointInfo
from .contrast_transfer import DomainContrast, transfer_contrast
from .errors import InputImageError, MedShiftError
from .intensity import denormalize, fit_intensity_window, normalize
from .noise_matching import match_noise_batch
from .ode_solvers import SCHEDULES, SOLVERS, CancelToken, IntegrationStats, integrate
from .radiograph import RadiographImage
from .tiled_velocity import tiled
from .velocity_unet import VelocityUNet
from .working_grid import SPACING_FORMATS, crop_to, pad_to_multiple, resample, working_shape

ProgressCallback = Callable[[int, int], None]

DEFAULT_TAU = 0.6
DEFAULT_GUIDANCE = 1.0
DEFAULT_SOLVER = "euler"
DEFAULT_STEPS = 4
DEFAULT_TILE_SIZE = 1024
DEFAULT_SCHEDULE = "uniform"
# Settings that make the bundled model synthesise the target domain's quantum noise (docs/evaluation.md).
NOISE_SYNTHESIS = {"noise_renewal": 1.0, "schedule": "quadratic", "steps": 8, "guidance_scale": 2.0,
                   "contrast_transfer": False, "noise_matching": False}
# Settings that keep the most structure at tau = 0.6 while giving the target domain's contrast
# (docs/evaluation.md, "Contrast transfer").
MATCHED_CONTRAST = {"contrast_transfer": True, "noise_renewal": 0.0, "schedule": "quadratic", "steps": 8,
                    "guidance_scale": 2.0, "noise_matching": False}
# MATCHED_CONTRAST plus the target domain's noise: realism for some structure (docs/evaluation.md).
MATCHED_CONTRAST_AND_NOISE = MATCHED_CONTRAST | {"noise_matching": True}


@dataclass(frozen=True)
class TranslationSettings:
    """How to translate; the defaults are the panel's and the CLI's."""

    source_domain: str
    target_domain: str
    tau: float = DEFAULT_TAU
    guidance_scale: float = DEFAULT_GUIDANCE
    solver: str = DEFAULT_SOLVER
    steps: int = DEFAULT_STEPS
    tile_size: int = DEFAULT_TILE_SIZE
    tile_overlap: int | None = None
    resample: str = "auto"
    schedule: str = DEFAULT_SCHEDULE
    noise_renewal: float = 0.0
    seed: int = 0
    contrast_transfer: bool = False
    noise_matching: bool = False

    def validated(self, info: CheckpointInfo) -> "TranslationSettings":
        """Check every field against the model; raises MedShiftError with what to change."""
        info.label_of(self.source_domain)
        info.label_of(self.target_domain)
        if not 0.0 <= self.tau < 1.0:
            raise MedShiftError(f"tau must be in [0, 1) (0.3 realism ... 0.6 structure), got {self.tau}")
        if not np.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            raise MedShiftError(f"guidance scale must be a number >= 0 (1 = no guidance), got {self.guidance_scale}")
        if self.solver not in SOLVERS:
            raise MedShiftError(f"unknown solver {self.solver!r}; choose one of: {', '.join(SOLVERS)}")
        if self.steps < 1:
            raise MedShiftError(f"steps must be at least 1, got {self.steps}")
        if self.schedule not in SCHEDULES:
            raise MedShiftError(f"unknown time schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.schedule != "uniform" and self.solver == "dopri5":
            raise MedShiftError("dopri5 chooses its own steps: use the uniform schedule with it, or euler/heun/rk4")
        if not 0.0 <= self.noise_renewal <= 1.0:
            raise MedShiftError(f"noise renewal must be in [0, 1] (0 = deterministic), got {self.noise_renewal}")
        if self.contrast_transfer and info.contrast is None:
            raise MedShiftError(
                "this model records no domain contrast statistics, which contrast transfer needs; add them with "
                "`medshift domain-contrast --model CKPT --data TRAINING_DIR --out NEW.safetensors`, or translate "
                "without contrast transfer")
        if self.noise_matching and (info.contrast is None or info.contrast.noise_power is None):
            raise MedShiftError(
                "this model records no domain noise power spectra, which noise matching needs; add them with "
                "`medshift domain-contrast --model CKPT --data TRAINING_DIR --out NEW.safetensors`, or translate "
                "without noise matching")
        factor = info.config.downsampling_factor
        if self.tile_size < factor:
            raise MedShiftError(f"tile size must be at least {factor} pixels, got {self.tile_size}")
        return self

    def for_image(self, index: int) -> "TranslationSettings":
        """The settings for image `index` of a run over several images: its own noise seed (seed + index)."""
        return replace(self, seed=self.seed + index)

    def tiling(self, factor: int) -> tuple[int, int]:
        """(tile, overlap) rounded to the network's downsampling factor."""
        tile = max(factor, self.tile_size // factor * factor)
        overlap = self.tile_overlap if self.tile_overlap is not None else tile // 4
        overlap = min(max(factor, overlap // factor * factor), tile - factor) if tile > factor else 0
        return tile, overlap


def guided_velocity(model: VelocityUNet, labels: Tensor, guidance_scale: float) -> Callable[[Tensor, float], Tensor]:
    """v(x, t) under `labels` with classifier-free guidance, conditional and null in one batched pass."""
    null = torch.full_like(labels, model.config.null_label)

    def velocity(x: Tensor, t: float) -> Tensor:
        b = x.shape[0]
        if guidance_scale == 1.0:
            return model(x, torch.full((b,), t, device=x.device), labels)
        both = model(torch.cat([x, x]), torch.full((2 * b,), t, device=x.device), torch.cat([labels, null]))
        v_label, v_null = both[:b], both[b:]
        return v_null + guidance_scale * (v_label - v_null)

    return velocity


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
    contrast: DomainContrast | None = None,
    target_model: VelocityUNet | None = None,
) -> Tensor:
    """Translate normalised images (B, 1, H, W) on the model's device; H, W any size (padded internally).

    `contrast` (the checkpoint's `info.contrast`) is needed when settings.contrast_transfer or
    settings.noise_matching is on. `target_model` regenerates in place of `model` when given (DDIB: one
    model per domain, ddib.py); target_labels are then its labels.
    """
    if (settings.contrast_transfer or settings.noise_matching) and contrast is None:
        raise MedShiftError("contrast transfer and noise matching need the model's domain statistics (info.contrast)")
    target_nps = contrast.noise_power_of(settings.target_domain) if settings.noise_matching else None
    if settings.contrast_transfer:
        x = transfer_contrast(x, contrast, settings.source_domain, settings.target_domain)
    regeneration_model = target_model or model
    factor = math.lcm(model.config.downsampling_factor, regeneration_model.config.downsampling_factor)
    x, shape = pad_to_multiple(x, factor)
    tile, overlap = settings.tiling(factor)
    steps = settings.steps

    def leg_progress(offset: int) -> ProgressCallback | None:
        if progress is None:
            return None
        return lambda done, total: progress(offset + done, 2 * steps)

    common = dict(solver=settings.solver, steps=steps, schedule=settings.schedule, cancel=cancel, stats=stats)
    invert = tiled(guided_velocity(model, source_labels.to(x.device), settings.guidance_scale), tile, overlap)
    x = integrate(invert, x, 1.0, settings.tau, progress=leg_progress(0), **common)
    regenerate = tiled(guided_velocity(regeneration_model, target_labels.to(x.device), settings.guidance_scale),
                       tile, overlap)
    if settings.noise_renewal > 0:
        if cancel is not None:
            cancel.raise_if_cancelled()
        if stats is not None:
            stats.nfe += 1
        generator = torch.Generator().manual_seed(settings.seed)
        x = renew_noise(x, regenerate(x, settings.tau), settings.tau, settings.noise_renewal, generator)
    x = crop_to(integrate(regenerate, x, settings.tau, 1.0, progress=leg_progress(steps), **common), shape)
    return match_noise_batch(x, target_nps, settings.seed) if target_nps is not None else x


def renew_noise(x_tau: Tensor, velocity: Tensor, tau: float, eta: float, generator: torch.Generator) -> Tensor:
    """Replace the share eta of the noise in x(tau) (split by the velocity at tau) with seeded Gaussian noise."""
    noise = torch.randn(x_tau.shape, generator=generator, dtype=torch.float32).to(x_tau.device, x_tau.dtype)
    x0_hat = x_tau - tau * velocity
    renewed = (1.0 - eta * eta) ** 0.5 * x0_hat + eta * noise
    return x_tau + (1.0 - tau) * (renewed - x0_hat)


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
    settings = settings.validated(info)
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
    y = translate_batch(model, resample(x, shape), source, target, settings, progress, cancel, stats, info.contrast)
    y = resample(y, image.shape).float().cpu().numpy()[0, 0]
    return image.with_pixels(denormalize(y, window, image.pixels.dtype))


def describe(settings: TranslationSettings) -> str:
    """Short human description, e.g. 'sim-low->clinical-normal tau0.6'."""
    text = f"{settings.source_domain}->{settings.target_domain} tau{settings.tau:g}"
    if settings.guidance_scale != 1.0:
        text += f" w{settings.guidance_scale:g}"
    if settings.contrast_transfer:
        text += " contrast"
    if settings.noise_renewal > 0:
        text += f" noise{settings.noise_renewal:g}"
    if settings.noise_matching:
        text += " matched-noise"
    if settings.noise_renewal > 0 or settings.noise_matching:
        text += f" seed{settings.seed}"
    return text

