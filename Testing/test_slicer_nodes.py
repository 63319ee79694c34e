"""Node-level translation on a real MRML scene (PyPI slicer-core), with a tiny random checkpoint."""
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core's MRML scene is not available", allow_module_level=True)

import torch  # noqa: E402

from MedShiftLib.engine.checkpoint import CheckpointInfo, save_checkpoint  # noqa: E402
from MedShiftLib.engine.network import VelocityUNet, config_from_preset  # noqa: E402
from MedShiftLib.engine.ode_solvers import CancelToken  # noqa: E402
from MedShiftLib.errors import CheckpointError, DomainError, InputImageError, MedShiftError, TranslationCancelled  # noqa: E402
from MedShiftLib.io.radiograph import RadiographImage  # noqa: E402
from MedShiftLib.postprocess.contrast_transfer import measure_domain_statistics  # noqa: E402
from MedShiftLib.settings import TranslationSettings  # noqa: E402
from MedShiftSlicer import background_job, ct_projection, node_geometry, node_translation, volume_nodes  # noqa: E402

MEDSHIFT_DIR = Path(__file__).resolve().parents[1] / "MedShift"
SETTINGS = TranslationSettings("a", "c", tau=0.5, steps=2)
# Oblique, flipped geometry: catches any mix-up of rows/columns, RAS/LPS or slice offsets.
ANGLE = np.deg2rad(20)
ROTATION = np.array([[np.cos(ANGLE), -np.sin(ANGLE), 0], [np.sin(ANGLE), np.cos(ANGLE), 0], [0, 0, 1]])
IJK_TO_RAS = np.eye(4)
IJK_TO_RAS[:3, :3] = ROTATION @ np.diag([-1.0, 1.0, 1.0]) @ np.diag([0.3, 0.4, 2.5])
IJK_TO_RAS[:3, 3] = (12.0, -7.5, 30.0)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    model = VelocityUNet(config_from_preset("tiny", 3))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    info = CheckpointInfo(config=model.config, domains=("a", "b", "c"), resolution=32)
    fields = torch.randn(9, 1, 32, 32)
    info.statistics = measure_domain_statistics({d: fields[3 * k:3 * k + 3] * (k + 1)
                                                 for k, d in enumerate(info.domains)})
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", model.state_dict(), info)


def _pixels(frames=1, rows=40, cols=48, seed=1):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:rows, :cols]
    stack = [1500 + 900 * np.sin(xx / (4.0 + k)) * np.cos(yy / 6.0) + rng.normal(0, 30, (rows, cols))
             for k in range(frames)]
    return np.stack(stack).astype(np.uint16)


def _add_volume(name, pixels, ijk_to_ras=IJK_TO_RAS, class_name="vtkMRMLScalarVolumeNode"):
    return slicer.util.addVolumeFromArray(pixels, ijkToRAS=ijk_to_ras, name=name, nodeClassName=class_name)


def _volume_count(scene):
    return scene.GetNumberOfNodesByClass("vtkMRMLVolumeNode")


def test_frame_geometry_is_lps_and_inverts_to_ijk_to_ras():
    g = node_geometry.frame_geometry(IJK_TO_RAS, frame=2)
    assert g["spacing"] == pytest.approx((0.3, 0.4, 2.5))
    origin_ras = IJK_TO_RAS[:3, 3] + 2 * IJK_TO_RAS[:3, 2]
    assert g["origin"] == pytest.approx((-origin_ras[0], -origin_ras[1], origin_ras[2]))
    image = RadiographImage(np.zeros((4, 5)), **g)
    expected = IJK_TO_RAS.copy()
    expected[:3, 3] = origin_ras
    assert np.allclose(node_geometry.ijk_to_ras_of_image(image), expected)


def test_translate_node_makes_a_new_node_on_the_input_grid(scene, model_path):
    pixels = _pixels()
    node = _add_volume("CT_head", pixels)
    before = _volume_count(scene)
    out = node_translation.translate_volume_node(node, SETTINGS, model_path=model_path, device="cpu")
    assert _volume_count(scene) == before + 1
    assert out is not node and out.GetName() == "CT_head a->c tau0.5"
    assert np.allclose(node_geometry.ijk_to_ras_of_node(out), IJK_TO_RAS)
    assert out.GetSpacing() == pytest.approx(node.GetSpacing())
    assert out.GetOrigin() == pytest.approx(node.GetOrigin())
    result = slicer.util.arrayFromVolume(out)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), pixels)  # input untouched
    assert result.shape == pixels.shape and result.dtype == pixels.dtype
    assert np.mean(np.abs(result.astype(float) - pixels)) > 5  # it really translated


