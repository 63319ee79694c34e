"""Contrast transfer: grey-level matching, band gains learnt from unpaired images, their storage in
checkpoints, and their use by the translation, the CLI and training."""
import json

import numpy as np
import pytest
import torch
from helpers import write_png_domains, write_tiny_checkpoint
from scipy.ndimage import gaussian_filter

from MedShiftLib.cli import main
from MedShiftLib.engine.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from MedShiftLib.engine.domain_statistics import QUANTILE_COUNT, DomainStatistics, statistics_path
from MedShiftLib.errors import CheckpointError, DataFolderError, MedShiftError
from MedShiftLib.pipeline.image_translation import translate_batch
from MedShiftLib.postprocess.contrast_transfer import (
    BAND_SIGMAS_PX,
    band_gains,
    band_rms,
    detail_bands,
    map_grey_levels,
    measure_domain_statistics,
    transfer_contrast,
)
from MedShiftLib.settings import TranslationSettings
from MedShiftLib.training.domain_statistics import record_domain_statistics

GAINS = (1.0, 2.5, 2.0, 1.0, 1.0)  # the "vendor processing" of the synthetic target domain below


def smooth_fields(count: int, seed: int, size: int = 96) -> torch.Tensor:
    """Random images with structure at every scale (sums of blurred noise), in about [-1, 1]."""
    rng = np.random.default_rng(seed)
    fields = [sum(gaussian_filter(rng.standard_normal((size, size)), s) * s for s in (1, 2, 4, 8, 16))
              for _ in range(count)]
    return torch.from_numpy(np.stack([f / np.abs(f).max() for f in fields])[:, None]).float()


def processed(images: torch.Tensor) -> torch.Tensor:
    """The target domain: detail bands amplified by GAINS."""
    bands, residual = detail_bands(images, BAND_SIGMAS_PX)
    return residual + sum(g * b for g, b in zip(GAINS, bands))


def test_grey_level_mapping_takes_one_distribution_onto_another_and_keeps_differences_between_images():
    rng = np.random.default_rng(2)
    levels = np.linspace(0, 1, QUANTILE_COUNT)
    source_q = np.quantile(rng.uniform(-1, 1, 100_000), levels)
    target_q = np.quantile(rng.normal(0.2, 0.3, 100_000), levels)
    typical = torch.from_numpy(rng.uniform(-1, 1, (1, 1, 64, 64))).float()
    darker = typical - 0.3
    out = map_grey_levels(torch.cat([typical, darker]), source_q, target_q)
    assert abs(float(out[0].mean()) - 0.2) < 0.03 and abs(float(out[0].std()) - 0.3) < 0.03
    assert float(out[1].mean()) < float(out[0].mean()) - 0.1  # one curve for all images: darker stays darker
    order = torch.argsort(typical.flatten())
    assert torch.all(torch.diff(out[0].flatten()[order]) >= 0)  # monotone
    flat = map_grey_levels(torch.full((1, 1, 8, 8), -1.0), np.r_[[-1.0] * 40, np.linspace(-1, 1, QUANTILE_COUNT - 40)],
                           target_q)
    assert torch.unique(flat).numel() == 1  # flat air stays flat


def test_grey_level_mapping_in_single_precision_matches_double_with_flat_runs():
    """The curve is applied in the image's dtype: float32 gives float64's result (flat air runs included)."""
    rng = np.random.default_rng(4)
    source_q = np.r_[[-1.0] * 30, np.sort(rng.uniform(-1, 0.9, QUANTILE_COUNT - 40)), [0.9] * 10]
    target_q = np.r_[-1.0, np.sort(rng.uniform(-0.9, 1.0, QUANTILE_COUNT - 1))]
    x = torch.from_numpy(np.r_[[-1.5, -1.0, 0.9, 0.95], rng.uniform(-1.1, 1.1, 2000)])[None, None, None]
    single = map_grey_levels(x.float(), source_q, target_q)
    double = map_grey_levels(x, source_q, target_q)
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    assert torch.isfinite(single).all()
    assert torch.allclose(single.double(), double, atol=1e-6)


