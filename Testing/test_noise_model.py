"""The noise model (noise level by grey level, dose fraction) and the dose change it drives: each physics property.

Synthetic radiographs: a smooth grey ramp whose noise standard deviation grows with the grey level (as
quantum noise does in the display space), correlated like a detector's, with a clipped band that carries
none.
"""
import json

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from MedShiftLib.engine.domain_statistics import (
    NOISE_LEVEL_BINS,
    STATISTICS_FORMAT_VERSION,
    DomainStatistics,
    read_statistics,
    write_statistics,
)
from MedShiftLib.errors import CheckpointError, MedShiftError
from MedShiftLib.evaluation.baselines import dose_noise_baseline
from MedShiftLib.evaluation.detail_preservation import detail_correlation, detail_under_added_noise
from MedShiftLib.evaluation.noise_texture import added_noise, implied_size, lag1_correlation, noise_residual
from MedShiftLib.postprocess import noise_model
from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics
from MedShiftLib.postprocess.fine_noise import change_dose, insert_dose_noise, measure_own_noise
from MedShiftLib.postprocess.noise_matching import match_noise_batch, remove_noise_power
from MedShiftLib.postprocess.noise_model import curve_sample_stride, dose_fraction, noise_level_curve

SIZE = 256
CLIPPED_ROWS = 40


def noise_std(grey: np.ndarray) -> np.ndarray:
    """The synthetic detector's noise standard deviation at a grey level: 3x from dark to bright."""
    return 0.01 * (2.0 + grey)


def radiograph(seed: int, scale: float = 1.0, correlation_px: float = 0.8) -> np.ndarray:
    """A grey ramp (-0.8 .. 0.8 across) with grey-level-dependent correlated noise, clipped at 1 in the top rows."""
    rng = np.random.default_rng(seed)
    grey = np.tile(np.linspace(-0.8, 0.8, SIZE), (SIZE, 1))
    grey += 0.05 * gaussian_filter(rng.standard_normal((SIZE, SIZE)), 20) * 20
    white = gaussian_filter(rng.standard_normal((SIZE, SIZE)), correlation_px)
    image = grey + scale * noise_std(grey) * white / white.std()
    image[:CLIPPED_ROWS] = 1.0
    return image


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).float()[None, None]


def band_levels(noise: np.ndarray, grey: np.ndarray, edges) -> list[float]:
    """Standard deviation of a noise field's high-pass residual in grey-level bands (outside the clipped rows)."""
    residual = noise_residual(noise)[CLIPPED_ROWS + 8:]
    grey = grey[CLIPPED_ROWS + 8:]
    return [float(residual[(grey >= lo) & (grey < hi)].std()) for lo, hi in zip(edges[:-1], edges[1:])]


def test_the_noise_level_curve_follows_the_grey_level_and_clipped_pixels_carry_none():
    image = radiograph(0)
    curve = noise_level_curve(as_tensor(image))
    centres = (np.arange(NOISE_LEVEL_BINS) + 0.5) / NOISE_LEVEL_BINS * 2 - 1
    measured = [(c, v) for c, v in zip(centres, curve) if v is not None and -0.7 < c < 0.7]
    ratios = [np.sqrt(v) / noise_std(c) for c, v in measured]
    assert len(measured) >= 8 and max(ratios) / min(ratios) < 1.3  # variance ~ noise_std(g)^2, one scale
    assert curve[-1] is not None and curve[-1] < 1e-6  # the clipped band (grey level 1) carries none


