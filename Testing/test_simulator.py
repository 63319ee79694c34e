"""Five-domain skull X-ray simulator: alignment, dose-dependent noise, noise texture, seeds, CT input."""
import csv
import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from MedShiftLib.errors import DomainError, MedShiftError
from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector
from MedShiftLib.simulator.ct_volume import CTVolumeError, hounsfield_to_density, read_ct_volume
from MedShiftLib.simulator.domain_rendering import draw_domain_settings, render_domain
from MedShiftLib.simulator.domain_styles import domain_style
from MedShiftLib.simulator.domains import SIMULATOR_DOMAINS
from MedShiftLib.simulator.head_phantom import make_head_phantom
from MedShiftLib.simulator.simulation import image_name, render_view, simulate_dataset
from MedShiftLib.simulator.xray_physics import MATERIALS, detector_response, polychromatic_transmission, tube_spectrum

SIZE = 96


@pytest.fixture(scope="module")
def phantom():
    return make_head_phantom(np.random.default_rng(5), grid_size=80)


@pytest.fixture(scope="module")
def line_integrals(phantom):
    geometry = CArmGeometry(12.0, 6.0, rows=SIZE, cols=SIZE, pixel_spacing_mm=320.0 / SIZE)
    return ConeBeamProjector(phantom).project(geometry)


def test_domain_names_and_order():
    assert SIMULATOR_DOMAINS == ("sim-low", "sim-high", "clinical-low", "clinical-normal", "clinical-exposure")
    with pytest.raises(DomainError, match="sim-low, sim-high"):
        draw_domain_settings("real", np.random.default_rng(0))


def test_phantom_has_bone_teeth_and_air_and_varies_by_seed(phantom):
    soft, bone, enamel = (phantom.densities[MATERIALS.index(m)] for m in MATERIALS)
    assert phantom.shape_zyx[0] == 80  # grid size is the longest side
    assert bone.max() > 1.8 and enamel.max() > 2.5 and soft.max() > 1.0
    total = phantom.densities.sum(0)
    assert (total == 0).mean() > 0.1  # air around the head and in the sinuses
    same = make_head_phantom(np.random.default_rng(5), grid_size=80)
    other = make_head_phantom(np.random.default_rng(6), grid_size=80)
    np.testing.assert_array_equal(same.densities, phantom.densities)
    assert np.abs(other.densities - phantom.densities).mean() > 0.01


def test_polychromatic_beam_hardening():
    response = detector_response(tube_spectrum(80, 0.3))
    thickness = np.array([1.0, 5.0, 15.0])  # g/cm^2 of soft tissue
    integrals = np.zeros((3, len(MATERIALS)))
    integrals[:, 0] = thickness
    effective_mu = -np.log(polychromatic_transmission(integrals, response)) / thickness
    assert effective_mu[0] > effective_mu[1] > effective_mu[2]  # the beam hardens with depth


def _renderings(line_integrals, doses=None, look="film"):
    out = {}
    for i, domain in enumerate(SIMULATOR_DOMAINS):
        settings = draw_domain_settings(domain, np.random.default_rng(i), look)
        if doses and domain in doses:
            settings = dataclasses.replace(settings, dose_nGy=doses[domain])
        noisy = render_domain(line_integrals, settings, 320.0 / SIZE, np.random.default_rng(100 + i)).image
        clean = render_domain(line_integrals, settings, 320.0 / SIZE, None).image
        out[domain] = (noisy, clean)
    return out


def test_images_are_display_range_with_bone_bright_and_air_dark(line_integrals):
    bone_path = line_integrals[..., 1]
    bony, air = bone_path > np.percentile(bone_path, 95), line_integrals.sum(-1) == 0
    assert air.sum() > 50
    for domain, (noisy, clean) in _renderings(line_integrals).items():
        assert noisy.shape == (SIZE, SIZE) and noisy.min() >= 0 and noisy.max() <= 1
        assert clean[bony].mean() > clean[air].mean() + 0.3, domain