def test_output_node_is_reused_and_gets_the_input_window(scene, model_path):
    node = _add_volume("XR", _pixels())
    node.GetDisplayNode().SetAutoWindowLevel(False)
    node.GetDisplayNode().SetWindowLevel(800, 1400)
    target = _add_volume("target", np.zeros((1, 3, 3), np.int16), np.eye(4))
    out = node_translation.translate_volume_node(node, SETTINGS, model_path=model_path, device="cpu",
                                                 output_node=target)
    assert out is target and out.GetName() == "target"
    assert slicer.util.arrayFromVolume(out).shape == (1, 40, 48)
    assert np.allclose(node_geometry.ijk_to_ras_of_node(out), IJK_TO_RAS)
    assert (out.GetDisplayNode().GetWindow(), out.GetDisplayNode().GetLevel()) == pytest.approx((800, 1400))
    with pytest.raises(MedShiftError, match="never overwrites"):
        node_translation.translate_volume_node(node, SETTINGS, model_path=model_path, device="cpu", output_node=node)


def test_every_frame_of_a_cine_is_translated_like_a_single_frame(scene, model_path):
    pixels = _pixels(frames=3)
    cine = _add_volume("cine", pixels)
    every = node_translation.translate_volume_node(cine, SETTINGS, model_path=model_path, device="cpu", frame="all")
    result = slicer.util.arrayFromVolume(every)
    assert result.shape == pixels.shape
    assert np.allclose(node_geometry.ijk_to_ras_of_node(every), IJK_TO_RAS)
    one = node_translation.translate_volume_node(cine, SETTINGS, model_path=model_path, device="cpu", frame=1)
    assert one.GetName() == "cine a->c tau0.5 frame1"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(one)[0], result[1])
    shifted = IJK_TO_RAS.copy()
    shifted[:3, 3] += IJK_TO_RAS[:3, 2]  # the slice's own position
    assert np.allclose(node_geometry.ijk_to_ras_of_node(one), shifted)
    assert not np.array_equal(result[0], result[2])


def test_cancel_mid_run_leaves_no_node(scene, model_path):
    cine = _add_volume("cine", _pixels(frames=3))
    token, seen = CancelToken(), []

    def progress(done, total):
        seen.append((done, total))
        if done == 3:
            token.cancel()

    before = _volume_count(scene), scene.GetNumberOfNodes()
    with pytest.raises(TranslationCancelled):
        node_translation.translate_volume_node(cine, SETTINGS, model_path=model_path, device="cpu", frame="all",
                                           progress=progress, cancel=token)
    assert (_volume_count(scene), scene.GetNumberOfNodes()) == before
    assert seen[-1] == (3, 12)  # 3 frames x 2 legs x 2 steps; stopped right after the cancel


@pytest.mark.parametrize("case, error, match", [
    ("volume", InputImageError, "has 4 slices of 40x48 pixels.*CT projection"),
    ("frame", InputImageError, "frame 7 does not exist"),
    ("domain", DomainError, "unknown domain 'real'; this model knows: a, b, c"),
    ("vector", InputImageError, "Vector to Scalar Volume"),
    ("checkpoint", CheckpointError, "does not exist"),
])
def test_wrong_inputs_give_their_errors_and_no_node(scene, model_path, tmp_path, case, error, match):
    node = _add_volume("in", _pixels(frames=4 if case in ("volume", "frame") else 1))
    kwargs = dict(model_path=model_path, device="cpu")
    settings = SETTINGS
    if case == "frame":
        kwargs["frame"] = 7
    if case == "domain":
        settings = TranslationSettings("real", "a")
    if case == "vector":
        node = _add_volume("rgb", np.zeros((1, 8, 8, 3), np.uint8), class_name="vtkMRMLVectorVolumeNode")
    if case == "checkpoint":
        kwargs["model_path"] = tmp_path / "missing.safetensors"
    before = scene.GetNumberOfNodes()
    with pytest.raises(error, match=match):
        node_translation.translate_volume_node(node, settings, **kwargs)
    assert scene.GetNumberOfNodes() == before


def test_spacing_is_unknown_for_nodes_read_from_png(scene):
    node = _add_volume("png", _pixels())
    assert volume_nodes.spacing_is_known(node)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName("/data/xray.PNG")
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert not volume_nodes.spacing_is_known(node)
    assert volume_nodes.volume_frames(node)[0].metadata["spacing_known"] is False


@pytest.mark.parametrize("dpi, known", [((254, 254), True), ((72, 72), False), (None, False)])
def test_a_node_read_from_tiff_has_a_known_spacing_only_with_physical_resolution_tags(scene, tmp_path, dpi, known):
    from PIL import Image

    Image.fromarray(_pixels()[0].astype(np.uint16)).save(tmp_path / "scan.tif", **({"dpi": dpi} if dpi else {}))
    node = _add_volume("tiff", _pixels())
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "scan.tif"))
    node.SetAndObserveStorageNodeID(storage.GetID())
    assert volume_nodes.spacing_is_known(node) is known
    assert volume_nodes.volume_frames(node)[0].metadata["spacing_known"] is known


