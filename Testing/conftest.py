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
