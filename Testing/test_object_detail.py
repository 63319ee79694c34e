"""The film look's clinical domains see the object finer than its CT (object_detail.py): the CT's blur undone by a
bounded restoration and a power-law bone texture, the same anatomy in the three clinical domains of one view."""
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from MedShiftLib.simulator import simulation
from MedShiftLib.simulator.anatomical_variation import AnatomyVariation
from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector, MaterialVolume
from MedShiftLib.simulator.domain_styles import FILM_OBJECT_DETAIL, LOOK_OBJECT_DETAIL
from MedShiftLib.simulator.head_phantom import make_head_phantom
from MedShiftLib.simulator.object_detail import (
    ObjectDetail,
    bone_texture,
    object_line_integrals,
    restore_sharpness,
)
from MedShiftLib.simulator.scan_edges import scan_edges_on_detector
from MedShiftLib.simulator.subjects import varied_ct_volume
from MedShiftLib.simulator.views import seeded_rng
from MedShiftLib.simulator.xray_physics import MATERIALS

TISSUE, BONE = MATERIALS.index("soft_tissue"), MATERIALS.index("cortical_bone")
CLINICAL = ("clinical-low", "clinical-normal", "clinical-exposure")
# The film look's object detail with the bone texture it had until issue 27's eighth round (it adds none since).
TEXTURED_FILM_DETAIL = replace(FILM_OBJECT_DETAIL, texture_psd=3e-5)


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


@pytest.mark.parametrize("magnification", [1.0, 1.5])
def test_the_texture_has_the_psd_asked_for_at_the_object(magnification):
    """An object period L projects to L M on the detector: the field's detector PSD, taken back to the object
    (S_obj(M f) = S_det(f) / M^2 at f M cycles/mm), is texture_psd (f / 1 c/mm)^-beta in amplitude, not only slope."""
    detail = ObjectDetail(max_gain=4.0, texture_beta=3.4, texture_psd=1e-3)
    size, pitch = 256, 0.15
    field = bone_texture((size, size), pitch, magnification, (8.0, 8.0), (10.0, 10.0), detail,
                         np.random.default_rng(5))
    detector_psd = np.abs(np.fft.fft2(field)) ** 2 * pitch ** 2 / size ** 2  # periodogram, mm^2 on the detector
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    ring = np.abs(radius - 0.3) < 0.05  # far above the CT's cut-off (about 0.03 cycles/px): the texture in full
    object_cycles_per_mm = radius[ring] * magnification / pitch
    object_psd = detector_psd[ring] / magnification ** 2
    ratio = object_psd / (detail.texture_psd * object_cycles_per_mm ** -detail.texture_beta)
    assert ratio.mean() == pytest.approx(1.0, rel=0.2)


@pytest.mark.parametrize("bad", [dict(texture_beta=2.0), dict(texture_beta=1.5), dict(texture_psd=-1e-5),
                                 dict(max_gain=-1.0), dict(psf_fwhm_voxels=0.0), dict(slice_fwhm=-1.0),
                                 dict(texture_psd=float("nan"))])