def test_frames_of_a_cine_get_their_own_noise(model_path):
    from MedShiftLib.engine.checkpoint import load_checkpoint
    model, info = load_checkpoint(model_path)
    frame = RadiographImage(_pixels()[0])
    noisy = replace(SETTINGS, noise_renewal=1.0)
    first, second = node_translation.translate_frames([frame, frame], model, info, noisy)
    assert not np.array_equal(first.pixels, second.pixels)
    plain = node_translation.translate_frames([frame, frame], model, info, SETTINGS)
    np.testing.assert_array_equal(plain[0].pixels, plain[1].pixels)


def test_the_panels_background_job_adds_what_the_blocking_translation_adds(scene, model_path, tmp_path):
    cine = _add_volume("cine", _pixels(frames=2))
    frames = volume_nodes.volume_frames(cine, "all")
    job = background_job.BackgroundTranslation(frames, SETTINGS, model_path, "cpu", tmp_path / "job")
    proc = subprocess.run([sys.executable, *job.arguments()], cwd=job.working_directory, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    job.read(proc.stdout)
    added = node_translation.add_translation_result(cine, frames, job.result(proc.returncode, crashed=False), "all",
                                                    SETTINGS)
    blocking = node_translation.translate_volume_node(cine, SETTINGS, model_path=model_path, device="cpu", frame="all")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(added), slicer.util.arrayFromVolume(blocking))
    assert added.GetName() == blocking.GetName() == "cine a->c tau0.5"
    np.testing.assert_allclose(node_geometry.ijk_to_ras_of_node(added), IJK_TO_RAS)


def test_a_result_for_an_input_deleted_meanwhile_is_refused_and_adds_nothing(scene, model_path):
    node = _add_volume("xr", _pixels())
    frames = volume_nodes.volume_frames(node)
    scene.RemoveNode(node)
    count = _volume_count(scene)
    with pytest.raises(MedShiftError, match="removed from the scene"):
        node_translation.add_translation_result(node, frames, frames, None, SETTINGS)
    other = _add_volume("xr2", _pixels())
    target = _add_volume("target", np.zeros((1, 3, 3), np.int16))
    scene.RemoveNode(target)
    with pytest.raises(MedShiftError, match="'target' was removed"):
        node_translation.add_translation_result(other, frames, frames, None, SETTINGS, output_node=target)
    assert _volume_count(scene) == count + 1  # only xr2


def test_ct_projection_makes_a_radiograph_node(scene):
    n = 40
    zz, yy, xx = np.mgrid[:n, :n, :n] - (n - 1) / 2
    hu = np.where(xx ** 2 + yy ** 2 + zz ** 2 < 14 ** 2, 0.0, -1000.0)  # water ball
    hu[(np.abs(xx) < 3) & (np.abs(yy) < 3)] = 1500.0  # a bone rod along the head-foot axis
    ct = _add_volume("phantom", hu.astype(np.int16), np.diag([-3.0, -3.0, 3.0, 1.0]))
    before = _volume_count(scene)
    node = ct_projection.project_ct_node(ct, lao_rao_deg=0, cranial_caudal_deg=0, detector_pixels=64,
                                        domain="sim-high", grid_size=48)
    assert _volume_count(scene) == before + 1
    assert node.GetName() == "phantom sim-high LAO+0 CRA+0"
    image = slicer.util.arrayFromVolume(node)
    assert image.shape == (1, 64, 64) and image.dtype == np.uint16
    centre_row = image[0, 32].astype(float)
    assert centre_row[30:34].mean() > centre_row[20:24].mean() > centre_row[2:6].mean()  # bone > water > air
    assert node.GetSpacing()[0] == pytest.approx(320.0 / 64)
    with pytest.raises(InputImageError, match="outside"):
        ct_projection.project_ct_node(ct, lao_rao_deg=60, detector_pixels=64)
    with pytest.raises(InputImageError, match="single slice"):
        ct_projection.project_ct_node(_add_volume("xr", _pixels()), detector_pixels=64)


def test_translate_button_reasons(scene):
    problem = node_translation.translation_input_problem
    radiograph = _add_volume("xr", _pixels())
    cine = _add_volume("cine", _pixels(frames=3))
    assert problem(None, None, "a", "b").startswith("no input volume")
    assert "3 slices" in problem(cine, None, "a", "b")
    assert problem(cine, "all", "a", "b") is None and problem(cine, 2, "a", "b") is None
    assert "frame 3 does not exist" in problem(cine, 3, "a", "b")
    assert "both 'a'" in problem(radiograph, None, "a", "a")
    assert problem(radiograph, None, "", "b") == "choose the source and the target domain"
    assert problem(radiograph, None, "a", "b") is None