def test_a_large_images_curve_from_a_subgrid_agrees_with_the_whole_images(monkeypatch):
    """Over CURVE_PIXELS_PER_IMAGE pixels the curve is measured on a regular subgrid: within 5 % of the
    whole image's in every bin, and it follows the known noise level."""
    rng = np.random.default_rng(5)
    size = 1100
    grey = np.tile(np.linspace(-0.8, 0.8, size), (size, 1))
    image = as_tensor(grey + noise_std(grey) * gaussian_filter(rng.standard_normal((size, size)), 0.8) / 0.33)
    assert curve_sample_stride(image.shape) == 2
    sampled = noise_level_curve(image)
    monkeypatch.setattr(noise_model, "CURVE_PIXELS_PER_IMAGE", size * size)
    assert curve_sample_stride(image.shape) == 1
    whole = noise_level_curve(image)
    measured = [k for k in range(NOISE_LEVEL_BINS) if whole[k] is not None]
    assert len(measured) >= 12 and [k for k in range(NOISE_LEVEL_BINS) if sampled[k] is not None] == measured
    for k in measured:
        assert sampled[k] == pytest.approx(whole[k], rel=0.05)
    inner = measured[1], measured[-2]  # bins the ramp covers whole
    centres = [-1 + (k + 0.5) * 2 / NOISE_LEVEL_BINS for k in inner]
    expected_ratio = (noise_std(centres[1]) / noise_std(centres[0])) ** 2
    assert sampled[inner[1]] / sampled[inner[0]] == pytest.approx(expected_ratio, rel=0.1)


def test_dose_fraction_is_the_variance_ratio_where_both_domains_carry_noise():
    source = [None, 0.0, 2e-4, 3e-4, 4e-4] + [5e-4] * 11
    target = [None, 0.0] + [v / 0.4 for v in source[2:]]
    assert dose_fraction(source, target) == pytest.approx(0.4)
    assert dose_fraction(target, source) == pytest.approx(2.5)
    assert dose_fraction([None] * 16, target) is None


@pytest.mark.parametrize("fraction", [0.5, 0.25])
def test_added_noise_has_the_dose_ratios_variance_the_images_grey_level_dependence_and_texture(fraction):
    image = radiograph(1)
    x = as_tensor(image)
    own = measure_own_noise(x)
    out = insert_dose_noise(x, own, fraction, torch.Generator().manual_seed(0))[0, 0].double().numpy()
    added = out - image
    grey = gaussian_filter(image, 4)
    edges = [-0.7, -0.3, 0.1, 0.5]
    own_levels = band_levels(image - gaussian_filter(image, 6), grey, edges)
    added_levels = band_levels(added, grey, edges)
    for own_level, added_level in zip(own_levels, added_levels):  # variance x (1/r - 1) at every grey level
        assert added_level == pytest.approx(own_level * implied_size(fraction), rel=0.2)
    assert added_levels[-1] / added_levels[0] > 1.6  # grows with the grey level, as the image's own noise
    assert np.all(added[:CLIPPED_ROWS - 20] == 0)  # nothing added where the image is clipped (a border apart)
    flat = np.zeros(image.shape, dtype=bool)
    flat[CLIPPED_ROWS + 8:] = True
    own_lag = lag1_correlation(noise_residual(image), flat)
    assert lag1_correlation(noise_residual(added), flat) == pytest.approx(own_lag, abs=0.1)


def test_the_right_dose_noise_lowers_fine_detail_correlation_to_its_ceiling_and_no_further():
    """A dose decrease's noise counts as lost detail in detail_correlation: by exactly what the noise sets
    (ceiling), while the anatomy under it keeps every detail; an output that also blurs the anatomy does not."""
    rng = np.random.default_rng(3)
    grey = np.tile(np.linspace(-0.6, 0.6, 384), (384, 1))
    structure = grey + 0.4 * gaussian_filter(rng.standard_normal(grey.shape), 2.0)  # fine, like trabeculae
    image = structure + noise_std(grey) * gaussian_filter(rng.standard_normal(grey.shape), 0.8) / 0.33
    mask = np.ones(image.shape, dtype=bool)
    own = measure_own_noise(as_tensor(image))
    outputs = [insert_dose_noise(as_tensor(image), own, 0.25, torch.Generator().manual_seed(seed))[0, 0]
               .double().numpy() for seed in (0, 1)]
    detail = detail_correlation(image, outputs[0], mask)
    anatomy, ceiling = detail_under_added_noise(image, *outputs, mask)
    assert detail < 0.95  # the measure counts the noise of a quarter of the dose as lost detail ...
    assert anatomy > 0.99  # ... while every detail is in place under it
    assert ceiling == pytest.approx(detail, abs=0.01)
    blurred = [gaussian_filter(image, 3.0) + (out - image) for out in outputs]
    blurred_anatomy, _ = detail_under_added_noise(image, *blurred, mask)
    assert blurred_anatomy < anatomy - 0.03


