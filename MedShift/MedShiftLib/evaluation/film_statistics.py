"""Does a rendering look like a skull film? Edge width, band energies and grey levels over the head.

Every image is first brought to one pixel size (`common_pixel_mm`) and normalised to its own 1st-99th
percentile over the head (0..1, bright = dense), so scanner, film and display curve offsets cancel.

- edge width: the 10-90 % rise distance (mm; crossings interpolated between samples) across the strongest edges
  (the top 0.5 % of the gradient over the head, at least 2 mm apart), measured on profiles +-3 mm along the
  gradient, median over the edges;
- band energies: the variance over the head of difference-of-Gaussian octave bands with sigma 0.5, 1, 2, 4 and
  8 mm (band k: G(sigma_k / 2) - G(sigma_k)); two images compare by the mean |log ratio| of their energies;
- grey levels: the normalised values over the head; two images compare by the 1-D Wasserstein distance of
  their distributions (the mean absolute difference of their quantiles, 0..1);
- noise: the fine-scale noise at the common pixel in each band of local grey (NOISE_GREY_BANDS; noise follows the
  grey level: quantum mottle, film grain), measured in the flattest part of the band, where the anatomy adds least
  (`noise_by_grey`); two images compare by the mean |log ratio| over the bands both hold (`noise_log_ratio`).

A film scan's unexposed frame (the cassette's white border and cut corners) is no part of the head: find it with
`unexposed_film`, fill it with `fill_from_nearest` and pass it to `head_region` as `outside`, or its sharp steps
become the film's strongest edges and much of its band energy. A CT rendering's counterpart is the CT's own cut (where
its first or last slice or its box crosses the anatomy, simulator/scan_edges.py): a step no radiograph has; keep the
head region `clear_of` it by CUT_MARGIN_MM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

BAND_SIGMAS_MM = (0.5, 1.0, 2.0, 4.0, 8.0)
EDGE_SHARE = 0.005
PROFILE_HALF_MM = 3.0
# Holes of the head region up to this area are filled (airways, sinuses, dark details inside the head); a larger
# enclosed dark area is direct exposure closed off by a film's unexposed border or labels, and stays out.
MAX_HOLE_MM2 = 1000.0
# A rendering's head region keeps this far from its CT's own cut: twice the largest band's sigma, where that band's
# response to the cut's step is 14 % of its peak (2 % in energy; the finer bands' far less), and the edge profiles
# (+-3 mm) never reach it.
CUT_MARGIN_MM = 2 * BAND_SIGMAS_MM[-1]
# Local grey bands (normalised 0..1) in which noise_by_grey measures the noise; the flattest share of each band's
# pixels (by the local gradient), at least NOISE_MIN_PIXELS of them, NOISE_INSET_PX in from the region's edge.
NOISE_GREY_BANDS = ((0.05, 0.25), (0.25, 0.45), (0.45, 0.65), (0.65, 0.85), (0.85, 0.97))
NOISE_FLAT_SHARE = 0.3
NOISE_MIN_PIXELS = 2000
NOISE_INSET_PX = 10
# Standard deviation of x - G(1 px) x for white noise x of standard deviation 1 (scipy's discrete kernel).
_DELTA = np.zeros((9, 9))
_DELTA[4, 4] = 1.0
WHITE_HIGH_PASS_STD = float(np.sqrt(np.sum((_DELTA - ndimage.gaussian_filter(_DELTA, 1.0, mode="constant")) ** 2)))


@dataclass(frozen=True)
class FilmStatistics:
    """Statistics of one image over its head region."""

    edge_width_mm: float
    band_energies: tuple[float, ...]
    quantiles: np.ndarray  # 101 quantiles of the normalised grey levels over the head
    median_grey: float
    noise: tuple[float, ...] = ()  # noise_by_grey: one value per NOISE_GREY_BANDS band (nan: too few pixels)


def resample(image: np.ndarray, pixel_mm: float, target_mm: float) -> np.ndarray:
    """The image at `target_mm` pixels: area-averaged when shrinking, linear when enlarging."""
    factor = pixel_mm / target_mm
    image = np.asarray(image, dtype=np.float32)
    if abs(factor - 1) < 1e-3:
        return image
    if factor < 1:
        image = ndimage.gaussian_filter(image, 0.5 / factor * 0.85, mode="nearest")  # anti-alias
    return ndimage.zoom(image, factor, order=1, mode="nearest", grid_mode=True)


def normalise(image: np.ndarray, head: np.ndarray) -> np.ndarray:
    """Values mapped so the head's 1st and 99th percentiles become 0 and 1 (clipped)."""
    low, high = np.percentile(image[head], [1, 99])
    return np.clip((image - low) / max(high - low, 1e-9), 0.0, 1.0)


