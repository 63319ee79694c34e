"""Procedural 3-D head phantom with per-subject variation, as partial material densities on a grid.

The head is built by painting smooth (partial-volume, anti-aliased) shapes one after another onto
a voxel grid (the vault's surfaces with wider, Gaussian edges against projection terraces): scalp
and neck soft tissue, a cranial vault with outer table / diploe / inner table of varying thickness,
skull base with petrous ridges, brain, orbits, frontal/maxillary/sphenoid sinuses and nasal cavity
(air), maxilla and zygomatic arches, mandible, teeth (enamel crowns on dentine), pharynx and
cervical vertebrae C1-C6. Coordinates are LPS mm (x left, y posterior,
z superior) with the isocentre near the sella. Densities follow ICRU-46 (see xray_physics).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .cone_beam_projector import MaterialVolume
from .xray_physics import DENSITY, MATERIALS

# Field of view of the phantom grid (x, y, z) in mm: head width, head length, vertex to C5.
PHANTOM_EXTENT_MM = (190.0, 236.0, 250.0)

# Anatomy point (LPS mm, phantom frame) that sits at the C-arm isocentre: mid-brain above the sella.
ISOCENTRE_IN_PHANTOM_MM = (0.0, 0.0, 16.0)

# Width (standard deviation, in voxels) of the Gaussian edge the vault's surfaces are painted with. The
# 1-voxel linear ramp of the other shapes (0.29 voxel) lets the projector's trilinear interpolation turn each
# thin, wide shell of the vault, crossed obliquely by tilted rays, into concentric terraces (issue 27; see
# docs/simulator.md, "Rings in the phantom's vault"). Small shapes keep the ramp: a Gaussian edge would add
# mass to them (about 3 sigma^2 / r^2 of a sphere's), and they make no terraces.
EDGE_SIGMA_VOXELS = 0.8
SOFT_EDGE_MARGIN_VOXELS = 5.0 * EDGE_SIGMA_VOXELS  # where the Gaussian edge has fallen below 1e-6

# Fill vectors: g/cm^3 of (soft_tissue, cortical_bone, enamel) in a voxel fully inside a shape.
AIR = np.zeros(3, np.float32)
TISSUE = np.array([DENSITY["soft_tissue"], 0, 0], np.float32)
BRAIN = np.array([DENSITY["brain"], 0, 0], np.float32)
FAT = np.array([DENSITY["fat"], 0, 0], np.float32)
CORTICAL = np.array([0, DENSITY["cortical_bone"], 0], np.float32)
ENAMEL = np.array([0, 0, DENSITY["enamel"]], np.float32)
DENTINE = np.array([0.3 * DENSITY["soft_tissue"], 0, 0.6 * DENSITY["enamel"]], np.float32)


def cancellous(bone_fraction: float) -> np.ndarray:
    """Fill of cancellous bone / diploe: a volume fraction of cortical bone in marrow (soft tissue)."""
    return np.array([(1 - bone_fraction) * DENSITY["soft_tissue"],
                     bone_fraction * DENSITY["cortical_bone"], 0], np.float32)


class _Canvas:
    """A voxel grid that shapes are painted onto (new = old * (1 - f) + f * fill)."""

    def __init__(self, grid_size: int) -> None:
        extent = np.asarray(PHANTOM_EXTENT_MM)
        self.h = float(extent.max() / grid_size)
        n = np.maximum(np.round(extent / self.h).astype(int), 2)  # (nx, ny, nz)
        self.axes = [((np.arange(k) - (k - 1) / 2) * self.h).astype(np.float32) for k in n]
        self.densities = np.zeros((len(MATERIALS), n[2], n[1], n[0]), np.float32)

    def box(self, lower, upper, margin_voxels: float = 2.0
            ) -> tuple[tuple[slice, slice, slice], tuple[np.ndarray, ...]] | None:
        """Index slices (z, y, x) and broadcastable coordinates (x, y, z) of an mm bounding box plus a margin."""
        slices, coords = [], []
        for a in range(3):
            ax = self.axes[a]
            i0 = int(np.searchsorted(ax, lower[a] - margin_voxels * self.h))
            i1 = int(np.searchsorted(ax, upper[a] + margin_voxels * self.h))
            if i1 <= i0:
                return None
            slices.append(slice(i0, i1))
            coords.append(ax[i0:i1])
        x = coords[0][None, None, :]
        y = coords[1][None, :, None]
        z = coords[2][:, None, None]
        return (slices[2], slices[1], slices[0]), (x, y, z)

    def coverage(self, signed_distance: np.ndarray) -> np.ndarray:
        """Partial-volume fraction of a voxel inside a shape from its signed distance (mm): a 1-voxel ramp."""
        return np.clip(0.5 - signed_distance / self.h, 0.0, 1.0)

    def soft_coverage(self, signed_distance: np.ndarray) -> np.ndarray:
        """The same with a Gaussian edge (EDGE_SIGMA_VOXELS), for wide thin shells that oblique rays cross."""
        scale = np.float32(-1.0 / (EDGE_SIGMA_VOXELS * self.h))
        return special.ndtr(signed_distance * scale).astype(np.float32, copy=False)

    def paint(self, index, fraction: np.ndarray, fill: np.ndarray, within: np.ndarray | None = None) -> None:
        """Blend a fill into the voxels of `index` with a per-voxel fraction.

        `within`: the fill of the shape just painted that this one lies inside (a nested layer, as the vault's
        tables): the layer replaces that fill only (new = old + fraction * (fill - within)), so a layer thinner
        than soft edges keeps its mass instead of gaining the overlap of its two edges.
        """
        region = self.densities[(slice(None),) + tuple(index)]
        replaced = region if within is None else within[:, None, None, None]
        region += fraction[None] * (fill[:, None, None, None] - replaced)


def _ellipsoid_distance(x, y, z, centre, axes):
    """Approximate signed distance (mm) to an axis-aligned ellipsoid, measured radially."""
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    r = np.sqrt((dx / axes[0]) ** 2 + (dy / axes[1]) ** 2 + (dz / axes[2]) ** 2)
    length = np.sqrt(dx * dx + dy * dy + dz * dz)
    return (r - 1.0) * length / np.maximum(r, 1e-6), r


def _paint_ellipsoid(canvas: _Canvas, centre, axes, fill, grow: float = 0.0) -> None:
    axes = np.asarray(axes, float) + grow
    box = canvas.box(np.subtract(centre, axes), np.add(centre, axes))
    if box is None:
        return
    index, (x, y, z) = box
    distance, _ = _ellipsoid_distance(x, y, z, centre, axes)
    canvas.paint(index, canvas.coverage(distance), fill)


def _segment_distance(x, y, z, p0, p1, z_squash: float = 1.0):
    """Distance (mm) from points to the segment p0-p1, with z scaled by 1/z_squash (flat tubes)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    d[2] /= z_squash
    rel = (x - p0[0], y - p0[1], (z - p0[2]) / z_squash)
    t = np.clip((rel[0] * d[0] + rel[1] * d[1] + rel[2] * d[2]) / max(float(d @ d), 1e-9), 0, 1)
    return np.sqrt((rel[0] - t * d[0]) ** 2 + (rel[1] - t * d[1]) ** 2 + (rel[2] - t * d[2]) ** 2)


