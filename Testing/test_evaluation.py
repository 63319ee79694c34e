"""Evaluation: its measures respond to what they claim to measure, its baselines do what they say, and
`medshift evaluate` scores a model on a held-out simulated set with the right references and costs."""
import json
import shutil

import numpy as np
import pytest
import torch
from helpers import write_tiny_checkpoint
from scipy.ndimage import gaussian_filter

from MedShiftLib.cli import main
from MedShiftLib.engine.checkpoint import load_checkpoint
from MedShiftLib.errors import CheckpointError, DataFolderError, MedShiftError
from MedShiftLib.evaluation.baselines import (
    baseline_domain,
    contrast_noise_baseline,
    histogram_noise_baseline,
    sdedit_batch,
)
from MedShiftLib.evaluation.ddib import load_ddib_models
from MedShiftLib.evaluation.domain_classifier import (
    ClassifierTraining,
    accuracy,
    classify,
    load_domain_classifier,
    save_domain_classifier,
    train_domain_classifier,
)
from MedShiftLib.evaluation.image_quality import (
    coverage,
    kernel_inception_distance,
    model_range,
    nps_relative_error,
    structure_scores,
)
from MedShiftLib.evaluation.protocol import EvaluationSettings, run_evaluation
from MedShiftLib.evaluation.results import MethodResult, average_ranks
from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics
from MedShiftLib.postprocess.noise_matching import shaped_noise
from MedShiftLib.postprocess.noise_power import flat_patch_corners, image_nps, noise_power_spectrum
from MedShiftLib.settings import TranslationSettings
from MedShiftLib.simulator.simulation import simulate_dataset
from MedShiftLib.training.domain_statistics import record_domain_statistics

RNG = np.random.default_rng(0)


def whole_image_patches(images, patch=32):
    return [[(r, c) for r in range(0, im.shape[0] - patch + 1, patch) for c in range(0, im.shape[1] - patch + 1, patch)]
            for im in images]


def test_nps_of_white_noise_is_its_variance_and_separates_noise_levels():
    images = [RNG.normal(0, 0.05, (128, 128)) for _ in range(4)]
    nps = noise_power_spectrum(images, whole_image_patches(images))
    assert np.allclose(nps, 0.05 ** 2, rtol=0.2)
    same = [RNG.normal(0, 0.05, (128, 128)) for _ in range(4)]
    louder = [RNG.normal(0, 0.1, (128, 128)) for _ in range(4)]
    assert nps_relative_error(noise_power_spectrum(same, whole_image_patches(same)), nps) < 0.1
    assert nps_relative_error(noise_power_spectrum(louder, whole_image_patches(louder)), nps) > 2.0


def test_nps_sees_noise_texture_and_ignores_smooth_trends():
    blurred = [gaussian_filter(RNG.normal(0, 0.2, (128, 128)), 1.5) for _ in range(4)]
    nps = noise_power_spectrum(blurred, whole_image_patches(blurred))
    assert nps[0] > 10 * nps[-1]  # correlated noise: power at low frequencies
    yy, xx = np.mgrid[:128, :128] / 128
    trend = [0.5 * xx + 0.3 * yy ** 2 + RNG.normal(0, 0.05, (128, 128)) for _ in range(4)]
    assert np.allclose(noise_power_spectrum(trend, whole_image_patches(trend)), 0.05 ** 2, rtol=0.25)


def test_flat_patches_avoid_edges_and_clipped_regions():
    image = np.zeros((128, 128))
    image[:, 64:] = np.sin(np.arange(64) / 2)[None, :] * 0.5  # busy right half
    image[:32, :64] = 1.0  # clipped (air) band at the top of the flat half
    corners = flat_patch_corners(image, patch=16, count=8)
    assert len(corners) == 8
    assert all(left + 16 <= 64 and top >= 32 for top, left in corners)


def test_kid_and_coverage_distinguish_distributions():
    torch.manual_seed(0)
    real, same, shifted = torch.randn(60, 16), torch.randn(60, 16), torch.randn(60, 16) + 1.5
    kid_same, kid_shifted = kernel_inception_distance(real, same), kernel_inception_distance(real, shifted)
    assert kid_shifted > 10 * abs(kid_same)
    assert coverage(real, real) == 1.0
    assert coverage(real, shifted + 10) == 0.0
    assert kernel_inception_distance(real, same, seed=3) == kernel_inception_distance(real, same, seed=3)


