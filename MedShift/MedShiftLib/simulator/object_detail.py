"""The object finer than its CT: what the clinical domains of the film look see that a 1-1.5 mm CT lost.

The clinical domains stand for radiographs of the real head; the simulator only has a CT of it (as in the
MedShift paper, whose synthetic domains are DRRs of a CT and whose real ones are radiographs of the object).
Two steps, on the per-material line integrals of one view, before the detector:

1. **The sharpness the CT lost.** A CT is the object blurred by its reconstruction PSF (about a Gaussian of FWHM
   `psf_fwhm_voxels` in-plane), its slice profile (FWHM `slice_fwhm` slices along z) and its voxel (a box), and
   the projector's interpolation adds triangles (variance 1/6 + 1/24 voxel^2). The projection of a 3-D
   Gaussian blur is a 2-D Gaussian blur of the projection (scaled by the magnification): detector rows follow z,
   columns the in-plane axes. For that blur's transfer K, the regularised inverse G = (1 + 1/g) / (K + 1/g)
   (g = `max_gain`) gives a restored transfer G K = (1 + 1/g) K / (K + 1/g) that falls monotonically from 1 to 0
   (a step overshoots by a few per cent, Testing/test_object_detail.py), and a gain below g + 1. The gain returns
   to 1 towards the CT's Nyquist frequency (half-way at 0.8 of it): above it a CT holds no object detail, only
   its sampling (restored, a 1.5 mm CT's slice steps showed as lines across the vault). Only a CT
   (MaterialVolume.reconstructed) is restored: a procedural phantom is exact, and an edge the CT did not blur
   rings (an unblurred step overshoots by about 35 %). A CT's own cut (its first and last slices, its in-plane box
   where anatomy reaches it: scan_edges.py) is such an edge: within SCAN_EDGE_CLEAR blur sigmas of where it
   projects the restoration is off, and it returns smoothly over the next SCAN_EDGE_RAMP sigmas.
2. **Anatomy finer than the CT** (trabecular and diploic bone, sutures, vessel grooves at 0.05-1 mm): the bone
   path b becomes b + F b_ref^(1 - h) b^h (b_ref = 1 g/cm^2; a sum of fBm increments along the ray varies as the
   path to the power h, so an edge-on rim of compact bone gets less than in proportion). F is a Gaussian random
   field with the power-law spectrum used to model trabecular bone texture in radiographs (fractional Brownian
   motion: PSD ~ f^-beta, beta = 2 h + 2 for a Hurst exponent h; Lynch et al. 1991, Phys Med Biol, the fractal
   signature of knee radiographs; Benhamou et al. 2001, J Bone Miner Res 16:697, fractal analysis of calcaneus
   radiographs), times the share of each frequency the restored CT lacks (1 - G K), so low frequencies stay the
   CT's. Its seed comes from the subject and view (anatomy, not noise): the same in clinical-low, -normal and
   -exposure; soft tissue, enamel and air stay as the CT has them. A phantom gets the texture above its voxels'
   sampling blur (it lacks trabecular detail too).

beta is the Bolton-Brush skull films' own (their bone-region band energies, benchmarks/fit_film_look.py). The
texture's amplitude (`texture_psd`, at the object, so the same at every magnification) was set by eye on the films
until issue 27's eighth round; since then the film look adds none (domain_styles.FILM_OBJECT_DETAIL): inside the
bone the restored, sharpened renderings' 0.5-1 mm bands are 1.4-5.8 x the films' even without it (docs/simulator.md,
"Against real skull films"). Step 2 stays for a look that sets it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from .xray_physics import MATERIALS

BONE = MATERIALS.index("cortical_bone")
# Variance (voxel^2) added by the voxel's box (1/12), the projector's trilinear interpolation (1/6) and its bilinear
# interpolation of rays traced at half a voxel (cone_beam_projector.RAY_OVERSAMPLING: (1/2)^2 / 6).
SAMPLING_VARIANCE_VOXELS = 1.0 / 12.0 + 1.0 / 6.0 + 1.0 / 24.0
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
# Fraction of the CT's Nyquist frequency at which the restoration's gain has fallen half-way back to 1.
NYQUIST_ROLL_OFF = 0.8
# Within SCAN_EDGE_CLEAR blur sigmas of a CT's scan edge (scan_edges.py) nothing is restored; the restoration
# returns smoothly to full over the next SCAN_EDGE_RAMP sigmas (Testing/test_object_detail.py: the cut's overshoot).
SCAN_EDGE_CLEAR = 3.0
SCAN_EDGE_RAMP = 3.0
# Bone path (g/cm^2) at which ObjectDetail.texture_psd is the PSD of the relative path fluctuation.
REFERENCE_BONE_G_CM2 = 1.0


@dataclass(frozen=True)
class ObjectDetail:
    """How a look restores the object from its CT (see the module docstring)."""

    psf_fwhm_voxels: float = 1.2  # in-plane reconstruction PSF, FWHM in voxels
    slice_fwhm: float = 1.0  # slice profile along z, FWHM in slices
    max_gain: float = 4.0  # g: the restoration's gain stays below g + 1 (0: no restoration)
    texture_beta: float = 3.4  # power-law exponent of the bone texture's spectrum (fBm: 2 h + 2)
    texture_psd: float = 0.0  # PSD (mm^2) at 1 cycle/mm of the fluctuation relative to a 1 g/cm^2 path (0: none)

    def __post_init__(self) -> None:
        """Refuse values that make no texture (beta <= 2: h <= 0, texture outside bone or inf) or no blur."""
        if not self.texture_beta > 2.0:
            raise ValueError(f"texture_beta must exceed 2 (fBm: 2 h + 2 with h > 0), got {self.texture_beta:g}")
        for name in ("texture_psd", "max_gain"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name):g}")
        for name in ("psf_fwhm_voxels", "slice_fwhm"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name):g}")


def voxels_px(spacing_mm_xyz, magnification: float, pixel_spacing_mm: float) -> tuple[float, float]:
    """(rows, cols) a CT's voxel in detector pixels: rows along z, columns in-plane."""
    x, y, z = (float(s) for s in spacing_mm_xyz)
    scale = magnification / pixel_spacing_mm
    return z * scale, (x + y) / 2 * scale


