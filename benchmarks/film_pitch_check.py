"""Is the film look at the training resolution harsher or noisier than a fine rendering binned down to it?

For each subject (the phantom and the given CTs), view kind (C-arm, PA, lateral) and pitch (0.6, 1.25 mm at
256 px), one view is projected twice: at the training pitch and FACTOR times finer (0.15 / 0.31 mm at
256 x FACTOR px), and rendered in the clinical domains (and sim-high) of a look. The fine image is binned
FACTOR x FACTOR (the mean, as a detector bins its elements) to the training pitch. Printed over the head
(more than 0.5 g/cm^2 of matter), for the direct and the binned image: the noise (std of noisy minus noise-free),
the finest band's RMS of the noise-free image (image minus its 1-px Gaussian: edge enhancement, halos) and the
median grey. Ratios direct / binned near 1 mean the look scales with the pitch as the physics does.
Run from the repository root:

    python benchmarks/film_pitch_check.py [--cts CT.nrrd ...] [--look film] [--factor 4] [--pitches 0.6 1.25]
        [--kinds c-arm pa lateral] [--no-phantom]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))
from MedShiftLib.simulator.cone_beam_projector import ConeBeamProjector  # noqa: E402
from MedShiftLib.simulator.domain_rendering import (  # noqa: E402
    draw_domain_settings,
    render_domain,
    view_object_integrals,
)
from MedShiftLib.simulator.domain_styles import ClinicalStyle, domain_style  # noqa: E402
from MedShiftLib.simulator.simulation import subject_source  # noqa: E402
from MedShiftLib.simulator.views import ViewOptions  # noqa: E402

SIZE = 256
DOMAINS = ("sim-high", "clinical-low", "clinical-normal", "clinical-exposure")
KINDS = ("c-arm", "pa", "lateral")


def binned(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks."""
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    return image[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor).mean(axis=(1, 3))


def measures(noisy: np.ndarray, clean: np.ndarray, head: np.ndarray) -> tuple[float, float, float]:
    """(noise std, finest-band RMS of the noise-free image, median grey) over the head."""
    fine = clean - ndimage.gaussian_filter(clean, 1.0, mode="nearest")
    return float((noisy - clean)[head].std()), float(np.sqrt(np.mean(fine[head] ** 2))), float(np.median(noisy[head]))


def render_pair(integrals: np.ndarray, domain: str, pitch: float, look: str, seed: int):
    """(noisy, noise-free) images of one domain."""
    settings = replace(draw_domain_settings(domain, np.random.default_rng(seed), look), heel=0.0)
    noisy = render_domain(integrals, settings, pitch, np.random.default_rng(seed + 1)).image
    return noisy, render_domain(integrals, settings, pitch, None).image


def check_view(projector: ConeBeamProjector, name: str, kind: str, pitch: float, factor: int, look: str) -> None:
    """Print one table row per domain for a subject, view kind and pitch."""
    _, geometry = ViewOptions(kind, (pitch,), 1150.0, 1000.0).geometry(3, 0, 0, SIZE)
    fine_geometry = replace(geometry, rows=SIZE * factor, cols=SIZE * factor, pixel_spacing_mm=pitch / factor)
    coarse, fine = projector.project(geometry), projector.project(fine_geometry)
    head = coarse.sum(-1) > 0.5
    # the object finer than its CT, as the clinical domains see it (one anatomy seed; its field at each pitch)
    objects = tuple(view_object_integrals(integrals, look, projector.volume, view, np.random.default_rng(11))
                    for integrals, view in ((coarse, geometry), (fine, fine_geometry)))
    for domain in DOMAINS:
        coarse_in, fine_in = objects if isinstance(domain_style(domain, look), ClinicalStyle) else (coarse, fine)
        direct = measures(*render_pair(coarse_in, domain, pitch, look, 7), head)
        noisy, clean = render_pair(fine_in, domain, pitch / factor, look, 7)
        down = measures(binned(noisy, factor), binned(clean, factor), head)
        print(f"| {name} | {kind} | {pitch} | {domain} | {direct[0]:.4f} / {down[0]:.4f} | "
              f"{direct[1]:.4f} / {down[1]:.4f} | {direct[2]:.2f} / {down[2]:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cts", type=Path, nargs="*", default=[], help="head CTs (full resolution or shipped)")
    parser.add_argument("--look", default="film")
    parser.add_argument("--factor", type=int, default=4, help="the fine rendering's pitch is pitch / factor")
    parser.add_argument("--pitches", type=float, nargs="+", default=[0.6, 1.25])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS))
    parser.add_argument("--no-phantom", action="store_true", help="only the CTs")
    args = parser.parse_args()
    print(f"| subject | view | pitch mm | domain | noise std direct / binned from pitch/{args.factor} | "
          "finest band RMS (noise-free) | median grey |")
    print("|---|---|---|---|---|---|---|")
    for ct in ([] if args.no_phantom else [None]) + list(args.cts):
        views = ViewOptions("c-arm")
        volume = subject_source(3, SIZE, views, () if ct is None else (ct,), vary_anatomy=False).subject(0).volume
        projector = ConeBeamProjector(volume)
        for kind in args.kinds:
            for pitch in args.pitches:
                check_view(projector, "phantom" if ct is None else ct.stem, kind, pitch, args.factor, args.look)


if __name__ == "__main__":
    main()
