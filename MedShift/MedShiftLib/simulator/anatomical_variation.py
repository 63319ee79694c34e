"""Many subjects from one CT: head size, proportions, pose and a smooth random deformation, seeded.

Every subject's CT is resampled through one map from its own (output) grid to the source CT:
x_source = R^T (x / s) + d(x), with s the head size times a small per-axis anisotropy, R a small
rotation (head pose in the holder: roll, pitch, yaw) and d a smooth random displacement field
(cubic interpolation of Gaussian control-point displacements ~40 mm apart). Ranges are chosen from
adult anthropometry (head breadth and length vary by about 4-5 % (1 SD) between adults; Bushby et al.
1992, Arch Dis Child 67:1286) and keep the skull plausible: bone stays bone, nothing folds
(displacement gradients stay far below 1). Resampling is trilinear in PyTorch (grid_sample).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

AIR_HU = -1000.0


@dataclass(frozen=True)
class AnatomyVariation:
    """One subject's variation of a CT: size, per-axis proportions, pose and deformation."""

    head_scale: float = 1.0  # isotropic size factor
    axis_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # extra (x, y, z) factors: head shape
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # about x (pitch), y (roll), z (yaw)
    deformation_mm: float = 0.0  # RMS amplitude of the smooth displacement field
    control_spacing_mm: float = 40.0
    deformation_seed: int = 0

    @property
    def is_identity(self) -> bool:
        """True when the variation leaves the CT unchanged."""
        return (self.head_scale == 1.0 and self.axis_scale == (1.0, 1.0, 1.0)
                and self.rotation_deg == (0.0, 0.0, 0.0) and self.deformation_mm == 0.0)


NO_VARIATION = AnatomyVariation()


def draw_variation(rng: np.random.Generator) -> AnatomyVariation:
    """A random subject: size +-8 %, proportions +-4 %, pose +-6 deg per axis, 2-4 mm RMS deformation."""
    return AnatomyVariation(
        head_scale=float(rng.uniform(0.92, 1.08)),
        axis_scale=tuple(float(v) for v in rng.uniform(0.96, 1.04, 3)),
        rotation_deg=tuple(float(v) for v in rng.uniform(-6.0, 6.0, 3)),
        deformation_mm=float(rng.uniform(2.0, 4.0)),
        deformation_seed=int(rng.integers(2**31)))


def _rotation(rotation_deg: tuple[float, float, float]) -> np.ndarray:
    """Rotation matrix (LPS) from angles about x, y and z (deg), applied x first."""
    ax, ay, az = (math.radians(a) for a in rotation_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def displacement_field(shape_zyx: tuple[int, int, int], spacing_mm: tuple[float, float, float],
                       variation: AnatomyVariation) -> torch.Tensor:
    """Smooth displacement (mm) of every voxel, shape (z, y, x, 3) with components (x, y, z).

    Gaussian control points ~`control_spacing_mm` apart, cubic-spline interpolated onto a grid a
    quarter as fine as the CT's, then trilinearly onto the CT grid (cheap, and smooth at that scale).
    """
    extent = np.asarray(shape_zyx, dtype=float) * np.asarray(spacing_mm, dtype=float)[::-1]
    coarse = tuple(int(max(4, math.ceil(e / variation.control_spacing_mm) + 1)) for e in extent)
    middle = tuple(max(c, -(-n // 4)) for c, n in zip(coarse, shape_zyx))
    rng = np.random.default_rng(variation.deformation_seed)
    field = rng.normal(0.0, variation.deformation_mm, (3,) + coarse)
    factors = [m / c for m, c in zip(middle, coarse)]
    smooth = np.stack([ndimage.zoom(c, factors, order=3, mode="nearest", grid_mode=False) for c in field])
    full = F.interpolate(torch.from_numpy(smooth.astype(np.float32))[None], size=tuple(shape_zyx),
                         mode="trilinear", align_corners=True)[0]
    return full.permute(1, 2, 3, 0).contiguous()


def vary_hounsfield(hu_zyx: np.ndarray, spacing_mm: tuple[float, float, float], variation: AnatomyVariation,
                    device: str | torch.device = "cpu") -> np.ndarray:
    """The CT (HU [z, y, x], spacing (x, y, z) mm, centred) as seen in a subject with `variation`."""
    hu = np.asarray(hu_zyx, dtype=np.float32)
    if variation.is_identity:
        return hu.copy()
    shape = tuple(int(n) for n in hu.shape)
    half = (np.asarray(shape[::-1], dtype=float) - 1) / 2 * np.asarray(spacing_mm, dtype=float)  # mm, (x, y, z)
    half = np.maximum(half, 1e-6)
    scale = variation.head_scale * np.asarray(variation.axis_scale, dtype=float)
    inverse = _rotation(variation.rotation_deg).T / scale[None, :]  # output mm -> source mm: undo scale, rotation
    theta = (inverse * half[None, :]) / half[:, None]  # the same map in normalised [-1, 1] coordinates
    theta = torch.as_tensor(np.concatenate([theta, np.zeros((3, 1))], axis=1)[None], dtype=torch.float32)
    grid = F.affine_grid(theta, [1, 1, *shape], align_corners=True)[0]  # (z, y, x, 3), components (x, y, z)
    if variation.deformation_mm > 0:
        grid = grid + displacement_field(shape, spacing_mm, variation) / torch.as_tensor(half, dtype=torch.float32)
    volume = torch.from_numpy(hu - AIR_HU).to(device)[None, None]  # air is 0, so padding with zeros is air
    out = F.grid_sample(volume, grid.to(device)[None], mode="bilinear", padding_mode="zeros", align_corners=True)
    return (out[0, 0].cpu().numpy() + AIR_HU).astype(np.float32)
