"""Make MedShiftLib importable from the source tree even without `pip install -e .`; shared fixtures."""
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "MedShift"))


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked cuda where this PyTorch sees no CUDA GPU."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def scene():
    """An empty MRML scene (PyPI slicer-core) that is slicer.mrmlScene for the test."""
    import slicer

    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    yield scene
    scene.Clear(1)


@pytest.fixture
def medshift(monkeypatch, tmp_path):
    """MedShift.py imported with the Slicer stand-ins (Testing/slicer_stand_ins.py)."""
    from slicer_stand_ins import load_module

    return load_module(REPO_ROOT / "MedShift" / "MedShift.py", monkeypatch, tmp_path)


@pytest.fixture
def python_slicer(tmp_path):
    """A PythonSlicer where the stand-in slicer.app's home says it is."""
    path = tmp_path / "slicer_home" / "bin" / "PythonSlicer"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny random model's checkpoint (domains a, b, c; 32 px), written once per test module."""
    from helpers import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")
