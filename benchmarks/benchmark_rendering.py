"""Rendering speed of large views of a full-resolution CT: projection, one clinical domain, all five domains.

Prints a Markdown table: wall and process CPU seconds and peak resident memory for a lateral (and a C-arm) view
of SIZE x SIZE pixels, with the current fast paths (rays traced at 2 per magnified voxel and interpolated; wide
Gaussians on block averages) and, with --exact, tracing every ray (ray_oversampling=None). The goal
(issue 27): a 1024 x 1024 lateral view of a 1 mm CT in <= 10 s on the 2-core development CPU.
Run from the repository root:
    python benchmarks/benchmark_rendering.py --ct visible_human_head_ct.nrrd [--size 1024] [--pitch 0.3]
        [--device cpu|cuda] [--exact]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))
from MedShiftLib.simulator.cone_beam_projector import RAY_OVERSAMPLING, CArmGeometry, ConeBeamProjector  # noqa: E402
from MedShiftLib.simulator.ct_volume import read_ct_volume  # noqa: E402
from MedShiftLib.simulator.domain_rendering import draw_domain_settings, render_domain  # noqa: E402
from MedShiftLib.simulator.domains import SIMULATOR_DOMAINS  # noqa: E402


def timed(function, *args):
    """(result, wall s, CPU s) of a call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def all_domains(integrals: np.ndarray, pitch: float) -> list:
    """Every domain, noisy and noise-free."""
    return [render_domain(integrals, draw_domain_settings(d, np.random.default_rng(0)), pitch, rng)
            for d in SIMULATOR_DOMAINS for rng in (np.random.default_rng(1), None)]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, required=True)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--pitch", type=float, default=0.3, help="detector pitch mm (0.3: a 307 mm field)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--exact", action="store_true", help="also trace every ray (the previous projector)")
    args = parser.parse_args()
    volume, read_s, _ = timed(read_ct_volume, args.ct, None)
    z, y, x = volume.shape_zyx
    print(f"CT {args.ct.name}: {x} x {y} x {z} voxels at {volume.spacing_mm} mm, read in {read_s:.1f} s; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}\n")
    print("| view | rays | project s (CPU s) | clinical-normal s (CPU s) | five domains, noisy + clean s | total s |")
    print("|---|---|---|---|---|---|")
    variants = [("fast", RAY_OVERSAMPLING)] + ([("every ray", None)] if args.exact else [])
    for name, lao, cran in (("lateral", 90.0, 0.0), ("C-arm", 23.0, -12.0)):
        geometry = CArmGeometry(lao_rao_deg=lao, cranial_caudal_deg=cran, rows=args.size, cols=args.size,
                                pixel_spacing_mm=args.pitch)
        for label, oversampling in variants:
            projector = ConeBeamProjector(volume, device=args.device, ray_oversampling=oversampling)
            rays = projector._traced_grid(geometry)
            integrals, project_s, project_cpu = timed(projector.project, geometry)
            settings = replace(draw_domain_settings("clinical-normal", np.random.default_rng(0)), heel=0.0)
            _, render_s, render_cpu = timed(render_domain, integrals, settings, args.pitch, np.random.default_rng(1))
            _, all_s, _ = timed(all_domains, integrals, args.pitch)
            print(f"| {name} {args.size} px at {args.pitch} mm, {label} | {rays[0]} x {rays[1]} | "
                  f"{project_s:.1f} ({project_cpu:.1f}) | {render_s:.1f} ({render_cpu:.1f}) | {all_s:.1f} | "
                  f"{project_s + render_s:.1f} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print(f"\nPeak resident memory {peak:.2f} GB. 'total' = projection + one clinical-normal image.")


if __name__ == "__main__":
    main()
