"""Film statistics (edge width, band energies, grey levels) on images whose answers are known."""
import numpy as np
import pytest
from scipy import ndimage

from MedShiftLib.evaluation.film_statistics import (
    band_log_ratio,
    film_statistics,
    head_region,
    histogram_distance,
)

PIXEL = 0.1


def _disc_image(blur_mm: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:400, :400]
    inside = np.hypot(yy - 200, xx - 200) < 150
    image = 0.4 + 0.5 * ((np.hypot(yy - 200, xx - 180) < 60) | ((xx // 40) % 2 == 0) & inside)
    image = np.where(inside, image, 0.0)
    image = ndimage.gaussian_filter(image, blur_mm / PIXEL)
    return image + np.random.default_rng(seed).normal(0, 0.002, image.shape), inside


@pytest.mark.parametrize("blur_mm", [0.3, 0.6])
def test_edge_width_is_the_10_90_rise_of_a_gaussian_edge(blur_mm):
    image, inside = _disc_image(blur_mm)
    stats = film_statistics(image, inside, PIXEL, common_pixel_mm=PIXEL)
    assert stats.edge_width_mm == pytest.approx(2.563 * blur_mm, rel=0.15)


def test_same_image_compares_equal_and_a_blurred_or_darker_one_does_not():
    image, inside = _disc_image(0.2)
    base = film_statistics(image, inside, PIXEL, common_pixel_mm=PIXEL)
    again = film_statistics(_disc_image(0.2, seed=1)[0], inside, PIXEL, common_pixel_mm=PIXEL)
    assert band_log_ratio(base, again) < 0.05 and histogram_distance(base, again) < 0.01
    blurred = film_statistics(ndimage.gaussian_filter(image, 10), inside, PIXEL, common_pixel_mm=PIXEL)
    assert blurred.band_energies[0] < 0.1 * base.band_energies[0] and band_log_ratio(base, blurred) > 1
    darker = film_statistics(np.clip(image, 0, None) ** 4, inside, PIXEL, common_pixel_mm=PIXEL)
    assert histogram_distance(base, darker) > 0.05 and darker.median_grey < base.median_grey


def test_the_head_region_is_the_bright_object_without_the_excluded_boxes():
    image, inside = _disc_image(0.2)
    head = head_region(image, PIXEL, exclude=((0, 100, 0, 400),))
    assert not head[:100].any() and (head[100:] == inside[100:]).mean() > 0.95  # up to the 2 mm blur at the rim
