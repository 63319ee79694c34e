"""Small shared builders for the tests: tiny checkpoints and tiny data folders."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MedShiftLib.engine.checkpoint import CheckpointInfo, save_checkpoint
from MedShiftLib.engine.network import VelocityUNet, config_from_preset


def one_error_line(capsys, *needles: str) -> str:
    """The command's stderr, asserted to be one line, no traceback, holding every needle."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def write_tiny_checkpoint(path: Path, domains=("a", "b", "c"), resolution: int = 32, seed: int = 0) -> Path:
    """A tiny model with small random weights everywhere, so translations differ from their input."""
    torch.manual_seed(seed)
    model = VelocityUNet(config_from_preset("tiny", len(domains)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    info = CheckpointInfo(config=model.config, domains=tuple(domains), resolution=resolution)
    return save_checkpoint(path, model.state_dict(), info)


def write_png_domains(root: Path, domains=("a", "b"), subjects: int = 4, views: int = 2, size: int = 48) -> Path:
    """A data folder of 16-bit PNGs: domain "b" images carry a stripe texture, "a" ones do not."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for d, domain in enumerate(domains):
        (root / domain).mkdir(parents=True, exist_ok=True)
        for s in range(subjects):
            for v in range(views):
                cy, cx = rng.uniform(0.3, 0.7, 2) * size
                img = 20000 + 30000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 5) ** 2))
                img = img + d * 4000 * np.cos(np.pi * xx / 2) + rng.normal(0, 300, img.shape)
                sitk.WriteImage(sitk.GetImageFromArray(img.astype(np.uint16)), str(root / domain / f"s{s}_v{v}.png"))
    return root


@contextmanager
def small_tmpfs(tmp_path: Path, options: str) -> Iterator[Path]:
    """A small tmpfs (e.g. "ro" or "size=8k") at tmp_path/mnt; the test is skipped where mounting is not allowed."""
    point = tmp_path / "mnt"
    point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small file system needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
