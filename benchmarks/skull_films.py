"""Clinical renderings of real head CTs beside real skull films: the table and picture of docs/simulator.md.

The films: the Bolton-Brush Growth Study lateral (B1893L12.jpg) and PA (B1893F12.jpg) cephalograms of
open-ortho/dcm4ceph (MIT; dcm4ceph-sampledata/), 4096 x 5120 scans at 0.0496 mm (8 x 10 inch film); their
.properties give source-patient 1524 mm and source-film 1611 mm (lateral) / 1642.3 mm (PA). The labels, the
ruler, the nasal positioner and (PA) the ear-rod arm and a holder's edge are left out of the head region by the
boxes below, the film the cassette's frame kept unexposed (border strips, cut corners) by
film_statistics.unexposed_film, which is filled from its nearest exposed pixels so its edges add nothing. The
renderings use the same geometry at PITCH_MM (clinical-normal, heel effect off, noise seed 1); their head region is
where more than 0.5 g/cm^2 of matter lies on the ray, kept clear of the CT's own cut (film_statistics.clear_of: a
step no film has). The renderings then go through the films' own scan chain (`as_scanned`: 8-bit grey at the film's
levels, JPEG with the film's tables, at the scan's pixel), since the scan's JPEG erases faint fine noise, as it did on
the films. Statistics as in MedShiftLib/evaluation/film_statistics.py at 0.15 mm, over the whole head region and over
the anatomy both images hold (`common_anatomy`: both cut below the lowest landmark the CT holds).
"""
from __future__ import annotations

import io
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from MedShiftLib.evaluation.film_statistics import (
    NOISE_GREY_BANDS,
    band_log_ratio,
    clear_of,
    fill_from_nearest,
    film_statistics,
    head_region,
    histogram_distance,
    noise_log_ratio,
    resample,
    unexposed_film,
)
from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector
from MedShiftLib.simulator.ct_volume import read_ct_volume
from MedShiftLib.simulator.domain_rendering import draw_domain_settings, render_domain, view_object_integrals
from MedShiftLib.simulator.scan_edges import scan_edges_on_detector

FILM_MM = 0.0496
COMMON_MM = 0.15
PITCH_MM, SIZE = 0.15, 1800
SOURCE_PATIENT_MM = 1524.0
# view -> (film file, source-film distance mm, LAO/RAO deg, boxes (row0, row1, col0, col1) in film pixels)
FILMS = {"lateral": ("B1893L12.jpg", 1611.0, -90.0, ((2340, 4050, 420, 1440), (150, 460, 0, 860))),
         "PA": ("B1893F12.jpg", 1642.3, 0.0, ((720, 1692, 1170, 2868), (0, 3300, 1830, 2260),
                                               (3160, 3320, 0, 672), (0, 5120, 3696, 4096)))}
GOALS = {"edge": 1.6, "bands": 0.25, "histogram": 0.08}
# A film's head region: above its direct exposure (film base + fog, ~0.2 here) by 10 % of the way to bone, so the
# soft tissue counts as head, as in the renderings (more than 0.5 g/cm^2 of matter). The previous Otsu region
# held the bone and thick tissue only, and on the lateral film filled in the air behind the head (closed off by
# the film's unexposed border): 17 % of its region.
FILM_TISSUE_FRACTION = 0.1
# np.rot90 turns: the lateral scan holds the head on its side (vertex left, face up); statistics are turned alike.
UPRIGHT = {"lateral": -1, "PA": 0}
# Landmarks' rows on the upright films (COMMON_MM pixels), read off the films: the lowest point of the bony chin
# (menton) and the hard palate (lateral: the ANS-PNS line; PA: the nasal floor); the films end 4-7 mm below menton.
FILM_LANDMARK_ROWS = {"lateral": {"menton": 1290, "palate": 905}, "PA": {"menton": 1605, "palate": 1210}}
# The lowest of those landmarks each `medshift fetch-ct` CT holds, LPS mm from the CT grid's centre (the isocentre
# in read_ct_volume), read off its midsagittal slice: the Visible Human's menton (it goes on to C5, its neck and
# shoulders far below the films' field), Cranium's anterior nasal spine (it ends 20 mm lower, at its upper teeth).
# Keyed by the file names `medshift fetch-ct` writes: another CT under such a name would get wrong landmarks.
CT_LANDMARKS = {"visible_human_head_ct": ("menton", (-18.0, -80.0, -95.0)),
                "cranium_ct": ("palate", (3.0, -83.0, -60.0))}
