"""The flow translation: invert the image to t=tau under the source label, regenerate under the target.

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

Only the flow is here: contrast transfer before it and noise matching after it are postprocess/'s,
and pipeline/image_translation.py runs all three.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..settings import TranslationSettings
from .network import VelocityUNet
from .ode_solvers import CancelToken, IntegrationStats, integrate
from .tiling import tiled
from .working_grid import crop_to, pad_to_multiple

ProgressCallback = Callable[[int, int], None]


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
def invert_and_regenerate(
    model: VelocityUNet,
    x: Tensor,
    source_labels: Tensor,
    target_labels: Tensor,
    settings: TranslationSettings,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stats: IntegrationStats | None = None,
    target_model: VelocityUNet | None = None,
) -> Tensor:
    """The flow translation of normalised images (B, 1, H, W) on the model's device; H, W any size (padded).

    Uses tau, guidance, solver, steps, schedule, noise renewal, seed and tiling of `settings`; its
    contrast transfer and noise matching are the pipeline's (pipeline/image_translation.py).
    `target_model` regenerates in place of `model` when given (DDIB: one model per domain,
    evaluation/ddib.py); target_labels are then its labels.
    """
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
    return crop_to(integrate(regenerate, x, settings.tau, 1.0, progress=leg_progress(steps), **common), shape)


def renew_noise(x_tau: Tensor, velocity: Tensor, tau: float, eta: float, generator: torch.Generator) -> Tensor:
    """Replace the share eta of the noise in x(tau) (split by the velocity at tau) with seeded Gaussian noise."""
    noise = torch.randn(x_tau.shape, generator=generator, dtype=torch.float32).to(x_tau.device, x_tau.dtype)
    x0_hat = x_tau - tau * velocity
    renewed = (1.0 - eta * eta) ** 0.5 * x0_hat + eta * noise
    return x_tau + (1.0 - tau) * (renewed - x0_hat)
