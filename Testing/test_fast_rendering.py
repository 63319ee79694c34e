"""Fast paths for large views: rays traced on a coarser grid and interpolated, wide Gaussians on block averages."""
import numpy as np
import pytest
from scipy import ndimage
from test_projector import _ellipsoid_volume

from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector
from MedShiftLib.simulator.wide_blur import gaussian_blur


@pytest.mark.parametrize("angles", [(90.0, 3.0), (0.0, -10.0), (25.0, 30.0)])
def test_a_fine_detector_matches_tracing_every_ray(angles):
    volume = _ellipsoid_volume((48, 40, 44), (2.0, 2.0, 2.0), (4.0, -3.0, 2.0), (38.0, 30.0, 34.0))
    geometry = CArmGeometry(*angles, rows=160, cols=150, pixel_spacing_mm=0.8)
    fast = ConeBeamProjector(volume)
    assert fast._traced_grid(geometry) < (160, 150)  # 2 mm voxels: fewer rays than pixels are traced
    exact = ConeBeamProjector(volume, ray_oversampling=None).project(geometry)
    result = fast.project(geometry)
    scale = exact[..., 0].max()
    difference = np.abs(result - exact)[..., :2] / np.array([scale, 2 * scale])
    assert difference.max() < 0.03 and np.percentile(difference, 99) < 0.01  # the limits docs/simulator.md states
    assert np.array_equal(result[..., 2], np.zeros_like(result[..., 2]))  # an absent material stays zero


def test_a_coarse_detector_is_traced_ray_by_ray_as_before():
    volume = _ellipsoid_volume((32, 32, 32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (12.0, 10.0, 11.0))
    geometry = CArmGeometry(10.0, 5.0, rows=48, cols=48, pixel_spacing_mm=1.25)
    assert np.array_equal(ConeBeamProjector(volume).project(geometry),
                          ConeBeamProjector(volume, ray_oversampling=None).project(geometry))


@pytest.mark.parametrize("sigma", [6.5, 8.0, 25.0, 90.0])  # all above DIRECT_SIGMA_PX: the block path
def test_wide_gaussian_blur_matches_the_direct_filter(sigma):
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.normal(size=(300, 260)), 2) + (np.arange(260) > 90)[None, :]
    expected = ndimage.gaussian_filter(image, sigma, mode="nearest")
    assert np.abs(gaussian_blur(image, sigma) - expected).max() < 0.005 * np.ptp(image)