def test_object_detail_refuses_values_that_make_no_texture_or_blur(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ObjectDetail(**bad)


def test_an_exact_volume_gets_the_texture_but_no_restoration_and_keeps_its_dtype():
    """A procedural phantom has no reconstruction blur: restoring one would ring at its edges (35 % at a step)."""
    step = np.zeros((64, 96, len(MATERIALS)), np.float32)
    step[:, 48:, TISSUE] = 10.0
    step[:, 48:, BONE] = 1.0
    detail = replace(FILM_OBJECT_DETAIL, texture_psd=0.0)
    args = ((1.0, 1.0, 1.5), 1.5, 0.6, detail, np.random.default_rng(0))
    exact = object_line_integrals(step, *args, reconstructed=False)
    ct = object_line_integrals(step, *args, reconstructed=True)
    assert exact.dtype == np.float32 and ct.dtype == np.float32
    np.testing.assert_array_equal(exact, step)
    assert ct[..., TISSUE].max() > 10.5  # the CT's restoration rings at an edge it did not blur
    textured = object_line_integrals(step, *args[:3], TEXTURED_FILM_DETAIL, np.random.default_rng(0),
                                     reconstructed=False)
    np.testing.assert_array_equal(textured[..., TISSUE], step[..., TISSUE])
    assert np.abs(textured[..., BONE] - step[..., BONE])[:, 48:].max() > 1e-3


@pytest.fixture(scope="module")
def phantom_projector():
    return ConeBeamProjector(make_head_phantom(np.random.default_rng(0), grid_size=48))


def integrals_per_domain(monkeypatch, projector, look: str, subject: int = 0, view: int = 0,
                         geometry: CArmGeometry = CArmGeometry(rows=64, cols=64, pixel_spacing_mm=0.6)) -> dict:
    """The line integrals render_view gives each domain (noisy rendering); "anatomy": the anatomy generator's state."""
    seen = {}
    real_detail = simulation.view_object_integrals

    def detail_spy(*args, **kwargs):
        seen["anatomy"] = args[4].bit_generator.state
        return real_detail(*args, **kwargs)

    monkeypatch.setattr(simulation, "view_object_integrals", detail_spy)

    def spy(line_integrals, settings, pixel_spacing_mm, noise_rng):
        if noise_rng is not None:
            seen[settings.domain] = line_integrals
        return real(line_integrals, settings, pixel_spacing_mm, noise_rng)

    real = simulation.render_domain
    monkeypatch.setattr(simulation, "render_domain", spy)
    simulation.render_view(projector, geometry, seed=4, subject=subject, view=view, clean=False, look=look)
    return seen


@pytest.fixture
def textured_film_look(monkeypatch):
    """The film look with the bone texture it had until issue 27's eighth round (it adds none since): the texture's
    path through render_view stays tested."""
    monkeypatch.setitem(LOOK_OBJECT_DETAIL, "film", TEXTURED_FILM_DETAIL)


def test_only_the_film_looks_clinical_domains_see_the_detail_and_all_three_alike(monkeypatch, phantom_projector,
                                                                                textured_film_look):
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


def test_the_fine_anatomy_changes_with_the_subject_and_view_seed(monkeypatch, phantom_projector, textured_film_look):
    first = integrals_per_domain(monkeypatch, phantom_projector, "film")["clinical-normal"]
    for subject, view in ((0, 1), (1, 0)):  # same projector and geometry: only the anatomy seed differs
        other = integrals_per_domain(monkeypatch, phantom_projector, "film", subject, view)["clinical-normal"]
        bone = first[..., BONE] > 0.2
        assert np.abs(other[..., BONE] - first[..., BONE])[bone].max() > 1e-4
        np.testing.assert_allclose(other[..., TISSUE], first[..., TISSUE])  # the restored CT itself is the same


def test_the_anatomy_seed_is_its_own_not_the_pixel_pitch_draws(monkeypatch, phantom_projector):
    """One purpose, one key: views.py draws a view's pitch from seeded_rng(seed, subject, view, 3)."""
    seen = integrals_per_domain(monkeypatch, phantom_projector, "film", subject=2, view=1)
    anatomy = np.random.default_rng()
    anatomy.bit_generator.state = seen["anatomy"]
    assert anatomy.standard_normal() != seeded_rng(4, 2, 1, 3).standard_normal()


def test_a_phantoms_clinical_integrals_are_textured_only_a_cts_restored(monkeypatch, phantom_projector):
    untextured = integrals_per_domain(monkeypatch, phantom_projector, "film")  # the film look as committed
    np.testing.assert_array_equal(untextured["clinical-normal"], untextured["sim-high"])
    monkeypatch.setitem(LOOK_OBJECT_DETAIL, "film", TEXTURED_FILM_DETAIL)
    phantom = integrals_per_domain(monkeypatch, phantom_projector, "film")
    assert phantom["clinical-normal"].dtype == np.float32
    np.testing.assert_array_equal(phantom["clinical-normal"][..., TISSUE], phantom["sim-high"][..., TISSUE])
    assert np.abs(phantom["clinical-normal"][..., BONE] - phantom["sim-high"][..., BONE]).max() > 1e-3
    as_ct = ConeBeamProjector(replace(phantom_projector.volume, reconstructed=True))
    ct = integrals_per_domain(monkeypatch, as_ct, "film")
    assert np.abs(ct["clinical-normal"][..., TISSUE] - ct["sim-high"][..., TISSUE]).max() > 1e-2


def lateral_tissue_profiles(monkeypatch, volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Down the middle column of a lateral view (rows along z) at 0.9 mm: the soft tissue's raw (sim-high) and
    clinical-normal line integrals of the film look, and the raw ones restored everywhere (no scan edges)."""
    geometry = CArmGeometry(lao_rao_deg=90.0, rows=96, cols=96, pixel_spacing_mm=0.9)
    seen = integrals_per_domain(monkeypatch, ConeBeamProjector(volume), "film", geometry=geometry)
    everywhere = object_line_integrals(seen["sim-high"], volume.spacing_mm, geometry.magnification, 0.9,
                                       FILM_OBJECT_DETAIL, np.random.default_rng(0))
    return seen["sim-high"][:, 48, TISSUE], seen["clinical-normal"][:, 48, TISSUE], everywhere[:, 48, TISSUE]


def test_a_cts_own_cut_is_not_restored_but_its_blurred_edges_are(monkeypatch):
    """A CT cut mid-anatomy by its last slice (Cranium's flat cut at the teeth) projects to a step its blur never
    made: restored, it would overshoot; the restoration keeps a few blur sigmas away from it (scan_edges.py)."""
    n = 40
    block = np.zeros((n + 8, n, n), np.float32)  # soft tissue from slice 10 on, on past the volume's last slice
    block[10:, 8:32, 8:32] = 1.0
    densities = np.zeros((len(MATERIALS), n, n, n), np.float32)
    densities[TISSUE] = ndimage.gaussian_filter(block, (1.0 / 2.355, 1.2 / 2.355, 1.2 / 2.355))[:n]  # the CT's blur
    volume = MaterialVolume(densities, MATERIALS, (1.0, 1.0, 1.0), (-(n - 1) / 2,) * 3, reconstructed=True)
    raw, clinical, everywhere = lateral_tissue_profiles(monkeypatch, volume)
    plateau = raw[48]
    cut, inner = slice(0, 48), slice(48, 96)  # the cut (the last slice, superior) is at the top, the blurred edge below
    assert everywhere[cut].max() > 1.1 * plateau  # restored everywhere, the cut rings
    assert clinical[cut].max() < 1.03 * plateau
    assert np.abs(np.diff(clinical[inner])).max() > 1.2 * np.abs(np.diff(raw[inner])).max()  # still sharpened
    np.testing.assert_array_equal(clinical[inner], everywhere[inner].astype(np.float32))  # away from the cut: as before


def test_a_bone_cut_inside_the_skins_outline_is_spared_in_a_tilted_view():
    """A bone rod in soft tissue, both cut by the CT's last slice, seen laterally with 30 deg cranial tilt: the rod's
    cut end projects far from the skin's outline, so the bone's own outline on the face must be marked too."""
    n = 48
    tissue, bone = np.zeros((n + 8, n, n), np.float32), np.zeros((n + 8, n, n), np.float32)
    tissue[6:, 6:42, 6:42] = 1.0
    zz, yy, xx = np.mgrid[:n + 8, :n, :n]
    rod = ((yy - 24) ** 2 + (xx - 24) ** 2 <= 9) & (zz >= 14)
    bone[rod], tissue[rod] = 1.8, 0.0
    densities = np.zeros((len(MATERIALS), n, n, n), np.float32)
    for material, block in ((TISSUE, tissue), (BONE, bone)):
        densities[material] = ndimage.gaussian_filter(block, (1.0 / 2.355, 1.2 / 2.355, 1.2 / 2.355))[:n]
    volume = MaterialVolume(densities, MATERIALS, (1.0, 1.0, 1.0), (-(n - 1) / 2,) * 3, reconstructed=True)
    geometry = CArmGeometry(lao_rao_deg=90.0, cranial_caudal_deg=30.0, rows=128, cols=128, pixel_spacing_mm=0.9)
    raw = ConeBeamProjector(volume).project(geometry)
    detail = replace(FILM_OBJECT_DETAIL, texture_psd=0.0)
    spared, everywhere = (object_line_integrals(raw, volume.spacing_mm, geometry.magnification, 0.9, detail,
                                                np.random.default_rng(0), True, edges)
                          for edges in (scan_edges_on_detector(volume, geometry), None))
    column = raw[..., BONE].max(axis=0).argmax()
    cut = slice(0, 64)  # the rod's cut end (superior, the top rows)
    plateau = np.median(raw[:, column, BONE][raw[:, column, BONE] > 0.5 * raw[:, column, BONE].max()])
    assert spared[cut, column, BONE].max() < everywhere[cut, column, BONE].max() - 0.02 * plateau


def test_a_subject_smaller_than_its_ct_keeps_the_restoration_off_the_cts_cut(monkeypatch):
    """Varied smaller (anatomical_variation), the CT's last slice falls inside the subject's grid, air above it."""
    n = 40
    hounsfield = np.full((n, n, n), -1000.0, np.float32)
    hounsfield[10:, 8:32, 8:32] = 0.0  # cut by the last slice
    volume = varied_ct_volume(hounsfield, (1.0, 1.0, 1.0), AnatomyVariation(head_scale=0.9))
    assert not volume.densities[:, -1].any() and len(volume.scan_edge_mm) > 0  # the cut is inside, not on a face
    raw, clinical, everywhere = lateral_tissue_profiles(monkeypatch, volume)
    plateau, cut = raw[48], slice(0, 40)
    assert everywhere[cut].max() > 1.1 * plateau
    assert clinical[cut].max() < 1.03 * plateau
    # turned and deformed too, the CT's cut is found where the subject's anatomy ends (within a voxel)
    deformed = varied_ct_volume(hounsfield, (1.0, 1.0, 1.0), AnatomyVariation(
        head_scale=0.9, rotation_deg=(5.0, 3.0, 4.0), deformation_mm=3.0, deformation_seed=1))
    voxels = np.rint(deformed.scan_edge_mm[:, ::-1] + (n - 1) / 2).astype(int)
    near = ndimage.binary_dilation(deformed.densities.any(axis=0), iterations=1)
    assert len(voxels) > 20 and near[tuple(voxels.T)].all()
