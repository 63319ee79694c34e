"""Odd inputs said plainly: a newline in a file name cannot fake an OUTPUT line, a statistics file that is a folder is
warned about, non-image DICOM objects (SEG...) are refused, negative pixel spacing is warned about and used by its
magnitude, and an image too large for the memory is refused from its header before it is decoded."""
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from MedShiftLib.cli import main
from MedShiftLib.engine.checkpoint import read_checkpoint_info
from MedShiftLib.errors import InputImageError
from MedShiftLib.io import input_size
from MedShiftLib.io.radiograph_files import count_frames, read_radiograph, write_radiograph
from MedShiftSlicer.background_job import parse_worker_line

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONPATH": str(ROOT / "MedShift"), "OMP_NUM_THREADS": "1"}


def _png(path: Path, shape=(40, 48)) -> Path:
    pixels = (20000 + 20000 * np.random.default_rng(0).random(shape)).astype(np.uint16)
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(path))
    return path


def test_a_newline_in_a_file_name_cannot_fake_an_output_line(tmp_path, model_path, capsys):
    source = _png(tmp_path / "x\nOUTPUT fake.nrrd\nERROR boom\\n.png")
    rc = main(["translate", str(source), "--out", str(tmp_path / "out"), "--model", str(model_path), "--source", "a",
               "--target", "b", "--steps", "1", "--device", "cpu", "--machine-progress"])
    parsed = [parse_worker_line(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0
    assert [value for kind, value in parsed if kind == "output"] == [str(tmp_path / "out" / source.name)]
    assert [kind for kind, _ in parsed if kind == "error"] == []


def test_a_statistics_file_that_is_a_folder_is_warned_about(tmp_path, model_path):
    copy = tmp_path / "model.safetensors"
    shutil.copy(model_path, copy)
    (tmp_path / "model.stats.json").mkdir()
    with pytest.warns(UserWarning, match=r"model\.stats\.json is not a file"):
        read_checkpoint_info(copy)


def _dicom(tmp_path: Path, name: str, change) -> Path:
    path = write_radiograph(read_radiograph(_png(tmp_path / f"{name}.png")), tmp_path / f"{name}.dcm")
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    return path


@pytest.mark.parametrize("sop_class, modality, kind", [
    ("1.2.840.10008.5.1.4.1.1.66.4", "SEG", "a segmentation (SEG)"),
    ("1.2.840.10008.5.1.4.1.1.481.2", "RTDOSE", "an RT dose"),
    ("1.2.840.10008.5.1.4.1.1.88.22", "SR", "a structured report (SR)"),
    ("1.2.840.10008.5.1.4.1.1.11.1", "PR", "a presentation state (PR)"),
    ("1.2.3.4.5.6", "KO", "a key object selection (KOS)"),
])
def test_non_image_dicom_objects_are_refused_naming_what_they_are(tmp_path, model_path, capsys, sop_class, modality,
                                                                     kind):
    def make_it(ds):
        ds.SOPClassUID, ds.file_meta.MediaStorageSOPClassUID, ds.Modality = sop_class, sop_class, modality
    path = _dicom(tmp_path, "object", make_it)
    with pytest.raises(InputImageError, match=re.escape(f"is {kind}, not an image")):
        read_radiograph(path)
    with pytest.raises(InputImageError, match=re.escape(f"is {kind}, not an image")):
        count_frames(path)  # the training files' header check (check_training_files) refuses it too
    rc = main(["translate", str(path), "--out", str(tmp_path / "out"), "--model", str(model_path), "--source", "a",
               "--target", "b", "--steps", "1", "--device", "cpu"])
    assert rc == 1 and kind in capsys.readouterr().err
    assert not (tmp_path / "out" / "object.dcm").exists()


def test_negative_pixel_spacing_is_warned_about_and_used_by_its_magnitude(tmp_path):
    def negative(ds):
        ds.PixelSpacing = ["-0.2", "0.15"]
    path = _dicom(tmp_path, "negative", negative)
    with pytest.warns(UserWarning, match=r"PixelSpacing -0.2\\0.15 is negative"):
        image = read_radiograph(path)
    assert image.spacing[:2] == (0.15, 0.2) and image.metadata.get("spacing_known") is not False
    written = pydicom.dcmread(write_radiograph(image, tmp_path / "out.dcm"))
    assert [float(v) for v in written.PixelSpacing] == [0.2, 0.15]


def _huge_png(path: Path, side: int) -> Path:
    """An 8-bit side x side PNG of zeros, compressed row by row (it is a few hundred KB)."""
    packer, row = zlib.compressobj(9), bytes(side + 1)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


READ_AND_MEASURE = """
import resource, sys
from MedShiftLib.io.radiograph_files import read_radiograph
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_radiograph(sys.argv[1])
    print("read")
except Exception as exc:
    print(exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_small_png_of_huge_pixels_is_refused_before_it_is_decoded(tmp_path):
    path = _huge_png(tmp_path / "huge.png", 16000)
    assert path.stat().st_size < 400_000
    result = subprocess.run([sys.executable, "-c", READ_AND_MEASURE, str(path)], env=ENV, capture_output=True,
                            text=True, timeout=120)
    message, grown_mib = result.stdout.splitlines()
    assert "16000 x 16000 pixels" in message and "MEDSHIFT_MAX_INPUT_PIXELS" in message, result.stdout
    assert int(grown_mib) < 100  # refused from the header: the 244 MiB of pixels were never allocated


def test_an_image_needing_more_memory_than_is_available_is_refused(tmp_path, monkeypatch):
    path = _png(tmp_path / "x.png", shape=(200, 300))
    monkeypatch.setattr(input_size, "available_memory", lambda: 1_000_000)
    with pytest.raises(InputImageError, match=r"200 x 300 pixels would need about .* GiB of memory"):
        read_radiograph(path)
    monkeypatch.setattr(input_size, "available_memory", lambda: 10**12)
    monkeypatch.setenv(input_size.LIMIT_VARIABLE, "50000")  # a lower limit, set by the user
    with pytest.raises(InputImageError, match="more than the 50,000 pixels"):
        read_radiograph(path)
    monkeypatch.setenv(input_size.LIMIT_VARIABLE, "60000")
    assert read_radiograph(path).pixels.shape == (200, 300)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null (a character device)")
def test_a_device_is_named_the_same_way_wherever_it_is_refused(tmp_path):
    from MedShiftLib.errors import DataFolderError
    from MedShiftLib.io.data_folder import scan_data_folder
    from MedShiftLib.io.path_kinds import describe_unusable_path
    from MedShiftLib.io.regular_files import open_regular_file

    assert describe_unusable_path("/dev/null") == "is a character device, not an image file; give the image file itself"
    with pytest.raises(InputImageError, match=r"^/dev/null: is a character device, not an image file; give the image"):
        open_regular_file("/dev/null")
    with pytest.raises(DataFolderError, match=r"is a character device, not a data folder; give the data folder itself"):
        scan_data_folder("/dev/null")
    with pytest.raises(DataFolderError, match=r"is a file; give the data folder$"):
        scan_data_folder(_png(tmp_path / "x.png"))
    with pytest.raises(DataFolderError, match=r"no such data folder; check the path$"):
        scan_data_folder(tmp_path / "gone")
