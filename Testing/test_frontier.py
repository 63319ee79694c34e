"""The settings frontier's measures and Pareto points (evaluation/frontier.py)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from MedShiftLib.evaluation.frontier import TargetView, frontier_band_energies, pareto_optimal
from MedShiftLib.evaluation.image_quality import ssim
from MedShiftLib.evaluation.noise_texture import noise_residual, robust_level
from MedShiftLib.postprocess.body_region import body_mask


def test_pareto_points_are_the_undominated_rows():
    # columns: SSIM (higher better), band error (lower better)
    scores = np.array([[0.9, 0.3],   # best SSIM: on the front
                       [0.8, 0.1],   # best band error: on the front
                       [0.8, 0.3],   # beaten by both above
                       [0.85, 0.2],  # a trade-off between them: on the front
                       [0.85, 0.2],  # its twin: neither beats the other
                       [0.7, 0.1]])  # as good on band error as row 1, worse SSIM
    assert pareto_optimal(scores, (True, False)).tolist() == [True, True, False, True, True, False]
    assert pareto_optimal(scores, (False, True)).tolist() == [False, False, True, False, False, True]
    with pytest.raises(ValueError):
        pareto_optimal(scores, (True,))


def _textured(seed: int = 0, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return sum(gaussian_filter(rng.standard_normal((size, size)), s) * s for s in (1, 2, 4, 8))


def band_contrast_error(image: np.ndarray, target: np.ndarray, body: np.ndarray) -> float:
    """The sweep's band-contrast error of `image` against the genuine rendering `target` over `body`."""
    return TargetView.measured(target, target, body).scores(image)[1]


def body_noise_ratio(image: np.ndarray, target: np.ndarray, body: np.ndarray) -> float:
    """The sweep's body noise ratio of `image` against the genuine rendering `target` over `body`."""
    return TargetView.measured(target, target, body).scores(image)[2]


def test_band_error_is_zero_for_the_same_contrast_and_grows_with_a_band_change():
    image, body = _textured(), np.ones((128, 128), bool)
    assert band_contrast_error(image, image, body) == pytest.approx(0.0, abs=1e-12)
    # a grey-level shift or a global contrast change is no band-contrast change
    assert band_contrast_error(3 * image + 5.0, image, body) == pytest.approx(0.0, abs=1e-9)
    detail = image - gaussian_filter(image, 4)  # the fine bands
    flat = gaussian_filter(image, 6)  # loses them: an error, larger than a mild sharpening's
    assert band_contrast_error(flat, image, body) > band_contrast_error(image + 0.5 * detail, image, body) > 0.1


def test_body_noise_ratio_compares_noise_not_anatomy():
    rng = np.random.default_rng(1)
    anatomy = gaussian_filter(rng.standard_normal((128, 128)), 20) * 5  # smooth: barely in the high-pass
    body = np.zeros((128, 128), bool)
    body[16:112, 16:112] = True
    target = anatomy + 0.02 * rng.standard_normal(anatomy.shape)
    assert body_noise_ratio(anatomy + 0.04 * rng.standard_normal(anatomy.shape), target, body) == pytest.approx(
        2.0, rel=0.1)
    assert body_noise_ratio(anatomy, target, body) < 0.1


def test_a_target_view_compares_over_the_clean_targets_body_with_the_genuine_rendering():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:96, :96]
    clean = np.where((yy - 48) ** 2 + (xx - 48) ** 2 < 40 ** 2, xx / 60 - 0.8 + 0.05 * _textured(1, 96), -1.0)
    genuine = clean + 0.03 * rng.standard_normal(clean.shape)
    target = TargetView.measured(clean, genuine)
    body = body_mask(clean)
    assert 0.2 < body.mean() < 0.8
    genuine_bands = frontier_band_energies(genuine, body)
    genuine_noise = robust_level(noise_residual(genuine)[body])
    for output in (genuine, clean + 0.1 * _textured(2, 96), 0.5 * clean + 0.01 * rng.standard_normal(clean.shape)):
        # from first principles: SSIM against the clean target, bands and noise against the genuine rendering's
        band_error = np.mean(np.abs(np.log(frontier_band_energies(output, body) / genuine_bands)))
        noise_ratio = robust_level(noise_residual(output)[body]) / genuine_noise
        assert target.scores(output) == pytest.approx((ssim(output, clean), band_error, noise_ratio), rel=1e-9)
    assert target.scores(genuine)[1:] == (0.0, 1.0)
