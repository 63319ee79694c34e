"""Volume-node geometry <-> radiograph geometry.

A node's IJKToRAS matrix holds spacing, origin and direction in RAS; a RadiographImage holds them in
ITK's LPS (x and y negated). Slice k of a node is the 2-D frame k; an output node gets the input's
IJKToRAS (or, for one frame, the IJKToRAS of that slice) so it overlays the input exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from MedShiftLib.io.radiograph import RadiographImage

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


def ijk_to_ras_of_node(node: Any) -> np.ndarray:
    """The node's 4x4 IJKToRAS matrix as a numpy array."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def frame_geometry(ijk_to_ras: np.ndarray, frame: int = 0) -> dict[str, tuple[float, ...]]:
    """Spacing, origin and direction (ITK/LPS, as RadiographImage holds them) of slice `frame`."""
    axes = ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    direction_lps = LPS_FROM_RAS @ (axes / spacing)
    origin_lps = LPS_FROM_RAS @ (ijk_to_ras[:3, 3] + frame * axes[:, 2])
    return {"spacing": tuple(float(s) for s in spacing), "origin": tuple(float(o) for o in origin_lps),
            "direction": tuple(float(d) for d in direction_lps.reshape(-1))}


def ijk_to_ras_of_image(image: RadiographImage) -> np.ndarray:
    """The IJKToRAS matrix of a one-slice node holding `image` (inverse of `frame_geometry`)."""
    direction_ras = LPS_FROM_RAS @ np.asarray(image.direction, dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = direction_ras * np.asarray(image.spacing, dtype=float)
    matrix[:3, 3] = LPS_FROM_RAS @ np.asarray(image.origin, dtype=float)
    return matrix
