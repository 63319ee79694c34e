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
from torch import Tensor

AIR_HU = -1000.0
TISSUE_BLOCK = 4  # voxels per block side in the test of which output cells can reach tissue


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


def displacement_lattice(shape_zyx: tuple[int, int, int], spacing_mm: tuple[float, float, float],
                         variation: AnatomyVariation) -> np.ndarray:
    """The smooth displacement (mm) on a lattice a quarter as fine as the CT's, shape (mz, my, mx, 3), (x, y, z).

    Gaussian control points ~`control_spacing_mm` apart, cubic-spline interpolated onto the lattice, whose
    nodes span the CT's grid corner to corner; between nodes the displacement is trilinear (smooth at that scale).
    """
    extent = np.asarray(shape_zyx, dtype=float) * np.asarray(spacing_mm, dtype=float)[::-1]
    coarse = tuple(int(max(4, math.ceil(e / variation.control_spacing_mm) + 1)) for e in extent)
    middle = tuple(max(c, -(-n // 4)) for c, n in zip(coarse, shape_zyx))
    rng = np.random.default_rng(variation.deformation_seed)
    field = rng.normal(0.0, variation.deformation_mm, (3,) + coarse)
    # ndimage.zoom(order=3, mode="nearest", grid_mode=False) of each component, as the tensor product it is:
    # one small matrix per axis (the zoom of each unit vector), much cheaper than the 64-tap 3-D evaluation
    along = [np.stack([ndimage.zoom(unit, m / c, order=3, mode="nearest", grid_mode=False) for unit in np.eye(c)],
                      axis=1) for c, m in zip(coarse, middle)]
    return np.einsum("azyx,Zz,Yy,Xx->ZYXa", field, *along, optimize=True)


def vary_hounsfield(hu_zyx: np.ndarray, spacing_mm: tuple[float, float, float], variation: AnatomyVariation,
                    device: str | torch.device = "cpu", slab: int = 16) -> np.ndarray:
    """The CT (HU [z, y, x], spacing (x, y, z) mm, centred) as seen in a subject with `variation`.

    The map (affine and displacement) is composed on the displacement's lattice and interpolated trilinearly,
    `slab` output slices at a time, only over the rectangle of the lattice cells whose source points can
    reach a voxel that is not air: outside it every sample is air, exactly (`_cells_reaching_tissue`).
    """
    hu = np.asarray(hu_zyx, dtype=np.float32)
    if variation.is_identity:
        return hu.copy()
    shape = tuple(int(n) for n in hu.shape)
    lattice = torch.from_numpy(_composed_lattice(shape, spacing_mm, variation))  # float64, normalised source points
    cell_needed = _cells_reaching_tissue(lattice, hu, shape)
    node_needed = F.max_pool3d(F.pad(cell_needed[None, None].float(), (1, 1, 1, 1, 1, 1)), 2, stride=1)[0, 0] > 0
    volume = torch.from_numpy(hu - AIR_HU).to(device)[None, None]  # air is 0, so padding with zeros is air
    out = np.full(shape, AIR_HU, dtype=np.float32)
    weights = [_interpolation_matrix(n, m) for n, m in zip(shape, lattice.shape[:3])]
    for z0 in range(0, shape[0], slab):
        along_z = weights[0][z0:z0 + slab]
        nodes_z = _node_range(along_z)
        rows = node_needed[nodes_z].any(dim=0)  # lattice nodes (y, x) that some needed cell of the slab has
        ys, xs = _needed_range(weights[1], rows.any(dim=1)), _needed_range(weights[2], rows.any(dim=0))
        if ys is None or xs is None:
            continue
        along_y, along_x = weights[1][ys], weights[2][xs]
        nodes_y, nodes_x = _node_range(along_y), _node_range(along_x)
        grid = torch.einsum("zyxc,Xx->zyXc", lattice[nodes_z, nodes_y, nodes_x], along_x[:, nodes_x])
        grid = torch.einsum("zyXc,Yy->zYXc", grid, along_y[:, nodes_y])
        grid = torch.einsum("zYXc,Zz->ZYXc", grid, along_z[:, nodes_z]).float()
        sampled = F.grid_sample(volume, grid.to(device)[None], mode="bilinear", padding_mode="zeros",
                                align_corners=True)
        out[z0:z0 + slab, ys, xs] = sampled[0, 0].cpu().numpy() + AIR_HU
    return out


def _composed_lattice(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
                      variation: AnatomyVariation) -> np.ndarray:
    """Each lattice node's source point in grid_sample's normalised coordinates (align_corners): (mz, my, mx, 3)."""
    half = (np.asarray(shape[::-1], dtype=float) - 1) / 2 * np.asarray(spacing_mm, dtype=float)  # mm, (x, y, z)
    half = np.maximum(half, 1e-6)
    scale = variation.head_scale * np.asarray(variation.axis_scale, dtype=float)
    inverse = _rotation(variation.rotation_deg).T / scale[None, :]  # output mm -> source mm: undo scale, rotation
    theta = (inverse * half[None, :]) / half[:, None]  # the same map in normalised [-1, 1] coordinates
    displacement = displacement_lattice(shape, spacing_mm, variation) if variation.deformation_mm > 0 else None
    nodes = displacement.shape[:3] if displacement is not None else (2, 2, 2)
    z, y, x = np.meshgrid(*(np.linspace(-1.0, 1.0, m) for m in nodes), indexing="ij")
    composed = np.stack([x, y, z], axis=-1) @ theta.T  # affine maps are reproduced exactly by trilinear weights
    return composed if displacement is None else composed + displacement / half


def _cells_reaching_tissue(lattice: Tensor, hu: np.ndarray, shape: tuple[int, int, int]) -> Tensor:
    """(mz-1, my-1, mx-1) bools: whether a lattice cell's voxels can sample a source voxel that is not air.

    Trilinear weights make every voxel's source point a convex combination of its cell's 8 corners, so it
    lies in their bounding box; its sample reads the voxels around it. A cell none of whose box (widened by
    a voxel, and out to whole blocks of TISSUE_BLOCK voxels) holds anything but air gives air everywhere; a
    3-D prefix sum over the blocks counts the box's tissue.
    """
    sizes = torch.tensor(shape[::-1], dtype=torch.float64)  # (x, y, z)
    points = (lattice + 1) / 2 * (sizes - 1)  # source voxel coordinates
    corners = points.permute(3, 0, 1, 2)[None]
    low = -F.max_pool3d(-corners, 2, stride=1)[0].permute(1, 2, 3, 0)
    high = F.max_pool3d(corners, 2, stride=1)[0].permute(1, 2, 3, 0)
    first = torch.floor(low - 1e-3).clamp(min=0).minimum(sizes).long()  # first voxel read, (x, y, z)
    stop = (torch.floor(high + 1e-3) + 2).clamp(min=0).minimum(sizes).long()  # one past the last voxel read
    first, stop = first // TISSUE_BLOCK, -(-stop // TISSUE_BLOCK)  # in whole blocks
    tissue = torch.from_numpy(hu != AIR_HU)[None, None].to(torch.float32)
    blocks = F.max_pool3d(tissue, TISSUE_BLOCK, ceil_mode=True)[0, 0].to(torch.int64)
    prefix = F.pad(blocks.cumsum(0).cumsum(1).cumsum(2), (1, 0, 1, 0, 1, 0))
    count = torch.zeros(first.shape[:3], dtype=torch.int64)
    for corner in range(8):
        pick = [stop[..., c] if corner >> c & 1 else first[..., c] for c in range(3)]  # x, y, z
        sign = -1 if (3 - bin(corner).count("1")) % 2 else 1
        count += sign * prefix[pick[2], pick[1], pick[0]]
    return count > 0


def _interpolation_matrix(voxels: int, nodes: int) -> Tensor:
    """(voxels, nodes) float64: trilinear (align_corners) weights of the lattice nodes along one axis."""
    position = torch.arange(voxels, dtype=torch.float64) * ((nodes - 1) / max(voxels - 1, 1))
    cell = position.floor().long().clamp(0, max(nodes - 2, 0))
    weight = position - cell
    matrix = torch.zeros(voxels, nodes, dtype=torch.float64)
    rows = torch.arange(voxels)
    matrix[rows, cell] += 1 - weight
    matrix[rows, (cell + 1).clamp(max=nodes - 1)] += weight
    return matrix


def _needed_range(matrix: Tensor, needed_nodes: Tensor) -> slice | None:
    """The voxels (rows of an interpolation matrix) that weigh any of `needed_nodes` (bools per node); None: none."""
    voxels = torch.nonzero((matrix[:, needed_nodes] > 0).any(dim=1)).flatten()
    return slice(int(voxels[0]), int(voxels[-1]) + 1) if len(voxels) else None


def _node_range(matrix: Tensor) -> slice:
    """The lattice nodes with a weight in an interpolation matrix's rows."""
    nodes = torch.nonzero((matrix != 0).any(dim=0)).flatten()
    return slice(int(nodes[0]), int(nodes[-1]) + 1)


def varied_points(points_mm: np.ndarray, shape_zyx: tuple[int, int, int], spacing_mm: tuple[float, float, float],
                  variation: AnatomyVariation, iterations: int = 4) -> np.ndarray:
    """(N, 3) LPS mm: where points of the (centred) CT lie in the subject with `variation`, the inverse of
    vary_hounsfield's map (source = affine(subject) + displacement(subject), solved by fixed-point iteration)."""
    half = np.maximum((np.asarray(shape_zyx[::-1], dtype=float) - 1) / 2 * np.asarray(spacing_mm, dtype=float), 1e-6)
    scale = variation.head_scale * np.asarray(variation.axis_scale, dtype=float)
    theta = (_rotation(variation.rotation_deg).T / scale[None, :] * half[None, :]) / half[:, None]
    source = np.asarray(points_mm, dtype=float) / half  # normalised, (x, y, z)
    forward = np.linalg.inv(theta)
    subject = source @ forward.T
    if variation.deformation_mm > 0:
        displacement = displacement_lattice(shape_zyx, spacing_mm, variation)  # (mz, my, mx, 3) mm
        nodes = np.asarray(displacement.shape[:3], dtype=float)
        for _ in range(iterations):
            at = ((subject[:, ::-1] + 1) / 2 * (nodes - 1)).T  # lattice coordinates (z, y, x) of each point
            shift = np.stack([ndimage.map_coordinates(displacement[..., c], at, order=1, mode="nearest")
                              for c in range(3)], axis=-1)
            subject = (source - shift / half) @ forward.T
    return subject * half
