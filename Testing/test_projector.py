"""Cone-beam projector against exact chord lengths of a sphere and an ellipsoid."""
import numpy as np
import pytest

from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector, MaterialVolume, check_angles

ANGLES = [(0.0, 0.0), (25.0, -10.0), (-40.0, 30.0), (40.0, 40.0), (-15.0, -40.0)]


def _ellipsoid_volume(n, spacing, centre, axes):
    """Partial-volume ellipsoid (4^3 supersampling) in channel 0, twice it in channel 1."""
    axes_1d = [(np.arange(k) - (k - 1) / 2) * s for k, s in zip(n, spacing)]
    frac = np.zeros((n[2], n[1], n[0]), np.float32)
    offsets = (np.arange(4) - 1.5) / 4
    for ox in offsets:
        x = (axes_1d[0] + ox * spacing[0] - centre[0])[None, None, :] / axes[0]
        for oy in offsets:
            y = (axes_1d[1] + oy * spacing[1] - centre[1])[None, :, None] / axes[1]
            for oz in offsets:
                z = (axes_1d[2] + oz * spacing[2] - centre[2])[:, None, None] / axes[2]
                frac += (x * x + y * y + z * z) <= 1.0
    frac /= 64
    densities = np.stack([frac, 2 * frac, np.zeros_like(frac)])
    return MaterialVolume(densities, ("a", "b", "c"), tuple(spacing), tuple(a[0] for a in axes_1d))


def _exact_chords_cm(geometry, centre, axes):
    """Exact chord length (cm) of each ray through the ellipsoid, and the ray's 'depth' inside it."""
    source, pixels = geometry.source_and_pixels()
    d = pixels - source
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    a = np.asarray(axes, float)
    p = (source - np.asarray(centre)) / a
    q = d / a
    qa = (q * q).sum(-1)
    qb = 2 * (q * p).sum(-1)
    qc = (p * p).sum() - 1
    disc = qb * qb - 4 * qa * qc
    chord = np.sqrt(np.clip(disc, 0, None)) / qa
    # 1 - (closest normalised radius)^2 measures how far from tangent a ray is
    inside = np.clip(disc / (4 * qa * qa), 0, None) / (1.0 / qa)
    return chord / 10.0, inside


@pytest.mark.parametrize("angles", ANGLES)
def test_sphere_chords_match_exact_within_one_percent(angles):
    centre, radius = (8.0, -6.0, 5.0), 40.0
    volume = _ellipsoid_volume((96, 96, 96), (1.0, 1.0, 1.0), centre, (radius,) * 3)
    geometry = CArmGeometry(*angles, rows=96, cols=96, pixel_spacing_mm=1.6)
    integrals = ConeBeamProjector(volume).project(geometry)
    exact, inside = _exact_chords_cm(geometry, centre, (radius,) * 3)
    rel = (integrals[..., 0] - exact) / np.maximum(exact, 1e-9)
    inner = inside > 0.5  # rays through the inner part of the sphere
    rim = (inside > 0.15) & ~inner  # near the tangent rim one voxel is a larger fraction of the chord
    assert inner.sum() > 500 and rim.sum() > 300
    assert np.abs(rel[inner]).max() < 0.01
    assert np.abs(rel[rim]).max() < 0.025
    assert abs(rel[inside > 0.15].mean()) < 0.003
    missing, _ = _exact_chords_cm(geometry, centre, (radius + 3.0,) * 3)
    assert integrals[..., 0][missing == 0].max() < 1e-6  # rays that miss by two voxels see nothing
    np.testing.assert_allclose(integrals[..., 1], 2 * integrals[..., 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("angles", [(0.0, 0.0), (33.0, -27.0), (-40.0, 40.0)])
def test_ellipsoid_on_anisotropic_grid(angles):
    centre, axes = (-5.0, 4.0, -3.0), (45.0, 30.0, 36.0)
    volume = _ellipsoid_volume((104, 76, 66), (1.0, 1.0, 1.3), centre, axes)
    geometry = CArmGeometry(*angles, rows=96, cols=96, pixel_spacing_mm=1.6)
    integrals = ConeBeamProjector(volume).project(geometry)
    exact, inside = _exact_chords_cm(geometry, centre, axes)
    rel = (integrals[..., 0] - exact) / np.maximum(exact, 1e-9)
    inner = inside > 0.5
    assert inner.sum() > 500
    assert np.abs(rel[inner]).max() < 0.01
    assert np.abs(rel[inside > 0.15]).max() < 0.03
    assert abs(rel[inside > 0.15].mean()) < 0.004


def test_lao_and_cranial_angles_move_the_detector_left_and_up():
    beam, _, _ = CArmGeometry(30.0, 0.0).frame()
    assert beam[0] > 0.4 and beam[1] < 0  # LAO: detector towards the patient's left (+x, LPS)
    beam, _, _ = CArmGeometry(0.0, 30.0).frame()
    assert beam[2] > 0.4  # cranial: detector tilted towards the head (+z)
    beam, col, row = CArmGeometry(-20.0, 15.0).frame()
    assert abs(beam @ col) < 1e-12 and abs(beam @ row) < 1e-12 and abs(col @ row) < 1e-12


def test_angles_outside_the_c_arm_range_are_refused():
    with pytest.raises(ValueError, match="outside"):
        check_angles(41.0, 0.0)
    with pytest.raises(ValueError, match="cranial"):
        check_angles(0.0, -45.0)


@pytest.mark.parametrize("angles", ANGLES)
def test_a_point_on_a_pixels_ray_lands_on_that_pixel(angles):
    geometry = CArmGeometry(*angles, rows=40, cols=50, pixel_spacing_mm=3.0)
    source, pixels = geometry.source_and_pixels()
    picked = [(0, 0), (39, 49), (7, 31), (22, 4)]
    points = [source + t * (pixels[r, c] - source) for r, c in picked for t in (0.3, 0.8, 1.0)]
    points.append(source - 10.0 * (pixels[0, 0] - source))  # behind the source
    rows, cols, in_front = geometry.detector_position(np.asarray(points))
    expected = np.repeat(np.asarray(picked, dtype=float), 3, axis=0)
    assert np.allclose(rows[:-1], expected[:, 0], atol=1e-6) and np.allclose(cols[:-1], expected[:, 1], atol=1e-6)
    assert in_front[:-1].all() and not in_front[-1]
