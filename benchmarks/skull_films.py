"""Clinical renderings of real head CTs beside real skull films: the table and picture of docs/simulator.md.

The films: the Bolton-Brush Growth Study lateral (B1893L12.jpg) and PA (B1893F12.jpg) cephalograms of
open-ortho/dcm4ceph (MIT; dcm4ceph-sampledata/), 4096 x 5120 scans at 0.0496 mm (8 x 10 inch film); their
.properties give source-patient 1524 mm and source-film 1611 mm (lateral) / 1642.3 mm (PA). The labels, the
ruler, the nasal positioner and (PA) the ear-rod arm and a holder's edge are left out of the head region by the
boxes below, the film the cassette's frame kept unexposed (border strips, cut corners) by
film_statistics.unexposed_film, which is filled from its nearest exposed pixels so its edges add nothing. The
renderings use the same geometry at PITCH_MM (clinical-normal, heel effect off, noise seed 1); statistics as in
MedShiftLib/evaluation/film_statistics.py at 0.15 mm.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from MedShiftLib.evaluation.film_statistics import (
    band_log_ratio,
    fill_from_nearest,
    film_statistics,
    head_region,
    histogram_distance,
    resample,
    unexposed_film,
)
from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector
from MedShiftLib.simulator.ct_volume import read_ct_volume
from MedShiftLib.simulator.domain_rendering import draw_domain_settings, render_domain, view_object_integrals

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
# The boxes are drawn tight to their objects; the head region comes from a 2 mm blur, so each box is widened by this.
BOX_MARGIN_MM = 3.0


def film_scan(path: Path) -> np.ndarray:
    """A film scan as it is, at COMMON_MM (0..1, bright = dense)."""
    from PIL import Image

    return resample(np.asarray(Image.open(path).convert("L"), np.float32) / 255.0, FILM_MM, COMMON_MM)


def read_film(path: Path, exclude) -> tuple[np.ndarray, np.ndarray]:
    """A film scan at COMMON_MM (0..1, bright = dense; its unexposed frame filled from the exposed field) and its
    head region."""
    small = film_scan(path)
    frame = unexposed_film(small, COMMON_MM)
    small = fill_from_nearest(small, frame)
    scale, pad = FILM_MM / COMMON_MM, int(round(BOX_MARGIN_MM / COMMON_MM))
    boxes = tuple((max(int(r0 * scale) - pad, 0), int(r1 * scale) + pad, max(int(c0 * scale) - pad, 0),
                   int(c1 * scale) + pad) for r0, r1, c0, c1 in exclude)
    return small, head_region(small, COMMON_MM, boxes, tissue_fraction=FILM_TISSUE_FRACTION, outside=frame)


def anatomy_rng(ct_name: str, view: str) -> np.random.Generator:
    """The seed of a CT view's anatomy finer than the CT (object_detail.py): from the CT's name and the view."""
    return np.random.default_rng(zlib.crc32(f"{Path(ct_name).stem}/{view}".encode()))


def render_ceph(projector: ConeBeamProjector, view: str, domain: str = "clinical-normal", ct_name: str = "ct"):
    """(image, head region, projection s, rendering s) of a cephalostat view of a CT (the film look's object detail
    seeded by anatomy_rng(ct_name, view))."""
    _, sid, lao, _ = FILMS[view]
    geometry = CArmGeometry(lao_rao_deg=lao, sid_mm=sid, sod_mm=SOURCE_PATIENT_MM, rows=SIZE, cols=SIZE,
                            pixel_spacing_mm=PITCH_MM)
    start = time.perf_counter()
    integrals = projector.project(geometry)
    projected = time.perf_counter()
    settings = replace(draw_domain_settings(domain, np.random.default_rng(0)), heel=0.0)
    detailed = view_object_integrals(integrals, settings.look, projector.volume, geometry, anatomy_rng(ct_name, view))
    image = render_domain(detailed, settings, PITCH_MM, np.random.default_rng(1)).image
    return image, integrals.sum(-1) > 0.5, projected - start, time.perf_counter() - projected


def compare_with_films(cts: list[Path], film_dir: Path, picture: Path | None = None) -> None:
    """Print the film comparison table (and write the side-by-side picture)."""
    films = {view: read_film(film_dir / name, boxes) for view, (name, _, _, boxes) in FILMS.items()}
    film_stats = {view: film_statistics(image, head, COMMON_MM, COMMON_MM) for view, (image, head) in films.items()}
    print(f"\n## Clinical-normal renderings against real skull films ({SIZE} px at {PITCH_MM} mm, "
          f"statistics at {COMMON_MM} mm)\n")
    print("| image | edge width mm | band energies 0.5/1/2/4/8 mm, log ratio to the film | mean abs log ratio | "
          "histogram distance | median grey | project s | render s |")
    print("|---|---|---|---|---|---|---|---|")
    for view, stats in film_stats.items():
        print(f"| film {FILMS[view][0]} ({view}) | {stats.edge_width_mm:.2f} | - | - | - | {stats.median_grey:.2f} "
              "| - | - |")
    scans = {view: film_scan(film_dir / name) for view, (name, *_) in FILMS.items()}  # the picture shows the frame
    tiles = {view: [np.rot90(scan, -1) if view == "lateral" else scan] for view, scan in scans.items()}
    for ct in cts:
        projector = ConeBeamProjector(read_ct_volume(ct, grid_size=None))
        for view in FILMS:
            image, head, t_project, t_render = render_ceph(projector, view, ct_name=ct.name)
            stats, film = film_statistics(image, head, PITCH_MM, COMMON_MM), film_stats[view]
            ratios = np.log(np.asarray(stats.band_energies) / np.asarray(film.band_energies))
            print(f"| {ct.name} {view} | {stats.edge_width_mm:.2f} | {' / '.join(f'{r:+.2f}' for r in ratios)} | "
                  f"{band_log_ratio(stats, film):.2f} | {histogram_distance(stats, film):.3f} | "
                  f"{stats.median_grey:.2f} | {t_project:.1f} | {t_render:.1f} |")
            tiles[view].append(image)
    print(f"\nGoals: edge width <= {GOALS['edge']} mm, band energies' mean abs log ratio <= {GOALS['bands']}, "
          f"histogram distance <= {GOALS['histogram']}.")
    if picture is not None:
        _side_by_side(tiles, picture)


def _side_by_side(tiles: dict[str, list[np.ndarray]], picture: Path, height: int = 420) -> None:
    """Film, then each CT; one row per view (a .jpg picture as JPEG, quality 82)."""
    from PIL import Image

    rows = []
    for images in tiles.values():
        row = []
        for image in images:
            low, high = np.percentile(image, [0.5, 99.5])
            tile = Image.fromarray((np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8))
            row.append(tile.resize((round(tile.width * height / tile.height), height), Image.LANCZOS))
        rows.append(row)
    width = max(sum(t.width for t in row) + 6 * (len(row) - 1) for row in rows)
    canvas = Image.new("L", (width, len(rows) * (height + 6) - 6), 255)
    for r, row in enumerate(rows):
        x = 0
        for tile in row:
            canvas.paste(tile, (x, r * (height + 6)))
            x += tile.width + 6
    canvas.save(picture, **({"quality": 82} if picture.suffix.lower() in (".jpg", ".jpeg") else {}))
