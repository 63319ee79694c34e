"""The film look's clinical domains see the object finer than its CT (object_detail.py): the CT's blur undone by a
bounded restoration and a power-law bone texture, the same anatomy in the three clinical domains of one view."""
import numpy as np
import pytest
from scipy import ndimage

from MedShiftLib.simulator import simulation
from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector
from MedShiftLib.simulator.domain_styles import FILM_OBJECT_DETAIL
from MedShiftLib.simulator.head_phantom import make_head_phantom
from MedShiftLib.simulator.object_detail import (
    ObjectDetail,
    bone_texture,
    object_line_integrals,
    restore_sharpness,
)
from MedShiftLib.simulator.xray_physics import MATERIALS

TISSUE, BONE = MATERIALS.index("soft_tissue"), MATERIALS.index("cortical_bone")
CLINICAL = ("clinical-low", "clinical-normal", "clinical-exposure")


def rise_width(profile: np.ndarray) -> int:
    """Samples from the 10 % to the 90 % crossing of a rising step from 0 to 1."""
    return int(np.argmax(profile >= 0.9) - np.argmax(profile >= 0.1))


def test_the_restoration_sharpens_a_blurred_step_without_ringing():
    step = np.zeros((48, 160, 1))
    step[:, 80:] = 1.0
    sigma, voxel = 4.0, 5.4  # the CT's blur and voxel in detector pixels (a 1 mm CT at 0.15 mm pixels: 5.2, 7.0)
    blurred = ndimage.gaussian_filter(step, (sigma, sigma, 0), mode="nearest")
    restored = restore_sharpness(blurred, (sigma, sigma), FILM_OBJECT_DETAIL.max_gain, (voxel, voxel))[24, :, 0]
    assert rise_width(restored) < 0.7 * rise_width(blurred[24, :, 0])
    assert restored.max() < 1.05 and restored.min() >= 0.0  # overshoot bounded, no negative path
    assert abs(restored[:30].mean()) < 1e-3 and abs(restored[-30:].mean() - 1) < 1e-3  # flat parts kept


def test_the_texture_sits_in_the_bone_only_and_keeps_its_mean():
    integrals = np.zeros((128, 128, len(MATERIALS)))
    integrals[:, :, TISSUE] = 12.0
    integrals[30:100, 20:110, BONE] = 1.5
    detail = ObjectDetail(max_gain=0.0, texture_beta=3.4, texture_psd=1e-3)
    out = object_line_integrals(integrals, (1.0, 1.0, 1.0), 1.05, 0.15, detail, np.random.default_rng(0))
    np.testing.assert_array_equal(out[..., TISSUE], integrals[..., TISSUE])
    bone = integrals[..., BONE] > 0
    assert np.all(out[..., BONE][~bone] == 0)
    relative = out[..., BONE][bone] / 1.5 - 1
    assert 0.02 < relative.std() < 0.5 and abs(relative.mean()) < 0.3 * relative.std()


def test_the_texture_has_the_power_law_spectrum_asked_for():
    """Far above the CT's cut-off the field's power falls as f^-beta (fractional Brownian motion)."""
    detail = ObjectDetail(max_gain=4.0, texture_beta=3.4, texture_psd=1e-3)
    field = bone_texture((512, 512), 0.15, 1.0, (8.0, 8.0), (10.0, 10.0), detail, np.random.default_rng(2))
    power = np.abs(np.fft.fft2(field)) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(512), np.fft.fftfreq(512), indexing="ij"))
    low, high = (power[np.abs(radius - f) < 0.01].mean() for f in (0.12, 0.36))  # cut-off: about 0.03 cycles/px
    assert -np.log(high / low) / np.log(3.0) == pytest.approx(3.4, abs=0.15)


@pytest.fixture(scope="module")
def phantom_projector():
    return ConeBeamProjector(make_head_phantom(np.random.default_rng(0), grid_size=48))


def integrals_per_domain(monkeypatch, projector, look: str, subject: int = 0, view: int = 0) -> dict:
    """The line integrals render_view gives each domain (noisy rendering)."""
    seen = {}

    def spy(line_integrals, settings, pixel_spacing_mm, noise_rng):
        if noise_rng is not None:
            seen[settings.domain] = line_integrals
        return real(line_integrals, settings, pixel_spacing_mm, noise_rng)

    real = simulation.render_domain
    monkeypatch.setattr(simulation, "render_domain", spy)
    geometry = CArmGeometry(rows=64, cols=64, pixel_spacing_mm=0.6)
    simulation.render_view(projector, geometry, seed=4, subject=subject, view=view, clean=False, look=look)
    return seen


def test_only_the_film_looks_clinical_domains_see_the_detail_and_all_three_alike(monkeypatch, phantom_projector):
    film = integrals_per_domain(monkeypatch, phantom_projector, "film")
    np.testing.assert_array_equal(film["sim-low"], film["sim-high"])
    for domain in CLINICAL:
        np.testing.assert_array_equal(film[domain], film["clinical-normal"])  # one anatomy for the three
    assert np.abs(film["clinical-normal"] - film["sim-high"]).max() > 1e-3
    again = integrals_per_domain(monkeypatch, phantom_projector, "film")
    np.testing.assert_array_equal(again["clinical-low"], film["clinical-low"])  # deterministic
    for look in ("radiograph", "legacy"):
        other = integrals_per_domain(monkeypatch, phantom_projector, look)
        for domain in CLINICAL:
            np.testing.assert_array_equal(other[domain], film["sim-high"])


def test_the_fine_anatomy_changes_with_the_subject_and_view_seed(monkeypatch, phantom_projector):
    first = integrals_per_domain(monkeypatch, phantom_projector, "film")["clinical-normal"]
    for subject, view in ((0, 1), (1, 0)):  # same projector and geometry: only the anatomy seed differs
        other = integrals_per_domain(monkeypatch, phantom_projector, "film", subject, view)["clinical-normal"]
        bone = first[..., BONE] > 0.2
        assert np.abs(other[..., BONE] - first[..., BONE])[bone].max() > 1e-4
        np.testing.assert_allclose(other[..., TISSUE], first[..., TISSUE])  # the restored CT itself is the same
