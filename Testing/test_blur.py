"""The post-processing's one Gaussian blur (postprocess/blur.py): scipy's filter with each border, the
CPU's shifted sums equal to the convolution other devices use, and every caller on it."""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate1d, gaussian_filter

from MedShiftLib.postprocess.blur import BORDERS, convolved, gaussian_blur, local_mean, separable_filter, shifted_sums

POSTPROCESS = Path(__file__).resolve().parents[1] / "MedShift" / "MedShiftLib" / "postprocess"


def image(rows: int = 40, cols: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, 1, rows, cols))


@pytest.mark.parametrize("sigma", [0.7, 1.5, 4.0])
def test_replicate_and_reflect_are_scipys_gaussian_with_nearest_and_mirror_borders(sigma):
    x = image()
    for border, mode, truncate in (("replicate", "nearest", 4.0), ("reflect", "mirror", 3.0)):
        expected = gaussian_filter(x, (0, 0, sigma, sigma), mode=mode, truncate=truncate)
        got = gaussian_blur(torch.from_numpy(x), sigma, border=border, truncate=truncate).numpy()
        assert np.allclose(got, expected, atol=1e-10), border


def test_inside_is_the_weighted_mean_of_the_pixels_that_exist():
    x, sigma = image(), 2.0
    zero_padded = gaussian_filter(x, (0, 0, sigma, sigma), mode="constant", truncate=3.0)
    weights = gaussian_filter(np.ones_like(x), (0, 0, sigma, sigma), mode="constant", truncate=3.0)
    assert np.allclose(local_mean(torch.from_numpy(x), sigma).numpy(), zero_padded / weights, atol=1e-10)
    flat = local_mean(torch.full((1, 1, 30, 20), 0.3, dtype=torch.float64), 5.0)  # no darkening at the border
    assert torch.allclose(flat, torch.full_like(flat, 0.3))


def test_a_box_filter_and_a_skipped_axis():
    x = torch.from_numpy(image())
    box = torch.full((5,), 0.2, dtype=torch.float64)
    expected = correlate1d(x.numpy(), box.numpy(), axis=-1, mode="nearest")
    assert np.allclose(separable_filter(x, None, box).numpy(), expected, atol=1e-12)
    with pytest.raises(ValueError, match="border"):
        separable_filter(x, box, box, border="wrap")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_cpus_shifted_sums_equal_the_convolution(dtype):
    padded = torch.from_numpy(image(30, 60)).to(dtype)
    taps = torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1], dtype=dtype)
    for axis in (-2, -1):
        assert torch.allclose(shifted_sums(padded, taps, axis), convolved(padded, taps, axis), atol=1e-6)


@pytest.mark.cuda
def test_the_blur_on_the_gpu_equals_the_cpus():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = torch.from_numpy(image()).float()
    for border in BORDERS:
        assert torch.allclose(gaussian_blur(x.cuda(), 1.5, border).cpu(), gaussian_blur(x, 1.5, border), atol=1e-5)


def test_no_other_postprocessing_module_makes_its_own_gaussian():
    """One blur: no module of postprocess/ but blur.py builds Gaussian taps or convolves images itself."""
    for path in POSTPROCESS.glob("*.py"):
        if path.name == "blur.py":
            continue
        names = {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
        assert not names & {"conv2d", "conv1d"}, path.name
        assert "exp(-0.5" not in path.read_text().replace(" ", ""), path.name
