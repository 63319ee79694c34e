"""Atomic writes: all or nothing, and the finished file readable like any other the user writes."""
import os
import stat

import pytest

from MedShiftLib.atomic_files import atomic_target, write_bytes_atomically


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_file_gets_the_users_default_permissions_not_the_temporary_files(tmp_path, umask_022):
    path = write_bytes_atomically(tmp_path / "out.dcm", b"data")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes() == b"data"


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask_022):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old")
    path.chmod(0o640)
    write_bytes_atomically(path, b"new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_bytes() == b"new"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.nrrd"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_target(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.nrrd"]
