"""What Slicer loads at start-up: MedShift.py and MedShiftTraining.py import no pydicom, torch or safetensors.

Slicer imports every scripted module when it starts. What a module imports then stays loaded in Slicer's
process: Slicer 5.10's bundled pydicom 2.4.4 loaded at start-up makes the pydicom 3 the worker needs a
restart away (issue 26, item 1). Each test runs a fresh Python in which a meta-path finder refuses those
packages, imports the module files with the project's Slicer stand-ins (slicer_stand_ins.py) and uses the
panel's torch-free paths.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("slicer")

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = {blocked!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} imported where Slicer's process must not load it")
            return None

    sys.meta_path.insert(0, Refuse())
    sys.path[:0] = [{testing!r}, {medshift!r}]
    import tempfile
    from pathlib import Path
    import pytest
    from slicer_stand_ins import load_module
    monkeypatch, tmp = pytest.MonkeyPatch(), Path(tempfile.mkdtemp())
    """)


def _run(script: str, blocked: set[str], tmp_path: Path) -> subprocess.CompletedProcess:
    head = BLOCKER.format(blocked=sorted(blocked), testing=str(ROOT / "Testing"), medshift=str(ROOT / "MedShift"))
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", head + textwrap.dedent(script)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)


def test_the_modules_slicer_imports_at_start_up_load_no_pydicom_torch_or_safetensors(tmp_path):
    proc = _run("""
        medshift = load_module(Path({medshift_py!r}), monkeypatch, tmp)
        training = load_module(Path({training_py!r}), monkeypatch, tmp)
        logic = medshift.MedShiftLogic()
        print("DOMAINS", ",".join(logic.modelDomains()))   # the bundled model's header, read without torch
        print("DEVICE", logic.deviceDescription("auto"))
        import types
        training.MedShiftTraining(types.SimpleNamespace())
        """.format(medshift_py=str(ROOT / "MedShift" / "MedShift.py"),
                   training_py=str(ROOT / "MedShiftTraining" / "MedShiftTraining.py")),
                {"pydicom", "torch", "safetensors"}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from MedShiftLib.engine.checkpoint import default_model_path, read_checkpoint_info

    assert f"DOMAINS {','.join(read_checkpoint_info(default_model_path()).domains)}\n" in proc.stdout
    assert "DEVICE the CUDA GPU when PyTorch sees one, else the CPU" in proc.stdout


def test_starting_a_translation_loads_no_torch_into_slicers_process(tmp_path):
    """The panel's Translate checks the settings against the model's header and writes the job; the worker
    (a fresh PythonSlicer) is the one that imports torch."""
    proc = _run("""
        import numpy as np
        import slicer
        medshift = load_module(Path({medshift_py!r}), monkeypatch, tmp)
        from slicer_stand_ins import FakeProcess
        slicer.mrmlScene = slicer.vtkMRMLScene()
        launcher = tmp / "slicer_home" / "bin" / "PythonSlicer"
        launcher.write_text("")
        node = slicer.util.addVolumeFromArray(np.full((1, 32, 32), 1000, np.uint16), name="xr")
        from MedShiftLib.settings import TranslationSettings
        logic = medshift.MedShiftLogic()
        domains = logic.modelDomains()
        try:
            logic.startBackgroundTranslation(node, TranslationSettings(domains[0], "nope"), device="cpu")
        except Exception as exc:
            print("REFUSED", exc)
        logic.startBackgroundTranslation(node, TranslationSettings(domains[0], domains[-1]), device="cpu")
        print("STARTED", FakeProcess.last().arguments[:3])
        """.format(medshift_py=str(ROOT / "MedShift" / "MedShift.py")), {"torch", "safetensors"}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "STARTED ['-m', 'MedShiftLib.cli', 'translate']" in proc.stdout
    assert "REFUSED unknown domain 'nope'; this model knows:" in proc.stdout