def _paint_tube(canvas: _Canvas, points, radius: float, fill, z_squash: float = 1.0) -> None:
    """Paint a tube of `radius` along a polyline (union of capsules)."""
    points = np.asarray(points, float)
    reach = radius * max(1.0, z_squash)
    box = canvas.box(points.min(0) - reach, points.max(0) + reach)
    if box is None:
        return
    index, (x, y, z) = box
    distance = None
    for p0, p1 in zip(points[:-1], points[1:]):
        d = _segment_distance(x, y, z, p0, p1, z_squash)
        distance = d if distance is None else np.minimum(distance, d)
    canvas.paint(index, canvas.coverage(distance - radius), fill)


def _paint_cylinder(canvas: _Canvas, centre, radii_xy, half_height: float, fill) -> None:
    """Paint an upright elliptic cylinder."""
    lower = (centre[0] - radii_xy[0], centre[1] - radii_xy[1], centre[2] - half_height)
    upper = (centre[0] + radii_xy[0], centre[1] + radii_xy[1], centre[2] + half_height)
    box = canvas.box(lower, upper)
    if box is None:
        return
    index, (x, y, z) = box
    dx, dy = (x - centre[0]) / radii_xy[0], (y - centre[1]) / radii_xy[1]
    r = np.sqrt(dx * dx + dy * dy)
    radial = (r - 1.0) * min(radii_xy)
    axial = np.abs(z - centre[2]) - half_height
    canvas.paint(index, canvas.coverage(np.maximum(radial, axial)), fill)