def ct_blur_sigmas_px(spacing_mm_xyz, magnification: float, pixel_spacing_mm: float,
                      detail: ObjectDetail, reconstructed: bool = True) -> tuple[float, float]:
    """(rows, cols) Gaussian sigma in detector pixels of a CT's blur: rows along z, columns in-plane.
    reconstructed=False: an exact (procedural) volume, blurred only by its voxels and the projector's sampling."""
    psf, slice_fwhm = (detail.psf_fwhm_voxels, detail.slice_fwhm) if reconstructed else (0.0, 0.0)
    in_plane = np.sqrt((psf / FWHM_PER_SIGMA) ** 2 + SAMPLING_VARIANCE_VOXELS)
    along_z = np.sqrt((slice_fwhm / FWHM_PER_SIGMA) ** 2 + SAMPLING_VARIANCE_VOXELS)
    rows, cols = voxels_px(spacing_mm_xyz, magnification, pixel_spacing_mm)
    return float(along_z * rows), float(in_plane * cols)


def _frequencies(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) frequency grids (cycles per pixel) of an rfft2 of `shape`."""
    return np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]


def restored_transfer(shape: tuple[int, int], sigmas_px: tuple[float, float], max_gain: float,
                      voxels: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(restoration gain G, restored transfer G K) on an rfft2 grid, for the CT's Gaussian blur K and its voxels
    (rows, cols, in detector pixels): the gain returns to 1 towards the CT's Nyquist frequency, above which a CT
    holds no object detail, only its sampling (the slices' steps)."""
    fr, fc = _frequencies(shape)
    blur = np.exp(-2.0 * np.pi ** 2 * ((sigmas_px[0] * fr) ** 2 + (sigmas_px[1] * fc) ** 2))
    if max_gain <= 0:  # no restoration
        return np.ones_like(blur), blur
    floor = 1.0 / max_gain
    nyquist = np.hypot(fr * 2.0 * voxels[0], fc * 2.0 * voxels[1])  # 1 at the CT's Nyquist frequency
    window = 1.0 / (1.0 + (nyquist / NYQUIST_ROLL_OFF) ** 4)
    gain = 1.0 + window * ((1.0 + floor) / (blur + floor) - 1.0)
    return gain, gain * blur


