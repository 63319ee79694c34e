"""Real-CT subjects: non-patient objects removed, anatomical variation, several CTs, views and detector options."""
import csv

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from MedShiftLib.cli import main
from MedShiftLib.simulator.anatomical_variation import (
    NO_VARIATION,
    AnatomyVariation,
    draw_variation,
    vary_hounsfield,
)
from MedShiftLib.simulator.body_mask import remove_non_patient
from MedShiftLib.simulator.cone_beam_projector import CArmGeometry
from MedShiftLib.simulator.simulation import image_name, simulate_dataset, view_angles
from MedShiftLib.simulator.subjects import SubjectSource
from MedShiftLib.simulator.views import SimulationOptionError, ViewOptions, draw_view

SPACING = (2.0, 2.0, 2.0)


def _head_ct(holder: bool = True, bridge: bool = False) -> np.ndarray:
    """A 40^3 HU volume: a soft-tissue head with a bone shell and an air sinus, a holder arc behind it."""
    z, y, x = np.mgrid[:40, :40, :40].astype(float)
    r = np.sqrt(((x - 20) / 12) ** 2 + ((y - 18) / 14) ** 2 + ((z - 20) / 13) ** 2)
    hu = np.full((40, 40, 40), -1000.0)
    hu[r < 1.0] = 40.0
    hu[(r >= 0.8) & (r < 0.95)] = 1200.0
    hu[(np.abs(x - 20) < 2) & (np.abs(y - 8) < 2) & (np.abs(z - 20) < 3)] = -1000.0  # sinus, inside the head
    if holder:  # a 2-voxel plate curving behind the head (posterior = high y), separated by air
        arc = np.abs(np.sqrt((x - 20) ** 2 + (y - 18) ** 2) - 19.0) < 1.0
        hu[arc & (y > 26)] = 300.0
    if bridge:  # a thin strut joining the plate to the head
        hu[18:20, 31:37, 19:21] = 200.0
    return hu


@pytest.mark.parametrize("bridge", [False, True])
def test_holder_and_struts_are_removed_and_the_patient_kept(bridge):
    hu = _head_ct(bridge=bridge)
    clean = remove_non_patient(hu, SPACING)
    patient = _head_ct(holder=False)
    holder = (hu > -400) & (patient <= -400)
    holder_far = holder & (ndimage.distance_transform_edt(patient <= -400) > 2)
    assert holder.sum() > 300 and (clean[holder_far] == -1000).all()
    assert np.array_equal(clean[patient > -400], hu[patient > -400])  # every patient voxel kept
    assert clean[20, 8, 20] == -1000  # the air sinus stays air


def test_variation_makes_different_but_plausible_subjects():
    hu = remove_non_patient(_head_ct(), SPACING)
    subjects = [vary_hounsfield(hu, SPACING, draw_variation(np.random.default_rng(k))) for k in range(3)]
    bone, tissue = (hu > 350).sum(), (hu > -400).sum()
    for varied in subjects:
        assert np.abs(varied - hu).mean() > 5  # a different subject
        assert 0.7 * bone < (varied > 350).sum() < 1.4 * bone  # skull size within +-8 % per axis
        assert 0.7 * tissue < (varied > -400).sum() < 1.4 * tissue
        assert ndimage.label(varied > 350)[1] <= 3  # the skull stays one shell (no tearing)
        centre = np.array(ndimage.center_of_mass(varied > -400)) - np.array(ndimage.center_of_mass(hu > -400))
        assert np.abs(centre).max() * SPACING[0] < 8  # pose and deformation move it by millimetres
    assert np.abs(subjects[0] - subjects[1]).mean() > 5
    again = vary_hounsfield(hu, SPACING, draw_variation(np.random.default_rng(0)))
    assert np.array_equal(again, subjects[0])
    assert np.array_equal(vary_hounsfield(hu, SPACING, NO_VARIATION), hu.astype(np.float32))