def test_model_range_shows_monochrome1_images_as_the_model_sees_them():
    pixels = np.random.default_rng(0).integers(0, 4000, (32, 32)).astype(np.uint16)
    assert np.allclose(model_range(pixels, "MONOCHROME1"), -model_range(pixels))
    assert model_range(pixels).max() > 0.9 and model_range(pixels).min() < -0.9


def test_structure_scores_fall_with_noise():
    clean = gaussian_filter(RNG.normal(0, 1, (64, 64)), 3)
    clean = clean / np.abs(clean).max()
    assert structure_scores(clean, clean)[0] == pytest.approx(1.0)
    light, heavy = clean + RNG.normal(0, 0.05, clean.shape), clean + RNG.normal(0, 0.3, clean.shape)
    assert structure_scores(light, clean)[0] > structure_scores(heavy, clean)[0]
    assert structure_scores(light, clean)[1] > structure_scores(heavy, clean)[1] + 10


def textured_images(n, white, rng, size=48):
    base = np.stack([gaussian_filter(rng.normal(0, 1, (size, size)), 6) * 4 for _ in range(n)])
    noise = rng.normal(0, 0.1, (n, size, size))
    if not white:
        noise = np.stack([gaussian_filter(z, 1.2) * 3 for z in noise])
    return torch.from_numpy((base + noise)[:, None]).float()


def test_domain_classifier_learns_noise_texture_and_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    images = torch.cat([textured_images(40, True, rng), textured_images(40, False, rng)])
    labels = torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(40, dtype=torch.long)])
    model = train_domain_classifier(images, labels, ("white", "correlated"),
                                    ClassifierTraining(steps=80, batch_size=16, crop=32, lr=3e-3))
    test = torch.cat([textured_images(20, True, rng), textured_images(20, False, rng)])
    expected = torch.cat([torch.zeros(20, dtype=torch.long), torch.ones(20, dtype=torch.long)])
    predicted, features = classify(model, test)
    assert accuracy(predicted, expected) >= 0.9
    assert features.shape == (40, model.feature_size)
    path = save_domain_classifier(model, tmp_path / "c.safetensors", {"run": 1})
    again, provenance = load_domain_classifier(path)
    assert provenance == {"run": 1} and again.domains == ("white", "correlated")
    assert torch.equal(classify(again, test)[0], predicted)
    (tmp_path / "bad.safetensors").write_bytes(b"not a classifier")
    with pytest.raises(CheckpointError, match="delete it"):
        load_domain_classifier(tmp_path / "bad.safetensors")


def test_shaped_noise_follows_the_requested_spectrum():
    target = noise_power_spectrum([gaussian_filter(RNG.normal(0, 0.2, (128, 128)), 1.0) for _ in range(4)],
                                  whole_image_patches([np.zeros((128, 128))] * 4))
    generator = torch.Generator().manual_seed(0)
    noise = [shaped_noise((128, 128), target, generator).numpy() for _ in range(4)]
    assert nps_relative_error(noise_power_spectrum(noise, whole_image_patches(noise)), target) < 0.25


def test_histogram_noise_baseline_takes_target_grey_levels_and_noise():
    yy, xx = np.mgrid[:96, :96] / 96
    smooth = np.clip(1.6 * np.exp(-((yy - .5) ** 2 + (xx - .5) ** 2) / 0.08) - 0.8, -1, 1)
    targets = [np.tanh(2 * smooth) * 0.7 + RNG.normal(0, 0.08, smooth.shape) for _ in range(6)]
    statistics = baseline_domain(targets)
    out = histogram_noise_baseline(smooth, statistics, np.random.default_rng(0))
    assert np.abs(np.percentile(out, [10, 50, 90]) - np.percentile(targets[0], [10, 50, 90])).max() < 0.1
    assert nps_relative_error(image_nps([out]), statistics.nps) < 0.5 < nps_relative_error(image_nps([smooth]),
                                                                                         statistics.nps)
    contrast = measure_domain_statistics({"smooth": torch.from_numpy(np.stack([smooth] * 2)[:, None]).float(),
                                        "target": torch.from_numpy(np.stack(targets)[:, None]).float()})
    out = contrast_noise_baseline(smooth, "smooth", "target", contrast, statistics, np.random.default_rng(0))
    assert np.abs(np.percentile(out, [10, 50, 90]) - np.percentile(targets[0], [10, 50, 90])).max() < 0.1
    assert nps_relative_error(image_nps([out]), statistics.nps) < 0.5


