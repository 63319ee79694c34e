"""Normalisation to the model range and back."""
import numpy as np
import pytest

from MedShiftLib.engine.intensity import denormalize, fit_intensity_window, normalize
from MedShiftLib.errors import InputImageError


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64])
def test_round_trip_restores_values_and_dtype(dtype):
    rng = np.random.default_rng(0)
    info_max = 200 if dtype == np.uint8 else 4000
    pixels = rng.integers(0, info_max, (40, 50)).astype(dtype)
    window = fit_intensity_window(pixels)
    back = denormalize(normalize(pixels, window), window, pixels.dtype)
    assert back.dtype == pixels.dtype
    np.testing.assert_allclose(back, pixels, atol=1e-3 * info_max if pixels.dtype.kind == "f" else 0)


def test_robust_percentiles_map_to_model_range_and_outliers_are_kept():
    pixels = np.linspace(0, 1000, 10000).reshape(100, 100)
    pixels[0, 0] = 1e6  # a hot pixel must not squash the rest of the range
    x = normalize(pixels, fit_intensity_window(pixels))
    assert -1.05 < np.percentile(x, 1) < -0.9 and 0.9 < np.percentile(x, 99) < 1.05
    assert x[0, 0] > 100  # not clipped: the mapping stays invertible


def test_monochrome1_is_inverted_so_bright_means_dense_in_both():
    pixels = np.tile(np.arange(100, dtype=np.uint16), (10, 1))
    m2 = normalize(pixels, fit_intensity_window(pixels, "MONOCHROME2"))
    m1 = normalize(pixels, fit_intensity_window(pixels, "MONOCHROME1"))
    np.testing.assert_allclose(m1, -m2)
    w1 = fit_intensity_window(pixels, "MONOCHROME1")
    np.testing.assert_array_equal(denormalize(m1, w1, np.uint16), pixels)


def test_integer_output_is_clipped_to_the_dtype():
    pixels = np.array([[0, 255]], dtype=np.uint8)
    window = fit_intensity_window(pixels, percentiles=(0, 100))
    out = denormalize(np.array([[-3.0, 3.0]]), window, np.uint8)
    assert out.tolist() == [[0, 255]]


@pytest.mark.parametrize("pixels, message", [
    (np.full((8, 8), 7, dtype=np.uint16), "constant"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN"),
    (np.array([[0.0, np.inf], [1.0, 2.0]]), "NaN or infinite"),
    (np.zeros((0, 4)), "empty"),
])
def test_unusable_images_are_refused(pixels, message):
    with pytest.raises(InputImageError, match=message):
        fit_intensity_window(pixels)