@dataclass(frozen=True)
class HeadAnatomy:
    """The random per-subject parameters of one phantom (mm unless stated)."""

    cranium_centre: tuple[float, float, float]
    cranium_axes: tuple[float, float, float]
    scalp_mm: float
    outer_table_mm: float
    diploe_mm: float
    inner_table_mm: float
    diploe_bone_fraction: float
    thickness_harmonics: tuple[tuple[float, float, float, float, float], ...]  # (kx, ky, kz, phase, amp)
    frontal_sinus_scale: float
    maxillary_sinus_scale: float
    orbit_half_distance: float
    face_scale: float
    mandible_scale: float
    missing_teeth: tuple[int, ...]
    vertebra_spacing: float
    offset: tuple[float, float, float]


def random_anatomy(rng: np.random.Generator) -> HeadAnatomy:
    """Draw one subject's anatomy parameters (sizes within adult ranges)."""
    scale = rng.uniform(0.93, 1.05)
    axes = (72.0 * scale * rng.uniform(0.95, 1.05), 92.0 * scale * rng.uniform(0.95, 1.05),
            80.0 * scale * rng.uniform(0.95, 1.05))
    harmonics = tuple((*rng.normal(0.0, 2.5, 3), rng.uniform(0, 2 * math.pi), rng.uniform(0.05, 0.18))
                      for _ in range(4))
    return HeadAnatomy(
        cranium_centre=(0.0, 8.0, 28.0), cranium_axes=axes, scalp_mm=rng.uniform(4.0, 7.0),
        outer_table_mm=rng.uniform(1.3, 2.2), diploe_mm=rng.uniform(2.0, 4.5),
        inner_table_mm=rng.uniform(1.0, 1.6), diploe_bone_fraction=rng.uniform(0.25, 0.45),
        thickness_harmonics=harmonics, frontal_sinus_scale=rng.uniform(0.0, 1.4),
        maxillary_sinus_scale=rng.uniform(0.8, 1.2), orbit_half_distance=rng.uniform(29.0, 35.0),
        face_scale=rng.uniform(0.92, 1.08), mandible_scale=rng.uniform(0.92, 1.08),
        missing_teeth=tuple(int(i) for i in rng.choice(28, size=int(rng.integers(0, 4)), replace=False)),
        vertebra_spacing=rng.uniform(16.0, 19.0),
        offset=tuple(float(v) for v in rng.uniform(-6.0, 6.0, 3)))


def _cranial_floor(x, y, c, axes):
    """Height (mm) of the cranial floor under the brain at (x, y)."""
    u, v = (x - c[0]) / axes[0], (y - c[1]) / axes[1]
    anterior = c[2] - 0.30 * axes[2]
    middle = anterior - 18.0 * np.clip(np.abs(u) * 2.2 - 0.3, 0, 1)  # temporal fossae
    posterior = c[2] - 0.50 * axes[2] + 12.0 * u * u
    to_middle = 1.0 / (1.0 + np.exp(-(v + 0.25) * 14))
    to_posterior = 1.0 / (1.0 + np.exp(-(v - 0.15) * 14))
    return anterior + (middle - anterior) * to_middle + (posterior - middle) * to_posterior