def test_sdedit_is_seeded_and_near_identity_close_to_t1(tmp_path):
    model, info = load_checkpoint(write_tiny_checkpoint(tmp_path / "m.safetensors"))
    x = torch.from_numpy(gaussian_filter(RNG.normal(0, 1, (2, 1, 32, 32)), (0, 0, 3, 3))).float()
    labels = torch.tensor([1, 1])
    settings = TranslationSettings("a", "b", tau=0.5, steps=3)
    one = sdedit_batch(model, x, labels, settings, torch.Generator().manual_seed(0))
    same = sdedit_batch(model, x, labels, settings, torch.Generator().manual_seed(0))
    other = sdedit_batch(model, x, labels, settings, torch.Generator().manual_seed(1))
    assert torch.equal(one, same) and not torch.allclose(one, other)
    near = sdedit_batch(model, x, labels, TranslationSettings("a", "b", tau=0.999, steps=1), torch.Generator())
    assert (near - x).abs().max() < 0.05


def fake_result(method, family, pair, **metrics):
    return MethodResult(method, family, *pair, None, None, metrics, np.zeros((2, 2)))


def test_average_rank_orders_methods_and_leaves_out_the_oracle():
    best = dict(ssim_clean=0.9, psnr_clean=30, classifier_accuracy=1.0, kid=0.01, coverage=0.9, nps_error=0.1)
    worst = dict(ssim_clean=0.5, psnr_clean=20, classifier_accuracy=0.2, kid=0.5, coverage=0.1, nps_error=2.0)
    results = [fake_result("good", "MedShift", ("a", "b"), **best), fake_result("bad", "baseline", ("a", "b"), **worst),
               fake_result("oracle", "oracle", ("a", "b"), **best)]
    assert average_ranks(results) == {"bad": 2.0, "good": 1.0}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    train = simulate_dataset(root / "train", subjects=3, views_per_subject=1, size=64, seed=1, progress=False)
    test = simulate_dataset(root / "test", subjects=4, views_per_subject=1, size=64, seed=2, clean=True,
                            progress=False)
    domains = ("sim-low", "sim-high", "clinical-low", "clinical-normal", "clinical-exposure")
    plain = write_tiny_checkpoint(root / "plain.safetensors", domains=domains, resolution=64)
    checkpoint = record_domain_statistics(plain, train, root / "model.safetensors", per_domain=3)
    return root, train, test, checkpoint


@pytest.mark.slow
def test_evaluate_scores_methods_against_the_right_references(simulated):
    root, train, test, checkpoint = simulated
    model, info = load_checkpoint(checkpoint)
    settings = EvaluationSettings(taus=(0.6,), guidance_scales=(1.0, 2.0), steps=2, noise_renewals=(0.0, 1.0),
                                  contrast_transfers=(False, True), noise_matchings=(False, True),
                                  pairs=(("sim-low", "clinical-normal"), ("clinical-low", "sim-high")),
                                  classifier=ClassifierTraining(steps=5, batch_size=8, crop=32))
    logs = []
    record = run_evaluation(model, info, test, train, root / "out", settings, log=logs.append)
    rows = {(r["method"], r["source"], r["target"]): r for r in record["per_pair"]}
    oracle = rows[("oracle (real target rendering)", "sim-low", "clinical-normal")]
    identity = rows[("no translation", "sim-low", "clinical-normal")]
    assert oracle["nps_error"] == 0.0  # the target compared with itself
    assert identity["ssim_source"] == pytest.approx(1.0)
    # sim-low's white noise is not clinical-normal's screen-blurred quantum mottle: no translation misses the NPS
    # goal (<= 0.20; 0.33 here since issue 27's fifth round lowered clinical-normal's 2.5-20 mm bands, 0.5+ before)
    assert identity["nps_error"] > 0.2
    assert rows[("MedShift tau=0.6", "sim-low", "clinical-normal")]["nfe"] == 2 * 2
    assert rows[("MedShift tau=0.6 w=2", "sim-low", "clinical-normal")]["nfe"] == 2 * 2 * 2
    assert rows[("SDEdit tau=0.6", "sim-low", "clinical-normal")]["nfe"] == 2
    assert rows[("MedShift tau=0.6 w=2 noise=1", "sim-low", "clinical-normal")]["nfe"] == 2 * (2 * 2 + 1)
    noisy, plain, transferred = (rows[(f"MedShift tau=0.6{extra}", "sim-low", "clinical-normal")]
                                 for extra in (" noise=1", "", " contrast"))
    assert noisy["ssim_source"] != plain["ssim_source"] != transferred["ssim_source"]
    assert transferred["nfe"] == plain["nfe"]  # contrast transfer costs no network evaluation
    matched = rows[("MedShift tau=0.6 contrast matched-noise", "sim-low", "clinical-normal")]
    assert matched["nfe"] == plain["nfe"] and matched["ssim_source"] != transferred["ssim_source"]
    assert rows[("contrast transfer + noise", "sim-low", "clinical-normal")]["nfe"] == 0
    assert "average_rank" not in record["summary"]["oracle (real target rendering)"]
    assert set(record["goal_pair"]) == set(record["summary"])
    out = root / "out"
    report = (out / "results.md").read_text()
    assert "| histogram + noise |" in report and "## Goals" in report
    goal_rows = [line for line in report.split("## Goals")[1].splitlines() if line.startswith("| MedShift tau=0.6")]
    assert len(goal_rows) == 16 and all(line.endswith("of 3 |") for line in goal_rows)
    saved = json.loads((out / "results.json").read_text())
    assert saved["views"] == 4 and saved["settings"]["noise_matchings"] == [False, True]
    assert (out / "structure_vs_realism.png").stat().st_size > 0 and (out / "translation_grid.png").is_file()
    logs.clear()
    run_evaluation(model, info, test, train, root / "out", settings, log=logs.append)
    assert any("reusing" in line for line in logs)