def test_domains_are_aligned(line_integrals):
    clean = {d: c for d, (_, c) in _renderings(line_integrals).items()}
    gradients = {d: ndimage.gaussian_gradient_magnitude(im.astype(float), 1.5) for d, im in clean.items()}
    reference = gradients["sim-high"]
    for domain in SIMULATOR_DOMAINS:
        aligned = np.corrcoef(reference.ravel(), gradients[domain].ravel())[0, 1]
        shifted = np.corrcoef(reference.ravel(), np.roll(gradients[domain], 6, axis=1).ravel())[0, 1]
        assert aligned > 0.6, domain
        assert aligned > shifted + 0.15, domain


def _flat_region(clean):
    """Pixels inside the head where the clean image hardly changes (brain behind the vault)."""
    gradient = ndimage.gaussian_gradient_magnitude(clean.astype(float), 1.0)
    inside = ndimage.binary_erosion(clean > 0.3, iterations=6)
    return inside & (gradient < np.percentile(gradient[inside], 40))


def _mid_range_doses(look: str) -> dict[str, float]:
    """Each clinical domain's mid-range dose in a look (the geometric mean of its dose range), read from its style so
    that the test follows the look's doses."""
    return {d: float(np.sqrt(np.prod(domain_style(d, look).dose_range_nGy)))
            for d in ("clinical-low", "clinical-normal", "clinical-exposure")}


@pytest.mark.parametrize("look", ["radiograph", "film"])
def test_noise_falls_as_dose_rises(line_integrals, look):
    doses = _mid_range_doses(look)
    renders = _renderings(line_integrals, doses, look)
    flat = _flat_region(renders["clinical-normal"][1])
    assert flat.sum() > 200
    variance = {d: float(np.var((renders[d][0] - renders[d][1])[flat])) for d in doses}
    assert variance["clinical-low"] > 1.5 * variance["clinical-normal"]
    assert variance["clinical-normal"] > 1.5 * variance["clinical-exposure"]
    # the simulator at high dose is noise-free; at low dose it has only weak noise (weaker than the radiograph
    # look's fluoroscopy, whose 1-px blur and 0.308 mm element keep it noisy at these 3.3 mm pixels)
    assert np.array_equal(*renders["sim-high"])
    assert 0 < np.var(renders["sim-low"][0] - renders["sim-low"][1])
    if look == "radiograph":
        assert np.var(renders["sim-low"][0] - renders["sim-low"][1]) < variance["clinical-low"]


def _high_to_low_frequency_power(noise):
    spectrum = np.abs(np.fft.fft2(noise - noise.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(noise.shape[0]), np.fft.fftfreq(noise.shape[1]), indexing="ij"))
    return spectrum[f > 0.35].mean() / spectrum[(f > 0.02) & (f < 0.12)].mean()


def test_clinical_noise_is_correlated_and_sim_noise_is_white(line_integrals):
    # the radiograph look blurs the noise by 1 px at every pitch; the film look by its 0.1-0.2 mm PSF, a sixteenth of
    # these 3.3 mm pixels, so its detector noise is white here, as a binned detector's (Testing/test_film_look.py)
    renders = _renderings(line_integrals, look="radiograph")
    crop = slice(SIZE // 4, 3 * SIZE // 4)
    ratio = {d: _high_to_low_frequency_power((n - c)[crop, crop]) for d, (n, c) in renders.items()
             if not np.array_equal(n, c)}
    assert 0.5 < ratio["sim-low"] < 2.0  # white: flat noise power spectrum
    for domain in ("clinical-low", "clinical-normal", "clinical-exposure"):
        assert ratio[domain] < 0.25 * ratio["sim-low"], domain


def test_render_view_same_geometry_in_every_domain(phantom):
    geometry = CArmGeometry(-20.0, 10.0, rows=48, cols=64, pixel_spacing_mm=5.0)
    view = render_view(ConeBeamProjector(phantom), geometry, seed=1, subject=0, view=0)
    assert set(view.images) == set(SIMULATOR_DOMAINS) == set(view.clean_images)
    assert all(im.shape == (48, 64) for im in view.images.values())


def _read_all(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dataset_is_reproducible_and_subjects_do_not_depend_on_the_count(tmp_path):
    kwargs = dict(views_per_subject=2, size=32, progress=False, phantom_grid=48)
    a = _read_all(simulate_dataset(tmp_path / "a", subjects=2, seed=3, clean=True, **kwargs))
    b = _read_all(simulate_dataset(tmp_path / "b", subjects=2, seed=3, clean=True, **kwargs))
    one = _read_all(simulate_dataset(tmp_path / "c", subjects=1, seed=3, **kwargs))
    other = _read_all(simulate_dataset(tmp_path / "d", subjects=1, seed=4, **kwargs))
    assert a == b
    assert len([k for k in a if k.endswith(".png")]) == 2 * 2 * 5 * 2  # subjects x views x domains x clean
    for domain in SIMULATOR_DOMAINS:
        name = f"{domain}/{image_name(0, 1)}"
        assert one[name] == a[name]
        assert other[name] != a[name]
    rows = list(csv.DictReader((tmp_path / "a" / "manifest.csv").read_text().splitlines()))
    assert len(rows) == 2 * 2 * 5
    assert {"file", "domain", "subject", "view", "lao_rao_deg", "cranial_caudal_deg", "dose_nGy", "kvp",
            "seed"} <= set(rows[0])
    for row in rows:
        assert (tmp_path / "a" / row["file"]).exists() and (tmp_path / "a" / row["clean_file"]).exists()
        assert -40 <= float(row["lao_rao_deg"]) <= 40 and -40 <= float(row["cranial_caudal_deg"]) <= 40
        assert (row["dose_nGy"] == "") == row["domain"].startswith("sim")
    views = {(r["subject"], r["view"]): (r["lao_rao_deg"], r["cranial_caudal_deg"]) for r in rows}
    assert len(set(views.values())) == 4
    from PIL import Image
    with Image.open(tmp_path / "a" / "clinical-normal" / image_name(1, 0)) as image:
        assert image.mode == "I;16" and image.size == (32, 32)


def _write_hu_volume(path, hu, spacing=(1.5, 1.5, 2.0)):
    import SimpleITK as sitk
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))


