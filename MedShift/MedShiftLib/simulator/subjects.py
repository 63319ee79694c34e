"""The subjects of a simulated data set: procedural phantoms, real CTs with anatomical variation, or a mix.

Subject k is a phantom when no CT is given, or (with CTs and `phantoms_fraction` f > 0) when its own
seeded draw falls below f; otherwise it is CT number k mod (number of CTs), varied by its own seeded
size, proportions, pose and deformation (`anatomical_variation`). Each CT is read once (non-patient
objects removed) and kept in memory, at its own resolution unless `ct_grid` (voxels along its longest side) asks
for a coarser grid.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .anatomical_variation import NO_VARIATION, AnatomyVariation, draw_variation, varied_points, vary_hounsfield
from .cone_beam_projector import MaterialVolume
from .head_phantom import make_head_phantom
from .scan_edges import outline_on_faces
from .views import SimulationOptionError, seeded_rng


@dataclass(frozen=True)
class Subject:
    """One subject's material volume, where it came from and how it was varied."""

    volume: MaterialVolume
    source: str  # "procedural" or the CT's file name
    variation: AnatomyVariation | None  # None for a phantom


class SubjectSource:
    """Makes subject k of a data set from phantoms and/or CTs (see the module docstring)."""

    def __init__(self, seed: int, phantom_grid: int, ct_paths: tuple[str, ...] = (), ct_grid: int | None = None,
                 phantoms_fraction: float = 0.0, vary_anatomy: bool = True, device: str = "cpu") -> None:
        if not 0.0 <= phantoms_fraction <= 1.0:
            raise SimulationOptionError(f"phantoms fraction {phantoms_fraction:g} must be within 0..1")
        self.seed, self.phantom_grid, self.ct_grid = seed, phantom_grid, ct_grid
        self.ct_paths = tuple(str(p) for p in ct_paths)
        self.phantoms_fraction = phantoms_fraction if self.ct_paths else 1.0
        self.vary_anatomy, self.device = vary_anatomy, device
        self._cts: dict[str, tuple[np.ndarray, tuple[float, float, float]]] = {}

    def _hounsfield(self, path: str) -> tuple[np.ndarray, tuple[float, float, float]]:
        if path not in self._cts:
            if path.endswith(PREPARED_CT_SUFFIX):  # already read, cleaned and resampled: numpy only
                self._cts[path] = read_prepared_ct(path)
            else:
                from .ct_volume import read_ct_hounsfield

                self._cts[path] = read_ct_hounsfield(path, grid_size=self.ct_grid)
        return self._cts[path]

    def load_all(self) -> None:
        """Read every CT now, so a bad file is reported before any image is written."""
        for path in self.ct_paths:
            self._hounsfield(path)

    def is_phantom(self, subject: int) -> bool:
        """Whether subject k is a procedural phantom."""
        if self.phantoms_fraction >= 1.0:
            return True
        return self.phantoms_fraction > 0 and seeded_rng(self.seed, subject, 6).uniform() < self.phantoms_fraction

    def subject(self, subject: int) -> Subject:
        """Subject k's material volume."""
        if self.is_phantom(subject):
            return Subject(make_head_phantom(seeded_rng(self.seed, subject), self.phantom_grid), "procedural", None)
        path = self.ct_paths[subject % len(self.ct_paths)]
        hu, spacing = self._hounsfield(path)
        variation = draw_variation(seeded_rng(self.seed, subject, 7)) if self.vary_anatomy else NO_VARIATION
        return Subject(varied_ct_volume(hu, spacing, variation, self.device), Path(path).name, variation)


def varied_ct_volume(hu_zyx: np.ndarray, spacing_mm: tuple[float, float, float], variation: AnatomyVariation,
                     device: str = "cpu") -> MaterialVolume:
    """The material volume of a CT (HU [z, y, x], centred) varied by `variation`, with its CT's cut where it fell
    inside the grid (MaterialVolume.scan_edge_mm: a smaller head has air beyond its CT's last slice)."""
    from .ct_volume import AIR_MAX_HU, SOFT_TISSUE_MAX_HU, volume_from_hounsfield

    if variation.is_identity:
        return volume_from_hounsfield(hu_zyx, spacing_mm)
    volume = volume_from_hounsfield(vary_hounsfield(hu_zyx, spacing_mm, variation, device), spacing_mm)
    shape = tuple(int(n) for n in hu_zyx.shape)
    centre = tuple(-(n - 1) / 2 * s for n, s in zip(shape[::-1], spacing_mm))
    cut = outline_on_faces(lambda axis, end: np.take(hu_zyx, end, axis=2 - axis)[None] > np.array(
        [AIR_MAX_HU, SOFT_TISSUE_MAX_HU])[:, None, None], shape, spacing_mm, centre)  # the anatomy's, the bone's
    cut = varied_points(cut, shape, spacing_mm, variation)
    lower, upper = volume.extent_mm()
    return replace(volume, scan_edge_mm=cut[np.all((cut > lower) & (cut < upper), axis=1)])


PREPARED_CT_SUFFIX = ".hu.npz"


def write_prepared_ct(path: str | Path, hounsfield: np.ndarray, spacing_mm: tuple[float, float, float]) -> Path:
    """A CT as the simulator uses it (HU [z, y, x] in LPS, non-patient objects removed, resampled) in a
    compressed .hu.npz that numpy alone reads (no SimpleITK: the GPU machine has none)."""
    path = Path(path)
    if not path.name.endswith(PREPARED_CT_SUFFIX):
        raise SimulationOptionError(f"a prepared CT's name ends in {PREPARED_CT_SUFFIX}, not {path.name}")
    with open(path, "wb") as f:
        np.savez_compressed(f, hounsfield=np.round(hounsfield).astype(np.int16),
                            spacing_mm=np.asarray(spacing_mm, dtype=np.float64))
    return path


def read_prepared_ct(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(HU [z, y, x] float32, spacing (x, y, z) mm) of a .hu.npz written by write_prepared_ct."""
    try:
        with np.load(path, allow_pickle=False) as data:
            hounsfield, spacing = data["hounsfield"].astype(np.float32), data["spacing_mm"]
    except (OSError, KeyError, ValueError) as exc:
        raise SimulationOptionError(f"{path}: not a prepared CT ({exc}); write it with "
                                    "scripts/prepare_training_ct.py") from None
    if hounsfield.ndim != 3 or spacing.shape != (3,) or not np.all(spacing > 0):
        raise SimulationOptionError(f"{path}: a prepared CT holds a 3-D HU array and three positive spacings")
    return hounsfield, tuple(float(v) for v in spacing)