def test_evaluate_adds_ddib_rows_with_one_model_per_domain(simulated, tmp_path, capsys):
    root, train, test, checkpoint = simulated
    model, info = load_checkpoint(checkpoint)
    paths = {d: write_tiny_checkpoint(tmp_path / f"{d}.safetensors", domains=(d,), resolution=64, seed=k)
             for k, d in enumerate(("sim-low", "clinical-normal"))}
    ddib = load_ddib_models(paths, info.domains, info.resolution)
    settings = EvaluationSettings(taus=(0.6,), guidance_scales=(1.0,), steps=2, ddib_taus=(0.0, 0.6),
                                  pairs=(("sim-low", "clinical-normal"),), max_views=3,
                                  classifier=ClassifierTraining(steps=5, batch_size=8, crop=32))
    record = run_evaluation(model, info, test, train, tmp_path / "out", settings, log=lambda _: None, ddib=ddib)
    rows = {r["method"]: r for r in record["per_pair"]}
    assert rows["DDIB tau=0"]["nfe"] == rows["DDIB tau=0.6"]["nfe"] == 2 * 2  # no guidance
    assert rows["DDIB tau=0"]["ssim_clean"] != rows["DDIB tau=0.6"]["ssim_clean"]
    assert rows["DDIB tau=0.6"]["ssim_clean"] != rows["MedShift tau=0.6"]["ssim_clean"]  # other networks
    assert record["summary"]["DDIB tau=0"]["family"] == "DDIB" and "average_rank" in record["summary"]["DDIB tau=0"]
    assert record["settings"]["ddib_models"] == {d: str(p) for d, p in paths.items()}
    with pytest.raises(MedShiftError, match="missing: clinical-low"):
        run_evaluation(model, info, test, train, tmp_path / "out",
                       EvaluationSettings(pairs=(("clinical-low", "clinical-normal"),)), ddib=ddib)
    code = main(["evaluate", "--model", str(checkpoint), "--data", str(test), "--train-data", str(train),
                 "--out", str(tmp_path / "cli"), "--ddib-models", f"sim-low={paths['clinical-normal']}"])
    assert code == 2 and "trained on 'sim-low' alone" in capsys.readouterr().err


def test_evaluate_refuses_leaks_and_sets_without_clean_images(simulated, tmp_path, capsys):
    root, train, test, checkpoint = simulated
    model, info = load_checkpoint(checkpoint)
    with pytest.raises(MedShiftError, match="held-out"):
        run_evaluation(model, info, test, test, tmp_path, EvaluationSettings())
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    shutil.copy(test / "manifest.csv", leaky / "manifest.csv")  # the same simulator seed and subjects
    with pytest.raises(DataFolderError, match="another --seed"):
        run_evaluation(model, info, test, leaky, tmp_path, EvaluationSettings())
    with pytest.raises(DataFolderError, match="--clean"):
        run_evaluation(model, info, train, test, tmp_path, EvaluationSettings())
    code = main(["evaluate", "--model", str(checkpoint), "--data", str(test), "--train-data", str(train),
                 "--out", str(tmp_path), "--pairs", "sim-low-clinical-normal"])
    assert code == 2 and "SOURCE:TARGET" in capsys.readouterr().err