def edge_width_mm(image: np.ndarray, head: np.ndarray, pixel_mm: float) -> float:
    """Median 10-90 % rise distance (mm) across the strongest edges inside the head."""
    smooth = ndimage.gaussian_filter(image, 0.5)
    gy, gx = ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1)
    magnitude = np.hypot(gy, gx)
    inner = ndimage.binary_erosion(head, iterations=int(np.ceil(PROFILE_HALF_MM / pixel_mm)) + 1)
    if not inner.any():
        return float("nan")
    threshold = np.quantile(magnitude[inner], 1 - EDGE_SHARE)
    candidates = inner & (magnitude >= threshold)
    spacing = max(1, int(round(2.0 / pixel_mm)))  # one edge per 2 mm cell: no edge counted twice
    ys, xs = np.nonzero(candidates)
    order = np.argsort(-magnitude[ys, xs])
    cells, points = set(), []
    for i in order:
        cell = (ys[i] // spacing, xs[i] // spacing)
        if cell not in cells:
            cells.add(cell)
            points.append((ys[i], xs[i]))
        if len(points) >= 400:
            break
    t = np.arange(-PROFILE_HALF_MM, PROFILE_HALF_MM + 1e-9, 0.05) / pixel_mm  # pixels along the gradient
    widths = []
    for y, x in points:
        norm = magnitude[y, x]
        dy, dx = gy[y, x] / norm, gx[y, x] / norm
        profile = ndimage.map_coordinates(image, [y + t * dy, x + t * dx], order=1, mode="nearest")
        width = _rise_width(profile) * 0.05
        if np.isfinite(width):
            widths.append(width)
    return float(np.median(widths)) if widths else float("nan")


def _rise_width(profile: np.ndarray) -> float:
    """Samples between the 10 % and 90 % crossings nearest the centre of a rising profile, each crossing placed
    between its two samples by linear interpolation (counting whole samples overstates the width by one sample on
    average)."""
    centre = len(profile) // 2
    low, high = profile[:centre].min(), profile[centre:].max()
    if high - low <= 1e-9:
        return float("nan")
    p10, p90 = low + 0.1 * (high - low), low + 0.9 * (high - low)
    below = np.nonzero(profile[:centre + 1] <= p10)[0]
    above = np.nonzero(profile[centre:] >= p90)[0]
    if not len(below) or not len(above):
        return float("nan")
    last_below, first_above = below[-1], centre + above[0]
    return float(_crossing(profile, first_above - 1, p90) - _crossing(profile, last_below, p10))


def _crossing(profile: np.ndarray, index: int, level: float) -> float:
    """Where `profile` crosses `level` between samples `index` and `index + 1` (linear; `index` when it is flat)."""
    step = profile[index + 1] - profile[index]
    return float(index + np.clip((level - profile[index]) / step, 0.0, 1.0)) if step != 0 else float(index)


def band_energies(image: np.ndarray, head: np.ndarray, pixel_mm: float,
                  sigmas_mm: tuple[float, ...] = BAND_SIGMAS_MM) -> tuple[float, ...]:
    """Variance over the head of each octave band (G(sigma / 2) - G(sigma), sigma in `sigmas_mm`)."""
    energies = []
    for sigma in sigmas_mm:
        band = (ndimage.gaussian_filter(image, sigma / 2 / pixel_mm, mode="nearest")
                - ndimage.gaussian_filter(image, sigma / pixel_mm, mode="nearest"))
        energies.append(float(np.mean(band[head] ** 2)))
    return tuple(energies)


def film_statistics(image: np.ndarray, head: np.ndarray, pixel_mm: float, common_pixel_mm: float = 0.15,
                    band_sigmas_mm: tuple[float, ...] = BAND_SIGMAS_MM) -> FilmStatistics:
    """Statistics of an image (bright = dense) over `head`, at `common_pixel_mm` pixels (bands at `band_sigmas_mm`)."""
    small = resample(image, pixel_mm, common_pixel_mm)
    mask = resample(head.astype(np.float32), pixel_mm, common_pixel_mm) > 0.5
    mask = mask[: small.shape[0], : small.shape[1]]
    x = normalise(small, mask)
    quantiles = np.quantile(x[mask], np.linspace(0, 1, 101))
    return FilmStatistics(edge_width_mm(x, mask, common_pixel_mm),
                          band_energies(x, mask, common_pixel_mm, band_sigmas_mm), quantiles, float(np.median(x[mask])),
                          noise_by_grey(x, mask))


def noise_by_grey(x: np.ndarray, head: np.ndarray) -> tuple[float, ...]:
    """Fine-scale noise of a normalised image in each local grey band (NOISE_GREY_BANDS): the robust standard
    deviation (1.4826 MAD) of x - G(1 px) x over the band's flattest pixels, as the standard deviation per pixel of
    the white noise that gives it (WHITE_HIGH_PASS_STD); nan for a band with too few pixels."""
    x = np.asarray(x, dtype=np.float64)
    fine = x - ndimage.gaussian_filter(x, 1.0, mode="nearest")
    local = ndimage.gaussian_filter(x, 3.0, mode="nearest")
    slope = np.hypot(*np.gradient(local))
    inner = ndimage.binary_erosion(head, iterations=NOISE_INSET_PX)
    noise = []
    for low, high in NOISE_GREY_BANDS:
        band = inner & (local >= low) & (local < high)
        if band.sum() < NOISE_MIN_PIXELS:
            noise.append(float("nan"))
            continue
        values = fine[band & (slope <= np.quantile(slope[band], NOISE_FLAT_SHARE))]
        noise.append(float(1.4826 * np.median(np.abs(values - np.median(values))) / WHITE_HIGH_PASS_STD))
    return tuple(noise)


def noise_log_ratio(a: FilmStatistics, b: FilmStatistics) -> float:
    """Mean |log ratio| of two images' noise over the grey bands both hold (nan when they share none; inf when one
    has no noise in a band the other has some)."""
    first, second = np.asarray(a.noise, dtype=float), np.asarray(b.noise, dtype=float)
    if first.shape != second.shape:
        return float("nan")
    held = ~(np.isnan(first) | np.isnan(second))
    if not held.any():
        return float("nan")
    first, second = first[held], second[held]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(first == second, 0.0, np.abs(np.log(first) - np.log(second)))
    return float(np.mean(ratios))


def band_log_ratio(a: FilmStatistics, b: FilmStatistics) -> float:
    """Mean |log ratio| of two images' band energies."""
    return float(np.mean(np.abs(np.log(np.asarray(a.band_energies) / np.asarray(b.band_energies)))))


def histogram_distance(a: FilmStatistics, b: FilmStatistics) -> float:
    """1-D Wasserstein distance between two images' normalised grey levels over the head."""
    return float(np.mean(np.abs(a.quantiles - b.quantiles)))


def head_region(image: np.ndarray, pixel_mm: float, exclude: tuple[tuple[int, int, int, int], ...] = (),
                tissue_fraction: float | None = None, outside: np.ndarray | None = None) -> np.ndarray:
    """The head: the largest object brighter than the background on a 2 mm blur, holes up to MAX_HOLE_MM2
    filled, minus `exclude` boxes (row0, row1, col0, col1) such as a film's labels and rulers. The threshold:
    Otsu's, or with `tissue_fraction` f the background level (the blur's 5th percentile, a film's direct
    exposure) plus f of the way to its 99th percentile, so thin soft tissue counts as head. Pixels in `outside`
    (a film's unexposed frame) are never head and do not join objects."""
    smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), 2.0 / pixel_mm)
    if tissue_fraction is None:
        threshold = _otsu(smooth)
    else:
        background, top = np.percentile(smooth, [5, 99])
        threshold = background + tissue_fraction * (top - background)
    mask = smooth > threshold
    if outside is not None:
        mask &= ~outside
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    holes, _ = ndimage.label(ndimage.binary_fill_holes(mask) & ~mask)
    small = np.bincount(holes.ravel()) * pixel_mm ** 2 <= MAX_HOLE_MM2
    small[0] = False
    mask = mask | small[holes]
    for r0, r1, c0, c1 in exclude:
        mask[r0:r1, c0:c1] = False
    return mask


