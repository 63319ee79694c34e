"""The measures of the settings frontier (benchmarks/frontier_sweep.py) and its Pareto points.

On a translation and the aligned target renderings of the same view, over the body (the noise-free
target's body mask):

* band-contrast error: mean |log ratio| of the output's and the genuine target rendering's energies in
  the difference-of-Gaussian octave bands with sigma 2, 4 and 8 px (band k: G(sigma_k / 2) - G(sigma_k), as
  film_statistics.py's bands in mm), each image first mapped to its own 1st-99th percentile over the body
  (film_statistics.normalise: global tone and contrast cancel); 0 when the output has the target's
  multi-scale contrast;
* body noise ratio: the output's noise level (1.4826 x MAD of the high-pass residual,
  noise_texture.py) over the genuine target rendering's;
* Pareto points: the settings no other setting beats on every axis at once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..postprocess.body_region import body_mask
from .film_statistics import band_energies, normalise
from .image_quality import ssim
from .noise_texture import noise_residual, robust_level

FRONTIER_BAND_SIGMAS_PX = (2.0, 4.0, 8.0)
"""The octave bands (sigma in pixels of the model's working grid) the band-contrast error compares."""


def frontier_band_energies(image: np.ndarray, body: np.ndarray) -> np.ndarray:
    """Energies over `body` of the octave bands FRONTIER_BAND_SIGMAS_PX of an image on the working grid
    (normalised to its 1st-99th percentile over `body`)."""
    image = normalise(np.asarray(image, dtype=np.float64), body)
    return np.array(band_energies(image, body, 1.0, FRONTIER_BAND_SIGMAS_PX))


def _band_error(energies: np.ndarray, target_energies: np.ndarray) -> float:
    """Mean |log ratio| of two images' band energies (0: the same contrast)."""
    ratio = energies / np.maximum(target_energies, 1e-30)
    return float(np.mean(np.abs(np.log(np.maximum(ratio, 1e-30)))))


def _noise_ratio(image: np.ndarray, body: np.ndarray, target_level: float) -> float:
    """The image's noise level over `body` divided by the target's (1: the target's noise)."""
    return robust_level(noise_residual(image)[body]) / max(target_level, 1e-12)


@dataclass(frozen=True)
class TargetView:
    """One view's target renderings with what every output is compared with measured once: the noise-free
    target `clean`, its body mask, and the genuine (noisy) rendering's band energies and noise level there."""

    clean: np.ndarray
    body: np.ndarray
    band_energies: np.ndarray
    noise_level: float

    @classmethod
    def measured(cls, clean: np.ndarray, genuine: np.ndarray, body: np.ndarray | None = None) -> TargetView:
        """The measures of the noise-free target `clean` and the genuine rendering `genuine` of one view, over
        `body` (default: the body mask of `clean`)."""
        body = body_mask(clean) if body is None else body
        return cls(np.asarray(clean, dtype=np.float64), body, frontier_band_energies(genuine, body),
                   robust_level(noise_residual(genuine)[body]))

    def scores(self, output: np.ndarray) -> tuple[float, float, float]:
        """SSIM against the noise-free target, band-contrast error and body noise ratio against the genuine
        rendering, over the clean target's body: one translated view's frontier measures."""
        return (ssim(np.asarray(output, dtype=np.float64), self.clean),
                _band_error(frontier_band_energies(output, self.body), self.band_energies),
                _noise_ratio(output, self.body, self.noise_level))


def view_scores(output: np.ndarray, clean: np.ndarray, genuine: np.ndarray) -> tuple[float, float, float]:
    """TargetView.scores of one output against the view's noise-free `clean` and genuine target renderings."""
    return TargetView.measured(clean, genuine).scores(output)


def pareto_optimal(scores: np.ndarray, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Which rows of scores (N, axes) no other row dominates (as good on every axis, better on one)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(higher_is_better):
        raise ValueError("scores must be (N, axes) with one direction per axis")
    oriented = scores * np.where(np.asarray(higher_is_better), 1.0, -1.0)
    at_least = (oriented[:, None, :] >= oriented[None, :, :]).all(axis=2)  # [j, i]: j as good as i everywhere
    better = (oriented[:, None, :] > oriented[None, :, :]).any(axis=2)
    dominated = (at_least & better).any(axis=0)
    return ~dominated