def test_added_noise_copies_the_images_texture_white_or_correlated():
    for correlation_px in (0.3, 1.2):
        image = radiograph(2, correlation_px=correlation_px)
        x = as_tensor(image)
        out = insert_dose_noise(x, measure_own_noise(x), 0.5, torch.Generator().manual_seed(1))[0, 0].numpy()
        report = added_noise(image[CLIPPED_ROWS + 8:], out[CLIPPED_ROWS + 8:], np.ones((SIZE - 48, SIZE), bool))
        assert report.added_lag1 == pytest.approx(report.own_lag1, abs=0.1)
        assert report.dependence_ratio == pytest.approx(1.0, abs=0.3)


def test_nothing_is_added_where_the_target_domain_carries_no_noise():
    image = radiograph(3)
    x = as_tensor(image)
    target = [0.0] * 8 + [1e-4] * 8  # the target renders its dark half noise-free (direct exposure)
    out = insert_dose_noise(x, measure_own_noise(x), 0.3, torch.Generator().manual_seed(0), target)[0, 0].numpy()
    added = out - image
    columns = np.linspace(-0.8, 0.8, SIZE)
    dark, bright = columns < -0.3, columns > 0.3
    assert np.abs(added[CLIPPED_ROWS + 12:, dark]).max() < 1e-6
    assert added[CLIPPED_ROWS + 12:, bright].std() > 0.005  # and there is noise where it does


def test_a_higher_dose_takes_the_noise_down_by_the_dose_ratio_and_keeps_edges():
    rng = np.random.default_rng(4)
    clean = np.zeros((SIZE, SIZE))
    clean[:, 128:] = 0.5
    clean[100:110, :] += 0.3  # a thin bright line (a rib, a cortex)
    noisy = clean + 0.05 * rng.standard_normal(clean.shape)
    x = as_tensor(noisy)
    band = x - torch.from_numpy(gaussian_filter(noisy, 2.0)).float()[None, None]
    out = change_dose(x, x, band, measure_own_noise(x), 1 / 0.3 ** 2, 0, None)[0, 0].numpy()
    flat = (slice(150, 250), slice(10, 110))
    assert out[flat].std() < 0.6 * noisy[flat].std()
    assert out[105, 10:110].mean() - out[150:250, 10:110].mean() == pytest.approx(0.3, abs=0.02)
    assert out[:, 130:140].mean() - out[:, 116:126].mean() == pytest.approx(0.5, abs=0.02)
    filtered = remove_noise_power(torch.from_numpy(noisy), [1.0] * 7).numpy()  # claims far too much excess
    assert filtered[:, 130:140].mean() - filtered[:, 116:126].mean() == pytest.approx(0.5, abs=0.03)


def test_the_physics_baseline_inserts_noise_for_a_lower_dose_only():
    image = radiograph(5)
    lower = dose_noise_baseline(image.astype(np.float32), 0.5, seed=0)
    report = added_noise(image[CLIPPED_ROWS + 8:], lower[CLIPPED_ROWS + 8:], np.ones((SIZE - 48, SIZE), bool))
    assert report.size == pytest.approx(implied_size(0.5), rel=0.25)
    assert np.array_equal(dose_noise_baseline(image.astype(np.float32), 2.0, seed=0), image.astype(np.float32))
    assert np.array_equal(dose_noise_baseline(image.astype(np.float32), None, seed=0), image.astype(np.float32))


