"""Inputs outside what the model was made for are named (warning), or refused with --strict."""
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset

from MedShiftLib.cli import main
from MedShiftLib.engine.checkpoint import read_checkpoint_info
from MedShiftLib.io.radiograph import RadiographImage
from MedShiftLib.pipeline.input_checks import out_of_range_findings
from MedShiftLib.settings import TranslationSettings
from MedShiftSlicer.background_job import parse_worker_line


def _radiograph(pixels=None, **metadata):
    pixels = np.linspace(100, 4000, 64 * 64).reshape(64, 64).astype(np.uint16) if pixels is None else pixels
    return RadiographImage(pixels=pixels, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                           direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), photometric="MONOCHROME2", file_format="png",
                           metadata={"source_path": "x.png", **metadata})


def test_a_radiograph_within_range_has_no_findings(model_path):
    info = read_checkpoint_info(model_path)
    assert out_of_range_findings(_radiograph(), TranslationSettings("a", "b"), info) == []


@pytest.mark.parametrize("change, words", [
    (lambda im: replace(im, metadata={**im.metadata, "dicom_dataset": _dataset("CT")}), "modality CT"),
    (lambda im: replace(im, metadata={**im.metadata, "converted_from_rgb": True}), "colour (RGB)"),
    (lambda im: replace(im, pixels=np.full((64, 64), -1000, np.int16)), "CT numbers"),
    (lambda im: replace(im, file_format="nrrd", spacing=(40.0, 40.0, 1.0)), "implausible"),
])
def test_out_of_range_inputs_are_named(model_path, change, words):
    info = read_checkpoint_info(model_path)
    findings = out_of_range_findings(change(_radiograph()), TranslationSettings("a", "b"), info)
    assert len(findings) == 1 and words in findings[0] and "x.png" in findings[0]


def _dataset(modality):
    ds = Dataset()
    ds.Modality = modality
    return ds


def test_source_equal_to_target_is_named(model_path):
    findings = out_of_range_findings(_radiograph(), TranslationSettings("b", "b"), read_checkpoint_info(model_path))
    assert findings and "both 'b'" in findings[0]


def test_field_of_view_far_from_the_models_is_named(tmp_path):
    from MedShiftLib.engine.checkpoint import CheckpointInfo, save_checkpoint
    from MedShiftLib.engine.network import VelocityUNet, config_from_preset
    net = VelocityUNet(config_from_preset("tiny", 2))
    path = save_checkpoint(tmp_path / "m.safetensors", net.state_dict(),
                           CheckpointInfo(config=net.config, domains=("a", "b"), resolution=32, pixel_spacing_mm=1.0))
    info = read_checkpoint_info(path)
    small = replace(_radiograph(), file_format="nrrd", spacing=(0.1, 0.1, 1.0))  # 6.4 mm across, model: 32 mm
    findings = out_of_range_findings(small, TranslationSettings("a", "b"), info)
    assert any("field of view 6 mm" in f for f in findings)


def _ct_slice(path):
    sitk.WriteImage(sitk.GetImageFromArray(np.where(np.arange(48 * 48).reshape(48, 48) % 3, -1000, 40)
                                           .astype(np.int16)), str(path))
    return path


def test_cli_warns_in_one_line_and_translates(tmp_path, model_path, capsys):
    rc = main(["translate", str(_ct_slice(tmp_path / "slice.nrrd")), "--out", str(tmp_path / "o"), "--model",
               str(model_path), "--source", "a", "--target", "b", "--steps", "1"])
    err = capsys.readouterr().err
    assert rc == 0 and (tmp_path / "o" / "slice.nrrd").is_file()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "CT numbers" in warnings[0] and "Traceback" not in err


def test_strict_refuses_the_input_before_its_translation(tmp_path, model_path, capsys):
    rc = main(["translate", str(_ct_slice(tmp_path / "slice.nrrd")), "--out", str(tmp_path / "o"), "--model",
               str(model_path), "--source", "a", "--target", "b", "--steps", "1", "--strict"])
    err = capsys.readouterr().err
    refusal = [line for line in err.splitlines() if "CT numbers" in line]
    assert rc == 1 and len(refusal) == 1 and "slice.nrrd" in refusal[0] and "--strict" in refusal[0]
    assert not (tmp_path / "o" / "slice.nrrd").exists()


def test_machine_progress_passes_warnings_to_the_panel(tmp_path, model_path, capsys):
    main(["translate", str(_ct_slice(tmp_path / "slice.nrrd")), "--out", str(tmp_path / "o"),
          "--model", str(model_path), "--source", "a", "--target", "a", "--steps", "1", "--machine-progress"])
    lines = [parse_worker_line(line) for line in capsys.readouterr().out.splitlines()]
    warnings = [value for kind, value in lines if kind == "warning"]
    assert len(warnings) == 2 and any("both 'a'" in w for w in warnings)
