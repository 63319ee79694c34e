"""Which views the simulator renders: C-arm angles or standard skull projections, and the detector geometry.

- c-arm: LAO/RAO and cranial/caudal each uniform in -40..40 deg (neuro-intervention views);
- pa: posterior-anterior, the beam 0..15 deg caudal (plain PA to Caldwell; Bontrager's Textbook of
  Radiographic Positioning, skull chapter), +-5 deg of rotation;
- ap: anterior-posterior (LAO/RAO 180 deg), +-5 deg either way;
- lateral: the beam across the head (LAO/RAO +-90 deg, either side against the detector), +-5 deg;
- mixed: one of the above per view (c-arm 40 %, pa 25 %, lateral 25 %, ap 10 %).
Every choice is seeded by (seed, subject, view), so a view does not depend on how many were asked for.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MedShiftError
from .cone_beam_projector import (
    ANGLE_LIMIT_DEG,
    DEFAULT_DETECTOR_WIDTH_MM,
    DEFAULT_SID_MM,
    DEFAULT_SOD_MM,
    CArmGeometry,
)

VIEW_KINDS = ("c-arm", "pa", "ap", "lateral", "mixed")
MIXED_SHARES = {"c-arm": 0.4, "pa": 0.25, "lateral": 0.25, "ap": 0.1}
STANDARD_JITTER_DEG = 5.0


class SimulationOptionError(MedShiftError):
    """A simulator option (view kind, geometry) that cannot be used."""


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """The random generator of one (seed, subject, view, purpose) key."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(int(k) for k in key)))


def anatomy_rng(seed: int, subject: int, view: int) -> np.random.Generator:
    """The generator of one view's anatomy finer than its CT (object_detail.py): purpose 8 (0-7 are taken)."""
    return seeded_rng(seed, subject, view, 8)


def angle_limit(kind: str) -> float:
    """Largest |angle| (deg) a view kind allows: 40 for the C-arm, 180 for standard projections."""
    return ANGLE_LIMIT_DEG if kind == "c-arm" else 180.0


def _wrap(angle: float) -> float:
    return float(np.round((angle + 180.0) % 360.0 - 180.0, 1))


def draw_view(seed: int, subject: int, view: int, kind: str = "c-arm") -> tuple[str, float, float]:
    """(view kind, LAO/RAO deg, cranial/caudal deg) of one view; 'mixed' picks the kind first."""
    if kind not in VIEW_KINDS:
        raise SimulationOptionError(f"unknown view kind {kind!r}; use one of {', '.join(VIEW_KINDS)}")
    if kind == "mixed":
        names = list(MIXED_SHARES)
        kind = names[int(seeded_rng(seed, subject, view, 4).choice(len(names), p=list(MIXED_SHARES.values())))]
    if kind == "c-arm":  # the original key (0), so C-arm data sets stay as they were
        lao, cran = np.round(seeded_rng(seed, subject, view, 0).uniform(-ANGLE_LIMIT_DEG, ANGLE_LIMIT_DEG, 2), 1)
        return kind, float(lao), float(cran)
    rng = seeded_rng(seed, subject, view, 5)
    jitter = rng.uniform(-STANDARD_JITTER_DEG, STANDARD_JITTER_DEG, 2)
    if kind == "pa":
        return kind, _wrap(jitter[0]), _wrap(rng.uniform(-15.0, 0.0))
    if kind == "ap":
        return kind, _wrap(180.0 + jitter[0]), _wrap(jitter[1])
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    return kind, _wrap(side * 90.0 + jitter[0]), _wrap(jitter[1])


@dataclass(frozen=True)
class ViewOptions:
    """View kind and detector geometry of a simulated data set."""

    kind: str = "c-arm"
    pixel_spacings_mm: tuple[float, ...] | None = None  # detector pixel pitch; None: 320 mm / size
    sid_mm: float = DEFAULT_SID_MM
    sod_mm: float = DEFAULT_SOD_MM

    def __post_init__(self) -> None:
        """Refuse options that make no geometry."""
        if self.kind not in VIEW_KINDS:
            raise SimulationOptionError(f"unknown view kind {self.kind!r}; use one of {', '.join(VIEW_KINDS)}")
        if not 0 < self.sod_mm < self.sid_mm:
            raise SimulationOptionError(f"source-object distance {self.sod_mm:g} mm must be positive and shorter "
                                        f"than the source-image distance {self.sid_mm:g} mm")
        if self.pixel_spacings_mm is not None and (not self.pixel_spacings_mm
                                                   or min(self.pixel_spacings_mm) <= 0):
            raise SimulationOptionError(f"pixel pitch must be positive (got {self.pixel_spacings_mm})")

    def pixel_spacing(self, seed: int, subject: int, view: int, size: int) -> float:
        """Detector pixel pitch (mm) of one view: the one given, or one of several drawn per view."""
        if self.pixel_spacings_mm is None:
            return DEFAULT_DETECTOR_WIDTH_MM / size
        if len(self.pixel_spacings_mm) == 1:
            return float(self.pixel_spacings_mm[0])
        index = int(seeded_rng(seed, subject, view, 3).integers(len(self.pixel_spacings_mm)))
        return float(self.pixel_spacings_mm[index])

    def smallest_spacing(self, size: int) -> float:
        """The finest detector pixel pitch (mm) any view can have."""
        return DEFAULT_DETECTOR_WIDTH_MM / size if self.pixel_spacings_mm is None else min(self.pixel_spacings_mm)

    def geometry(self, seed: int, subject: int, view: int, size: int) -> tuple[str, CArmGeometry]:
        """The view kind and geometry of one view."""
        kind, lao, cran = draw_view(seed, subject, view, self.kind)
        return kind, CArmGeometry(lao_rao_deg=lao, cranial_caudal_deg=cran, sid_mm=self.sid_mm, sod_mm=self.sod_mm,
                                  rows=size, cols=size, pixel_spacing_mm=self.pixel_spacing(seed, subject, view, size))