def clear_of(head: np.ndarray, artefact: np.ndarray, pixel_mm: float,
             margin_mm: float = CUT_MARGIN_MM) -> np.ndarray:
    """`head` without the pixels within `margin_mm` of `artefact` (e.g. the detector pixels onto which a CT's own
    cut projects, scan_edges.scan_edges_on_detector): its step adds no edges and no band energy."""
    if not artefact.any():
        return head
    return head & (ndimage.distance_transform_edt(~artefact) * pixel_mm > margin_mm)


def unexposed_film(image: np.ndarray, pixel_mm: float, level_fraction: float = 0.95, depth_mm: float = 15.0,
                   margin_mm: float = 4.0, min_white: float = 0.9, edge_mm: float = 1.5) -> np.ndarray:
    """The film the cassette's frame kept unexposed (border strips, cut corners) and its shadow, in a film scan
    (0..1, bright = unexposed): regions at the film's white level that touch the image's border, within
    `depth_mm` of it, and the scan's outermost `edge_mm` (the film's own edge, a scanner's border line), widened
    by `margin_mm`. The level: the direct exposure (the blur's 5th percentile) plus `level_fraction` of the way to
    the unexposed film (the 99.9th percentile), and at least `min_white`, so the bone of a head cut by the film's
    edge is kept."""
    smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), 0.3 / pixel_mm)
    exposed, white = np.percentile(smooth, [5, 99.9])
    depth = int(round(depth_mm / pixel_mm))
    near_border = np.zeros(smooth.shape, bool)
    near_border[:depth], near_border[-depth:], near_border[:, :depth], near_border[:, -depth:] = True, True, True, True
    level = max(exposed + level_fraction * (white - exposed), min_white)
    labels, _ = ndimage.label((smooth > level) & near_border)
    touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    frame = np.isin(labels, touching[touching > 0])
    edge = max(int(round(edge_mm / pixel_mm)), 1)
    frame[:edge], frame[-edge:], frame[:, :edge], frame[:, -edge:] = True, True, True, True
    return ndimage.binary_dilation(frame, iterations=int(round(margin_mm / pixel_mm)))


def fill_from_nearest(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`image` with each pixel under `mask` replaced by the nearest pixel outside it (as an image's own border is
    continued by the band filters' 'nearest' mode), so a film's frame adds no edges."""
    if not mask.any():
        return image
    if mask.all():
        raise ValueError("the whole image is masked; nothing to fill from")
    nearest = ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)
    return image[tuple(nearest)]


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, 256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * centres)
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(centres[int(np.argmax(between[:-1]))])
