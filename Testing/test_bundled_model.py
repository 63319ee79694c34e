"""The bundled model: present, small enough to ship, honest about its data, and a working translator."""
import numpy as np
import pytest

from MedShiftLib.checkpoint import BUNDLED_MODEL_DIR, BUNDLED_MODEL_NAME, load_checkpoint, read_checkpoint_info
from MedShiftLib.domain_rendering import SIMULATOR_DOMAINS, to_uint16
from MedShiftLib.radiograph import RadiographImage
from MedShiftLib.simulation import simulate_view
from MedShiftLib.translation import TranslationSettings, translate_image

PATH = BUNDLED_MODEL_DIR / BUNDLED_MODEL_NAME


def test_bundled_model_is_shipped_with_its_provenance():
    assert PATH.is_file(), "the bundled model is missing (scripts/package_bundled_model.py makes it)"
    assert PATH.stat().st_size < 50 * 1024 * 1024
    info = read_checkpoint_info(PATH)
    assert set(info.domains) == set(SIMULATOR_DOMAINS)
    provenance = info.provenance
    assert provenance["trained_on"] == "simulated data"
    assert "medshift simulate" in provenance["data_command"] and "medshift train" in provenance["train_command"]
    assert provenance["steps"] > 0 and provenance["metrics"]["validation_loss"] > 0


def test_bundled_model_moves_sim_low_towards_clinical_noise():
    """On a held-out view, sim-low -> clinical-normal adds fine-grained texture the sim domain lacks."""
    model, info = load_checkpoint(PATH)
    view = simulate_view(seed=123, subject=0, view=0, size=info.resolution, clean=False)
    image = RadiographImage(to_uint16(view.images["sim-low"]), spacing=(1.0, 1.0, 1.0))
    translated = translate_image(image, model, info, TranslationSettings("sim-low", "clinical-normal"))

    def fine_texture(pixels):
        x = pixels.astype(np.float64)
        x = (x - np.percentile(x, 0.5)) / (np.percentile(x, 99.5) - np.percentile(x, 0.5))
        return np.abs(np.diff(x, axis=1)).mean()

    target = fine_texture(view.images["clinical-normal"])
    before, after = fine_texture(image.pixels), fine_texture(translated.pixels)
    assert after > before
    assert abs(after - target) < abs(before - target)
    correlation = np.corrcoef(image.pixels.ravel().astype(float), translated.pixels.ravel().astype(float))[0, 1]
    assert correlation == pytest.approx(1.0, abs=0.3)  # the anatomy stays