def _paint_cranium(canvas: _Canvas, anatomy: HeadAnatomy, c, axes) -> float:
    """Vault with outer table, diploe and inner table; returns the skull-base height at y = 0."""
    box = canvas.box(np.subtract(c, axes), np.add(c, axes), SOFT_EDGE_MARGIN_VOXELS)
    index, (x, y, z) = box
    distance, r = _ellipsoid_distance(x, y, z, c, axes)
    depth = -distance  # mm below the outer surface, along the radius
    dx, dy, dz = (x - c[0]) / axes[0], (y - c[1]) / axes[1], (z - c[2]) / axes[2]
    norm = np.maximum(np.sqrt(dx * dx + dy * dy + dz * dz), 1e-6)
    ux, uy, uz = dx / norm, dy / norm, dz / norm
    # thickness: thinner temporal squama, thicker occiput and frontal bone, random harmonics
    modulation = 1.0 - 0.45 * np.abs(ux) ** 3 * (1 - np.abs(uz)) + 0.25 * np.clip(uy, 0, None) ** 4
    modulation = modulation + 0.2 * np.clip(-uy, 0, None) ** 6
    for kx, ky, kz, phase, amp in anatomy.thickness_harmonics:
        modulation = modulation + amp * np.cos(kx * ux + ky * uy + kz * uz + phase)
    modulation = np.clip(modulation, 0.45, 2.0)
    t_outer = anatomy.outer_table_mm * modulation
    t_diploe = anatomy.diploe_mm * modulation
    t_inner = anatomy.inner_table_mm * np.sqrt(modulation)
    # cranial floor: anterior fossa high, middle fossae lower at the sides, posterior fossa lowest
    base = _cranial_floor(x, y, c, axes)
    soft = canvas.soft_coverage
    above = soft(base - z)
    inside = soft(distance)
    canvas.paint(index, inside * above, CORTICAL)
    diploe = cancellous(anatomy.diploe_bone_fraction)  # nested layers: each replaces the one around it
    canvas.paint(index, soft(t_outer - depth) * above, diploe, within=CORTICAL)
    canvas.paint(index, soft(t_outer + t_diploe - depth) * above, CORTICAL, within=diploe)
    brain_floor = soft(base + 2.5 - z)
    canvas.paint(index, soft(t_outer + t_diploe + t_inner - depth) * brain_floor, BRAIN, within=CORTICAL)
    return float(c[2] - 0.30 * axes[2])


def make_head_phantom(rng: np.random.Generator, grid_size: int = 160) -> MaterialVolume:
    """A random head phantom on a grid whose longest side has `grid_size` voxels."""
    anatomy = random_anatomy(rng)
    return head_phantom_from_anatomy(anatomy, grid_size, rng)