def restore_sharpness(line_integrals: np.ndarray, sigmas_px: tuple[float, float], max_gain: float,
                      voxels: tuple[float, float]) -> np.ndarray:
    """Line integrals (rows, cols, materials) with the CT's blur undone (regularised, gain-limited, up to the CT's
    Nyquist frequency for `voxels` in pixels), >= 0."""
    rows, cols = line_integrals.shape[:2]
    pad = int(np.ceil(4 * max(sigmas_px))) + 1  # mirrored: the FFT's periodic extension has no jump at the borders
    padded = np.pad(line_integrals, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    gain, _ = restored_transfer(padded.shape[:2], sigmas_px, max_gain, voxels)
    spectrum = np.fft.rfft2(padded, axes=(0, 1)) * gain[:, :, None]
    restored = np.fft.irfft2(spectrum, s=padded.shape[:2], axes=(0, 1))[pad: pad + rows, pad: pad + cols]
    return np.clip(restored, 0.0, None)


def restoration_weight(scan_edges: np.ndarray, sigmas_px: tuple[float, float]) -> np.ndarray:
    """(rows, cols) weight of the restoration: 0 within SCAN_EDGE_CLEAR blur sigmas (rows, cols in pixels) of a
    scan edge (True pixels: steps the CT never blurred), rising smoothly to 1 over SCAN_EDGE_RAMP sigmas."""
    weight = np.ones(scan_edges.shape)
    if not scan_edges.any():
        return weight
    reach = (SCAN_EDGE_CLEAR + SCAN_EDGE_RAMP) * np.asarray(sigmas_px)
    rows, cols = np.nonzero(scan_edges)  # only the box around the edges (and their reach) can be below 1
    r0, c0 = (max(0, int(lo - m) - 1) for lo, m in zip((rows.min(), cols.min()), reach))
    r1, c1 = (int(hi + m) + 2 for hi, m in zip((rows.max(), cols.max()), reach))
    distance = ndimage.distance_transform_edt(~scan_edges[r0:r1, c0:c1], sampling=1.0 / np.asarray(sigmas_px))
    ramp = np.clip((distance - SCAN_EDGE_CLEAR) / SCAN_EDGE_RAMP, 0.0, 1.0)
    weight[r0:r1, c0:c1] = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep
    return weight


def bone_texture(shape: tuple[int, int], pixel_spacing_mm: float, magnification: float,
                 sigmas_px: tuple[float, float], voxels: tuple[float, float], detail: ObjectDetail,
                 rng: np.random.Generator) -> np.ndarray:
    """The relative bone-path fluctuation F on the detector grid: a Gaussian field of PSD texture_psd *
    (f / 1 c/mm)^-texture_beta at the object, at the frequencies the restored CT (gain detail.max_gain; 0: the
    unrestored volume) lacks. The field is periodic across the image (no padding: harmless for a random field)."""
    fr, fc = _frequencies(shape)
    # an object period L projects to L M on the detector: f cycles/px is f M / pitch cycles/mm at the object
    object_cycles_per_mm = np.hypot(fr, fc) * magnification / pixel_spacing_mm
    object_cycles_per_mm[0, 0] = np.inf  # no mean
    _, restored = restored_transfer(shape, sigmas_px, detail.max_gain, voxels)
    # PSD at the detector (mm^2 of detector): S_obj(M f) M^2; a unit white field's spectrum times sqrt(PSD) / pitch
    psd = detail.texture_psd * object_cycles_per_mm ** -detail.texture_beta * magnification ** 2
    missing = np.clip(1.0 - restored, 0.0, 1.0)  # the object's share the restored CT lacks, at each frequency
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * np.sqrt(psd) / pixel_spacing_mm * missing
    return np.fft.irfft2(spectrum, s=shape)


def object_line_integrals(line_integrals: np.ndarray, spacing_mm_xyz, magnification: float,
                          pixel_spacing_mm: float, detail: ObjectDetail, rng: np.random.Generator,
                          reconstructed: bool = True, scan_edges: np.ndarray | None = None) -> np.ndarray:
    """The line integrals of the object the volume stands for, in the input's dtype: a CT's blur undone
    (reconstructed=True) away from its `scan_edges` (scan_edges.scan_edges_on_detector; None: none), then the bone
    texture added. An exact (procedural) volume has no reconstruction blur to undo (restoring one would ring at its
    edges): it gets the texture only, above its voxels' sampling blur."""
    if not reconstructed:
        detail = replace(detail, max_gain=0.0)
    sigmas = ct_blur_sigmas_px(spacing_mm_xyz, magnification, pixel_spacing_mm, detail, reconstructed)
    voxels = voxels_px(spacing_mm_xyz, magnification, pixel_spacing_mm)
    dtype = np.asarray(line_integrals).dtype
    restored = np.array(line_integrals, dtype=np.float64)
    if detail.max_gain > 0:
        raw = restored
        restored = restore_sharpness(raw, sigmas, detail.max_gain, voxels)
        if scan_edges is not None and scan_edges.any():  # the CT's own cut is a step its blur never made
            restored = raw + restoration_weight(scan_edges, sigmas)[:, :, None] * (restored - raw)
    if detail.texture_psd > 0:
        texture = bone_texture(restored.shape[:2], pixel_spacing_mm, magnification, sigmas, voxels, detail, rng)
        bone = restored[..., BONE]
        # a sum over the path of fBm increments (Hurst h) varies as path^h: the fluctuation grows slower than the path
        # (a skull's edge-on rim of compact bone does not get the diploe's texture in full)
        hurst = (detail.texture_beta - 2.0) / 2.0
        fluctuation = texture * REFERENCE_BONE_G_CM2 ** (1.0 - hurst) * bone ** hurst
        restored[..., BONE] = np.clip(bone + fluctuation, 0.0, None)
    return restored.astype(dtype, copy=False)
