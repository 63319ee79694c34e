"""`medshift translate` never loses a file: inputs (headers and detached data) are never written over, existing
outputs are kept unless --overwrite, concurrent runs cannot silently replace each other's results, and a
batch goes on past a bad file."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MedShiftLib.cli import main
from MedShiftLib.errors import MedShiftError
from MedShiftLib.io.file_dependencies import detached_data_files
from MedShiftLib.io.radiograph_files import read_radiograph, write_radiograph
from MedShiftLib.pipeline import file_translation
from MedShiftLib.pipeline.output_plan import OutputPlanError, plan_outputs

ROOT = Path(__file__).resolve().parents[1]


def _png(path, seed=0, shape=(40, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (20000 + 20000 * np.random.default_rng(seed).random(shape)).astype(np.uint16)
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
    return path


def _detached_nrrd(tmp_path):
    """hdr/scan.nhdr whose `data file:` is ../data/scan.raw.gz (the layout that lost its data file)."""
    (tmp_path / "hdr").mkdir()
    (tmp_path / "data").mkdir()
    image = sitk.GetImageFromArray((1000 + 500 * np.random.default_rng(1).random((40, 56))).astype(np.int16))
    sitk.WriteImage(image, str(tmp_path / "data" / "scan.nhdr"), useCompression=True)
    header = (tmp_path / "data" / "scan.nhdr").read_text().replace("data file: scan.raw.gz",
                                                                     "data file: ../data/scan.raw.gz")
    (tmp_path / "hdr" / "scan.nhdr").write_text(header)
    (tmp_path / "data" / "scan.nhdr").unlink()
    return tmp_path / "hdr" / "scan.nhdr", tmp_path / "data" / "scan.raw.gz"


def _translate(model_path, *args):
    return main(["translate", *map(str, args), "--model", str(model_path), "--source", "a", "--target", "b",
                 "--steps", "2", "--device", "cpu"])


def test_detached_headers_name_their_data_files(tmp_path):
    (tmp_path / "list.nhdr").write_text("NRRD0004\ntype: short\ndata file: LIST\nslice0.raw\nsub/slice1.raw\n")
    (tmp_path / "pattern.nhdr").write_text("NRRD0004\ndatafile: part%02d.raw 1 3 1\n\nignored: x\n")
    (tmp_path / "image.mhd").write_text("NDims = 2\nElementDataFile = ../elsewhere/image.zraw\n")
    (tmp_path / "local.mhd").write_text("NDims = 2\nElementDataFile = LOCAL\n")
    assert detached_data_files(tmp_path / "list.nhdr") == [(tmp_path / "slice0.raw").resolve(),
                                                           (tmp_path / "sub" / "slice1.raw").resolve()]
    assert [p.name for p in detached_data_files(tmp_path / "pattern.nhdr")] == ["part01.raw", "part02.raw",
                                                                                "part03.raw"]
    assert detached_data_files(tmp_path / "image.mhd") == [(tmp_path.parent / "elsewhere" / "image.zraw").resolve()]
    assert detached_data_files(tmp_path / "local.mhd") == [] and detached_data_files(tmp_path / "x.png") == []


def test_the_data_file_of_a_detached_nrrd_is_never_written_over(tmp_path, model_path, capsys):
    header, data = _detached_nrrd(tmp_path)
    assert detached_data_files(header) == [data.resolve()]
    before = data.read_bytes()
    assert _translate(model_path, header, "--out", tmp_path / "data") == 2
    err = capsys.readouterr().err
    assert "data file the input" in err and err.count("\n") == 1
    assert data.read_bytes() == before and not (tmp_path / "data" / "scan.nhdr").exists()
    # the writer refuses it too, whoever calls it
    image = read_radiograph(header)
    with pytest.raises(MedShiftError, match="data file of the input"):
        write_radiograph(image, tmp_path / "data" / "scan.nhdr", source=image)
    assert data.read_bytes() == before


def test_an_existing_output_is_skipped_unless_overwrite(tmp_path, model_path, capsys):
    source = _png(tmp_path / "in" / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.png").write_bytes(b"earlier result")
    assert _translate(model_path, source, "--out", out) == 1
    err = capsys.readouterr().err
    assert "x.png exists; pass --overwrite" in err and "0 written, 1 skipped, 0 failed" in err
    assert (out / "x.png").read_bytes() == b"earlier result"
    assert _translate(model_path, source, "--out", out, "--overwrite") == 0
    assert read_radiograph(out / "x.png").shape == (40, 48)


def test_two_inputs_of_one_name_are_refused_naming_both(tmp_path, model_path, capsys):
    a, b = _png(tmp_path / "dirA" / "same.png"), _png(tmp_path / "dirB" / "same.png", seed=1)
    assert _translate(model_path, a, b, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert str(a) in err and str(b) in err and "same.png" in err
    assert not (tmp_path / "out").exists()


def test_an_output_made_by_another_run_meanwhile_is_kept_and_reported(tmp_path, model_path, monkeypatch, capsys):
    source, out = _png(tmp_path / "in" / "x.png"), tmp_path / "out"
    real = file_translation.translate_image

    def slow_translation(image, *args, **kwargs):  # another run finishes the same output during this compute
        result = real(image, *args, **kwargs)
        (out / "x.png").write_bytes(b"the other run's result")
        return result

    monkeypatch.setattr(file_translation, "translate_image", slow_translation)
    assert _translate(model_path, source, "--out", out) == 1
    err = capsys.readouterr().err
    assert "was created meanwhile" in err and str(source) in err
    assert (out / "x.png").read_bytes() == b"the other run's result"
    assert [p.name for p in out.iterdir()] == ["x.png"]  # no temporary left


def test_concurrent_runs_into_one_folder_never_both_report_the_same_output(tmp_path, model_path):
    a, b = _png(tmp_path / "dirA" / "same.png"), _png(tmp_path / "dirB" / "same.png", seed=1)
    env = os.environ | {"PYTHONPATH": str(ROOT / "MedShift"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "MedShiftLib.cli", "translate", "--out", str(tmp_path / "out"), "--model",
               str(model_path), "--source", "a", "--target", "b", "--steps", "2", "--device", "cpu"]
    runs = [subprocess.Popen(command + [str(p)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for p in (a, b)]
    results = [(r.wait(timeout=120), *r.communicate()) for r in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    reported = [out for _, out, _ in results if out.strip()]
    assert len(reported) == 1  # one run reports the output; the other says why it did not write it
    loser_err = next(err for code, _, err in results if code == 1)
    assert "same.png" in loser_err and ("exists" in loser_err or "created meanwhile" in loser_err)


def test_a_batch_goes_on_past_bad_files_and_ends_with_a_summary(tmp_path, model_path, capsys):
    folder = tmp_path / "in"
    _png(folder / "b_good.png"), _png(folder / "d_good.png", seed=2)
    (folder / "a_broken.png").write_bytes(b"not a png")
    (folder / "c_broken.png").write_bytes(b"\x89PNG truncated")
    assert _translate(model_path, folder, "--out", tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_good.png", "d_good.png"]
    assert captured.out.split() == [str(tmp_path / "out" / "b_good.png"), str(tmp_path / "out" / "d_good.png")]
    failures = [line for line in captured.err.splitlines() if line.startswith("medshift: error:")]
    assert [("a_broken" in f, "c_broken" in f) for f in failures] == [(True, False), (False, True)]
    assert "2 written, 0 skipped, 2 failed of 4 input(s)" in captured.err


def test_each_outcome_is_reported_when_it_happens(tmp_path, model_path, monkeypatch):
    from MedShiftLib.settings import TranslationSettings
    files = [_png(tmp_path / "in" / "a.png"), tmp_path / "in" / "b.png", _png(tmp_path / "in" / "c.png")]
    files[1].write_bytes(b"broken")
    events, real_read = [], file_translation.read_radiograph

    def read(path, **kwargs):
        events.append(("read", Path(path).name))
        return real_read(path, **kwargs)

    monkeypatch.setattr(file_translation, "read_radiograph", read)
    report = file_translation.translate_files(
        files, tmp_path / "out", TranslationSettings("a", "b", steps=1), model_path=model_path, device="cpu",
        on_outcome=lambda kind, f, detail: events.append((kind, f.name)))
    assert events == [("read", "a.png"), ("written", "a.png"), ("read", "b.png"), ("failed", "b.png"),
                      ("read", "c.png"), ("written", "c.png")]
    assert report.summary() == "2 written, 0 skipped, 1 failed"


def test_formats_that_cannot_hold_the_result_fail_before_the_compute(tmp_path, model_path, monkeypatch, capsys):
    float_tiff = tmp_path / "in" / "f.tif"
    float_tiff.parent.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).random((40, 48)).astype(np.float32) * 100),
                    str(float_tiff))
    dicom = tmp_path / "in" / "IMG0001"  # a DICOM file without extension
    dicom.write_bytes(Path("/tmp/real/RG3_UNCR.dcm").read_bytes() if Path("/tmp/real/RG3_UNCR.dcm").exists()
                      else b"")
    computed = []
    real = file_translation.translate_image
    monkeypatch.setattr(file_translation, "translate_image",
                        lambda image, *a, **k: computed.append(image.file_format) or real(image, *a, **k))
    files = [float_tiff] + ([dicom] if dicom.stat().st_size else [])
    assert _translate(model_path, *files, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "f.tif" in err and "--format nrrd" in err and "tiff" not in computed
    if dicom.stat().st_size:  # the extension-less DICOM is written with .dcm, so its format is known
        assert (tmp_path / "out" / "IMG0001.dcm").is_file()
    assert _translate(model_path, float_tiff, "--out", tmp_path / "out2", "--format", "nrrd") == 0
    assert read_radiograph(tmp_path / "out2" / "f.nrrd").pixels.dtype == np.float32


def test_the_plan_refuses_an_out_that_is_a_file_and_outputs_landing_on_another_input(tmp_path):
    a = _png(tmp_path / "in" / "a.png")
    with pytest.raises(OutputPlanError, match="is a file"):
        plan_outputs([a], a)
    with pytest.raises(OutputPlanError, match="no input is overwritten"):
        plan_outputs([_png(tmp_path / "in" / "b.png"), a], tmp_path / "out", output_format="png")  # fine
        plan_outputs([a, tmp_path / "in" / "b.png"], tmp_path / "in", output_format="png")


def test_a_skipped_output_changes_no_other_images_noise(tmp_path, model_path):
    inputs = [_png(tmp_path / "in" / "first.png"), _png(tmp_path / "in" / "second.png", seed=1)]
    noisy = ["--noise-renewal", "1", "--seed", "3"]
    assert _translate(model_path, *inputs, "--out", tmp_path / "all", *noisy) == 0
    (tmp_path / "rerun").mkdir()
    (tmp_path / "rerun" / "first.png").write_bytes(b"kept")
    assert _translate(model_path, *inputs, "--out", tmp_path / "rerun", *noisy) == 1  # first skipped
    assert np.array_equal(read_radiograph(tmp_path / "all" / "second.png").pixels,
                          read_radiograph(tmp_path / "rerun" / "second.png").pixels)
