"""`medshift fetch-ct`: the InVesalius Cranium CT from a Debian package, checksum-checked, as an LPS NRRD.

A fake invesalius-examples .deb (ar archive > data.tar.xz > Cranium.inv3, a gzipped tar with main.plist
and matrix.dat) is built here; apt-get is replaced by scripts on PATH.
"""
import hashlib
import io
import os
import plistlib
import stat
import tarfile

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from MedShiftLib.cli import main
from MedShiftLib.errors import MedShiftError
from MedShiftLib.simulator.invesalius_ct import INV3_PATH, CTFetchError, fetch_cranium_ct, shipped_ct_path

SHAPE, SPACING = (6, 8, 10), (0.9, 0.8, 1.5)  # (z, y, x) voxels; (x, y, z) mm


def _matrix() -> np.ndarray:
    hu = np.full(SHAPE, -1000, np.int16)
    hu[:, 2:7, 2:8] = 40
    hu[1, 6, 3] = 2000  # a marker near the last row (anterior in InVesalius' order)
    return hu


def _tar(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _ar(members: dict[str, bytes]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members.items():
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += [header, data, b"\n" if len(data) % 2 else b""]
    return b"".join(out)


def make_fake_deb(path, matrix: np.ndarray = None):
    matrix = _matrix() if matrix is None else matrix
    plist = plistlib.dumps({"matrix": {"dtype": "int16", "filename": "matrix.dat", "shape": list(SHAPE)},
                            "spacing": list(SPACING), "modality": "CT"})
    inv3 = _tar({"tmpabc/main.plist": plist, "tmpabc/matrix.dat": matrix.tobytes()}, "w:gz")
    data = _tar({"./" + INV3_PATH: inv3}, "w:xz")
    path.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.xz": _tar({}, "w:xz"), "data.tar.xz": data}))
    return path, hashlib.sha256(matrix.tobytes()).hexdigest()


def _fake_apt_get(folder, script: str):
    folder.mkdir(exist_ok=True)
    tool = folder / "apt-get"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return folder


def test_a_package_is_unpacked_into_an_lps_nrrd_with_its_spacing(tmp_path):
    deb, digest = make_fake_deb(tmp_path / "invesalius-examples_1_all.deb")
    out = fetch_cranium_ct(tmp_path / "ct", deb=deb, expected_sha256=digest)
    assert out == tmp_path / "ct" / "cranium_ct.nrrd"
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == SHAPE[::-1] and np.allclose(image.GetSpacing(), SPACING)
    assert np.allclose(image.GetDirection(), np.eye(3).ravel())
    assert np.allclose(image.GetOrigin(), [-(n - 1) / 2 * s for n, s in zip(SHAPE[::-1], SPACING)])
    hu = sitk.GetArrayFromImage(image)
    assert hu.dtype == np.int16 and hu[1, SHAPE[1] - 1 - 6, 3] == 2000  # rows flipped: anterior first (LPS)
    assert np.array_equal(hu[:, ::-1, :], _matrix())


def test_a_different_ct_is_refused_by_its_checksum_and_nothing_is_written(tmp_path, capsys):
    deb, _ = make_fake_deb(tmp_path / "invesalius-examples_1_all.deb")
    assert main(["fetch-ct", str(tmp_path / "ct"), "--deb", str(deb)]) == 2
    err = capsys.readouterr().err
    assert "SHA-256" in err and "nothing was written" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ct" / "cranium_ct.nrrd").exists()


def test_without_apt_get_the_error_says_how_to_get_the_package_by_hand(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["fetch-ct", str(tmp_path / "ct"), "--only", "cranium"]) == 2
    err = capsys.readouterr().err
    assert "apt-get is not available" in err and "--deb FILE" in err and "packages.debian.org" in err


def test_apt_get_download_is_run_in_a_temporary_folder(tmp_path, monkeypatch):
    deb, digest = make_fake_deb(tmp_path / "invesalius-examples_1_all.deb")
    bin_dir = _fake_apt_get(tmp_path / "bin", f'[ "$1 $2" = "download invesalius-examples" ] || exit 9\n'
                                              f'cp "{deb}" .\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = fetch_cranium_ct(tmp_path / "ct", expected_sha256=digest)
    assert out.is_file() and sorted(p.name for p in (tmp_path / "ct").iterdir()) == ["cranium_ct.nrrd"]


def test_a_failing_apt_get_reports_its_reason(tmp_path, monkeypatch):
    bin_dir = _fake_apt_get(tmp_path / "bin", "echo 'E: Unable to locate package invesalius-examples' >&2\nexit 100\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(CTFetchError, match="Unable to locate package.*--deb FILE") as error:
        fetch_cranium_ct(tmp_path / "ct")
    assert isinstance(error.value, MedShiftError)


def test_files_that_are_not_the_package_are_refused(tmp_path):
    (tmp_path / "junk.deb").write_bytes(b"not an archive")
    with pytest.raises(CTFetchError, match="not a Debian package"):
        fetch_cranium_ct(tmp_path / "ct", deb=tmp_path / "junk.deb")
    (tmp_path / "other.deb").write_bytes(_ar({"debian-binary": b"2.0\n", "data.tar.xz": _tar({"./x": b"1"}, "w:xz")}))
    with pytest.raises(CTFetchError, match="does not contain"):
        fetch_cranium_ct(tmp_path / "ct", deb=tmp_path / "other.deb")


def test_the_shipped_head_ct_is_small_body_only_and_licensed_in_its_own_folder():
    path = shipped_ct_path()
    assert path is not None and path.stat().st_size < 5_000_000
    folder = path.parent
    licence = (folder / "COPYING").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 2" in licence
    assert "invesalius-examples" in (folder / "README.md").read_text()
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert hu.min() < -900 and hu.max() > 1500  # air and bone
    labels, count = ndimage.label(hu > -500)  # the patient only: one object (the holder arc was another)
    sizes = np.bincount(labels.ravel())[1:]
    assert count >= 1 and sizes.max() > 0.999 * sizes.sum()
