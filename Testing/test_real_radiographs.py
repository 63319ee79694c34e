"""Real radiographs (pydicom-data's CR images): fine detail kept at the image's own resolution, no stem grid,
unknown spacing treated as unknown, post-processing that never removes anatomy."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from pydicom.data import get_testdata_file

from MedShiftLib.engine.checkpoint import load_checkpoint
from MedShiftLib.engine.working_grid import resample
from MedShiftLib.evaluation.detail_preservation import detail_correlation
from MedShiftLib.io.radiograph_files import read_radiograph
from MedShiftLib.pipeline.image_translation import image_spacing_mm, translate_image
from MedShiftLib.postprocess.patch_grid import remove_patch_grid
from MedShiftLib.settings import DEFAULT_PRESET, PRESETS, TranslationSettings

BUNDLED = "MedShift/Resources/Models/medshift_default.safetensors"


@pytest.fixture(scope="module")
def bundled():
    from conftest import REPO_ROOT
    return load_checkpoint(REPO_ROOT / BUNDLED)


@pytest.fixture(scope="module")
def tibia():
    """pydicom-data's CR tibia (1760 x 1760, MONOCHROME1, no spacing recorded: 6.9 px per working pixel)."""
    return read_radiograph(get_testdata_file("RG3_UNCR.dcm"))


def test_dicom_without_a_pixel_spacing_has_an_unknown_spacing():
    chest = read_radiograph(get_testdata_file("RG1_UNCR.dcm"))  # PixelSpacing 0\0
    tibia = read_radiograph(get_testdata_file("RG3_UNCR.dcm"))  # no spacing tag at all
    assert chest.metadata["spacing_known"] is False and tibia.metadata["spacing_known"] is False
    assert image_spacing_mm(chest) is None and image_spacing_mm(tibia) is None


def test_an_implausible_recorded_spacing_counts_as_unknown(tibia):
    recorded = {**tibia.metadata, "spacing_known": True}
    assert image_spacing_mm(replace(tibia, spacing=(0.15, 0.15, 1.0), metadata=recorded)) == pytest.approx(0.15)
    assert image_spacing_mm(replace(tibia, spacing=(50.0, 50.0, 1.0), metadata=recorded)) is None


def _old_path(image, model, info, settings):
    """The translation as it was before detail carrying: down to the working grid, up again."""
    from MedShiftLib.engine.intensity import denormalize, fit_intensity_window, normalize
    from MedShiftLib.engine.working_grid import working_shape
    from MedShiftLib.pipeline.image_translation import translate_batch
    window = fit_intensity_window(image.pixels, image.photometric)
    x = torch.from_numpy(normalize(image.pixels, window).astype(np.float32))[None, None]
    shape = working_shape(image.shape, info.resolution, None, info.pixel_spacing_mm)
    labels = [torch.tensor([info.label_of(d)]) for d in (settings.source_domain, settings.target_domain)]
    y = resample(translate_batch(model, resample(x, shape), *labels, settings, statistics=info.statistics), image.shape)
    return denormalize(y[0, 0].numpy(), window, image.pixels.dtype)


@pytest.mark.parametrize("source, target, floor", [("clinical-normal", "clinical-exposure", 0.95),
                                                   ("sim-low", "clinical-normal", 0.85)])
def test_default_translation_keeps_the_fine_detail_of_a_real_radiograph(bundled, tibia, source, target, floor):
    model, info = bundled
    settings = TranslationSettings(source, target)
    output = translate_image(tibia, model, info, settings)
    kept = detail_correlation(tibia.pixels, output.pixels)
    assert kept >= floor
    assert kept > detail_correlation(tibia.pixels, _old_path(tibia, model, info, settings)) + 0.05
    assert np.abs(output.pixels.astype(float) - tibia.pixels).mean() > 2.0  # and it did translate


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_no_preset_loses_anatomy_on_a_real_radiograph(bundled, tibia, preset):
    model, info = bundled
    for source, target in [("clinical-normal", "clinical-exposure"), ("sim-low", "clinical-normal"),
                           ("clinical-normal", "clinical-low")]:
        output = translate_image(tibia, model, info, TranslationSettings(source, target).with_preset(preset))
        assert detail_correlation(tibia.pixels, output.pixels) >= 0.7, (source, target)


def test_patch_grid_is_removed_and_smooth_change_kept():
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.randn(1, 1, 4, 4), size=(130, 126), mode="bicubic")
    tile = 0.05 * torch.randn(4, 4)
    grid = tile.repeat(33, 32)[:130, :126][None, None] * (1 + 0.5 * torch.linspace(0, 1, 126))
    cleaned = remove_patch_grid(smooth + grid, 4)
    assert (cleaned - smooth).std() < 0.15 * grid.std()
    assert (remove_patch_grid(smooth, 4) - smooth)[..., 16:-16, 16:-16].abs().max() < 0.01


def _lattice_peak_ratio(change: np.ndarray, period: int) -> float:
    """Power at the patch lattice's frequencies (a/p, b/p) over the median power of the other frequencies."""
    power = np.abs(np.fft.fft2(change - change.mean())) ** 2
    rows, cols = change.shape
    lattice = np.zeros_like(power, dtype=bool)
    lattice[::rows // period, ::cols // period] = True
    lattice[0, 0] = False
    return float(power[lattice].mean() / np.median(power[~lattice]))


def test_the_stem_grid_is_taken_out_of_the_translation_change(bundled, tibia):
    """On a real radiograph the model's change carries a period-4 grid; the change the output gets does not."""
    from MedShiftLib.engine.intensity import fit_intensity_window, normalize
    from MedShiftLib.pipeline.image_translation import translate_batch
    from MedShiftLib.postprocess.detail_transfer import translation_change
    model, info = bundled
    window = fit_intensity_window(tibia.pixels, tibia.photometric)
    x = resample(torch.from_numpy(normalize(tibia.pixels, window).astype(np.float32))[None, None], (256, 256))
    labels = [torch.tensor([info.label_of(d)]) for d in ("clinical-normal", "clinical-exposure")]
    translated = translate_batch(model, x, *labels, TranslationSettings("clinical-normal", "clinical-exposure"))
    raw = (translated - x)[0, 0].numpy()
    cleaned = translation_change(x, translated, info.config.patch_size, 0.0)[0, 0].numpy()
    assert _lattice_peak_ratio(raw, 4) > 20  # the artefact is there
    assert _lattice_peak_ratio(cleaned, 4) < 0.2 * _lattice_peak_ratio(raw, 4)


@pytest.mark.slow
def test_a_lower_dose_adds_noise_like_the_radiographs_own(bundled, tibia):
    """clinical-normal -> clinical-low at the default: the added noise follows the tibia's own noise."""
    from MedShiftLib.engine.intensity import fit_intensity_window, normalize
    from MedShiftLib.evaluation.noise_texture import added_noise, implied_size
    from MedShiftLib.postprocess.noise_model import statistics_dose_fraction
    model, info = bundled
    settings = TranslationSettings("clinical-normal", "clinical-low").with_preset(DEFAULT_PRESET)
    window = fit_intensity_window(tibia.pixels, tibia.photometric)
    output = translate_image(tibia, model, info, settings)
    report = added_noise(normalize(tibia.pixels, window), normalize(output.pixels, window))
    implied = implied_size(statistics_dose_fraction(info.statistics, "clinical-normal", "clinical-low"))
    assert 1 / 1.5 <= report.dependence_ratio <= 1.5
    assert report.added_lag1 == pytest.approx(report.own_lag1, abs=0.15)
    assert 0.8 <= report.size <= 2.0 and report.size == pytest.approx(implied, rel=0.2)