def test_ct_volume_input(tmp_path):
    z, y, x = np.mgrid[:40, :48, :48]
    hu = np.full((40, 48, 48), -1000.0)
    hu[(x - 24) ** 2 + (y - 24) ** 2 < 18 ** 2] = 40.0  # soft-tissue cylinder
    hu[(x - 24) ** 2 + (y - 24) ** 2 + ((z - 20) * 4 / 3) ** 2 < 8 ** 2] = 1000.0  # bone ball
    _write_hu_volume(tmp_path / "ct.nrrd", hu)
    volume = read_ct_volume(tmp_path / "ct.nrrd")
    assert volume.spacing_mm == (1.5, 1.5, 2.0) and volume.shape_zyx == (40, 48, 48)
    soft, bone = volume.densities[MATERIALS.index("soft_tissue")], volume.densities[MATERIALS.index("cortical_bone")]
    assert bone[20, 24, 24] == pytest.approx(float(hounsfield_to_density(np.array(1000.0))), rel=1e-5)
    assert soft[20, 24, 10] == pytest.approx(1.03 + 0.0005886 * 40, rel=1e-5) and bone[20, 24, 10] == 0
    assert volume.densities[:, 20, 2, 2].sum() == 0  # air
    out = simulate_dataset(tmp_path / "sim", subjects=1, views_per_subject=1, size=32, seed=0,
                           ct_path=str(tmp_path / "ct.nrrd"), progress=False)
    from PIL import Image
    image = np.asarray(Image.open(out / "clinical-exposure" / image_name(0, 0)), dtype=float)
    assert image[12:20, 12:20].mean() > image[:3, :3].mean() + 10000  # bone bright, air dark
    assert "ct.nrrd" in (out / "manifest.csv").read_text()


def test_bad_ct_input_is_refused_with_a_clear_error(tmp_path):
    _write_hu_volume(tmp_path / "flat.nrrd", np.zeros((1, 20, 20)) - 500)  # a 2-D slice as 3-D? size 1
    (tmp_path / "junk.nrrd").write_text("not an image")
    import SimpleITK as sitk
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 20), np.int16)), str(tmp_path / "slice.nrrd"))
    for path, message in [(tmp_path / "missing.nrrd", "does not exist"), (tmp_path / "junk.nrrd", "cannot read"),
                          (tmp_path / "slice.nrrd", "3-D"), (tmp_path / "flat.nrrd", "3-D"),
                          (tmp_path, "no DICOM series")]:
        with pytest.raises(CTVolumeError, match=message) as error:
            read_ct_volume(path)
        assert isinstance(error.value, MedShiftError)