def test_working_grid_noise_matching_adds_nothing_where_the_target_carries_none():
    yy, xx = np.mgrid[:128, :128] / 128
    smooth = np.where(xx < 0.3, -1.0, 0.4 * np.sin(6 * yy) * np.cos(5 * xx))  # direct exposure on the left
    x = torch.from_numpy(smooth[None, None]).float()
    target_nps = [4e-3] * 7
    target_curve = [0.0, 0.0] + [4e-3] * 14  # the target's black background is noise-free
    out = match_noise_batch(x, target_nps, 0, target_curve)[0, 0].numpy()
    assert np.abs(out - smooth)[:, :30].max() < 1e-6
    assert (out - smooth)[:, 50:].std() > 0.02


def test_statistics_keep_the_noise_levels_and_old_files_still_read(tmp_path):
    images = {"low": torch.from_numpy(np.stack([radiograph(6, 1.6), radiograph(7, 1.6)])[:, None]).float(),
              "normal": torch.from_numpy(np.stack([radiograph(8), radiograph(9)])[:, None]).float()}
    statistics = measure_domain_statistics(images)
    implied = dose_fraction(statistics.noise_level["normal"], statistics.noise_level["low"])
    assert implied == pytest.approx(1 / 1.6 ** 2, rel=0.15)
    path = write_statistics(tmp_path / "m.stats.json", statistics, ("low", "normal"))
    record = json.loads(path.read_text())
    assert record["format_version"] == STATISTICS_FORMAT_VERSION == 2
    assert read_statistics(path, ("low", "normal"))[0] == statistics
    record["format_version"] = 1  # a file written before the noise levels
    del record["statistics"]["noise_level"]
    path.write_text(json.dumps(record))
    older = read_statistics(path, ("low", "normal"))[0]
    assert older.noise_level is None and older.noise_power == statistics.noise_power
    with pytest.raises(MedShiftError, match="medshift domain-contrast"):
        older.noise_level_of("low")
    for bad in ([0.1] * 3, [-1.0] * NOISE_LEVEL_BINS, ["x"] * NOISE_LEVEL_BINS):
        entry = statistics.to_dict() | {"noise_level": {"low": bad, "normal": list(statistics.noise_level["normal"])}}
        with pytest.raises(CheckpointError, match="noise_level"):
            DomainStatistics.from_dict(entry, ("low", "normal"))


@pytest.mark.cuda
def test_the_dose_change_runs_on_the_gpu_like_on_the_cpu():
    image = radiograph(10)
    x = as_tensor(image)
    own_cpu, own_gpu = measure_own_noise(x), measure_own_noise(x.cuda())
    assert torch.allclose(own_gpu.level.cpu(), own_cpu.level, rtol=1e-3)
    out = insert_dose_noise(x.cuda(), own_gpu, 0.5, torch.Generator(device="cuda").manual_seed(0))
    report = added_noise(image, out[0, 0].cpu().numpy(), np.ones(image.shape, bool))
    assert out.device.type == "cuda" and report.size == pytest.approx(implied_size(0.5), rel=0.25)


def test_working_grid_noise_matching_takes_noise_out_where_the_target_renders_none():
    yy, xx = np.mgrid[:128, :128] / 128
    clean = np.where(xx < 0.4, -0.95, 0.3 * np.sin(6 * yy) * np.cos(5 * xx))  # dark direct exposure on the left
    noisy = clean + 0.02 * np.random.default_rng(11).standard_normal(clean.shape)
    x = torch.from_numpy(noisy[None, None]).float()
    target_curve = [0.0, 0.0] + [4e-4] * 14  # the target renders its dark end noise-free
    out = match_noise_batch(x, [4e-4] * 7, 0, target_curve)[0, 0].numpy()
    background = (slice(8, -8), slice(8, 40))
    assert noise_residual(out)[background].std() < 0.3 * noise_residual(noisy)[background].std()
    assert out[:, 60:].std() == pytest.approx(noisy[:, 60:].std(), rel=0.1)  # the body keeps its noise and anatomy