def _direct_band_rms(images: torch.Tensor) -> list[float]:
    """band_rms as first written: the detail bands by direct blurs (here in float64), rms per image, averaged."""
    bands, _ = detail_bands(images.double(), BAND_SIGMAS_PX)
    return [float(band.pow(2).mean(dim=(1, 2, 3)).sqrt().mean()) for band in bands]


@pytest.mark.parametrize("shape", [(3, 40, 56), (2, 37, 21)])  # 21 px: narrower than the widest blur's radius
def test_band_rms_by_fft_equals_the_direct_blurs(shape):
    images = smooth_fields(shape[0], 11, max(shape[1:]))[..., :shape[1], :shape[2]] + 0.05 * torch.randn(
        shape[0], 1, *shape[1:], generator=torch.Generator().manual_seed(0))
    direct = _direct_band_rms(images)
    for chunk in (1, 2, 5):
        assert band_rms(images, BAND_SIGMAS_PX, chunk=chunk) == pytest.approx(direct, rel=1e-6, abs=0)


def test_measured_band_contrast_equals_each_pairs_mapping_then_direct_blurs():
    images = {"sim": smooth_fields(3, 12, 40), "clinical": processed(smooth_fields(3, 13, 40)).clamp(-1, 1),
              "flat": 0.5 * smooth_fields(2, 14, 40) - 0.3}
    statistics = measure_domain_statistics(images, device="cpu")
    for source in images:
        for target in images:
            mapped = map_grey_levels(images[source], statistics.quantiles[source], statistics.quantiles[target])
            assert statistics.band_rms[source][target] == pytest.approx(_direct_band_rms(mapped), rel=1e-6, abs=0)
        pooled = images[source].double().flatten().numpy()
        assert statistics.quantiles[source] == pytest.approx(np.quantile(pooled, np.linspace(0, 1, QUANTILE_COUNT)),
                                                             rel=1e-12, abs=1e-12)


def test_gains_learnt_from_unpaired_images_undo_the_domains_processing():
    source, target = smooth_fields(12, seed=2), processed(smooth_fields(12, seed=3))  # different images
    contrast = measure_domain_statistics({"sim": source, "clinical": target})
    gains = band_gains(contrast, "sim", "clinical").numpy()
    assert gains[0] == 1.0  # the finest band is the flow's business
    assert min(gains[1], gains[2]) > 1.1 > max(gains[3], gains[4])  # boosted where the domain boosts
    assert np.allclose(band_gains(contrast, "clinical", "clinical").numpy(), 1.0)
    fresh = smooth_fields(4, seed=4)
    truth = processed(fresh)
    transferred = transfer_contrast(fresh, contrast, "sim", "clinical")
    matched_only = map_grey_levels(fresh, contrast.quantiles["sim"], contrast.quantiles["clinical"])
    error = float((transferred - truth).pow(2).mean())
    assert error < 0.85 * float((matched_only - truth).pow(2).mean())  # the band gains, not the grey levels
    boosted = [band_rms(images, BAND_SIGMAS_PX)[1:3] for images in (matched_only, transferred, truth)]
    assert all(m < t <= r for m, t, r in zip(*boosted))  # towards the target's contrast, not past it


def test_statistics_round_trip_through_a_checkpoint_and_hostile_entries_are_refused(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("sim", "clinical"))
    model, info = load_checkpoint(path)
    info.statistics = measure_domain_statistics({"sim": smooth_fields(3, 5, 48), "clinical": smooth_fields(3, 6, 48)})
    save_checkpoint(tmp_path / "c.safetensors", model.state_dict(), info)
    assert read_checkpoint_info(tmp_path / "c.safetensors").statistics == info.statistics
    good = info.statistics.to_dict()
    bad_entries = {
        "NaN quantile": good | {"quantiles": good["quantiles"] | {"sim": [float("nan")] * QUANTILE_COUNT}},
        "short quantiles": good | {"quantiles": good["quantiles"] | {"sim": [0.0, 1.0]}},
        "falling quantiles": good | {"quantiles": good["quantiles"]
                                     | {"sim": list(np.linspace(1, -1, QUANTILE_COUNT))}},
        "missing domain": good | {"band_rms": {"sim": good["band_rms"]["sim"]}},
        "negative sigma": good | {"band_sigmas_px": [-1.0, 2.0, 4.0, 8.0, 16.0]},
        "not an object": [1, 2, 3],
    }
    for _name, entry in bad_entries.items():
        with pytest.raises(CheckpointError, match="domain statistics"):
            DomainStatistics.from_dict(json.loads(json.dumps(entry)), ("sim", "clinical"))