def head_phantom_from_anatomy(anatomy: HeadAnatomy, grid_size: int,
                              rng: np.random.Generator) -> MaterialVolume:
    """Paint the phantom for given anatomy parameters (rng only jitters small details)."""
    canvas = _Canvas(grid_size)
    o = np.asarray(anatomy.offset)
    c = np.asarray(anatomy.cranium_centre) + o
    axes = np.asarray(anatomy.cranium_axes)
    fs, ms = anatomy.face_scale, anatomy.mandible_scale
    front = c[1] - axes[1]  # forehead (most anterior point of the vault)

    # soft tissue: neck, face, scalp
    _paint_cylinder(canvas, o + (0, 18, -110), (52, 58), 60, TISSUE)
    _paint_ellipsoid(canvas, o + (0, 10, -62), (58, 62, 30), TISSUE)
    _paint_ellipsoid(canvas, o + (0, front - o[1] + 48 * fs, -40), (62 * fs, 56 * fs, 62 * fs), TISSUE)
    _paint_ellipsoid(canvas, o + (0, front - o[1] - 2, -48), (14, 14, 20), TISSUE)  # nose
    _paint_ellipsoid(canvas, c, axes, TISSUE, grow=anatomy.scalp_mm)

    base_z = _paint_cranium(canvas, anatomy, c, axes)

    # frontal bone thickening over the orbits and the frontal sinus
    brow = (c[0], front + 12, base_z + 10)
    _paint_ellipsoid(canvas, brow, (38, 10, 12), CORTICAL)
    if anatomy.frontal_sinus_scale > 0.25:
        s = anatomy.frontal_sinus_scale
        _paint_ellipsoid(canvas, (brow[0] - 8 * s, brow[1] + 1, brow[2] + 6 * s), (9 * s, 5, 11 * s), AIR)
        _paint_ellipsoid(canvas, (brow[0] + 7 * s, brow[1] + 1, brow[2] + 5 * s), (8 * s, 5, 10 * s), AIR)

    # sphenoid body with sinus, sella region
    _paint_ellipsoid(canvas, o + (0, -6, base_z - o[2] - 4), (17, 16, 14), cancellous(0.5))
    _paint_ellipsoid(canvas, o + (0, -8, base_z - o[2] - 6), (11, 10, 9), AIR)
    # petrous ridges: dense wedges from the mastoids towards the clivus
    for side in (-1, 1):
        pts = [o + (side * 58, 22, base_z - o[2] - 14), o + (side * 38, 10, base_z - o[2] - 8),
               o + (side * 16, -2, base_z - o[2] - 4)]
        _paint_tube(canvas, pts, 7.5, CORTICAL, z_squash=1.3)
        _paint_ellipsoid(canvas, o + (side * 60, 26, base_z - o[2] - 22), (9, 11, 13), cancellous(0.45))
    _paint_tube(canvas, [o + (0, -4, base_z - o[2] - 10), o + (0, 12, base_z - o[2] - 34)], 6, cancellous(0.6))
    _paint_cylinder(canvas, o + (0, 30, base_z - o[2] - 22), (15, 18), 10, TISSUE)  # foramen magnum

    # orbits: bony rim and cone, fat-filled cavity
    eye_z = base_z - 8
    for side in (-1, 1):
        rim = (c[0] + side * anatomy.orbit_half_distance, front + 18, eye_z)
        _paint_ellipsoid(canvas, rim, (19, 26, 18), cancellous(0.7))
        _paint_ellipsoid(canvas, (rim[0], rim[1] - 2, rim[2]), (17.5, 25, 16.5), FAT)
        _paint_ellipsoid(canvas, (rim[0], rim[1] - 9, rim[2]), (12, 12, 12), BRAIN)  # globe
        # zygomatic body and arch
        zyg = (side * 46 * fs + o[0], front + 28, eye_z - 24)
        _paint_ellipsoid(canvas, zyg, (9, 10, 11), cancellous(0.55))
        _paint_tube(canvas, [zyg, (side * 58 * fs + o[0], zyg[1] + 30, zyg[2] + 2),
                             (side * 62 + o[0], c[1] + 6, zyg[2] + 4)], 3.2, CORTICAL, z_squash=1.8)

    # maxilla with maxillary sinuses and nasal cavity
    maxilla = (c[0], front + 38 * fs, eye_z - 38 * fs)
    _paint_ellipsoid(canvas, maxilla, (33 * fs, 26 * fs, 24 * fs), CORTICAL)
    _paint_ellipsoid(canvas, maxilla, (31 * fs, 24 * fs, 22 * fs), cancellous(0.15))
    ss = anatomy.maxillary_sinus_scale
    for side in (-1, 1):
        _paint_ellipsoid(canvas, (maxilla[0] + side * 17 * fs, maxilla[1] + 2, maxilla[2] + 4),
                         (11 * ss, 15 * ss, 15 * ss), AIR)
    _paint_ellipsoid(canvas, (maxilla[0], maxilla[1] - 4, maxilla[2] + 10), (6, 24, 22), AIR)
    _paint_ellipsoid(canvas, (maxilla[0], maxilla[1] - 2, maxilla[2] + 10), (1.2, 20, 18), cancellous(0.5))

    # teeth: upper and lower arches, dentine roots with enamel crowns
    occlusal_z = maxilla[2] - 24 * fs
    tooth = 0
    for _jaw, direction in (("upper", 1.0), ("lower", -1.0)):
        for k in range(14):
            angle = math.radians(-80 + k * 160 / 13)
            arch_x = 26 * fs * math.sin(angle) * 1.05
            arch_y = front + 24 * fs + 30 * fs * (1 - math.cos(angle))
            if tooth not in anatomy.missing_teeth:
                crown_z = occlusal_z + direction * 5.0
                molar = abs(math.degrees(angle)) > 45
                w = 4.5 if molar else 3.2
                _paint_ellipsoid(canvas, (c[0] + arch_x, arch_y, crown_z + direction * 8),
                                 (w * 0.7, w * 0.8, 9.0), DENTINE)
                _paint_ellipsoid(canvas, (c[0] + arch_x, arch_y, crown_z), (w, w * 1.1, 4.2), ENAMEL)
            tooth += 1

    # mandible: body along the lower arch, rami up to the condyles
    jaw_z = occlusal_z - 22 * ms
    body = []
    for k in range(11):
        angle = math.radians(-90 + k * 18)
        body.append((c[0] + 44 * ms * math.sin(angle), front + 22 * fs + 46 * ms * (1 - math.cos(angle)) ** 1.1,
                     jaw_z + 4 * abs(math.sin(angle))))
    ramus_l = [body[0], (c[0] - 50 * ms, body[0][1] + 10, base_z - 22)]
    ramus_r = [body[-1], (c[0] + 50 * ms, body[-1][1] + 10, base_z - 22)]
    for fill, radius in ((CORTICAL, 6.5), (cancellous(0.3), 4.5)):
        _paint_tube(canvas, body, radius, fill, z_squash=2.2)
        _paint_tube(canvas, ramus_l, radius * 0.8, fill, z_squash=1.0)
        _paint_tube(canvas, ramus_r, radius * 0.8, fill, z_squash=1.0)

    # pharynx and cervical spine
    _paint_tube(canvas, [o + (0, -4, base_z - o[2] - 30), o + (0, -8, -140)], 7.5, AIR)
    spine_y = 16 + o[1]
    z0 = base_z - 42
    for level in range(6):
        vz = z0 - level * anatomy.vertebra_spacing
        jitter = rng.uniform(-1.5, 1.5)
        centre = (c[0] + jitter * 0.5, spine_y + jitter, vz)
        if level == 0:  # atlas: anterior arch, dens of C2 behind it
            _paint_ellipsoid(canvas, (centre[0], centre[1] - 8, vz), (9, 4, 5), CORTICAL)
            _paint_cylinder(canvas, (centre[0], centre[1] + 2, vz - 4), (5, 5), 9, cancellous(0.5))
        else:
            _paint_cylinder(canvas, centre, (10, 8), 6.5, CORTICAL)
            _paint_cylinder(canvas, centre, (8.8, 6.8), 5.3, cancellous(0.3))
        ring = [(centre[0] + 11 * math.sin(a), centre[1] + 16 - 11 * math.cos(a), vz)
                for a in np.linspace(-2.4, 2.4, 9)]
        _paint_tube(canvas, ring, 3.2, CORTICAL, z_squash=1.3)
        _paint_tube(canvas, [ring[-1], (centre[0] + 24, centre[1] + 2, vz)], 3.0, CORTICAL)  # transverse
        _paint_tube(canvas, [ring[0], (centre[0] - 24, centre[1] + 2, vz)], 3.0, CORTICAL)
        _paint_tube(canvas, [(centre[0], centre[1] + 27, vz), (centre[0], centre[1] + 42, vz - 6)],
                    3.0 if level else 2.2, CORTICAL)

    origin = tuple(float(a[0] - iso) for a, iso in zip(canvas.axes, ISOCENTRE_IN_PHANTOM_MM))
    return MaterialVolume(densities=canvas.densities, materials=MATERIALS,
                          spacing_mm=(canvas.h, canvas.h, canvas.h), origin_mm=origin)
