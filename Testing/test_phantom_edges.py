"""The procedural phantom's cranial vault projects without concentric terraces, and keeps its bone (issue 27)."""
import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from MedShiftLib.simulator import head_phantom
from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector, MaterialVolume
from MedShiftLib.simulator.xray_physics import DENSITY, MATERIALS

GRID = 96  # 2.6 mm voxels: the vault's tables are about one voxel thick, as at the training grids


@pytest.fixture(scope="module")
def vault() -> tuple[MaterialVolume, float]:
    """The phantom's vault alone (no thickness harmonics), its centre at the isocentre; and its smallest semi-axis."""
    anatomy = dataclasses.replace(head_phantom.random_anatomy(np.random.default_rng(0)), thickness_harmonics=())
    canvas = head_phantom._Canvas(GRID)
    centre, axes = np.asarray(anatomy.cranium_centre), np.asarray(anatomy.cranium_axes)
    head_phantom._paint_cranium(canvas, anatomy, centre, axes)
    origin = tuple(float(a[0] - c) for a, c in zip(canvas.axes, centre))
    return MaterialVolume(canvas.densities, MATERIALS, (canvas.h,) * 3, origin), float(axes.min())


def _terrace(volume: MaterialVolume, radius_mm: float, lao_rao_deg: float, cranial_caudal_deg: float,
             size: int = 128) -> float:
    """High-pass energy (relative) of the bone line integrals over the upper vault (0.3-0.85 of its radius), where
    the true projection is smooth: what remains is the voxel grid's terraces."""
    geometry = CArmGeometry(lao_rao_deg, cranial_caudal_deg, rows=size, cols=size, pixel_spacing_mm=320.0 / size)
    bone = ConeBeamProjector(volume).project(geometry)[..., MATERIALS.index("cortical_bone")]
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx) * geometry.pixel_spacing_mm / geometry.magnification / radius_mm
    upper_vault = (r > 0.3) & (r < 0.85) & (yy < 0)
    high_pass = bone - ndimage.gaussian_filter(bone, 1.0)
    return float(high_pass[upper_vault].std() / bone[upper_vault].mean())


@pytest.mark.parametrize("lao_rao_deg, cranial_caudal_deg", [(8.0, 5.0), (-20.0, 12.0), (30.0, -25.0)])
def test_vault_seen_by_tilted_rays_has_no_terraces(vault, lao_rao_deg, cranial_caudal_deg):
    # with the former 1-voxel linear edges: 0.016, 0.042, 0.044 (visible rings); Gaussian edges: 0.008, 0.007, 0.005
    assert _terrace(*vault, lao_rao_deg, cranial_caudal_deg) < 0.011


def test_thin_nested_layer_with_soft_edges_keeps_its_mass():
    """A 3 mm bone shell (about one voxel) around brain, painted as the vault's layers are: its mass is the shell's."""
    canvas = head_phantom._Canvas(GRID)
    index, (x, y, z) = canvas.box((-80.0,) * 3, (80.0,) * 3, head_phantom.SOFT_EDGE_MARGIN_VOXELS)
    r = np.sqrt(x * x + y * y + z * z)
    canvas.paint(index, canvas.soft_coverage(r - 75.0), head_phantom.CORTICAL)
    canvas.paint(index, canvas.soft_coverage(r - 72.0), head_phantom.BRAIN, within=head_phantom.CORTICAL)
    bone_g = canvas.densities[MATERIALS.index("cortical_bone")].sum() * (canvas.h / 10.0) ** 3
    expected_g = 4 / 3 * math.pi * (75.0 ** 3 - 72.0 ** 3) / 1000.0 * DENSITY["cortical_bone"]
    assert bone_g == pytest.approx(expected_g, rel=0.01)  # painted over (no `within`): 8 % more
    assert canvas.densities.min() >= 0.0
