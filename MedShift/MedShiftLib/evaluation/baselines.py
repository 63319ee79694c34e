"""Baselines `medshift evaluate` sets beside MedShift, on the same images and in the model range.

* histogram matching plus matched noise injection (a physics baseline): the source's grey levels are
  mapped onto the target domain's (scikit-image `match_histograms` against a pool of target-domain
  training images), then noise is added with the power spectrum the image is missing (target NPS
  minus source NPS, ring by ring, measured in flat regions) and the target domain's grey-level
  dependence (noise_matching.grey_level_gain: none where the target carries no noise or the image is
  clipped); a source noisier than the target is smoothed first, since noise cannot be taken away by
  adding more. (MedShift's noise matching takes excess noise out with a Wiener filter instead;
  docs/evaluation.md says why the baselines keep the blur.)
* contrast transfer plus matched noise: the same, with the grey-level mapping replaced by
  postprocess.contrast_transfer.transfer_contrast (target grey levels and band contrast from unpaired
  training statistics): what the contrast transfer MedShift can use achieves without any network.
* dose change by noise insertion (Veldkamp et al. 2009, Med Phys 36:3119; `dose_noise_baseline`): the
  standard physics method for a lower dose, without any network: noise of variance own(g) x (1/r - 1)
  at each grey level g, with the image's own noise level curve and noise power spectrum
  (postprocess/fine_noise.py) and the dose fraction r the domain statistics imply. It adds noise only
  (r < 1); towards a higher dose it returns the image unchanged.
* SDEdit: the source is noised to t=tau along the flow-matching path (x_tau = tau x + (1 - tau) z)
  and regenerated from tau to 1 under the target label with the same network and solver, with no
  inversion; seeded noise.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor

from ..engine.domain_statistics import DomainStatistics
from ..engine.network import VelocityUNet
from ..engine.ode_solvers import IntegrationStats, integrate
from ..engine.translation import guided_velocity
from ..engine.working_grid import crop_to, pad_to_multiple
from ..postprocess.contrast_transfer import transfer_contrast
from ..postprocess.fine_noise import insert_dose_noise, measure_own_noise
from ..postprocess.noise_matching import grey_level_gain, shaped_noise
from ..postprocess.noise_power import image_nps
from ..settings import TranslationSettings

SMOOTHING_SIGMA_PX = 1.0


@dataclass
class BaselineDomain:
    """What the physics baselines know of a target domain: grey levels and noise spectrum of its training images."""

    pixels: np.ndarray  # pooled model-range values (a sample is enough for histogram matching)
    nps: np.ndarray     # radial NPS rings 1..NPS_BINS-1 (postprocess.noise_power.image_nps)
    level: Sequence[float | None] | None = None  # noise level curve (postprocess.noise_model); None: flat


def baseline_domain(images: Sequence[np.ndarray], max_pixels: int = 2_000_000, seed: int = 0,
                    nps: Sequence[float] | None = None, level: Sequence[float | None] | None = None
                    ) -> BaselineDomain:
    """Grey-level sample and NPS of a domain's training images (model range); `nps`, `level` when measured."""
    pooled = np.concatenate([im.ravel() for im in images])
    if pooled.size > max_pixels:
        pooled = np.random.default_rng(seed).choice(pooled, max_pixels, replace=False)
    return BaselineDomain(pixels=np.sort(pooled), nps=image_nps(images) if nps is None else np.asarray(nps),
                          level=level)


def histogram_noise_baseline(source: np.ndarray, target: BaselineDomain, rng: np.random.Generator
                             ) -> np.ndarray:
    """Histogram matching to the target domain plus injection of the noise power the image lacks."""
    from skimage.exposure import match_histograms

    return _with_matched_noise(source, target, rng, lambda im: match_histograms(im, target.pixels.reshape(1, -1)))


def contrast_noise_baseline(source: np.ndarray, source_domain: str, target_domain: str,
                            statistics: DomainStatistics, target: BaselineDomain, rng: np.random.Generator
                            ) -> np.ndarray:
    """Contrast transfer to the target domain plus injection of the noise power the image lacks."""
    def transfer(image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
        return transfer_contrast(x, statistics, source_domain, target_domain)[0, 0].double().numpy()

    return _with_matched_noise(source, target, rng, transfer)


def _with_matched_noise(source: np.ndarray, target: BaselineDomain, rng: np.random.Generator,
                        map_grey_levels) -> np.ndarray:
    """map_grey_levels(source), smoothed first when the source is noisier than the target, plus the missing
    noise with the target's grey-level dependence."""
    image = source
    if image_nps([image]).sum() > target.nps.sum():
        image = gaussian_filter(image, SMOOTHING_SIGMA_PX)
    mapped = torch.from_numpy(np.ascontiguousarray(map_grey_levels(image), dtype=np.float64))
    missing = np.clip(target.nps - image_nps([mapped]), 0.0, None)
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    noise = shaped_noise(mapped.shape, missing.tolist(), generator) * grey_level_gain(mapped, target.level)
    return (mapped + noise).numpy()


def dose_noise_baseline(source: np.ndarray | Tensor, dose_fraction: float | None, seed: int) -> np.ndarray:
    """Noise insertion for a dose fraction r < 1 shaped by the image's own noise (Veldkamp et al. 2009).

    `source`: one image (model range); returned unchanged when r is None or >= 1, or the image has no
    measurable noise.
    """
    x = torch.as_tensor(source).reshape(1, 1, *np.shape(source)[-2:])
    own = measure_own_noise(x) if dose_fraction is not None and dose_fraction < 1.0 else None
    if own is None:
        return x[0, 0].cpu().numpy()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return insert_dose_noise(x, own, dose_fraction, generator)[0, 0].cpu().numpy()


@torch.inference_mode()
def sdedit_batch(model: VelocityUNet, x: Tensor, target_labels: Tensor, settings: TranslationSettings,
                 generator: torch.Generator, stats: IntegrationStats | None = None) -> Tensor:
    """SDEdit with a flow-matching model: x_tau = tau x + (1 - tau) z, then integrate tau -> 1 under the target."""
    factor = model.config.downsampling_factor
    x, shape = pad_to_multiple(x, factor)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    x_tau = settings.tau * x + (1.0 - settings.tau) * noise
    velocity = guided_velocity(model, target_labels.to(x.device), settings.guidance_scale)
    y = integrate(velocity, x_tau, settings.tau, 1.0, solver=settings.solver, steps=settings.steps,
                  schedule=settings.schedule, stats=stats)
    return crop_to(y, shape)

