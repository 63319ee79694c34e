"""Remove what is not the patient (head holder, table, cushions) from a CT before it is projected.

The patient is the largest connected object above a HU threshold once thin bridges (a holder touching
the skin, a cushion) are cut by a morphological opening; the object is grown back inside the
threshold, its holes (sinuses, airway, mouth) filled slice by slice, and every voxel outside it set
to air. scipy.ndimage does the morphology.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

AIR_HU = -1000.0
BODY_THRESHOLD_HU = -400.0  # skin and fat are above it, foam cushions and air below
OPENING_RADIUS_MM = 3.0  # breaks contacts thinner than ~6 mm between the patient and other objects


def _ball(radius_vox: np.ndarray) -> np.ndarray:
    """An ellipsoidal structuring element with the given radius in voxels along (z, y, x)."""
    r = np.maximum(np.round(radius_vox).astype(int), 0)
    grids = np.ogrid[tuple(slice(-n, n + 1) for n in r)]
    return sum((g / max(float(rad), 0.5)) ** 2 for g, rad in zip(grids, radius_vox)) <= 1.0


def patient_mask(hu_zyx: np.ndarray, spacing_mm: tuple[float, float, float],
                 threshold_hu: float = BODY_THRESHOLD_HU, opening_radius_mm: float = OPENING_RADIUS_MM) -> np.ndarray:
    """Boolean mask [z, y, x] of the patient: the largest object above `threshold_hu`, holes filled."""
    above = np.asarray(hu_zyx) > threshold_hu
    if not above.any():
        return above
    radius = opening_radius_mm / np.asarray(spacing_mm, dtype=float)[::-1]  # (z, y, x) voxels
    ball = _ball(radius)
    opened = ndimage.binary_opening(above, structure=ball) if ball.size > 1 else above
    if not opened.any():  # everything thinner than the opening: keep the plain threshold
        opened = above
    opened = largest_component(opened)
    body = largest_component(ndimage.binary_dilation(opened, structure=ball) & above)  # grown back as one piece
    for k in range(body.shape[0]):  # sinuses, airway, mouth: inside the patient
        body[k] = ndimage.binary_fill_holes(body[k])
    return ndimage.binary_dilation(body, iterations=1)  # keep the partial-volume skin voxels


def remove_non_patient(hu_zyx: np.ndarray, spacing_mm: tuple[float, float, float],
                       threshold_hu: float = BODY_THRESHOLD_HU) -> np.ndarray:
    """A copy of the CT with every voxel outside the patient set to air (-1000 HU)."""
    mask = patient_mask(hu_zyx, spacing_mm, threshold_hu)
    out = np.array(hu_zyx, dtype=np.float32, copy=True)
    out[~mask] = AIR_HU
    return out


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected part of a boolean mask (the mask itself when it has one part or none)."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))
