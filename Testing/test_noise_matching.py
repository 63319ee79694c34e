"""Noise matching: the target domain's noise power spectrum, its storage with the domain statistics,
and its use by the translation and the CLI."""
import json

import numpy as np
import pytest
import torch
from helpers import write_png_domains, write_tiny_checkpoint
from scipy.ndimage import gaussian_filter

from MedShiftLib.cli import main
from MedShiftLib.engine.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from MedShiftLib.engine.domain_statistics import NPS_BINS, DomainStatistics
from MedShiftLib.errors import CheckpointError, MedShiftError
from MedShiftLib.evaluation.image_quality import nps_relative_error
from MedShiftLib.pipeline.image_translation import translate_batch
from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics
from MedShiftLib.postprocess.noise_matching import match_noise, match_noise_batch, remove_noise_power
from MedShiftLib.postprocess.noise_power import image_nps
from MedShiftLib.settings import MATCHED_CONTRAST_AND_NOISE, TranslationSettings

SIZE = 128


def anatomy(seed: int) -> np.ndarray:
    """A noise-free radiograph-like image: smooth blobs and a few edges, in about [-0.7, 0.7]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE] / SIZE
    field = gaussian_filter(rng.standard_normal((SIZE, SIZE)), 12)
    image = 0.5 * np.tanh(field / field.std() / 2)
    image += 0.2 * (xx > 0.3 + 0.2 * rng.random())
    return gaussian_filter(image, 1.0) - 0.1


def with_noise(image: np.ndarray, std: float, seed: int, correlation_px: float = 0.7) -> np.ndarray:
    """image plus correlated Gaussian noise of about `std` (quantum noise blurred by a detector)."""
    noise = gaussian_filter(np.random.default_rng(seed).standard_normal(image.shape), correlation_px)
    return image + noise * std / noise.std()


def noise_matched(image: np.ndarray, target_nps, seed: int = 0, target_curve=None) -> np.ndarray:
    """match_noise on a NumPy image (torch underneath)."""
    generator = torch.Generator().manual_seed(seed)
    return match_noise(torch.from_numpy(image), target_nps, generator, target_curve).numpy()


def removed(image: np.ndarray, excess) -> np.ndarray:
    """remove_noise_power on a NumPy image."""
    return remove_noise_power(torch.from_numpy(image), excess).numpy()


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity
    return float(structural_similarity(b, a, data_range=2.0))


NOISY_DOMAIN = [with_noise(anatomy(s), 0.08, 100 + s) for s in range(6)]
QUIET_DOMAIN = [with_noise(anatomy(s), 0.01, 200 + s) for s in range(6, 12)]


def test_a_smooth_image_gets_the_target_domains_noise_and_keeps_its_structure():
    target = image_nps(NOISY_DOMAIN)
    clean = anatomy(42)
    matched = noise_matched(clean, target)
    assert nps_relative_error(image_nps([clean]), target) > 0.6
    assert nps_relative_error(image_nps([matched]), target) < 0.3
    reference = with_noise(clean, 0.08, 7)  # the same anatomy really imaged in the noisy domain
    assert abs(ssim(matched, clean) - ssim(reference, clean)) < 0.1
    assert np.corrcoef(gaussian_filter(matched, 3).ravel(), gaussian_filter(clean, 3).ravel())[0, 1] > 0.99


def test_noise_the_target_lacks_is_filtered_out_and_the_anatomy_kept():
    target = image_nps(QUIET_DOMAIN)
    clean = anatomy(43)
    noisy = with_noise(clean, 0.08, 8)
    matched = noise_matched(noisy, target)
    assert nps_relative_error(image_nps([matched]), target) < 0.5 * nps_relative_error(image_nps([noisy]), target)
    assert ssim(matched, clean) > ssim(noisy, clean) + 0.2
    def coarse_error(image):
        return np.abs(gaussian_filter(image, 4) - gaussian_filter(clean, 4)).mean()
    assert coarse_error(matched) < coarse_error(noisy) + 0.002  # coarse anatomy untouched


def test_an_image_that_already_has_the_target_noise_is_left_nearly_alone():
    target = image_nps(NOISY_DOMAIN)
    image = with_noise(anatomy(44), 0.08, 9)
    matched = noise_matched(image, target)
    assert np.sqrt(np.mean((matched - image) ** 2)) < 0.35 * 0.08


def test_filtering_takes_noise_power_where_it_dominates_and_keeps_strong_signal():
    edge = np.zeros((SIZE, SIZE))
    edge[:, SIZE // 2:] = 0.8
    white = np.random.default_rng(1).normal(0, 0.05, edge.shape)
    excess = np.full(NPS_BINS - 1, 0.05 ** 2)
    filtered = removed(edge + white, excess)
    assert np.std(filtered[:, :40] - edge[:, :40]) < 0.5 * 0.05  # borders included: no wrap-around ringing
    assert filtered[:, SIZE // 2 + 10:].mean() - filtered[:, :SIZE // 2 - 10].mean() == pytest.approx(0.8, abs=0.02)
    assert np.array_equal(removed(edge, np.zeros(NPS_BINS - 1)), edge)


def test_matching_is_seeded_and_leaves_images_without_measurable_patches_alone():
    target = image_nps(NOISY_DOMAIN)
    x = torch.from_numpy(np.stack([anatomy(1), anatomy(2)])[:, None]).float()
    first, again, other = (match_noise_batch(x, target, seed) for seed in (5, 5, 6))
    assert torch.equal(first, again) and not torch.allclose(first, other)
    assert not torch.allclose(first[0], first[1] - x[1] + x[0])  # each image its own noise field
    assert first.dtype == x.dtype and first.shape == x.shape
    tiny = torch.zeros(1, 1, 16, 16)
    assert torch.equal(match_noise_batch(tiny, target, 0), tiny)


def test_noise_power_is_recorded_checked_and_optional_in_checkpoints(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("noisy", "quiet"))
    model, info = load_checkpoint(path)
    as_tensor = {name: torch.from_numpy(np.stack(ims)[:, None]).float()
                 for name, ims in (("noisy", NOISY_DOMAIN), ("quiet", QUIET_DOMAIN))}
    info.statistics = measure_domain_statistics(as_tensor)
    noisy, quiet = (np.array(info.statistics.noise_power_of(d)) for d in ("noisy", "quiet"))
    assert noisy.shape == (NPS_BINS - 1,) and noisy[2:].sum() > 20 * quiet[2:].sum()  # low rings: anatomy too
    save_checkpoint(tmp_path / "c.safetensors", model.state_dict(), info)
    assert read_checkpoint_info(tmp_path / "c.safetensors").statistics == info.statistics
    good = info.statistics.to_dict()
    older = {k: v for k, v in good.items() if k != "noise_power"}
    assert DomainStatistics.from_dict(older, ("noisy", "quiet")).noise_power is None
    with pytest.raises(MedShiftError, match="domain-contrast"):
        DomainStatistics.from_dict(older, ("noisy", "quiet")).noise_power_of("noisy")
    bad_entries = {"NaN": good | {"noise_power": {"noisy": [float("nan")] * 7, "quiet": list(quiet)}},
                   "negative": good | {"noise_power": {"noisy": [-1.0] * 7, "quiet": list(quiet)}},
                   "short": good | {"noise_power": {"noisy": [1.0], "quiet": list(quiet)}},
                   "missing domain": good | {"noise_power": {"noisy": list(noisy)}},
                   "not an object": good | {"noise_power": [1, 2]}}
    for _name, entry in bad_entries.items():
        with pytest.raises(CheckpointError, match="noise_power"):
            DomainStatistics.from_dict(json.loads(json.dumps(entry)), ("noisy", "quiet"))
    flat = {"a": torch.zeros(2, 1, 16, 16), "b": torch.ones(2, 1, 16, 16)}
    assert measure_domain_statistics(flat).noise_power is None


def test_translation_with_noise_matching_matches_the_translation_s_noise(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("noisy", "quiet"), resolution=SIZE)
    model, info = load_checkpoint(path)
    contrast = measure_domain_statistics({"noisy": torch.from_numpy(np.stack(NOISY_DOMAIN)[:, None]).float(),
                                        "quiet": torch.from_numpy(np.stack(QUIET_DOMAIN)[:, None]).float()})
    x = torch.from_numpy(np.stack([anatomy(3), anatomy(4)])[:, None]).float()
    labels = torch.ones(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    on = TranslationSettings("quiet", "noisy", steps=2, noise_matching=True, seed=9)
    off = TranslationSettings("quiet", "noisy", steps=2)
    expected = match_noise_batch(translate_batch(model, x, *labels, off), contrast.noise_power_of("noisy"), 9,
                                 contrast.noise_level_of("noisy"))
    assert torch.allclose(translate_batch(model, x, *labels, on, statistics=contrast), expected)
    assert on.description() == "quiet->noisy tau0.6 matched-noise seed9"
    with pytest.raises(MedShiftError, match="domain-contrast"):
        info.validate(on)  # this checkpoint records no statistics
    # statistics measured before noise matching existed
    info.statistics = DomainStatistics(contrast.band_sigmas_px, contrast.quantiles, contrast.band_rms)
    with pytest.raises(MedShiftError, match="noise power"):
        info.validate(on)
    with pytest.raises(MedShiftError, match="statistics"):
        translate_batch(model, x, *labels, on)
    assert MATCHED_CONTRAST_AND_NOISE["noise_matching"] and MATCHED_CONTRAST_AND_NOISE["contrast_transfer"]


def test_cli_translates_with_noise_matching_and_info_reports_it(tmp_path, capsys):
    data = write_png_domains(tmp_path / "data", domains=("a", "b"), subjects=3, views=1, size=48)
    model_path = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("a", "b"), resolution=48)
    image = tmp_path / "data" / "a" / "s0_v0.png"
    args = ["translate", str(image), "--source", "a", "--target", "b", "--noise-matching", "--steps", "1"]
    assert main(args + ["--out", str(tmp_path / "o1"), "--model", str(model_path)]) == 2
    assert "noise matching" in capsys.readouterr().err
    out = tmp_path / "stats.safetensors"
    assert main(["domain-contrast", "--model", str(model_path), "--data", str(data), "--out", str(out)]) == 0
    assert main(["info", str(out)]) == 0 and "recorded (--noise-matching available)" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "o2"), "--model", str(out), "--seed", "3"]) == 0
    assert main(args + ["--out", str(tmp_path / "o3"), "--model", str(out), "--seed", "3"]) == 0
    assert main(args + ["--out", str(tmp_path / "o4"), "--model", str(out), "--seed", "4"]) == 0
    read = [(tmp_path / name / "s0_v0.png").read_bytes() for name in ("o2", "o3", "o4")]
    assert read[0] == read[1] != read[2]
