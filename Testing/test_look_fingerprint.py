"""A look's fingerprint follows its parameters (styles, object detail, data tables), not the simulator's code; the
simulator-files fingerprint (benchmark caches) follows every source and data file."""
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from MedShiftLib.errors import DomainError
from MedShiftLib.simulator import look_fingerprint as fingerprints
from MedShiftLib.simulator.domain_styles import LOOK_OBJECT_DETAIL, LOOK_STYLES, LOOKS
from MedShiftLib.simulator.look_fingerprint import look_fingerprint, simulator_files_fingerprint

MEDSHIFT = Path(__file__).resolve().parents[1] / "MedShift"


def test_a_look_has_one_fingerprint_per_version_the_same_in_another_python_run():
    present = {look: look_fingerprint(look) for look in LOOKS}
    assert len(set(present.values())) == len(LOOKS)
    assert all(len(f) == 12 and int(f, 16) >= 0 for f in present.values())
    assert present == {look: look_fingerprint(look) for look in LOOKS}
    other_run = subprocess.run([sys.executable, "-c", "from MedShiftLib.simulator.look_fingerprint import "
                                "look_fingerprint as f; print(f('film'))"], capture_output=True, text=True,
                               timeout=120, env={"PYTHONPATH": str(MEDSHIFT), "PYTHONHASHSEED": "12345"})
    assert other_run.stdout.strip() == present["film"], other_run.stderr


def test_the_fingerprint_changes_with_a_parameter_of_its_look_and_no_other(monkeypatch):
    before = {look: look_fingerprint(look) for look in LOOKS}
    normal = LOOK_STYLES["film"]["clinical-normal"]
    monkeypatch.setitem(LOOK_STYLES["film"], "clinical-normal", replace(normal, film_grain_std=normal.film_grain_std
                                                                        + 0.001))
    refitted = look_fingerprint("film")
    assert refitted != before["film"]
    assert {look: look_fingerprint(look) for look in ("radiograph", "legacy")} == {
        look: before[look] for look in ("radiograph", "legacy")}
    monkeypatch.setitem(LOOK_OBJECT_DETAIL, "film", replace(LOOK_OBJECT_DETAIL["film"], max_gain=5.0))
    assert look_fingerprint("film") not in (before["film"], refitted)
    monkeypatch.setitem(LOOK_OBJECT_DETAIL, "radiograph", LOOK_OBJECT_DETAIL["film"])  # detail added to a look
    assert look_fingerprint("radiograph") != before["radiograph"]


def test_the_fingerprint_changes_with_the_data_tables_but_not_their_line_endings(monkeypatch, tmp_path):
    before = look_fingerprint("film")
    table = tmp_path / fingerprints.SPECTRA_TABLE.name
    monkeypatch.setattr(fingerprints, "SPECTRA_TABLE", table)
    text = (Path(fingerprints.__file__).parent / "data" / table.name).read_text()
    table.write_bytes(text.replace("\n", "\r\n").encode())  # a Windows checkout's CRLF
    assert look_fingerprint("film") == before
    data = json.loads(text)
    data["regenerated"] = True
    table.write_text(json.dumps(data))
    assert look_fingerprint("film") != before


def test_an_unknown_look_has_no_fingerprint():
    with pytest.raises(DomainError, match="'sepia'"):
        look_fingerprint("sepia")


def test_the_simulator_files_fingerprint_follows_source_and_data_files_and_the_extra_texts(monkeypatch, tmp_path):
    copy = tmp_path / "simulator"
    shutil.copytree(fingerprints.SIMULATOR_FOLDER, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprints, "SIMULATOR_FOLDER", copy)
    before = simulator_files_fingerprint()
    assert simulator_files_fingerprint() == before != simulator_files_fingerprint("ct.nrrd:123")
    (copy / "notes.txt").write_text("not a source file")
    assert simulator_files_fingerprint() == before
    (copy / "data" / "attenuation.json").write_bytes((copy / "data" / "attenuation.json").read_bytes() + b" ")
    data_changed = simulator_files_fingerprint()
    assert data_changed != before
    (copy / "screen_film.py").write_text((copy / "screen_film.py").read_text() + "# a refactor\n")
    assert simulator_files_fingerprint() not in (before, data_changed)
