"""The held-out test set of `medshift evaluate`: aligned views of every domain with their noise-free renderings.

`medshift simulate TEST_DIR --clean --seed S` writes it; every view exists in every domain, noisy and
noise-free, and its manifest names the simulator seed of each subject, so a test folder that shares
subjects with the training folder can be refused.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..engine.working_grid import centre_square
from ..errors import DataFolderError
from ..io.data_folder import scan_data_folder
from ..io.radiograph_files import read_radiograph
from .image_quality import model_range


@dataclass
class TestSet:
    """Aligned held-out views at the model's resolution in the model range: images[domain] is (V, H, W)."""

    names: list[str]
    images: dict[str, np.ndarray]
    clean: dict[str, np.ndarray]


def _at_resolution(image: np.ndarray, resolution: int) -> np.ndarray:
    """Centre square of the short side at resolution x resolution (engine.working_grid.centre_square), float64."""
    square = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    return centre_square(square, resolution).numpy().astype(np.float64)


def _model_range_of(path: Path) -> np.ndarray:
    """The radiograph in a file as the model sees it (model_range, its photometric convention honoured)."""
    image = read_radiograph(path)
    return model_range(image.pixels, image.photometric)


def _manifest_rows(root: Path) -> list[dict[str, str]]:
    path = root / "manifest.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_held_out(test_dir: Path, train_dir: Path) -> None:
    """DataFolderError when simulator manifests show a (seed, subject) in both folders (a leak)."""
    def keys(root: Path) -> set[tuple[str, str]]:
        return {(r.get("seed", ""), r.get("subject", "")) for r in _manifest_rows(root) if r.get("seed")}

    shared = keys(test_dir) & keys(train_dir)
    if shared:
        raise DataFolderError(
            f"{test_dir}: {len(shared)} test subject(s) also appear in the training data {train_dir} (same simulator "
            "seed and subject); simulate the test set with another --seed")


def load_test_set(root: str | Path, domains: Sequence[str], resolution: int, max_views: int | None = None) -> TestSet:
    """Views present in every domain, with their noise-free renderings (`simulate --clean`)."""
    root = Path(root)
    folder = scan_data_folder(root, domains)
    clean_of = {r["file"]: r.get("clean_file", "") for r in _manifest_rows(root)}
    by_name: dict[str, dict[str, tuple[Path, Path]]] = {}
    for record in folder.records:
        relative = record.path.relative_to(root).as_posix() if record.path.is_relative_to(root) else ""
        clean = (root / clean_of[relative] if clean_of.get(relative)
                 else root / "clean" / record.domain / record.path.name)
        by_name.setdefault(record.path.name, {})[record.domain] = (record.path, clean)
    names = sorted(n for n, d in by_name.items() if all(dom in d for dom in domains))
    if not names:
        raise DataFolderError(f"{root}: no view is present in every domain ({', '.join(domains)}); the test set must "
                              "be aligned across domains, as `medshift simulate` writes it")
    missing = [by_name[n][d][1] for n in names for d in domains if not by_name[n][d][1].is_file()]
    if missing:
        raise DataFolderError(f"{root}: no noise-free rendering {missing[0]} (and {len(missing) - 1} more); "
                              "simulate the test set with --clean")
    names = names[:max_views] if max_views else names
    images = {d: np.stack([_at_resolution(_model_range_of(by_name[n][d][0]), resolution)
                           for n in names]) for d in domains}
    clean = {d: np.stack([_at_resolution(_model_range_of(by_name[n][d][1]), resolution)
                          for n in names]) for d in domains}
    return TestSet(names=names, images=images, clean=clean)