def _dense_variation(hu, spacing, variation):
    """The variation as first written: 3-D spline zoom, affine grid plus the full-resolution displacement,
    one grid_sample."""
    import torch
    import torch.nn.functional as F

    from MedShiftLib.simulator.anatomical_variation import _rotation

    shape = hu.shape
    extent = np.asarray(shape, dtype=float) * np.asarray(spacing, dtype=float)[::-1]
    coarse = tuple(int(max(4, np.ceil(e / variation.control_spacing_mm) + 1)) for e in extent)
    middle = tuple(max(c, -(-n // 4)) for c, n in zip(coarse, shape))
    control = np.random.default_rng(variation.deformation_seed).normal(0.0, variation.deformation_mm, (3,) + coarse)
    lattice = np.stack([ndimage.zoom(c, [m / n for m, n in zip(middle, coarse)], order=3, mode="nearest",
                                     grid_mode=False) for c in control])
    half = (np.asarray(shape[::-1], dtype=float) - 1) / 2 * np.asarray(spacing, dtype=float)
    inverse = _rotation(variation.rotation_deg).T / (variation.head_scale * np.asarray(variation.axis_scale))[None, :]
    theta = np.concatenate([(inverse * half[None, :]) / half[:, None], np.zeros((3, 1))], axis=1)
    grid = F.affine_grid(torch.as_tensor(theta[None], dtype=torch.float32), [1, 1, *shape], align_corners=True)[0]
    lattice = torch.from_numpy(lattice.astype(np.float32))
    field = F.interpolate(lattice[None], size=shape, mode="trilinear", align_corners=True)[0]
    grid = grid + field.permute(1, 2, 3, 0) / torch.as_tensor(half, dtype=torch.float32)
    volume = torch.from_numpy(hu.astype(np.float32) + 1000.0)[None, None]
    return F.grid_sample(volume, grid[None], align_corners=True)[0, 0].numpy() - 1000.0


def test_variation_equals_the_dense_resampling_and_leaves_air_exactly_air():
    hu = np.full((60, 56, 72), -1000.0)  # the head in a corner, with air around it to skip
    hu[:40, 16:, 32:] = remove_non_patient(_head_ct(holder=False), SPACING)
    for k in range(3):
        variation = draw_variation(np.random.default_rng(k))
        dense, varied = _dense_variation(hu, SPACING, variation), vary_hounsfield(hu, SPACING, variation, slab=2)
        assert np.abs(varied - dense).max() < 0.05  # HU: float32 rounding of the same map
        assert (varied[dense == -1000.0] == -1000.0).all() and (varied == -1000.0).mean() > 0.5
        assert np.array_equal(vary_hounsfield(hu, SPACING, variation), varied)


def test_head_scale_scales_the_head_volume():
    hu = _head_ct(holder=False)
    bigger = vary_hounsfield(hu, SPACING, AnatomyVariation(head_scale=1.1))
    assert (bigger > -400).sum() / (hu > -400).sum() == pytest.approx(1.1 ** 3, rel=0.05)


def _write_ct(path, hu):
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path))
    return path


def test_subjects_cycle_through_the_cts_and_mix_in_phantoms(tmp_path):
    a = _write_ct(tmp_path / "a.nrrd", _head_ct())
    b = _write_ct(tmp_path / "b.nrrd", _head_ct(holder=False)[:, :, ::-1])
    source = SubjectSource(seed=0, phantom_grid=32, ct_paths=(str(a), str(b)), ct_grid=40)
    names = [source.subject(k).source for k in range(4)]
    assert names == ["a.nrrd", "b.nrrd", "a.nrrd", "b.nrrd"]
    first, third = source.subject(0).volume.densities, source.subject(2).volume.densities
    assert np.abs(first - third).mean() > 1e-3  # the same CT, two different subjects
    mixed = SubjectSource(seed=0, phantom_grid=32, ct_paths=(str(a),), ct_grid=40, phantoms_fraction=0.5)
    kinds = {mixed.is_phantom(k) for k in range(20)}
    assert kinds == {True, False}
    with pytest.raises(SimulationOptionError, match="0..1"):
        SubjectSource(seed=0, phantom_grid=32, ct_paths=(str(a),), phantoms_fraction=1.5)


def test_standard_views_and_the_c_arm_range():
    for view in range(30):
        kind, lao, cran = draw_view(3, 0, view, "pa")
        assert kind == "pa" and abs(lao) <= 5 and -15 <= cran <= 0
        kind, lao, cran = draw_view(3, 0, view, "ap")
        assert abs(lao) >= 175 and abs(cran) <= 5
        kind, lao, cran = draw_view(3, 0, view, "lateral")
        assert 85 <= abs(lao) <= 95 and abs(cran) <= 5
        beam, _, _ = CArmGeometry(lao, cran).frame()
        assert abs(beam[0]) > 0.99  # the beam crosses the head from side to side
        assert draw_view(3, 0, view, "c-arm")[1:] == view_angles(3, 0, view)
    assert {draw_view(3, 0, view, "mixed")[0] for view in range(40)} == {"c-arm", "pa", "ap", "lateral"}
    with pytest.raises(SimulationOptionError, match="unknown view kind"):
        draw_view(0, 0, 0, "oblique")
    with pytest.raises(SimulationOptionError, match="shorter"):
        ViewOptions(sid_mm=1000, sod_mm=1200)


def test_data_set_records_view_kind_pixel_pitch_geometry_and_subject(tmp_path):
    from PIL import Image
    ct = _write_ct(tmp_path / "head.nrrd", _head_ct())
    out = simulate_dataset(tmp_path / "data", subjects=2, views_per_subject=3, size=24, seed=1, ct_path=[str(ct)],
                           progress=False, views=ViewOptions(kind="lateral", sid_mm=1100, sod_mm=1000),
                           pixel_spacing_mm=[0.5, 1.0])
    rows = list(csv.DictReader((out / "manifest.csv").read_text().splitlines()))
    assert {r["view_kind"] for r in rows} == {"lateral"} and {r["sid_mm"] for r in rows} == {"1100"}
    assert {r["pixel_spacing_mm"] for r in rows} == {"0.5", "1"} and {r["phantom"] for r in rows} == {"head.nrrd"}
    assert len({r["head_scale"] for r in rows}) == 2  # two subjects, two head sizes
    row = next(r for r in rows if r["domain"] == "clinical-normal")
    with Image.open(out / row["file"]) as image:
        assert image.info["dpi"][0] == pytest.approx(25.4 / float(row["pixel_spacing_mm"]), rel=1e-3)
    assert (out / "clinical-normal" / image_name(1, 2)).is_file()


def test_simulate_command_geometry_options(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "d"), "--subjects", "1", "--views-per-subject", "1", "--size", "16",
                 "--fov-mm", "200", "--views", "pa", "--quiet"]) == 0
    rows = list(csv.DictReader((tmp_path / "d" / "manifest.csv").read_text().splitlines()))
    assert {r["pixel_spacing_mm"] for r in rows} == {"12.5"} and {r["view_kind"] for r in rows} == {"pa"}
    assert main(["simulate", str(tmp_path / "e"), "--sid-mm", "700", "--quiet"]) == 2
    assert "shorter than the source-image distance" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", str(tmp_path / "f"), "--fov-mm", "200", "--pixel-pitch-mm", "0.5"])
    assert exit_.value.code == 2
    preview = tmp_path / "p.png"
    assert main(["simulate", "x", "--subjects", "0", "--size", "16", "--preview", str(preview), "--views", "lateral",
                 "--lao-rao", "90"]) == 0 and preview.is_file()
    assert main(["simulate", "x", "--subjects", "0", "--size", "16", "--preview", str(preview), "--lao-rao", "90"]) == 2


def test_demo_renders_the_shipped_head_ct_unless_told_otherwise(tmp_path):
    from helpers import write_tiny_checkpoint
    from PIL import Image
    model = write_tiny_checkpoint(tmp_path / "m.safetensors", domains=("sim-low", "clinical-normal"), resolution=32)
    inputs = {}
    for name, extra in (("shipped", []), ("phantom", ["--phantom"]),
                        ("other", ["--ct", str(_write_ct(tmp_path / "ct.nrrd", _head_ct()))])):
        assert main(["demo", "--out", str(tmp_path / name), "--model", str(model), *extra]) == 0
        inputs[name] = np.asarray(Image.open(tmp_path / name / "input_sim-low.png"), float)
    assert len({inputs[k].tobytes() for k in inputs}) == 3
    # the shipped head (the Visible Human head) fills the field more than the small synthetic head does
    assert (inputs["shipped"] > 0.2 * 65535).mean() > (inputs["other"] > 0.2 * 65535).mean()
