"""Where a CT's scan range cuts the anatomy, on the detector: steps its reconstruction never blurred.

A CT ends where its scan did: its first and last slices (Cranium's flat cut at the upper teeth, the Visible Human's
at C5) and, where anatomy reaches it, the edge of its in-plane box (a field-of-view cut inside the grid, such as the
Visible Human's nose tip, is not found). The anatomy's outline on those faces of the volume projects to a step
(edge-on) or to the kinks at the ends of a ramp (oblique) that no reconstruction blur made: restoring the CT's
sharpness there would ring (object_detail.restoration_weight keeps the restoration away from it). Only the outline
is marked: seen obliquely the cut face projects to a smooth ramp, whose inside the restoration may sharpen. A
subject varied from its CT (anatomical_variation) can have its CT's cut inside its grid (a smaller head, air below
the cut): subjects.py maps the CT's own outline there (MaterialVolume.scan_edge_mm).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from .cone_beam_projector import CArmGeometry, MaterialVolume


def outline_on_faces(face_anatomy: Callable[[int, int], np.ndarray], shape_zyx: tuple[int, int, int],
                     spacing_mm: tuple[float, float, float], origin_mm: tuple[float, float, float]) -> np.ndarray:
    """(N, 3) LPS mm: the outline of the anatomy on each face of a grid, and of each material in it (a bone cut inside
    the skin's outline is a step too, off the skin's outline in a tilted view); face_anatomy(axis, index) gives the
    bools of LPS axis `axis`'s slice `index` (its other two axes in z-y-x order), one layer per material."""
    spacing, origin = np.asarray(spacing_mm, dtype=float), np.asarray(origin_mm, dtype=float)
    points = []
    for axis in range(3):
        for end in (0, shape_zyx[2 - axis] - 1):
            layers = face_anatomy(axis, end)
            outline = np.zeros(layers.shape[1:], dtype=bool)
            for layer in layers:  # anatomy at the face's rim counts too (border_value 0)
                outline |= layer & ~ndimage.binary_erosion(layer, border_value=0)
            index = np.nonzero(outline)
            if not index[0].size:
                continue
            xyz = np.empty((index[0].size, 3))
            for dim, other in enumerate(a for a in (2, 1, 0) if a != axis):  # the face's axes, z-y-x order
                xyz[:, other] = origin[other] + index[dim] * spacing[other]
            xyz[:, axis] = origin[axis] + (end + (0.5 if end else -0.5)) * spacing[axis]  # the face itself
            points.append(xyz)
    return np.concatenate(points) if points else np.zeros((0, 3))


def scan_edge_points(volume: MaterialVolume) -> np.ndarray:
    """(N, 3) LPS mm: the outline of the anatomy and of each material on the volume's six faces, and the cut of its CT
    inside the grid where it has one (MaterialVolume.scan_edge_mm: a varied subject's)."""
    faces = outline_on_faces(lambda axis, end: np.take(volume.densities, end, axis=3 - axis) > 0,
                             volume.shape_zyx, volume.spacing_mm, volume.origin_mm)
    return faces if volume.scan_edge_mm is None else np.concatenate([faces, volume.scan_edge_mm])


def scan_edges_on_detector(volume: MaterialVolume, geometry: CArmGeometry) -> np.ndarray:
    """(rows, cols) bools: the detector pixels onto which the scan edges (scan_edge_points) project."""
    edges = np.zeros((geometry.rows, geometry.cols), dtype=bool)
    rows, cols, in_front = geometry.detector_position(scan_edge_points(volume))
    row, col = np.rint(rows[in_front]).astype(int), np.rint(cols[in_front]).astype(int)
    inside = (row >= 0) & (row < geometry.rows) & (col >= 0) & (col < geometry.cols)
    edges[row[inside], col[inside]] = True
    return edges