def test_translation_with_contrast_transfer_translates_the_transferred_image(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("sim", "clinical"))
    model, info = load_checkpoint(path)
    contrast = measure_domain_statistics({"sim": smooth_fields(3, 7, 32),
                                          "clinical": processed(smooth_fields(3, 8, 32))})
    x = smooth_fields(2, 9, 32)
    labels = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    on = TranslationSettings("sim", "clinical", steps=2, contrast_transfer=True)
    off = TranslationSettings("sim", "clinical", steps=2)
    with_transfer = translate_batch(model, x, *labels, on, statistics=contrast)
    expected = translate_batch(model, transfer_contrast(x, contrast, "sim", "clinical"), *labels, off)
    assert torch.allclose(with_transfer, expected)
    assert not torch.allclose(with_transfer, translate_batch(model, x, *labels, off), atol=1e-3)
    with pytest.raises(MedShiftError, match="domain-contrast"):
        info.validate(on)  # this checkpoint records no statistics
    with pytest.raises(MedShiftError, match="statistics"):
        translate_batch(model, x, *labels, on)


def test_domain_contrast_command_writes_statistics_and_never_the_weights(tmp_path, capsys):
    data = write_png_domains(tmp_path / "data", domains=("a", "b"), subjects=3, views=1, size=48)
    model_path = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("a", "b"))
    before = model_path.read_bytes()
    out = tmp_path / "with_contrast.safetensors"
    assert main(["domain-contrast", "--model", str(model_path), "--data", str(data), "--out", str(out)]) == 0
    assert model_path.read_bytes() == before
    model, info = load_checkpoint(out)
    original, _ = load_checkpoint(model_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), original.state_dict().values()))
    assert info.statistics is not None and info.statistics_provenance["images_per_domain"] == 200
    assert out.read_bytes() == before  # a byte-for-byte copy of the weights; the statistics sit beside it
    assert main(["info", str(out)]) == 0 and "with_contrast.stats.json" in capsys.readouterr().out
    assert main(["domain-contrast", "--model", str(model_path), "--data", str(data), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err  # an earlier result is not replaced unasked
    # without --out the model's own statistics file is written, once; --overwrite measures again
    assert main(["domain-contrast", "--model", str(model_path), "--data", str(data)]) == 0
    assert model_path.read_bytes() == before and read_checkpoint_info(model_path).statistics == info.statistics
    assert main(["domain-contrast", "--model", str(model_path), "--data", str(data)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["domain-contrast", "--model", str(model_path), "--data", str(data), "--overwrite",
                 "--images-per-domain", "1"]) == 0
    assert read_checkpoint_info(model_path).statistics != info.statistics
    statistics_path(model_path).unlink()
    assert main(["domain-contrast", "--model", str(model_path), "--data", str(data), "--out", str(model_path)]) == 2
    assert "another file" in capsys.readouterr().err
    with pytest.raises(DataFolderError, match="no images for domain"):
        record_domain_statistics(write_tiny_checkpoint(tmp_path / "abc.safetensors", domains=("a", "b", "c")), data,
                               tmp_path / "x.safetensors")
    image = tmp_path / "data" / "a" / "s0_v0.png"
    assert main(["translate", str(image), "--out", str(tmp_path / "o1"), "--model", str(model_path), "--source", "a",
                 "--target", "b", "--contrast-transfer"]) == 2
    assert "domain-contrast" in capsys.readouterr().err
    assert main(["translate", str(image), "--out", str(tmp_path / "o2"), "--model", str(out), "--source", "a",
                 "--target", "b", "--contrast-transfer", "--steps", "1"]) == 0
    assert (tmp_path / "o2" / "s0_v0.png").is_file()
