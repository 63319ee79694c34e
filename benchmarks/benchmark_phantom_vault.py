"""The procedural head phantom's cost and the terraces in its vault (issue 27's rings).

Prints a Markdown table per phantom grid: process CPU and wall seconds to paint a phantom (`make_head_phantom`) and
to project one SIZE px view (c-arm LAO 8 / cranial 5 as in docs/images/simulated_domains.jpg, a PA and a lateral
view), and the vault's terrace: the relative high-pass energy (image minus its 1-pixel Gaussian blur, std / mean)
of the bone line integrals over the upper vault, where the true projection is smooth. Single-threaded by default.
Run from the repository root (a tree of another commit measures that commit: copy this file into its benchmarks/):
    python benchmarks/benchmark_phantom_vault.py [--grids 160 224] [--seeds 0 1 2] [--size 256] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))
from MedShiftLib.simulator.cone_beam_projector import ConeBeamProjector  # noqa: E402
from MedShiftLib.simulator.head_phantom import make_head_phantom  # noqa: E402
from MedShiftLib.simulator.views import ViewOptions, seeded_rng  # noqa: E402
from MedShiftLib.simulator.xray_physics import MATERIALS  # noqa: E402

VIEWS = (("c-arm", 8.0, 5.0), ("pa", None, None), ("lateral", None, None))


def vault_terrace(line_integrals: np.ndarray, size: int) -> float:
    """Relative high-pass energy of the bone line integrals in the upper vault (rows 40-100, cols 60-160 of 256)."""
    bone = line_integrals[..., MATERIALS.index("cortical_bone")]
    r0, r1, c0, c1 = (round(v * size / 256) for v in (40, 100, 60, 160))
    high_pass = (bone - ndimage.gaussian_filter(bone, 1.0))[r0:r1, c0:c1]
    return float(high_pass.std() / bone[r0:r1, c0:c1].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, nargs="+", default=[160, 224])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| grid | paint CPU s | paint wall s | project CPU s (1 view) | " +
          " | ".join(f"terrace {kind}" for kind, _, _ in VIEWS) + " |")
    print("|---|---|---|---|" + "---|" * len(VIEWS))
    for grid in args.grids:
        paint, paint_wall, project, terrace = [], [], [], {kind: [] for kind, _, _ in VIEWS}
        for seed in args.seeds:
            cpu, wall = time.process_time(), time.perf_counter()
            phantom = make_head_phantom(seeded_rng(seed, 0), grid)
            paint.append(time.process_time() - cpu)
            paint_wall.append(time.perf_counter() - wall)
            projector = ConeBeamProjector(phantom)
            for kind, lao, cran in VIEWS:
                _, geometry = ViewOptions(kind=kind).geometry(seed, 0, 0, args.size)
                if lao is not None:
                    geometry = replace(geometry, lao_rao_deg=lao, cranial_caudal_deg=cran)
                cpu = time.process_time()
                line_integrals = projector.project(geometry)
                project.append(time.process_time() - cpu)
                terrace[kind].append(vault_terrace(line_integrals, args.size))
        print(f"| {grid} | {np.median(paint):.2f} | {np.median(paint_wall):.2f} | {np.median(project):.2f} | " +
              " | ".join(f"{np.mean(v):.4f}" for v in terrace.values()) + " |")


if __name__ == "__main__":
    main()
