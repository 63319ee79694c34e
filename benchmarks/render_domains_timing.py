"""Seconds per noisy domain rendering (a training render) of a lateral view of a CT, at 256 px and 1024 px.

The view is projected once per size (Visible Human head at 1 mm: SID 1200, SOD 800 mm, 256 px at 1.25 mm and
1024 px at 0.3 mm); then each clinical domain, and all five domains, are rendered noisy REPEATS times and the best
time is printed (a Markdown table), with the film look's object detail (object_detail.py: the CT's blur undone and the
bone texture, once per view for the three clinical domains). Run from the repository root, for two trees to compare
before and after:

    PYTHONPATH=MedShift python benchmarks/render_domains_timing.py --ct visible_human_head_ct.nrrd [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "MedShift"))
from MedShiftLib.simulator.cone_beam_projector import CArmGeometry, ConeBeamProjector  # noqa: E402
from MedShiftLib.simulator.ct_volume import read_ct_volume  # noqa: E402
from MedShiftLib.simulator.domain_rendering import (  # noqa: E402
    draw_domain_settings,
    render_domain,
    view_object_integrals,
)
from MedShiftLib.simulator.domains import SIMULATOR_DOMAINS  # noqa: E402

VIEWS = ((256, 1.25), (1024, 0.3))


def best_seconds(integrals: np.ndarray, pitch: float, domains, repeats: int) -> float:
    """The fastest of `repeats` noisy renderings of every domain in `domains`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for domain in domains:
            render_domain(integrals, draw_domain_settings(domain, np.random.default_rng(0)), pitch,
                          np.random.default_rng(1))
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    projector = ConeBeamProjector(read_ct_volume(args.ct, grid_size=None))
    print("| view | object detail s | clinical-normal s | clinical-exposure s | clinical-low s | five domains s |")
    print("|---|---|---|---|---|---|")
    for size, pitch in VIEWS:
        geometry = CArmGeometry(lao_rao_deg=90.0, sid_mm=1200.0, sod_mm=800.0, rows=size, cols=size,
                                pixel_spacing_mm=pitch)
        integrals = projector.project(geometry)
        detail = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            view_object_integrals(integrals, "film", projector.volume, geometry, np.random.default_rng(0))
            detail.append(time.perf_counter() - start)
        cells = [min(detail)] + [best_seconds(integrals, pitch, domains, args.repeats) for domains in
                 (("clinical-normal",), ("clinical-exposure",), ("clinical-low",), SIMULATOR_DOMAINS)]
        print(f"| {size} px at {pitch} mm | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