# The boxes are drawn tight to their objects; the head region comes from a 2 mm blur, so each box is widened by this.
BOX_MARGIN_MM = 3.0


def film_scan(path: Path) -> np.ndarray:
    """A film scan as it is (its scan's orientation), at COMMON_MM (0..1, bright = dense)."""
    from PIL import Image

    return resample(np.asarray(Image.open(path).convert("L"), np.float32) / 255.0, FILM_MM, COMMON_MM)


def read_film(path: Path, exclude, upright: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A film scan at COMMON_MM (0..1, bright = dense; its unexposed frame filled from the exposed field) and its
    head region (`exclude`: boxes in scan pixels), both turned upright by np.rot90(., `upright`)."""
    small = film_scan(path)
    frame = unexposed_film(small, COMMON_MM)
    small = fill_from_nearest(small, frame)
    scale, pad = FILM_MM / COMMON_MM, int(round(BOX_MARGIN_MM / COMMON_MM))
    boxes = tuple((max(int(r0 * scale) - pad, 0), int(r1 * scale) + pad, max(int(c0 * scale) - pad, 0),
                   int(c1 * scale) + pad) for r0, r1, c0, c1 in exclude)
    head = head_region(small, COMMON_MM, boxes, tissue_fraction=FILM_TISSUE_FRACTION, outside=frame)
    return np.rot90(small, upright).copy(), np.rot90(head, upright).copy()


def read_films(film_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """view -> (upright film, head region) of both films (read_film)."""
    return {view: read_film(film_dir / name, boxes, UPRIGHT[view]) for view, (name, _, _, boxes) in FILMS.items()}


@dataclass(frozen=True)
class ScanChain:
    """How a film was digitised, for `as_scanned`: the grey levels (0-255) of its head region's 1st and 99th
    percentiles and its JPEG quantisation tables."""

    levels: tuple[float, float]
    jpeg_tables: dict


def scan_chains(film_dir: Path, films: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, ScanChain]:
    """view -> its film's ScanChain (`films` from read_films)."""
    from PIL import Image

    chains = {}
    for view, (name, *_) in FILMS.items():
        image, head = films[view]
        low, high = np.percentile(image[head] * 255.0, [1, 99])
        with Image.open(film_dir / name) as scan:
            chains[view] = ScanChain((float(low), float(high)), dict(scan.quantization))
    return chains


def as_scanned(image: np.ndarray, head: np.ndarray, chain: ScanChain) -> np.ndarray:
    """A rendering at PITCH_MM as its film was digitised: its head's 1st-99th percentiles put on the film's grey
    levels, enlarged to the scan's FILM_MM pixels, stored in 8 bits as JPEG with the film's own tables, read back and
    brought to PITCH_MM as film_scan brings the film (same shape as `image`; bright = dense, 0..1)."""
    from PIL import Image

    low, high = np.percentile(image[head], [1, 99])
    grey = chain.levels[0] + (image - low) / max(high - low, 1e-9) * (chain.levels[1] - chain.levels[0])
    enlarged = ndimage.zoom(grey, PITCH_MM / FILM_MM, order=3, mode="nearest", grid_mode=True)
    stored = io.BytesIO()
    Image.fromarray(np.clip(np.rint(enlarged), 0, 255).astype(np.uint8)).save(stored, "JPEG",
                                                                                qtables=chain.jpeg_tables)
    stored.seek(0)
    back = resample(np.asarray(Image.open(stored), np.float32) / 255.0, FILM_MM, PITCH_MM)
    back = back[: image.shape[0], : image.shape[1]]
    return np.pad(back, [(0, image.shape[0] - back.shape[0]), (0, image.shape[1] - back.shape[1])], mode="edge")


def ceph_geometry(view: str) -> CArmGeometry:
    """The films' geometry for a view, on a SIZE x SIZE detector at PITCH_MM."""
    _, sid, lao, _ = FILMS[view]
    return CArmGeometry(lao_rao_deg=lao, sid_mm=sid, sod_mm=SOURCE_PATIENT_MM, rows=SIZE, cols=SIZE,
                        pixel_spacing_mm=PITCH_MM)


def landmark_row(ct_name: str, view: str) -> tuple[str, int] | None:
    """(name, detector row) of the lowest landmark a CT holds (CT_LANDMARKS) in a view; None for other CTs and for a
    landmark off the detector."""
    if Path(ct_name).stem not in CT_LANDMARKS:
        return None
    name, point = CT_LANDMARKS[Path(ct_name).stem]
    rows, _, in_front = ceph_geometry(view).detector_position(np.asarray([point]))
    row = int(np.rint(rows[0]))
    return (name, row) if in_front[0] and 0 <= row < SIZE else None


def common_anatomy(ct_name: str, view: str, head: np.ndarray, film_head: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """(rendering's head, film's head) both cut below the lowest landmark the CT holds (landmark_row on the
    rendering, FILM_LANDMARK_ROWS on the film), so both hold the same anatomy below the vault (the CT's top cut, kept
    clear of, is not matched on the film); None for a CT without landmarks or with its landmark off the detector."""
    landmark = landmark_row(ct_name, view)
    if landmark is None:
        return None
    name, row = landmark
    head, film_head = head.copy(), film_head.copy()
    head[row + 1:] = False
    film_head[FILM_LANDMARK_ROWS[view][name] + 1:] = False
    return head, film_head


def anatomy_rng(ct_name: str, view: str) -> np.random.Generator:
    """The seed of a CT view's anatomy finer than the CT (object_detail.py): from the CT's name and the view."""
    return np.random.default_rng(zlib.crc32(f"{Path(ct_name).stem}/{view}".encode()))


def rendering_head(integrals: np.ndarray, scan_edges: np.ndarray) -> np.ndarray:
    """A rendering's head region: more than 0.5 g/cm^2 of matter on the ray, CUT_MARGIN_MM clear of the CT's own cut
    (`scan_edges`, scan_edges.scan_edges_on_detector)."""
    return clear_of(integrals.sum(-1) > 0.5, scan_edges, PITCH_MM)


def render_ceph(projector: ConeBeamProjector, view: str, domain: str = "clinical-normal", ct_name: str = "ct"):
    """(image, head region (rendering_head), projection s, rendering s) of a cephalostat view of a CT (the film
    look's object detail seeded by anatomy_rng(ct_name, view))."""
    geometry = ceph_geometry(view)
    start = time.perf_counter()
    integrals = projector.project(geometry)
    projected = time.perf_counter()
    settings = replace(draw_domain_settings(domain, np.random.default_rng(0)), heel=0.0)
    detailed = view_object_integrals(integrals, settings.look, projector.volume, geometry, anatomy_rng(ct_name, view))
    image = render_domain(detailed, settings, PITCH_MM, np.random.default_rng(1)).image
    head = rendering_head(integrals, scan_edges_on_detector(projector.volume, geometry))
    return image, head, projected - start, time.perf_counter() - projected


def compare_with_films(cts: list[Path], film_dir: Path, picture: Path | None = None) -> None:
    """Print the film comparison tables, over the whole head and over the anatomy both images hold, and the noise
    table (and write the side-by-side picture)."""
    films = read_films(film_dir)
    chains = scan_chains(film_dir, films)
    film_stats = {view: film_statistics(image, head, COMMON_MM, COMMON_MM) for view, (image, head) in films.items()}
    header = ("| image | edge width mm (film's) | band energies 0.5/1/2/4/8 mm, log ratio to the film | "
              "mean abs log ratio | histogram distance | median grey (film's) | noise, mean abs log ratio |")
    whole = [f"| film {FILMS[view][0]} ({view}) | {stats.edge_width_mm:.2f} | - | - | - | {stats.median_grey:.2f} | - |"
             for view, stats in film_stats.items()]
    common, noise, times = [], [], []
    scans = {view: film_scan(film_dir / name) for view, (name, *_) in FILMS.items()}  # the picture shows the frame
    used = {CT_LANDMARKS[ct.stem][0] for ct in cts if ct.stem in CT_LANDMARKS}
    tiles = {view: [(np.rot90(scan, UPRIGHT[view]), [FILM_LANDMARK_ROWS[view][name] for name in sorted(used)])]
             for view, scan in scans.items()}
    for ct in cts:
        projector = ConeBeamProjector(read_ct_volume(ct, grid_size=None))
        for view in FILMS:
            image, head, t_project, t_render = render_ceph(projector, view, ct_name=ct.name)
            times.append(f"| {ct.name} {view} | {t_project:.1f} | {t_render:.1f} |")
            tiles[view].append((image, [] if (mark := landmark_row(ct.name, view)) is None else [mark[1]]))
            scanned = as_scanned(image, head, chains[view])
            stats = film_statistics(scanned, head, PITCH_MM, COMMON_MM)
            whole.append(_row(f"{ct.name} {view}", stats, film_stats[view]))
            regions = common_anatomy(ct.name, view, head, films[view][1])
            film = film_stats[view]
            if regions is not None:
                film = film_statistics(films[view][0], regions[1], COMMON_MM, COMMON_MM)
                stats = film_statistics(scanned, regions[0], PITCH_MM, COMMON_MM)
                common.append(_row(f"{ct.name} {view} (to the {CT_LANDMARKS[ct.stem][0]})", stats, film))
            noise.append(f"| {ct.name} {view} | {_noise(stats.noise)} | {_noise(film.noise)} | "
                         f"{noise_log_ratio(stats, film):.2f} |")
    print(f"\n## Clinical-normal renderings against real skull films ({SIZE} px at {PITCH_MM} mm, as scanned, "
          f"statistics at {COMMON_MM} mm)\n\nOver the whole head region:\n\n{header}\n{'|---' * 7}|")
    print("\n".join(whole))
    if common:
        print(f"\nOver the anatomy both hold (each cut below the CT's lowest landmark):\n\n{header}\n{'|---' * 7}|")
        print("\n".join(common))
    bands = " / ".join(f"{low:g}-{high:g}" for low, high in NOISE_GREY_BANDS)
    print(f"\nFine-scale noise x 1e-3 by local grey ({bands}; film_statistics.noise_by_grey), over the anatomy both "
          f"hold where the CT has landmarks:\n\n| rendering | rendering's noise | film's noise | mean abs log ratio |"
          f"\n|---|---|---|---|\n" + "\n".join(noise))
    print("\n| rendering | project s | render s |\n|---|---|---|\n" + "\n".join(times))
    print(f"\nGoals: edge width <= {GOALS['edge']} mm, band energies' mean abs log ratio <= {GOALS['bands']}, "
          f"histogram distance <= {GOALS['histogram']}.")
    if picture is not None:
        _side_by_side(tiles, picture)


def _noise(values: tuple[float, ...]) -> str:
    """Noise by grey band, x 1e-3 ('-' for a band the region lacks)."""
    return " / ".join("-" if not np.isfinite(v) else f"{v * 1e3:.1f}" for v in values)


def _row(name: str, stats, film) -> str:
    """A table row: a rendering's statistics against a film's."""
    ratios = np.log(np.asarray(stats.band_energies) / np.asarray(film.band_energies))
    return (f"| {name} | {stats.edge_width_mm:.2f} ({film.edge_width_mm:.2f}) | "
            f"{' / '.join(f'{r:+.2f}' for r in ratios)} | {band_log_ratio(stats, film):.2f} | "
            f"{histogram_distance(stats, film):.3f} | {stats.median_grey:.2f} ({film.median_grey:.2f}) | "
            f"{noise_log_ratio(stats, film):.2f} |")


def _side_by_side(tiles: dict[str, list[tuple[np.ndarray, list[int]]]], picture: Path, height: int = 420) -> None:
    """Film, then each CT; one row per view, each tile with short red marks at its `rows` (where the comparison
    over the anatomy both hold ends) at both sides (a .jpg picture as JPEG, quality 82)."""
    from PIL import Image, ImageDraw

    rows = []
    for images in tiles.values():
        row = []
        for image, marks in images:
            low, high = np.percentile(image, [0.5, 99.5])
            tile = Image.fromarray((np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8))
            scale = height / tile.height
            tile = tile.resize((round(tile.width * scale), height), Image.LANCZOS).convert("RGB")
            draw = ImageDraw.Draw(tile)
            for mark in marks:
                y = round(mark * scale)
                for x0 in (0, tile.width - 14):
                    draw.line([(x0, y), (x0 + 13, y)], fill=(230, 30, 30), width=2)
            row.append(tile)
        rows.append(row)
    width = max(sum(t.width for t in row) + 6 * (len(row) - 1) for row in rows)
    canvas = Image.new("RGB", (width, len(rows) * (height + 6) - 6), (255, 255, 255))
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            canvas.paste(tile, (x, r * (height + 6)))
            x += tile.width + 6
    canvas.save(picture, **({"quality": 82} if picture.suffix.lower() in (".jpg", ".jpeg") else {}))
